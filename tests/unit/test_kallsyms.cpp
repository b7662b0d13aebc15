#include <catch2/catch.hpp>

#include <sstream>

#include "slabtrace/symbols.hpp"

using namespace slabtrace;
using namespace slabtrace::symbols;

namespace {

KernelSymbols parse_text(const std::string& text) {
  std::istringstream in(text);
  return KernelSymbols::parse(in);
}

using Range = std::pair<std::uint64_t, std::uint64_t>;

}  // namespace

TEST_CASE("kallsyms of a 6.18 kernel", "[unit][kallsyms]") {
  auto symbols = KernelSymbols::load(SLABTRACE_FIXTURES "/procfs/kallsyms");
  CHECK(symbols.size() == 3675);  // the t/T/w/W lines of 3749

  CHECK(symbols.address_of("__alloc_skb") == 0xffffffff81e3f6a0);
  CHECK(symbols.address_of("kmem_cache_alloc_noprof") == 0xffffffff81638450);
  CHECK(symbols.address_of("__x64_sys_uselib") == 0xffffffff81392ab0);  // W: weak
  CHECK_FALSE(symbols.address_of("__start_runtime_ptr_dentry_hashtable"));  // R: not code
  CHECK_FALSE(symbols.address_of("no_such_function"));

  CHECK(symbols.function_range("udp_sendmsg") == Range{0xffffffff82046580, 0xffffffff820472c0});
  CHECK(symbols.function_range("kfree") == Range{0xffffffff816307d0, 0xffffffff81630c20});
  CHECK_FALSE(symbols.function_range("ftrace_trampoline"));  // last: no end known
  CHECK_FALSE(symbols.function_range("no_such_function"));

  auto in_alloc_skb = symbols.resolve(0xffffffff81e3f6a0 + 0x1a);
  CHECK(in_alloc_skb.found);
  CHECK(in_alloc_skb.name == "__alloc_skb");
  CHECK(in_alloc_skb.offset == 0x1a);
  CHECK(in_alloc_skb.module.empty());
  CHECK(symbols.format(0xffffffff82046580 + 0x42) == "udp_sendmsg+0x42");
  CHECK(symbols.format(0xffffffff82046580) == "udp_sendmsg+0x0");
  // srso_alias_untrain_ret, _stext, _text and __pi__text share the first address.
  CHECK(symbols.format(0xffffffff81000000) == "srso_alias_untrain_ret+0x0");
  CHECK(symbols.format(0xffffffffc0203000 + 0x10) == "ftrace_trampoline+0x10 [__builtin__ftrace]");

  auto below = symbols.resolve(0xffffffff80000000);
  CHECK_FALSE(below.found);
  CHECK(below.name == "0xffffffff80000000");
  CHECK(below.offset == 0);
  CHECK(symbols.format(0xffffffff80000000) == "0xffffffff80000000");
  CHECK(symbols.format(0) == "0x0");
  // Between the end of the kernel's text (rc_get_bit) and the first module.
  CHECK(symbols.format(0xffffffff837f6330 + 0x80) == "rc_get_bit+0x80");
  CHECK(symbols.format(0xffffffff837f6330 + 0x200000) == "0xffffffff839f6330");
}

TEST_CASE("kallsyms with module and BPF program symbols", "[unit][kallsyms]") {
  auto symbols = KernelSymbols::load(SLABTRACE_FIXTURES "/procfs/kallsyms-modules");
  CHECK(symbols.size() == 15);  // less the d, b, r (module data) and D lines
  CHECK(symbols.format(0xffffffffc0a41000 + 0x10) == "nft_do_chain+0x10 [nf_tables]");
  auto conntrack = symbols.resolve(0xffffffffc0b02015);
  CHECK(conntrack.found);
  CHECK(conntrack.name == "nf_conntrack_in");
  CHECK(conntrack.offset == 5);
  CHECK(conntrack.module == "nf_conntrack");
  CHECK(symbols.format(0xffffffffc0c01830 + 0x4c) == "bpf_prog_ee0e253c78993a24_st_kmem_alloc+0x4c [bpf]");

  // Modules are listed in load order, not address order.
  CHECK(symbols.function_range("nft_register_expr") == Range{0xffffffffc0a42130, 0xffffffffc0b02000});
  CHECK(symbols.function_range("nf_conntrack_in") == Range{0xffffffffc0b02010, 0xffffffffc0b03300});
  CHECK_FALSE(symbols.address_of("nft_chain_filter_ipv4"));  // d: module data

  // At most 1 MiB past a symbol; further is a gap, not a giant function.
  CHECK(symbols.format(0xffffffff820472c0 + 0x100000) == "__pfx___udp_enqueue_schedule_skb+0x100000");
  CHECK(symbols.format(0xffffffff820472c0 + 0x100001) == "0xffffffff821472c1");
  CHECK_FALSE(symbols.resolve(0xffffffffc0500000).found);  // between ftrace_trampoline and nf_tables
  CHECK_FALSE(symbols.resolve(0xffffffffc0c01830 + 0x100001).found);
  CHECK(symbols.resolve(UINT64_MAX).name == "0xffffffffffffffff");
}

TEST_CASE("KernelSymbols built from a list sorts it", "[unit][kallsyms]") {
  KernelSymbols symbols({{0x2000, "second", ""}, {0x1000, "first", "mod"}});
  CHECK(symbols.format(0x1800) == "first+0x800 [mod]");
  CHECK(symbols.function_range("first") == Range{0x1000, 0x2000});
  CHECK_FALSE(KernelSymbols().resolve(0x1000).found);
  CHECK(KernelSymbols().format(0x1000) == "0x1000");
}

TEST_CASE("kallsyms read without privileges is a user error", "[unit][kallsyms]") {
  CHECK_THROWS_MATCHES(parse_text("0000000000000000 T _text\n0000000000000000 D jiffies\n"
                                  "0000000000000000 t nft_do_chain\t[nf_tables]\n"),
                       UserError,
                       Catch::Message("kernel symbol addresses are hidden (kptr_restrict); run as root"));
}

TEST_CASE("kallsyms rejects malformed lines with the line number", "[unit][kallsyms]") {
  CHECK_THROWS_WITH(parse_text(""), "kallsyms: no text symbols");
  CHECK_THROWS_WITH(parse_text("ffffffff83a00000 D init_task\n"), "kallsyms: no text symbols");
  CHECK_THROWS_WITH(parse_text("ffffffff81000000 T _text\nffffffff81000010 T\n"),
                    "kallsyms line 2: expected 'address type name [module]'");
  CHECK_THROWS_WITH(parse_text("ffffffff81000000 T a [m] extra\n"),
                    "kallsyms line 1: expected 'address type name [module]'");
  CHECK_THROWS_WITH(parse_text("ffffffff81000000 TT _text\n"), "kallsyms line 1: expected 'address type name [module]'");
  CHECK_THROWS_WITH(parse_text("zzzz T _text\n"), "kallsyms line 1: address 'zzzz' is not a number");
  CHECK_THROWS_WITH(parse_text("0xffffffff81000000 T _text\n"),
                    "kallsyms line 1: address '0xffffffff81000000' is not a number");
  CHECK_THROWS_WITH(parse_text("1ffffffff81000000 T _text\n"),
                    "kallsyms line 1: address '1ffffffff81000000' is out of range");
  CHECK_THROWS_WITH(parse_text("ffffffffc0a41000 t nft_do_chain\tnf_tables\n"),
                    "kallsyms line 1: expected '[module]', got 'nf_tables'");
  CHECK_THROWS_WITH(parse_text("ffffffffc0a41000 t nft_do_chain\t[\n"), "kallsyms line 1: expected '[module]', got '['");
  CHECK_THROWS_WITH(KernelSymbols::load(SLABTRACE_FIXTURES "/procfs/slabinfo"),
                    SLABTRACE_FIXTURES "/procfs/slabinfo line 1: address 'slabinfo' is not a number");
  CHECK_THROWS_AS(KernelSymbols::load(SLABTRACE_FIXTURES "/procfs/no-such-file"), UserError);
}

TEST_CASE("kallsyms of this machine if readable", "[unit][kallsyms]") {
  try {
    auto symbols = KernelSymbols::load();
    auto alloc_skb = symbols.address_of("__alloc_skb");
    REQUIRE(alloc_skb);
    CHECK(symbols.format(*alloc_skb + 4) == "__alloc_skb+0x4");
    auto range = symbols.function_range("__alloc_skb");
    REQUIRE(range);
    CHECK(range->first == *alloc_skb);
    CHECK(range->second > range->first);
  } catch (const UserError& e) {
    WARN("not checked against /proc/kallsyms: " << e.what());
  }
}

TEST_CASE("kallsyms keeps the kernel variables the BPF side reads", "[unit][kallsyms]") {
  // Lines of Debian 12's 6.1 kernel (CONFIG_KALLSYMS_ALL): data symbols listed.
  auto debian = KernelSymbols::load(SLABTRACE_FIXTURES "/procfs/kallsyms-6.1-debian");
  CHECK(debian.variable_address("page_offset_base") == 0xffffffff8fe13d60);
  CHECK(debian.variable_address("vmemmap_base") == 0xffffffff8fe13d50);
  // Variables are not code: nothing resolves to them.
  CHECK(debian.resolve(0xffffffff8fe13d60).name != "page_offset_base");
  CHECK(debian.function_range("kmalloc_reserve").has_value());
  // This machine's 6.18 (no CONFIG_KALLSYMS_ALL): no data symbols at all.
  auto host = KernelSymbols::load(SLABTRACE_FIXTURES "/procfs/kallsyms");
  CHECK_FALSE(host.variable_address("page_offset_base").has_value());
  CHECK_FALSE(host.variable_address("vmemmap_base").has_value());
}
