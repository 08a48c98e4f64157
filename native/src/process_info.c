/* Process facts read from the OS without allocating (safe to call from hooks). */
#include <fcntl.h>
#include <unistd.h>

#include "cyscope.h"

static const char kVersion[] = "0.1.0";

int cyscope_abi_version(void) { return CYSCOPE_ABI_VERSION; }

const char *cyscope_version(void) { return kVersion; }

int cyscope_read_rss(uint64_t *rss_bytes) {
  if (rss_bytes == NULL) return CYSCOPE_EINVAL;
  /* /proc/self/statm: "size resident shared ..." in pages. Read with raw
   * syscalls into a stack buffer: stdio would allocate. */
  int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return CYSCOPE_EOS;
  char buf[128];
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return CYSCOPE_EOS;
  buf[n] = '\0';
  const char *p = buf;
  while (*p && *p != ' ') p++; /* skip total size */
  while (*p == ' ') p++;
  uint64_t pages = 0;
  if (*p < '0' || *p > '9') return CYSCOPE_EOS;
  while (*p >= '0' && *p <= '9') pages = pages * 10 + (uint64_t)(*p++ - '0');
  *rss_bytes = pages * (uint64_t)sysconf(_SC_PAGESIZE);
  return CYSCOPE_OK;
}
