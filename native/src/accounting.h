/* What every allocation hook does with a block once the real allocator
 * returned it, and with a block before the real free: count it, or record
 * it with its stack (sampled, large, or exact mode), and take back exactly
 * what was counted. Shared by the malloc hooks (hooks.c) and the Python
 * object allocator wrappers (pyobjects.c), which differ only in how big an
 * unrecorded block counts ("plain" size: malloc's usable size, pymalloc's
 * size class). Everything here is on the hot path: `static inline`. */
#ifndef CYSCOPE_ACCOUNTING_H
#define CYSCOPE_ACCOUNTING_H

#include <math.h>

#include "memtrack_internal.h"

#pragma GCC visibility push(hidden)

/* Who is calling, and may it count? Handed-out hooks (dlsym) and installed
 * allocator wrappers outlive a detach: they count only while attached. */
#define HOOK_PROLOGUE_TS(t) \
  tstate *t = get_ts();     \
  int active_ = t && !t->off && atomic_load_explicit(&g_attached, RLX)
#define RA() ((uintptr_t)__builtin_return_address(0))

/* recording.c: the slow paths (table lock, stack capture). */
void record_block(tstate *t, uintptr_t p, uint64_t size, double weight, uintptr_t ra);
uint32_t stack_of_call(tstate *t, uintptr_t ra, uintptr_t sp);
int untrack_slow(void *p, rec *out);
void retrack(const rec *r);
void release_recorded(tstate *t, void *p);

typedef size_t (*plain_size_fn)(void *p);

/* Account a new block of `req` requested bytes at p. */
static inline __attribute__((always_inline)) void account_alloc(tstate *t, void *p, size_t req,
                                                                plain_size_fn plain, uintptr_t ra) {
  if (UNLIKELY(t->shared)) { /* exiting thread: count only, no stacks */
    acct_add(t, plain(p));
    return;
  }
  if (UNLIKELY(req >= atomic_load_explicit(&g_record_from, RLX))) {
    record_block(t, (uintptr_t)p, req, 1.0, ra);
    acct_add(t, req);
    return;
  }
  t->countdown -= (int64_t)req;
  if (UNLIKELY(t->countdown <= 0)) {
    /* P(sampled) = 1 - exp(-req/R) under Poisson byte sampling; scaling by
     * its inverse makes byte and count estimates unbiased. */
    double R = (double)atomic_load_explicit(&g_sample_bytes, RLX);
    double prob = -expm1(-(double)req / R);
    t->countdown = next_gap(t);
    record_block(t, (uintptr_t)p, req, prob > 0 ? 1.0 / prob : 1.0, ra);
    acct_add(t, req);
    return;
  }
  acct_add(t, plain(p));
}

/* Could the block at p have a record? Zero means certainly not: no records
 * at all, or none whose address shares p's filter byte. */
static inline int maybe_recorded(uintptr_t p) {
  return atomic_load_explicit(&g_live_count, RLX) &&
         atomic_load_explicit(&g_filter[filter_slot(p)], RLX);
}

/* Bytes a block counted for, removing its record if any. */
static inline __attribute__((always_inline)) uint64_t account_free_bytes(void *p, rec *out,
                                                                         int *had,
                                                                         plain_size_fn plain) {
  *had = 0;
  if (UNLIKELY(maybe_recorded((uintptr_t)p))) {
    *had = untrack_slow(p, out);
    if (*had) return out->size;
  }
  return plain(p);
}

/* A paused thread (untracked(), not inside the tracker itself) still
 * releases blocks the tracker recorded: they were counted, so their bytes
 * and records must go. Unrecorded blocks cannot be told apart and are left. */
static inline int only_paused(const tstate *t) {
  return t && !t->shared && t->off >= PAUSE_UNIT && !(t->off & (PAUSE_UNIT - 1));
}

#pragma GCC visibility pop

#endif
