/* Native tests of the allocation tracker: exact counts of known patterns,
 * threads, attach/detach cycles, dlopen after attach, fork. Prints
 * "N passed, N failed" and exits non-zero on any failure. */
#define _GNU_SOURCE
#include <alloca.h>
#include <dlfcn.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "cyscope.h"
/* For slot_of_key(), a header-only helper of the tracker's tables. */
#include "../src/memtrack_internal.h"

/* Pointers escape through here so the compiler keeps every malloc/free. */
static void *volatile sink;

static int under_valgrind(void) {
  const char *pre = getenv("LD_PRELOAD");
  return pre && strstr(pre, "vgpreload") != NULL;
}

static cyscope_mem_totals totals(void) {
  cyscope_mem_totals t;
  memset(&t, 0, sizeof t);
  t.size = sizeof t;
  cyscope_mem_totals_get(&t);
  return t;
}

static uint64_t scan_patched(void) {
  uint64_t n = 0;
  cyscope_mem_scan_patched(&n);
  return n;
}

static cyscope_mem_config config(int exact, int native) {
  cyscope_mem_config c;
  memset(&c, 0, sizeof c);
  c.size = sizeof c;
  c.exact = exact;
  c.native = native;
  return c;
}

/* Default mode counts usable sizes; 24 is a size glibc returns exactly. */
static void test_known_pattern_default(void) {
  cyscope_mem_config c = config(0, 0);
  c.sample_bytes = 1ull << 40; /* no sampling: pure counting path */
  CHECK_EQ(cyscope_mem_attach(&c), CYSCOPE_OK);
  enum { N = 1000 };
  static void *ptrs[N];
  cyscope_mem_totals t0 = totals();
  for (int i = 0; i < N; i++) ptrs[i] = sink = malloc(24);
  cyscope_mem_totals t1 = totals();
  for (int i = 0; i < N; i++) free(ptrs[i]);
  cyscope_mem_totals t2 = totals();
  CHECK_EQ(t1.allocations - t0.allocations, N);
  CHECK_EQ(t1.allocated_bytes - t0.allocated_bytes, 24 * N);
  CHECK_EQ(t1.current_bytes - t0.current_bytes, 24 * N);
  CHECK_EQ(t2.frees - t1.frees, N);
  CHECK_EQ(t2.current_bytes, t0.current_bytes);
  CHECK(t2.peak_bytes >= t0.current_bytes + 24 * N);
  CHECK_EQ(cyscope_mem_detach(), CYSCOPE_OK);
}

/* Exact mode counts requested sizes, through every entry point. */
static void test_variants_exact(void) {
  cyscope_mem_config c = config(1, 0);
  CHECK_EQ(cyscope_mem_attach(&c), CYSCOPE_OK);
  cyscope_mem_totals t0 = totals();
  void *a = sink = malloc(100);
  void *b = sink = calloc(10, 30);
  a = sink = realloc(a, 200);
  void *d = NULL;
  CHECK_EQ(posix_memalign(&d, 64, 1000), 0);
  void *e = sink = aligned_alloc(64, 1024);
  void *f = sink = memalign(64, 500);
  void *g = sink = valloc(5000);
  /* valgrind aborts on pvalloc (unsupported): same accounting via valloc. */
  void *h = sink = under_valgrind() ? valloc(100) : pvalloc(100);
  void *i = sink = reallocarray(NULL, 10, 10);
  cyscope_mem_totals t1 = totals();
  CHECK_EQ(t1.allocations - t0.allocations, 9);
  CHECK_EQ(t1.allocated_bytes - t0.allocated_bytes,
           100 + 300 + 200 + 1000 + 1024 + 500 + 5000 + 100 + 100);
  CHECK_EQ(t1.current_bytes - t0.current_bytes, 300 + 200 + 1000 + 1024 + 500 + 5000 + 100 + 100);
  CHECK_EQ(t1.frees - t0.frees, 1); /* realloc moved or resized: old block released */
  free(NULL);
  cyscope_mem_totals tn = totals();
  CHECK_EQ(tn.frees, t1.frees); /* free(NULL) counts nothing */
  free(a);
  free(b);
  free(d);
  free(e);
  free(f);
  free(g);
  free(h);
  free(i);
  cyscope_mem_totals t2 = totals();
  CHECK_EQ(t2.current_bytes, t0.current_bytes);
  CHECK_EQ(t2.live_records, t0.live_records);
  CHECK_EQ(cyscope_mem_detach(), CYSCOPE_OK);
}

/* The live table follows what is live: an exact-mode burst of records grows
 * it, freeing them shrinks it back (a peak snapshot walks the whole table, so
 * a table left at its largest made every later snapshot cost that much). */
static void test_live_table_shrinks(void) {
  cyscope_mem_config c = config(1, 0);
  CHECK_EQ(cyscope_mem_attach(&c), CYSCOPE_OK);
  enum { N = 200000 };
  static void *ptrs[N];
  cyscope_mem_totals t0 = totals();
  for (int i = 0; i < N; i++) ptrs[i] = sink = malloc(16);
  cyscope_mem_totals t1 = totals();
  for (int i = 0; i < N; i++) free(ptrs[i]);
  cyscope_mem_totals t2 = totals();
  CHECK_EQ(t2.live_records, t0.live_records);
  /* N records of 32 bytes, at most a quarter full: >= 25 MB at the top. */
  CHECK(t1.tracker_bytes >= t0.tracker_bytes + (uint64_t)N * 32 * 2);
  CHECK(t2.tracker_bytes < t0.tracker_bytes + (uint64_t)N * 32 / 4);
  CHECK_EQ(cyscope_mem_detach(), CYSCOPE_OK);
}

/* Records carry the requested size: a leak of 1,000,003 bytes shows exactly. */
static void test_leak_record(void) {
  cyscope_mem_config c = config(0, 0);
  CHECK_EQ(cyscope_mem_attach(&c), CYSCOPE_OK);
  uint32_t epoch = 0;
  cyscope_mem_next_epoch(&epoch);
  void *big = sink = malloc(1000003);
  cyscope_mem_stack_stat st[64];
  size_t n = 0;
  CHECK_EQ(cyscope_mem_live_by_stack(epoch, epoch, st, 64, &n), CYSCOPE_OK);
  uint64_t bytes = 0;
  for (size_t k = 0; k < n; k++) bytes += st[k].exact_bytes;
  CHECK_EQ(bytes, 1000003);
  CHECK(n >= 1 && st[0].stack_id > 0);
  if (n >= 1) {
    cyscope_mem_frame fr[128];
    size_t nf = 0;
    CHECK_EQ(cyscope_mem_stack_frames(st[0].stack_id, fr, 128, &nf), CYSCOPE_OK);
    CHECK(nf >= 1 && fr[0].kind == CYSCOPE_FRAME_NATIVE);
    /* The default mode's native frame is the call site: this executable. */
    Dl_info site, self;
    CHECK(nf >= 1 && dladdr((void *)(uintptr_t)fr[0].id, &site) &&
          dladdr((void *)&test_leak_record, &self) && site.dli_fbase == self.dli_fbase);
  }
  free(big);
  n = 0;
  CHECK_EQ(cyscope_mem_live_by_stack(epoch, epoch, st, 64, &n), CYSCOPE_OK);
  CHECK_EQ(n, 0);
  void *kept = sink = malloc(300000);
  CHECK(totals().live_records >= 1);
  CHECK_EQ(cyscope_mem_detach(), CYSCOPE_OK);
  /* Detached, frees are unseen: records are dropped rather than left stale. */
  CHECK_EQ(totals().live_records, 0);
  free(kept);
}

static void test_mmap(void) {
  cyscope_mem_config c = config(0, 0);
  CHECK_EQ(cyscope_mem_attach(&c), CYSCOPE_OK);
  cyscope_mem_totals t0 = totals();
  size_t len = 1 << 20;
  void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK(m != MAP_FAILED);
  cyscope_mem_totals t1 = totals();
  CHECK_EQ(t1.current_bytes - t0.current_bytes, len);
  munmap(m, 4096); /* front page: the rest stays counted */
  cyscope_mem_totals t2 = totals();
  CHECK_EQ(t2.current_bytes - t0.current_bytes, len - 4096);
  munmap((char *)m + 4096, len - 4096);
  cyscope_mem_totals t3 = totals();
  CHECK_EQ(t3.current_bytes, t0.current_bytes);
  CHECK_EQ(cyscope_mem_detach(), CYSCOPE_OK);
}

static int64_t cur(void) { return totals().current_bytes; }

/* mremap moves the books with the pages: a mapping grown, shrunk, moved and
 * unmapped leaves nothing behind. */
static void test_mremap(void) {
  cyscope_mem_config c = config(0, 0);
  CHECK_EQ(cyscope_mem_attach(&c), CYSCOPE_OK);
  int64_t c0 = cur();
  size_t small = 10u << 20, big = 200u << 20;
  void *m = mmap(NULL, small, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK(m != MAP_FAILED);
  CHECK_EQ(cur() - c0, small);
  void *g = mremap(m, small, big, MREMAP_MAYMOVE);
  CHECK(g != MAP_FAILED);
  CHECK_EQ(cur() - c0, big);
  CHECK(totals().peak_bytes - c0 >= (int64_t)big);
  void *s = mremap(g, big, small, 0); /* shrink in place */
  CHECK(s == g);
  CHECK_EQ(cur() - c0, small);
  /* A failed call changes nothing (no room to grow without moving). */
  void *guard = mmap((char *)s + small, 4096, PROT_NONE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  if (guard != MAP_FAILED && guard == (char *)s + small) {
    CHECK(mremap(s, small, big, 0) == MAP_FAILED);
    CHECK_EQ(cur() - c0, small);
    munmap(guard, 4096);
  }
  CHECK_EQ(munmap(s, small), 0);
  CHECK_EQ(cur(), c0);
  CHECK_EQ(totals().live_records, 0);
  /* A reservation stays uncounted through mremap. */
  void *r = mmap(NULL, small, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  void *r2 = mremap(r, small, big, MREMAP_MAYMOVE);
  CHECK(r2 != MAP_FAILED);
  CHECK_EQ(cur(), c0);
  munmap(r2, big);
  CHECK_EQ(cur(), c0);
  CHECK_EQ(cyscope_mem_detach(), CYSCOPE_OK);
}

/* munmap and MAP_FIXED act on page ranges: holes, partial overlaps, commits
 * inside a reservation and failed calls keep the books exact. */
static void test_map_ranges(void) {
  cyscope_mem_config c = config(1, 0);
  CHECK_EQ(cyscope_mem_attach(&c), CYSCOPE_OK);
  size_t pg = (size_t)sysconf(_SC_PAGESIZE), len = 256 * pg;
  int64_t c0 = cur();
  char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK(m != MAP_FAILED);
  CHECK_EQ(cur() - c0, len);
  CHECK_EQ(munmap(m + 100 * pg, 10 * pg), 0); /* a hole in the middle */
  CHECK_EQ(cur() - c0, len - 10 * pg);
  CHECK_EQ(totals().live_records, 2);
  /* Fresh pages over counted ones (e.g. to drop their contents): same size. */
  char *f = mmap(m + 10 * pg, 20 * pg, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
  CHECK(f == m + 10 * pg);
  CHECK_EQ(cur() - c0, len - 10 * pg);
  /* PROT_NONE over counted pages (decommit): they leave the books. */
  CHECK(mmap(m + 200 * pg, 8 * pg, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) ==
        m + 200 * pg);
  CHECK_EQ(cur() - c0, len - 18 * pg);
  /* A failing munmap (unaligned) changes nothing. */
  CHECK(munmap(m + 1, pg) != 0);
  CHECK_EQ(cur() - c0, len - 18 * pg);
  /* Unmapping the whole range, hole and all, takes everything counted. */
  CHECK_EQ(munmap(m, len), 0);
  CHECK_EQ(cur(), c0);
  CHECK_EQ(totals().live_records, 0);
  /* Committing part of a reservation counts; unmapping the reservation
   * takes it back. */
  char *res = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK_EQ(cur(), c0);
  CHECK(mmap(res + 16 * pg, 32 * pg, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == res + 16 * pg);
  CHECK_EQ(cur() - c0, 32 * pg);
  CHECK_EQ(munmap(res, len), 0);
  CHECK_EQ(cur(), c0);
  /* Odd lengths count whole pages, and unmap the same. */
  char *odd = mmap(NULL, 1000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK_EQ(cur() - c0, pg);
  munmap(odd, 1000);
  CHECK_EQ(cur(), c0);
  CHECK_EQ(cyscope_mem_detach(), CYSCOPE_OK);
}

/* Pointers looked up by name reach the hooks while attached; RTLD_NEXT is
 * still answered for the caller, not for the tracker. */
typedef void *(*malloc_fn)(size_t);
typedef void (*free_fn)(void *);
static void test_dlsym(void) {
  malloc_fn real = (malloc_fn)dlsym(RTLD_DEFAULT, "malloc");
  cyscope_mem_config c = config(0, 0);
  c.sample_bytes = 1ull << 40;
  CHECK_EQ(cyscope_mem_attach(&c), CYSCOPE_OK);
  void *self = dlopen(NULL, RTLD_NOW);
  malloc_fn m1 = (malloc_fn)dlsym(RTLD_DEFAULT, "malloc");
  malloc_fn m2 = (malloc_fn)dlsym(self, "malloc");
  malloc_fn m3 = (malloc_fn)dlvsym(RTLD_DEFAULT, "malloc", "GLIBC_2.2.5");
  free_fn f1 = (free_fn)dlsym(self, "free");
  CHECK(m1 && m1 != real);
  CHECK(m2 == m1);
#if defined(__SANITIZE_ADDRESS__)
  int replaced_malloc = 1;
#else
  int replaced_malloc = under_valgrind();
#endif
  /* ASan's and valgrind's malloc have no version: there dlvsym finds libc's,
   * which is not what the hook calls, and is left alone. */
  CHECK(m3 == m1 || (replaced_malloc && m3 != NULL));
  cyscope_mem_totals t0 = totals();
  void *a = sink = m1(24), *b = sink = m2(24);
  cyscope_mem_totals t1 = totals();
  CHECK_EQ(t1.allocations - t0.allocations, 2);
  CHECK_EQ(t1.current_bytes - t0.current_bytes, 48);
  f1(a);
  f1(b);
  CHECK_EQ(totals().current_bytes, t0.current_bytes);
  /* 100 MB kept through a looked-up malloc shows in the peak. */
  cyscope_mem_reset_peak(NULL);
  void *big = sink = m2(100u << 20);
  CHECK(totals().peak_bytes - t0.current_bytes >= 100 << 20);
  f1(big);
  CHECK_EQ(totals().current_bytes, t0.current_bytes);
  /* RTLD_NEXT from this executable: libcyscope comes next and defines its
   * ABI; asked from the tracker itself, the answer would be NULL. */
  CHECK(dlsym(RTLD_NEXT, "cyscope_abi_version") != NULL);
  malloc_fn next = (malloc_fn)dlsym(RTLD_NEXT, "malloc");
  CHECK(next != NULL && next != m1);
  free(sink = next ? next(10) : NULL);
  /* Names the tracker does not hook, and unknown names, are unchanged. */
  CHECK(dlsym(self, "strlen") == dlsym(RTLD_DEFAULT, "strlen"));
  CHECK(dlsym(self, "cyscope_no_such_symbol") == NULL);
  CHECK(dlerror() != NULL);
  CHECK_EQ(cyscope_mem_detach(), CYSCOPE_OK);
  /* Detached: lookups answer the real function, and a hook handed out
   * earlier passes through without counting. */
  CHECK(dlsym(RTLD_DEFAULT, "malloc") == real);
  cyscope_mem_totals d0 = totals();
  free(sink = m1(64));
  CHECK_EQ(totals().allocations, d0.allocations);
  dlclose(self);
}

/* What epochs allocated, by stack, from the change log: per range, and
 * still right after the log before them is trimmed. */
static __attribute__((noinline)) void *alloc_site_a(size_t n) { return sink = malloc(n); }
static __attribute__((noinline)) void *alloc_site_b(size_t n) { return sink = calloc(1, n); }

static uint64_t changed_records(uint32_t lo, uint32_t hi, int *stacks) {
  cyscope_mem_stack_stat st[64];
  size_t n = 0;
  if (cyscope_mem_stack_changes(lo, hi, st, 64, &n) != CYSCOPE_OK) return (uint64_t)-1;
  uint64_t records = 0;
  for (size_t k = 0; k < n; k++) records += st[k].records;
  *stacks = (int)n;
  return records;
}

static void test_stack_changes(void) {
  cyscope_mem_config c = config(1, 0);
  CHECK_EQ(cyscope_mem_attach(&c), CYSCOPE_OK);
  static void *ptrs[160];
  uint32_t e1 = 0, e2 = 0, e3 = 0;
  cyscope_mem_next_epoch(&e1);
  for (int i = 0; i < 100; i++) ptrs[i] = alloc_site_a(40);
  cyscope_mem_next_epoch(&e2);
  for (int i = 100; i < 150; i++) ptrs[i] = alloc_site_a(40);
  for (int i = 150; i < 160; i++) ptrs[i] = alloc_site_b(40);
  cyscope_mem_next_epoch(&e3);
  for (int i = 0; i < 160; i++) free(ptrs[i]); /* frees change nothing here */
  int stacks = 0;
  CHECK_EQ(changed_records(e1, e1, &stacks), 100);
  CHECK_EQ(stacks, 1);
  CHECK_EQ(changed_records(e2, e2, &stacks), 60);
  CHECK_EQ(stacks, 2);
  CHECK_EQ(changed_records(e1, e2, &stacks), 160);
  CHECK_EQ(changed_records(e3, e3, &stacks), 0);
  CHECK_EQ(cyscope_mem_stack_log_trim(e2), CYSCOPE_OK);
  CHECK_EQ(changed_records(e2, e2, &stacks), 60);
  CHECK_EQ(stacks, 2);
  /* A full answer needs room: the size needed comes back. */
  cyscope_mem_stack_stat one[1];
  size_t n = 0;
  CHECK_EQ(cyscope_mem_stack_changes(e2, e2, one, 1, &n), CYSCOPE_ENOMEM);
  CHECK_EQ(n, 2);
  CHECK_EQ(cyscope_mem_detach(), CYSCOPE_OK);
}

/* Threads left out of region figures (the kernel's machinery) still count
 * in the process's totals, and not in the peak. */
static pthread_barrier_t g_ex_barrier;
static volatile int64_t g_ex_tid;
static void *excluded_body(void *arg) {
  (void)arg;
  g_ex_tid = (int64_t)syscall(SYS_gettid);
  pthread_barrier_wait(&g_ex_barrier); /* main excludes us */
  pthread_barrier_wait(&g_ex_barrier);
  void *p = sink = malloc(300000);
  pthread_barrier_wait(&g_ex_barrier); /* main looks */
  pthread_barrier_wait(&g_ex_barrier);
  free(p);
  return NULL;
}

static cyscope_mem_totals region_totals(void) {
  cyscope_mem_totals t;
  memset(&t, 0, sizeof t);
  t.size = sizeof t;
  cyscope_mem_region_totals_get(&t);
  return t;
}

static void test_excluded_threads(void) {
  cyscope_mem_config c = config(0, 0);
  CHECK_EQ(cyscope_mem_attach(&c), CYSCOPE_OK);
  pthread_barrier_init(&g_ex_barrier, NULL, 2);
  pthread_t th;
  pthread_create(&th, NULL, excluded_body, NULL);
  pthread_barrier_wait(&g_ex_barrier);
  int64_t tid = g_ex_tid;
  CHECK_EQ(cyscope_mem_exclude_threads(&tid, 1), CYSCOPE_OK);
  cyscope_mem_reset_peak(NULL);
  cyscope_mem_totals a0 = totals(), r0 = region_totals();
  pthread_barrier_wait(&g_ex_barrier);
  pthread_barrier_wait(&g_ex_barrier); /* the thread holds 300 kB now */
  cyscope_mem_totals a1 = totals(), r1 = region_totals();
  CHECK_EQ(a1.current_bytes - a0.current_bytes, 300000);
  CHECK_EQ(r1.current_bytes - r0.current_bytes, 0);
  CHECK_EQ(r1.allocations - r0.allocations, 0);
  CHECK(r1.peak_bytes - r0.current_bytes < 300000);
  CHECK(a1.peak_bytes >= a1.current_bytes);
  pthread_barrier_wait(&g_ex_barrier);
  pthread_join(th, NULL);
  cyscope_mem_totals a2 = totals(), r2 = region_totals();
  CHECK_EQ(a2.current_bytes, a0.current_bytes);
  CHECK_EQ(r2.current_bytes, r0.current_bytes);
  CHECK_EQ(cyscope_mem_exclude_threads(NULL, 0), CYSCOPE_OK);
  pthread_barrier_destroy(&g_ex_barrier);
  CHECK_EQ(cyscope_mem_detach(), CYSCOPE_OK);
}

/* The stack arena stops at its limit: new stacks are not kept (records go
 * to stack 0), the figures stay exact, and the refusals are counted. */
/* 2^depth distinct stacks: each level calls down through one of two
 * functions (two different return addresses). */
static void *branch_b(int depth, unsigned bits, size_t n);
static __attribute__((noinline)) void *branch_a(int depth, unsigned bits, size_t n) {
  if (depth == 0) return sink = malloc(n);
  void *p = (bits & 1) ? branch_a(depth - 1, bits >> 1, n) : branch_b(depth - 1, bits >> 1, n);
  sink = &depth; /* not a tail call */
  return p;
}
static __attribute__((noinline)) void *branch_b(int depth, unsigned bits, size_t n) {
  if (depth == 0) return sink = calloc(1, n);
  void *p = (bits & 1) ? branch_a(depth - 1, bits >> 1, n) : branch_b(depth - 1, bits >> 1, n);
  sink = &bits;
  return p;
}

static __attribute__((noinline)) void *padded_alloc(unsigned i) {
  volatile char *pad = alloca(16 * (i + 1));
  pad[0] = 0;
  return branch_a(14, i, 100);
}

static void test_stack_arena_limit(void) {
  cyscope_mem_config c = config(1, 1);
  c.stack_arena_limit = 1; /* below what is already used: nothing new fits */
  CHECK_EQ(cyscope_mem_attach(&c), CYSCOPE_OK);
  cyscope_mem_totals t0 = totals();
  uint32_t epoch = 0;
  cyscope_mem_next_epoch(&epoch);
  enum { N = 16384 };
  static void *ptrs[N];
  /* 16384 new stacks of 14+ frames (about 5 MB): more than the arena's
   * current chunk holds. Each call starts at its own stack depth: the
   * per-thread stack cache would take equal (call site, depth) for the same
   * stack. */
  for (unsigned i = 0; i < N; i++) ptrs[i] = padded_alloc(i);
  cyscope_mem_totals t1 = totals();
  CHECK(t1.stacks_refused > 0);
  CHECK_EQ(t1.current_bytes - t0.current_bytes, N * 100);
  static cyscope_mem_stack_stat st[N + 1];
  size_t n = 0;
  CHECK_EQ(cyscope_mem_live_by_stack(epoch, epoch, st, N + 1, &n), CYSCOPE_OK);
  uint64_t bytes = 0, unkept = 0;
  for (size_t k = 0; k < n; k++) {
    bytes += st[k].exact_bytes;
    if (st[k].stack_id == 0) unkept += st[k].exact_bytes;
  }
  CHECK_EQ(bytes, N * 100);
  CHECK(unkept > 0);
  for (int i = 0; i < N; i++) free(ptrs[i]);
  CHECK_EQ(totals().current_bytes, t0.current_bytes);
  c.stack_arena_limit = 0;
  cyscope_mem_configure(&c);
  CHECK_EQ(cyscope_mem_detach(), CYSCOPE_OK);
}

/* fork() while 8 threads allocate, 200 times: every child starts detached
 * and can allocate; the parent stays attached and balanced. */
enum { FORK_THREADS = 8, FORKS = 200 };
static volatile int g_fork_stop;
static void *fork_alloc_body(void *arg) {
  (void)arg;
  while (!g_fork_stop) {
    void *p = sink = malloc(64);
    void *q = sink = malloc(150000);
    free(p);
    free(q);
  }
  return NULL;
}

static void test_forks_under_threads(void) {
  cyscope_mem_config c = config(0, 0);
  CHECK_EQ(cyscope_mem_attach(&c), CYSCOPE_OK);
  g_fork_stop = 0;
  pthread_t th[FORK_THREADS];
  for (int i = 0; i < FORK_THREADS; i++) pthread_create(&th[i], NULL, fork_alloc_body, NULL);
  int bad = 0, forks = under_valgrind() ? 20 : FORKS;
  for (int i = 0; i < forks; i++) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
      cyscope_mem_totals t = totals();
      void *p = sink = malloc(1000);
      free(p);
      int ok = !t.attached && t.patched_slots == 0 && totals().allocations == t.allocations;
      /* Success leaves through exec: valgrind checks leaks at exit, and would
       * report the blocks the parent's threads had in flight (gone here). */
      if (ok) execl("/bin/true", "true", (char *)NULL);
      _exit(3);
    }
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status))
      bad++;
  }
  g_fork_stop = 1;
  for (int i = 0; i < FORK_THREADS; i++) pthread_join(th[i], NULL);
  CHECK_EQ(bad, 0);
  CHECK(totals().patched_slots > 0);
  CHECK_EQ(totals().live_records, 0); /* every recorded 150 kB block was freed */
  CHECK_EQ(cyscope_mem_detach(), CYSCOPE_OK);
}

enum { THREADS = 4, PER_THREAD = 10000 };
static void *thread_body(void *arg) {
  (void)arg;
  for (int i = 0; i < PER_THREAD; i++) {
    void *p = sink = malloc(40);
    free(p);
  }
  void *keep = malloc(56); /* one live block per thread, freed by main */
  return keep;
}

static void test_threads(void) {
  cyscope_mem_config c = config(0, 0);
  CHECK_EQ(cyscope_mem_attach(&c), CYSCOPE_OK);
  cyscope_mem_totals t0 = totals();
  pthread_t th[THREADS];
  void *kept[THREADS];
  for (int i = 0; i < THREADS; i++) pthread_create(&th[i], NULL, thread_body, NULL);
  for (int i = 0; i < THREADS; i++) pthread_join(th[i], &kept[i]);
  cyscope_mem_totals t1 = totals();
  /* The threads have exited: their counters were folded in on exit. Thread
   * creation itself may allocate (glibc's TLS/DTV), so count our pattern as
   * a lower bound and check the live balance through the kept blocks. */
  CHECK(t1.allocations - t0.allocations >= THREADS * (PER_THREAD + 1));
  CHECK(t1.frees - t0.frees >= THREADS * PER_THREAD);
  int64_t before_free = t1.current_bytes;
  for (int i = 0; i < THREADS; i++) free(kept[i]);
  cyscope_mem_totals t2 = totals();
  CHECK_EQ(before_free - t2.current_bytes, THREADS * 56);
  CHECK_EQ(cyscope_mem_detach(), CYSCOPE_OK);
}

/* A thread that stays below the push threshold and exits still brings its
 * high-water mark into the peak. */
static void *small_peak_body(void *arg) {
  (void)arg;
  void *p = sink = malloc(200000);
  free(p);
  return NULL;
}

static void test_thread_exit_peak(void) {
  cyscope_mem_config c = config(1, 0);
  CHECK_EQ(cyscope_mem_attach(&c), CYSCOPE_OK);
  cyscope_mem_reset_peak(NULL);
  cyscope_mem_totals t0 = totals();
  pthread_t th;
  pthread_create(&th, NULL, small_peak_body, NULL);
  pthread_join(th, NULL);
  cyscope_mem_totals t1 = totals();
  CHECK(t1.peak_bytes - t0.current_bytes >= 200000);
  CHECK_EQ(cyscope_mem_detach(), CYSCOPE_OK);
}

static void test_attach_detach_cycles(void) {
  cyscope_mem_config c = config(0, 0);
  int ok = 1;
  for (int i = 0; i < 1000 && ok; i++) {
    if (cyscope_mem_attach(&c) != CYSCOPE_OK) ok = 0;
    void *p = sink = malloc(64);
    free(p);
    if (cyscope_mem_detach() != CYSCOPE_OK) ok = 0;
  }
  CHECK(ok);
  cyscope_mem_totals t = totals();
  CHECK_EQ(t.attached, 0);
  CHECK_EQ(t.patched_slots, 0);
  CHECK_EQ(scan_patched(), 0); /* every GOT slot of every object restored */
  CHECK_EQ(cyscope_mem_detach(), CYSCOPE_ESTATE);
  /* Untracked now: allocations do not move the counters. */
  cyscope_mem_totals a = totals();
  void *p = sink = malloc(64);
  free(p);
  cyscope_mem_totals b = totals();
  CHECK_EQ(b.allocations, a.allocations);
  CHECK_EQ(cyscope_mem_attach(&c), CYSCOPE_OK);
  cyscope_mem_totals d = totals();
  CHECK(d.patched_slots > 0);
  CHECK(scan_patched() >= d.patched_slots);
  CHECK_EQ(cyscope_mem_detach(), CYSCOPE_OK);
}

static void test_dlopen_after_attach(void) {
  cyscope_mem_config c = config(1, 0);
  CHECK_EQ(cyscope_mem_attach(&c), CYSCOPE_OK);
  void *h = dlopen(CYSCOPE_TEST_PLUGIN, RTLD_NOW | RTLD_LOCAL);
  CHECK(h != NULL);
  if (h) {
    void *(*pa)(size_t) = (void *(*)(size_t))dlsym(h, "plugin_alloc");
    void (*pf)(void *) = (void (*)(void *))dlsym(h, "plugin_free");
    CHECK(pa && pf);
    cyscope_mem_totals t0 = totals();
    enum { N = 1000 };
    static void *ptrs[N];
    for (int i = 0; i < N; i++) ptrs[i] = pa(100);
    cyscope_mem_totals t1 = totals();
    CHECK_EQ(t1.allocations - t0.allocations, N);
    CHECK_EQ(t1.allocated_bytes - t0.allocated_bytes, 100 * N);
    for (int i = 0; i < N; i++) pf(ptrs[i]);
    cyscope_mem_totals t2 = totals();
    CHECK_EQ(t2.current_bytes, t0.current_bytes);
    CHECK_EQ(dlclose(h), 0);
  }
  CHECK_EQ(cyscope_mem_detach(), CYSCOPE_OK);
  CHECK_EQ(totals().patched_slots, 0);
  CHECK_EQ(scan_patched(), 0);
}

static void test_fork(void) {
  cyscope_mem_config c = config(0, 0);
  CHECK_EQ(cyscope_mem_attach(&c), CYSCOPE_OK);
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    /* The child starts detached with every slot restored. */
    cyscope_mem_totals t = totals();
    void *p = sink = malloc(1000);
    free(p);
    cyscope_mem_totals u = totals();
    int ok = t.attached == 0 && t.patched_slots == 0 && scan_patched() == 0 &&
             u.allocations == t.allocations;
    _exit(ok ? 0 : 3);
  }
  int status = 0;
  CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  CHECK(totals().patched_slots > 0); /* the parent stays attached */
  CHECK(scan_patched() > 0);
  CHECK_EQ(cyscope_mem_detach(), CYSCOPE_OK);
}

static void test_pause_and_peak(void) {
  cyscope_mem_config c = config(1, 0);
  CHECK_EQ(cyscope_mem_attach(&c), CYSCOPE_OK);
  int64_t prev = 0;
  cyscope_mem_reset_peak(&prev);
  cyscope_mem_totals t0 = totals();
  void *p = sink = malloc(300000);
  free(p);
  cyscope_mem_totals t1 = totals();
  CHECK_EQ(t1.peak_bytes - t0.current_bytes, 300000);
  CHECK_EQ(cyscope_mem_thread_pause(1), CYSCOPE_OK);
  void *q = sink = malloc(5000);
  free(q);
  CHECK_EQ(cyscope_mem_thread_pause(-1), CYSCOPE_OK);
  cyscope_mem_totals t2 = totals();
  CHECK_EQ(t2.allocations, t1.allocations);
  CHECK_EQ(cyscope_mem_thread_pause(-1), CYSCOPE_ESTATE); /* not paused */
  /* A recorded block freed while paused still leaves the books. */
  void *kept = sink = malloc(7000);
  void *grown = sink = malloc(9000);
  cyscope_mem_totals t3 = totals();
  CHECK_EQ(t3.current_bytes - t2.current_bytes, 16000);
  CHECK_EQ(cyscope_mem_thread_pause(1), CYSCOPE_OK);
  free(kept);
  grown = sink = realloc(grown, 20000); /* old record released, new block unseen */
  CHECK_EQ(cyscope_mem_thread_pause(-1), CYSCOPE_OK);
  cyscope_mem_totals t4 = totals();
  CHECK_EQ(t4.current_bytes, t2.current_bytes);
  CHECK_EQ(t4.live_records, t2.live_records);
  CHECK_EQ(cyscope_mem_thread_pause(1), CYSCOPE_OK);
  free(grown);
  CHECK_EQ(cyscope_mem_thread_pause(-1), CYSCOPE_OK);
  CHECK_EQ(cyscope_mem_detach(), CYSCOPE_OK);
}

/* Failure paths leave the books balanced. A failed realloc leaves the block
 * with the caller, which gcc's use-after-free analysis does not model. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuse-after-free"
static void test_failures(void) {
  cyscope_mem_config c = config(1, 0);
  CHECK_EQ(cyscope_mem_attach(&c), CYSCOPE_OK);
  cyscope_mem_totals t0 = totals();
  /* volatile: keep the compiler from diagnosing the deliberate failures */
  volatile size_t huge = (size_t)1 << 62, big = (size_t)1 << 40;
  void *p = sink = malloc(100);
  void *q = realloc(p, huge); /* fails: p stays the caller's */
  CHECK(q == NULL);
  void *r = sink = calloc(big, big); /* overflow */
  CHECK(r == NULL);
  void *s2 = sink = reallocarray(NULL, big, big);
  CHECK(s2 == NULL);
  cyscope_mem_totals t1 = totals();
  CHECK_EQ(t1.allocations - t0.allocations, 1);
  CHECK_EQ(t1.current_bytes - t0.current_bytes, 100);
  CHECK_EQ(t1.live_records - t0.live_records, 1); /* the record survived the failed realloc */
  void *z = sink = realloc(p, 0);                 /* glibc: frees, returns NULL */
  CHECK(z == NULL);
  cyscope_mem_totals t2 = totals();
  CHECK_EQ(t2.current_bytes, t0.current_bytes);
  CHECK_EQ(t2.live_records, t0.live_records);
  CHECK_EQ(cyscope_mem_detach(), CYSCOPE_OK);
}
#pragma GCC diagnostic pop

static volatile int g_stop;
static void *alloc_loop(void *arg) {
  (void)arg;
  while (!g_stop) {
    void *p = sink = malloc(48);
    void *q = sink = malloc(200000); /* always recorded: stack capture */
    free(p);
    free(q);
  }
  return NULL;
}

static void *dlopen_loop(void *arg) {
  (void)arg;
  for (int i = 0; i < 200; i++) {
    void *h = dlopen(CYSCOPE_TEST_PLUGIN, RTLD_NOW | RTLD_LOCAL);
    if (h) dlclose(h);
  }
  return NULL;
}

/* dlopen/dlclose on one thread while others record native stacks (the
 * unwinder takes the loader lock) and the main thread attaches/detaches:
 * must finish (no deadlock) and end fully unpatched. */
static void test_concurrency(void) {
  cyscope_mem_config c = config(1, 1);
  CHECK_EQ(cyscope_mem_attach(&c), CYSCOPE_OK);
  g_stop = 0;
  pthread_t th[3], dl;
  for (int i = 0; i < 3; i++) pthread_create(&th[i], NULL, alloc_loop, NULL);
  pthread_create(&dl, NULL, dlopen_loop, NULL);
  int ok = 1;
  for (int i = 0; i < 300; i++) {
    if (cyscope_mem_attach(&c) != CYSCOPE_OK) ok = 0;
    if (cyscope_mem_detach() != CYSCOPE_OK) ok = 0;
  }
  /* Stop the allocating threads before joining anything: under valgrind's
   * scheduler, busy threads can starve an exiting one, so a join that waits
   * while they still spin may never return. */
  g_stop = 1;
  pthread_join(dl, NULL);
  for (int i = 0; i < 3; i++) pthread_join(th[i], NULL);
  CHECK(ok);
  CHECK_EQ(cyscope_mem_detach(), CYSCOPE_OK);
  CHECK_EQ(totals().attached, 0);
  CHECK_EQ(scan_patched(), 0);
}

/* Default mode counts unrecorded blocks by usable size: within 1% of the
 * request from 4 KiB up, and every byte added is removed on free. */
static void test_usable_size_bound(void) {
  cyscope_mem_config c = config(0, 0);
  c.sample_bytes = 1ull << 50; /* no sampling: every block below the threshold unrecorded */
  c.record_threshold = 1ull << 40;
  CHECK_EQ(cyscope_mem_attach(&c), CYSCOPE_OK);
  static const size_t sizes[] = {4096, 4097, 5000, 12345, 65536, 100000, 131073, 999999, 1000003};
  enum { NS = sizeof sizes / sizeof sizes[0] };
  void *ptrs[NS];
  int ok = 1;
  cyscope_mem_totals t0 = totals();
  for (int i = 0; i < NS; i++) {
    cyscope_mem_totals a = totals();
    ptrs[i] = sink = malloc(sizes[i]);
    cyscope_mem_totals b = totals();
    uint64_t counted = b.allocated_bytes - a.allocated_bytes;
    if (counted < sizes[i] || counted > sizes[i] + sizes[i] / 100) {
      ok = 0;
      fprintf(stderr, "size %zu counted as %llu\n", sizes[i], (unsigned long long)counted);
    }
  }
  CHECK(ok);
  for (int i = 0; i < NS; i++) free(ptrs[i]);
  CHECK_EQ(totals().current_bytes, t0.current_bytes);
  CHECK_EQ(cyscope_mem_detach(), CYSCOPE_OK);
}

/* Changing the sampling interval takes effect at once, even after a gap was
 * drawn with a huge interval. */
static void test_sampling_interval_change(void) {
  cyscope_mem_config c = config(0, 0);
  c.sample_bytes = 1ull << 50;
  CHECK_EQ(cyscope_mem_attach(&c), CYSCOPE_OK);
  for (int i = 0; i < 100000; i++) { /* likely draws a gap with the huge interval */
    void *p = sink = malloc(64);
    free(p);
  }
  c.sample_bytes = 4096;
  CHECK_EQ(cyscope_mem_configure(&c), CYSCOPE_OK);
  uint32_t epoch = 0;
  cyscope_mem_next_epoch(&epoch);
  enum { N = 2000 };
  static void *ptrs[N];
  for (int i = 0; i < N; i++) ptrs[i] = sink = malloc(1000);
  cyscope_mem_stack_stat st[64];
  size_t n = 0;
  CHECK_EQ(cyscope_mem_live_by_stack(epoch, epoch, st, 64, &n), CYSCOPE_OK);
  uint64_t records = 0;
  double est = 0;
  for (size_t k = 0; k < n; k++) {
    records += st[k].records;
    est += st[k].bytes;
  }
  /* 2 MB at one sample per 4 KiB: ~490 samples expected. */
  CHECK(records > 300);
  CHECK(est > 0.8 * N * 1000 && est < 1.2 * N * 1000);
  for (int i = 0; i < N; i++) free(ptrs[i]);
  CHECK_EQ(cyscope_mem_detach(), CYSCOPE_OK);
}

/* Keys that differ only in their high 32 bits (the live aggregation's
 * stack<<32 | epoch for many stacks of one epoch) must spread over the
 * table, not pile into one slot and make linear probing quadratic. */
static void test_slot_of_key_spreads(void) {
  enum { CAP = 4096, KEYS = 1000 };
  static unsigned char used[CAP];
  memset(used, 0, sizeof used);
  int distinct = 0;
  for (uint64_t s = 1; s <= KEYS; s++) {
    size_t j = slot_of_key((s << 32) | 1, CAP);
    if (!used[j]) distinct++;
    used[j] = 1;
  }
  CHECK(distinct > KEYS / 2);
}

int main(void) {
  RUN(test_slot_of_key_spreads);
  RUN(test_known_pattern_default);
  RUN(test_usable_size_bound);
  RUN(test_sampling_interval_change);
  RUN(test_variants_exact);
  RUN(test_live_table_shrinks);
  RUN(test_leak_record);
  RUN(test_mmap);
  RUN(test_mremap);
  RUN(test_map_ranges);
  RUN(test_dlsym);
  RUN(test_stack_changes);
  RUN(test_excluded_threads);
  RUN(test_stack_arena_limit);
  RUN(test_threads);
  RUN(test_thread_exit_peak);
  RUN(test_pause_and_peak);
  RUN(test_failures);
  RUN(test_concurrency);
  RUN(test_dlopen_after_attach);
  RUN(test_fork);
  RUN(test_forks_under_threads);
  RUN(test_attach_detach_cycles);
  return check_report();
}
