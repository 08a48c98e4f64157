/* Async-signal-safe text and system helpers for the crash handler: JSON
 * written into a caller's fixed buffer, numbers and times formatted by
 * hand, files and memory read through raw system calls. No libc function
 * here takes a lock or allocates. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h> /* rename */
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "crash_internal.h"

size_t cr_strlen(const char *s) {
  size_t n = 0;
  if (s)
    while (s[n]) n++;
  return n;
}

int cr_streq(const char *a, const char *b) {
  if (!a || !b) return 0;
  while (*a && *a == *b) a++, b++;
  return *a == *b;
}

void cr_copy(char *dst, size_t cap, const char *src) {
  size_t i = 0;
  if (cap == 0) return;
  if (src)
    for (; src[i] && i + 1 < cap; i++) dst[i] = src[i];
  dst[i] = 0;
}

size_t cr_utoa(uint64_t v, char *out) {
  char tmp[24];
  size_t n = 0;
  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  for (size_t i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
  out[n] = 0;
  return n;
}

/* ---------------------------------------------------------------- JSON */
/* Room always kept free for closing what is open, so a full buffer still
 * ends as valid JSON (marked truncated). */
#define JB_RESERVE 4096

static void put(jbuf *b, const char *s, size_t n, int closing) {
  size_t limit = closing ? b->cap : (b->cap > JB_RESERVE ? b->cap - JB_RESERVE : 0);
  if (b->len + n + 1 > limit) {
    b->truncated = 1;
    if (!closing) return;
    n = limit > b->len + 1 ? limit - b->len - 1 : 0;
  }
  for (size_t i = 0; i < n; i++) b->p[b->len + i] = s[i];
  b->len += n;
  b->p[b->len] = 0;
}

int jb_room(jbuf *b, size_t n) {
  if (b->len + n + JB_RESERVE < b->cap) return 1;
  b->truncated = 1;
  return 0;
}

void jb_rawn(jbuf *b, const char *s, size_t n) { put(b, s, n, 0); }
void jb_raw(jbuf *b, const char *s) { put(b, s, cr_strlen(s), 0); }
/* Closing brackets go in even when the body was cut short. */
void jb_close(jbuf *b, const char *s) { put(b, s, cr_strlen(s), 1); }

void jb_strn(jbuf *b, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  if (!s) {
    jb_raw(b, "null");
    return;
  }
  char chunk[256];
  size_t k = 0;
  chunk[k++] = '"';
  for (size_t i = 0; i < n && s[i]; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (k > sizeof chunk - 8) {
      jb_rawn(b, chunk, k);
      k = 0;
    }
    if (ch == '"' || ch == '\\') {
      chunk[k++] = '\\';
      chunk[k++] = (char)ch;
    } else if (ch == '\n') {
      chunk[k++] = '\\';
      chunk[k++] = 'n';
    } else if (ch == '\t') {
      chunk[k++] = '\\';
      chunk[k++] = 't';
    } else if (ch < 0x20 || ch == 0x7f) {
      chunk[k++] = '\\';
      chunk[k++] = 'u';
      chunk[k++] = '0';
      chunk[k++] = '0';
      chunk[k++] = hex[ch >> 4];
      chunk[k++] = hex[ch & 15];
    } else {
      /* Bytes >= 0x80 pass through: paths and names are UTF-8. */
      chunk[k++] = (char)ch;
    }
  }
  chunk[k++] = '"';
  jb_rawn(b, chunk, k);
}

void jb_str(jbuf *b, const char *s) { jb_strn(b, s, s ? cr_strlen(s) : 0); }

void jb_int(jbuf *b, int64_t v) {
  char tmp[24];
  size_t n = 0;
  if (v < 0) {
    tmp[n++] = '-';
    n += cr_utoa((uint64_t)0 - (uint64_t)v, tmp + n);
  } else {
    n = cr_utoa((uint64_t)v, tmp);
  }
  jb_rawn(b, tmp, n);
}

void jb_hex(jbuf *b, uint64_t v) {
  static const char hex[] = "0123456789abcdef";
  char tmp[24];
  size_t n = 0;
  tmp[n++] = '"';
  tmp[n++] = '0';
  tmp[n++] = 'x';
  int started = 0;
  for (int shift = 60; shift >= 0; shift -= 4) {
    unsigned d = (unsigned)(v >> shift) & 15;
    if (d || started || shift == 0) {
      tmp[n++] = hex[d];
      started = 1;
    }
  }
  tmp[n++] = '"';
  jb_rawn(b, tmp, n);
}

void jb_key(jbuf *b, const char *k) {
  char last = b->len ? b->p[b->len - 1] : '{';
  if (last != '{' && last != '[') jb_raw(b, ",");
  jb_str(b, k);
  jb_raw(b, ":");
}

/* ---------------------------------------------------------------- time */
/* Days since 1970-01-01 to a civil date (proleptic Gregorian). */
static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d) {
  z += 719468;
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  unsigned doe = (unsigned)(z - era * 146097);
  unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t yy = (int64_t)yoe + era * 400;
  unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = yy + (*m <= 2);
}

static char *two(char *p, unsigned v) {
  p[0] = (char)('0' + v / 10 % 10);
  p[1] = (char)('0' + v % 10);
  return p + 2;
}

void cr_format_time(int64_t unix_ms, char out[32]) {
  int64_t secs = unix_ms / 1000;
  unsigned ms = (unsigned)(unix_ms % 1000);
  int64_t days = secs / 86400;
  unsigned rem = (unsigned)(secs % 86400);
  int64_t y;
  unsigned m, d;
  civil_from_days(days, &y, &m, &d);
  char *p = out;
  p += cr_utoa((uint64_t)y, p);
  *p++ = '-';
  p = two(p, m);
  *p++ = '-';
  p = two(p, d);
  *p++ = 'T';
  p = two(p, rem / 3600);
  *p++ = ':';
  p = two(p, rem / 60 % 60);
  *p++ = ':';
  p = two(p, rem % 60);
  *p++ = '.';
  *p++ = (char)('0' + ms / 100);
  p = two(p, ms % 100);
  *p++ = 'Z';
  *p = 0;
}

/* ------------------------------------------------------------- syscalls */
int cr_gettid(void) { return (int)syscall(SYS_gettid); }
int cr_getpid(void) { return (int)syscall(SYS_getpid); }

static int g_probe[2] = {-1, -1};

void cr_probe_pipe_init(void) {
  if (g_probe[0] < 0 && pipe2(g_probe, O_CLOEXEC | O_NONBLOCK) != 0) g_probe[0] = g_probe[1] = -1;
}

/* write() fails with EFAULT on an unreadable source instead of faulting. */
static int read_through_pipe(uintptr_t addr, void *out, size_t n) {
  if (g_probe[0] < 0 || n > 4096) return -1;
  char drain[256];
  while (read(g_probe[0], drain, sizeof drain) > 0) {
  }
  if (write(g_probe[1], (const void *)addr, n) != (ssize_t)n) return -1;
  return read(g_probe[0], out, n) == (ssize_t)n ? 0 : -1;
}

int cr_read_mem(uintptr_t addr, void *out, size_t n) {
  if (addr < 4096) return -1;
  /* The kernel checks the source range and fails with EFAULT instead of
   * faulting: memory of a crashed process may be anything. */
  struct iovec local = {out, n}, remote = {(void *)addr, n};
  ssize_t got = syscall(SYS_process_vm_readv, cr_getpid(), &local, 1UL, &remote, 1UL, 0UL);
  if (got == (ssize_t)n) return 0;
  if (got < 0 && errno != EFAULT) return read_through_pipe(addr, out, n); /* seccomp, old kernel */
  return -1;
}

long cr_read_file(const char *path, char *buf, size_t cap) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  size_t len = 0;
  while (len + 1 < cap) {
    ssize_t r = read(fd, buf + len, cap - 1 - len);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    len += (size_t)r;
  }
  close(fd);
  buf[len] = 0;
  return (long)len;
}

int cr_write_file_atomic(const char *tmp, const char *final, const char *data, size_t n) {
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return -1;
  size_t off = 0;
  while (off < n) {
    ssize_t w = write(fd, data + off, n - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) break;
    off += (size_t)w;
  }
  int ok = off == n;
  close(fd);
  if (!ok || rename(tmp, final) != 0) {
    unlink(tmp);
    return -1;
  }
  return 0;
}
