/* Per-thread state: exact counters each thread writes without locks, the
 * recursion guard (tstate.off), the sampling countdown, and the shared
 * balance threads push to. Exiting threads hand their figures over and fall
 * back to one shared orphan state. */
#define _GNU_SOURCE
#include <math.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "memtrack_internal.h"

__thread tstate *t_ts __attribute__((tls_model("initial-exec")));
static __thread int t_state_flags __attribute__((tls_model("initial-exec"))); /* 1 busy, 2 dead */

spin_t g_threads_lock;
static tstate *g_all_threads, *g_free_threads;
static tstate g_orphan = {.shared = 1};
static pthread_key_t g_key;
/* Counters of exited threads: [0] counted ones, [1] excluded ones. */
static _Atomic uint64_t g_ret_alloc_bytes[2], g_ret_allocs[2], g_ret_freed_bytes[2], g_ret_frees[2];
/* Balances pushed by counted threads (the peak follows it) and by excluded ones. */
static _Atomic int64_t g_pushed, g_pushed_excluded;
#define MAX_EXCLUDED 64
static int64_t g_excluded_tids[MAX_EXCLUDED];
static size_t g_nexcluded; /* threads lock */

/* --------------------------------------------------------------- counters */
void push(tstate *t) {
  int64_t pend, pmax;
  if (t->shared) {
    pend = atomic_exchange_explicit(&t->pend, 0, RLX);
    pmax = atomic_exchange_explicit(&t->pend_max, 0, RLX);
    if (pmax < pend) pmax = pend;
  } else {
    pend = ld64(&t->pend);
    pmax = ld64(&t->pend_max);
    atomic_store_explicit(&t->pend, 0, RLX);
    atomic_store_explicit(&t->pend_max, 0, RLX);
  }
  if (t->excluded) {
    atomic_fetch_add_explicit(&g_pushed_excluded, pend, RLX);
    return;
  }
  int64_t old = atomic_fetch_add_explicit(&g_pushed, pend, RLX);
  note_peak(old + pmax);
}

/* Exiting threads share one state: atomic read-modify-write (rare). */
__attribute__((noinline)) void acct_add_shared(tstate *t, uint64_t bytes) {
  atomic_fetch_add_explicit(&t->alloc_bytes, bytes, RLX);
  atomic_fetch_add_explicit(&t->allocs, 1, RLX);
  int64_t p = atomic_fetch_add_explicit(&t->pend, (int64_t)bytes, RLX) + (int64_t)bytes;
  if (p > ld64(&t->pend_max)) atomic_store_explicit(&t->pend_max, p, RLX);
  if (p >= PUSH_BYTES) push(t);
}

__attribute__((noinline)) void acct_sub_shared(tstate *t, uint64_t bytes) {
  atomic_fetch_add_explicit(&t->freed_bytes, bytes, RLX);
  atomic_fetch_add_explicit(&t->frees, 1, RLX);
  int64_t p = atomic_fetch_sub_explicit(&t->pend, (int64_t)bytes, RLX) - (int64_t)bytes;
  if (p <= -PUSH_BYTES) push(t);
}

static uint64_t rng_next(tstate *t) {
  uint64_t x = t->rng;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  t->rng = x;
  return x;
}

/* Exponential gap with mean g_sample_bytes: makes sampling a Poisson process
 * over allocated bytes (memoryless across allocations). */
int64_t next_gap(tstate *t) {
  double u = ((double)(rng_next(t) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
  double gap = -log(u) * (double)atomic_load_explicit(&g_sample_bytes, RLX);
  return (int64_t)gap + 1;
}

/* --------------------------------------------------------- thread states */
static void ts_retire(void *arg) {
  tstate *t = arg;
  if (!t || t->shared) return;
  /* Its balance and high-water mark, like any push (which may take the table
   * lock for a snapshot: before the threads lock, in lock order). */
  push(t);
  spin_lock(&g_threads_lock);
  int x = t->excluded ? 1 : 0;
  atomic_fetch_add_explicit(&g_ret_alloc_bytes[x], ldu(&t->alloc_bytes), RLX);
  atomic_fetch_add_explicit(&g_ret_allocs[x], ldu(&t->allocs), RLX);
  atomic_fetch_add_explicit(&g_ret_freed_bytes[x], ldu(&t->freed_bytes), RLX);
  atomic_fetch_add_explicit(&g_ret_frees[x], ldu(&t->frees), RLX);
  atomic_store_explicit(&t->alloc_bytes, 0, RLX);
  atomic_store_explicit(&t->allocs, 0, RLX);
  atomic_store_explicit(&t->freed_bytes, 0, RLX);
  atomic_store_explicit(&t->frees, 0, RLX);
  t->in_use = 0;
  t->next_free = g_free_threads;
  g_free_threads = t;
  spin_unlock(&g_threads_lock);
  /* Later frees on this exiting thread go to the shared orphan state. */
  t_ts = NULL;
  t_state_flags = 2;
}

__attribute__((noinline)) tstate *ts_slow(void) {
  if (t_state_flags) return t_state_flags & 2 ? &g_orphan : NULL;
  if (!g_initialised) return NULL;
  t_state_flags = 1;
  spin_lock(&g_threads_lock);
  tstate *t = g_free_threads;
  if (t) {
    g_free_threads = t->next_free;
  } else {
    t = ct_os_alloc(sizeof(tstate));
    if (t) {
      t->next_all = g_all_threads;
      g_all_threads = t;
    }
  }
  if (t) {
    t->in_use = 1;
    t->off = 0;
    t->tid = (int64_t)syscall(SYS_gettid);
    t->excluded = 0;
    for (size_t i = 0; i < g_nexcluded; i++)
      if (g_excluded_tids[i] == t->tid) t->excluded = 1;
    for (int i = 0; i < STACK_CACHE; i++) t->ck[i].native = -1;
    t->rng = 0x9E3779B97F4A7C15ull ^ (uintptr_t)t ^ ((uint64_t)(uintptr_t)&t << 20);
    if (!t->rng) t->rng = 1;
    t->countdown = next_gap(t);
  }
  spin_unlock(&g_threads_lock);
  if (t) pthread_setspecific(g_key, t); /* may calloc: guarded by the flag */
  t_ts = t;
  t_state_flags = 0;
  return t;
}

void threads_init(void) {
  pthread_key_create(&g_key, ts_retire);
  g_orphan.rng = 88172645463325252ull;
  g_orphan.countdown = INT64_MAX / 2;
}

/* ------------------------------------------------------- all threads */
static void add_thread(thread_sums *s, tstate *t) {
  s->cur += ld64(&t->pend);
  s->curmax += ld64(&t->pend_max);
  s->alloc_bytes += ldu(&t->alloc_bytes);
  s->allocs += ldu(&t->allocs);
  s->freed_bytes += ldu(&t->freed_bytes);
  s->frees += ldu(&t->frees);
}

void sum_threads(thread_sums *all, thread_sums *counted) {
  thread_sums c = {0}, x = {0};
  spin_lock(&g_threads_lock);
  c.cur = ld64(&g_pushed);
  x.cur = ld64(&g_pushed_excluded);
  c.alloc_bytes = ldu(&g_ret_alloc_bytes[0]);
  c.allocs = ldu(&g_ret_allocs[0]);
  c.freed_bytes = ldu(&g_ret_freed_bytes[0]);
  c.frees = ldu(&g_ret_frees[0]);
  x.alloc_bytes = ldu(&g_ret_alloc_bytes[1]);
  x.allocs = ldu(&g_ret_allocs[1]);
  x.freed_bytes = ldu(&g_ret_freed_bytes[1]);
  x.frees = ldu(&g_ret_frees[1]);
  for (tstate *t = g_all_threads; t; t = t->next_all) add_thread(t->excluded ? &x : &c, t);
  add_thread(&c, &g_orphan);
  spin_unlock(&g_threads_lock);
  c.curmax += ld64(&g_pushed);
  if (counted) *counted = c;
  if (all) {
    all->cur = c.cur + x.cur;
    all->curmax = c.curmax + x.cur;
    all->alloc_bytes = c.alloc_bytes + x.alloc_bytes;
    all->allocs = c.allocs + x.allocs;
    all->freed_bytes = c.freed_bytes + x.freed_bytes;
    all->frees = c.frees + x.frees;
  }
}

/* A thread changing sides keeps its balance where it was pushed so far;
 * what it holds unpushed (under 256 KiB) moves with it. */
int threads_exclude(const int64_t *tids, size_t n) {
  if (n > MAX_EXCLUDED || (n && !tids)) return CYSCOPE_EINVAL;
  spin_lock(&g_threads_lock);
  for (size_t i = 0; i < n; i++) g_excluded_tids[i] = tids[i];
  g_nexcluded = n;
  for (tstate *t = g_all_threads; t; t = t->next_all) {
    if (!t->in_use) continue;
    int x = 0;
    for (size_t i = 0; i < n; i++)
      if (tids[i] == t->tid) x = 1;
    __atomic_store_n(&t->excluded, x, __ATOMIC_RELAXED);
  }
  spin_unlock(&g_threads_lock);
  return CYSCOPE_OK;
}

/* Gaps already drawn used the old interval (possibly huge): make every
 * thread draw a fresh one at its next allocation. A store racing with the
 * owner's own update can be lost; the owner then keeps its old gap. */
void threads_redraw_gaps(void) {
  spin_lock(&g_threads_lock);
  for (tstate *t = g_all_threads; t; t = t->next_all)
    if (t->in_use) __atomic_store_n(&t->countdown, 0, __ATOMIC_RELAXED);
  spin_unlock(&g_threads_lock);
}

/* Every thread's running maximum restarts at its current balance. A racing
 * owner may lose one update here (peak low by at most one block). */
void threads_restart_peaks(void) {
  spin_lock(&g_threads_lock);
  for (tstate *t = g_all_threads; t; t = t->next_all)
    atomic_store_explicit(&t->pend_max, ld64(&t->pend), RLX);
  atomic_store_explicit(&g_orphan.pend_max, ld64(&g_orphan.pend), RLX);
  spin_unlock(&g_threads_lock);
}

uint64_t threads_tracker_bytes(void) {
  uint64_t bytes = 0;
  spin_lock(&g_threads_lock);
  for (tstate *t = g_all_threads; t; t = t->next_all) bytes += sizeof(tstate);
  spin_unlock(&g_threads_lock);
  return bytes;
}
