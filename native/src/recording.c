/* Recording a block with its stack, and taking records back: the slow
 * paths of the hooks, under the table lock. */
#include "accounting.h"

/* The stack of the allocation being recorded, from the thread's cache or
 * captured (recursion guard held). `sp` is the recording function's own
 * frame address: a fixed offset below the hook's for a given hook, so the
 * stack depth of the call enters the cache key without the hot path setting
 * up a frame pointer. */
uint32_t stack_of_call(tstate *t, uintptr_t ra, uintptr_t sp) {
  uintptr_t pyf = py_top_frame();
  uintptr_t pykey = py_key(pyf);
  /* Sampled records are rare, so they always get a native stack: that is how
   * an allocation Cython code makes through the C API (a list, a bytes
   * object) reaches its .pyx line without native=1. Exact mode records every
   * block and unwinds only when asked to. */
  int native = atomic_load_explicit(&g_native, RLX) || !atomic_load_explicit(&g_exact, RLX);
  size_t ci = (size_t)(((ra ^ (sp << 7) ^ pykey) * 0x9E3779B97F4A7C15ull) >> 58);
  if (t->ck[ci].native == native && t->ck[ci].ra == ra && t->ck[ci].sp == sp &&
      t->ck[ci].py == pykey) {
    /* Same call site, same native stack depth and same Python frames as the
     * previous record: reuse its stack instead of unwinding again. */
    return t->ck[ci].stack;
  }
  uint32_t stack = capture_stack(pyf, native, ra);
  t->ck[ci].ra = ra;
  t->ck[ci].sp = sp;
  t->ck[ci].py = pykey;
  t->ck[ci].stack = stack;
  t->ck[ci].native = native;
  return stack;
}

/* Record a block with its stack. Stacks are captured before taking the table
 * lock: unwinding can take the loader lock, and a thread inside dlopen may be
 * waiting for our lock from a malloc hook. */
__attribute__((noinline)) void record_block(tstate *t, uintptr_t p, uint64_t size, double weight,
                                            uintptr_t ra) {
  t->off++;
  uint32_t stack = stack_of_call(t, ra, (uintptr_t)__builtin_frame_address(0));
  rec r = {p, size, stack, atomic_load_explicit(&g_epoch, RLX), (float)weight, 0};
  spin_lock(&g_table_lock);
  live_insert(&r);
  if (stack) stack_note_record(stack, size, weight, r.epoch);
  spin_unlock(&g_table_lock);
  t->off--;
}

__attribute__((noinline)) int untrack_slow(void *p, rec *out) {
  spin_lock(&g_table_lock);
  int had = live_remove((uintptr_t)p, out);
  spin_unlock(&g_table_lock);
  return had;
}

/* Put back the record of a block a failed realloc left with the caller. */
void retrack(const rec *r) {
  spin_lock(&g_table_lock);
  live_insert(r);
  spin_unlock(&g_table_lock);
}

__attribute__((noinline)) void release_recorded(tstate *t, void *p) {
  rec r;
  if (maybe_recorded((uintptr_t)p) && untrack_slow(p, &r)) acct_sub(t, r.size);
}
