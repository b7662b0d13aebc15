#include "slabtrace/btf_names.hpp"

#include <bpf/btf.h>

namespace slabtrace::btf {

std::unordered_map<std::uint32_t, std::string> enum_names(const std::string& enum_name,
                                                          const std::string& strip_prefix) {
  std::unordered_map<std::uint32_t, std::string> out;
  struct btf* vmlinux = btf__load_vmlinux_btf();
  if (!vmlinux) return out;
  int id = btf__find_by_name_kind(vmlinux, enum_name.c_str(), BTF_KIND_ENUM);
  if (id > 0) {
    const btf_type* t = btf__type_by_id(vmlinux, id);
    const struct btf_enum* e = btf_enum(t);
    for (unsigned i = 0; i < btf_vlen(t); ++i) {
      std::string name = btf__name_by_offset(vmlinux, e[i].name_off);
      if (name.rfind(strip_prefix, 0) == 0) name = name.substr(strip_prefix.size());
      out.emplace(std::uint32_t(e[i].val), name);
    }
  }
  btf__free(vmlinux);
  return out;
}

}  // namespace slabtrace::btf
