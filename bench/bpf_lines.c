/* bpf_lines: where each source line of a loaded BPF program sits in its JIT
 * image. Debian's bpftool is built without libbfd and cannot dump JIT code,
 * but the kernel keeps, for a program loaded with BTF, one line-info record
 * per source line and the JIT address each starts at. profile-lines.py joins
 * this table with perf's samples to say which lines a program's time is on.
 *
 *   bpf_lines PROG_ID [IMAGE_FILE]
 *
 * Prints "ADDRESS<TAB>FILE:LINE<TAB>SOURCE" per record, ADDRESS absolute (a
 * program's subprograms have images of their own); IMAGE_FILE gets the JIT
 * code of the main program (objdump -D -b binary -m i386:x86-64 reads it). */
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char *what)
{
  fprintf(stderr, "bpf_lines: %s: %s\n", what, strerror(errno));
  return 1;
}

int main(int argc, char **argv)
{
  if (argc < 2 || argc > 3) {
    fprintf(stderr, "usage: bpf_lines PROG_ID [IMAGE_FILE]\n");
    return 2;
  }
  char *end = NULL;
  unsigned long id = strtoul(argv[1], &end, 10);
  if (!*argv[1] || *end) {
    fprintf(stderr, "bpf_lines: %s is not a program id\n", argv[1]);
    return 2;
  }
  int fd = bpf_prog_get_fd_by_id((__u32)id);
  if (fd < 0)
    return fail("program");

  /* First call: the counts and record sizes; second: the records. */
  struct bpf_prog_info info = {};
  __u32 len = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd, &info, &len))
    return fail("program info");
  __u32 lines = info.nr_line_info, jited = info.nr_jited_line_info, image = info.jited_prog_len;
  __u32 line_size = info.line_info_rec_size, jited_size = info.jited_line_info_rec_size;
  __u32 btf_id = info.btf_id;
  if (!lines || lines != jited || !btf_id) {
    fprintf(stderr, "bpf_lines: program %lu has no line info for its JIT image\n", id);
    return 1;
  }
  char *line_info = calloc(lines, line_size);
  __u64 *jited_info = calloc(jited, jited_size);
  unsigned char *code = calloc(1, image ? image : 1);
  if (!line_info || !jited_info || !code)
    return fail("memory");
  memset(&info, 0, sizeof(info));
  info.nr_line_info = lines;
  info.line_info_rec_size = line_size;
  info.line_info = (__u64)(unsigned long)line_info;
  info.nr_jited_line_info = jited;
  info.jited_line_info_rec_size = jited_size;
  info.jited_line_info = (__u64)(unsigned long)jited_info;
  info.jited_prog_len = image;
  info.jited_prog_insns = (__u64)(unsigned long)code;
  len = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd, &info, &len))
    return fail("program info");

  if (argc == 3) {
    FILE *f = fopen(argv[2], "wb");
    if (!f || fwrite(code, 1, image, f) != image || fclose(f))
      return fail(argv[2]);
  }
  struct btf *btf = btf__load_from_kernel_by_id(btf_id);
  if (!btf)
    return fail("program BTF");
  for (__u32 i = 0; i < lines; i++) {
    const struct bpf_line_info *l = (const void *)(line_info + (size_t)i * line_size);
    const char *file = btf__name_by_offset(btf, l->file_name_off);
    const char *text = btf__name_by_offset(btf, l->line_off);
    const char *base = file ? strrchr(file, '/') : NULL;
    printf("0x%llx\t%s:%u\t%s\n", (unsigned long long)jited_info[i], base ? base + 1 : (file ? file : "?"),
           BPF_LINE_INFO_LINE_NUM(l->line_col), text ? text : "");
  }
  btf__free(btf);
  return 0;
}
