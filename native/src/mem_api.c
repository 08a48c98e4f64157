/* The cyscope_mem_* entry points (declared in cyscope.h): argument checks,
 * locking, and the configuration the hooks read. */
#include <string.h>

#include "memtrack_internal.h"

#define DEFAULT_SAMPLE_BYTES (512 * 1024)
#define DEFAULT_RECORD_THRESHOLD (128 * 1024)

_Atomic int g_exact, g_native;
_Atomic uint64_t g_sample_bytes = DEFAULT_SAMPLE_BYTES;
static _Atomic uint64_t g_record_threshold = DEFAULT_RECORD_THRESHOLD;
_Atomic uint64_t g_record_from = DEFAULT_RECORD_THRESHOLD;
_Atomic uint32_t g_epoch = 1;

static void apply_config(const cyscope_mem_config *c) {
  if (!c) return;
  atomic_store(&g_exact, c->exact ? 1 : 0);
  atomic_store(&g_native, c->native ? 1 : 0);
  uint64_t rate = c->sample_bytes ? c->sample_bytes : DEFAULT_SAMPLE_BYTES;
  if (atomic_exchange(&g_sample_bytes, rate) != rate) threads_redraw_gaps();
  atomic_store(&g_record_threshold,
               c->record_threshold ? c->record_threshold : DEFAULT_RECORD_THRESHOLD);
  atomic_store(&g_record_from, c->exact ? 0 : atomic_load(&g_record_threshold));
  atomic_store(&g_arena_limit, c->stack_arena_limit ? c->stack_arena_limit : (uint64_t)256 << 20);
}

int cyscope_mem_attach(const cyscope_mem_config *config) {
  if (config && config->size < sizeof(cyscope_mem_config)) return CYSCOPE_EINVAL;
  pthread_mutex_lock(&g_patch_lock);
  init_once();
  apply_config(config);
  int rc = CYSCOPE_OK;
  if (g_refs == 0) {
    /* Counting starts before the slots flip so no hooked call sees a
     * half-initialised tracker. */
    atomic_store_explicit(&g_attached, 1, memory_order_release);
    if (hooks_patch_all() != 0) {
      ct_got_restore_all();
      atomic_store(&g_attached, 0);
      rc = CYSCOPE_EOS;
    }
  }
  if (rc == CYSCOPE_OK) g_refs++;
  pthread_mutex_unlock(&g_patch_lock);
  return rc;
}

int cyscope_mem_detach(void) {
  pthread_mutex_lock(&g_patch_lock);
  int rc = CYSCOPE_OK;
  if (g_refs == 0) {
    rc = CYSCOPE_ESTATE;
  } else if (--g_refs == 0) {
    ct_got_restore_all();
    atomic_store_explicit(&g_attached, 0, memory_order_release);
    /* Frees are no longer seen: records of live blocks would go stale (and
     * a reused address could later match one). Stacks and code entries stay,
     * so ids in existing reports remain valid. */
    spin_lock(&g_table_lock);
    live_clear();
    peak_forget_snapshot();
    spin_unlock(&g_table_lock);
  }
  pthread_mutex_unlock(&g_patch_lock);
  return rc;
}

int cyscope_mem_configure(const cyscope_mem_config *config) {
  if (!config || config->size < sizeof(cyscope_mem_config)) return CYSCOPE_EINVAL;
  apply_config(config);
  return CYSCOPE_OK;
}

int cyscope_mem_get_config(cyscope_mem_config *c) {
  if (!c || c->size < sizeof(cyscope_mem_config)) return CYSCOPE_EINVAL;
  c->exact = atomic_load(&g_exact);
  c->native = atomic_load(&g_native);
  c->sample_bytes = atomic_load(&g_sample_bytes);
  c->record_threshold = atomic_load(&g_record_threshold);
  c->stack_arena_limit = atomic_load(&g_arena_limit);
  return CYSCOPE_OK;
}

/* The peak so far: the noted peak, or higher if a thread's running maximum
 * (curmax) or the current balance has not been pushed into it yet. */
static int64_t peak_now(int64_t cur, int64_t curmax) {
  int64_t pk = peak_get();
  if (curmax > pk) pk = curmax;
  if (cur > pk) pk = cur;
  return pk;
}

static void fill_totals(cyscope_mem_totals *o, const thread_sums *s, int64_t peak) {
  o->current_bytes = s->cur;
  o->peak_bytes = peak;
  o->allocated_bytes = s->alloc_bytes;
  o->allocations = s->allocs;
  o->freed_bytes = s->freed_bytes;
  o->frees = s->frees;
  o->live_records = records_count();
  spin_lock(&g_table_lock);
  o->stacks = stack_count();
  o->stacks_refused = arena_refused();
  o->tracker_bytes = arena_bytes() + live_tracker_bytes() + stacks_tracker_bytes() +
                     codes_tracker_bytes() + peak_tracker_bytes() + stack_log_tracker_bytes();
  spin_unlock(&g_table_lock);
  o->tracker_bytes += threads_tracker_bytes() + pyobjects_tracker_bytes();
  pthread_mutex_lock(&g_patch_lock);
  o->tracker_bytes += ct_got_tracker_bytes();
  o->patched_slots = ct_got_patched_slots();
  o->attached = g_refs > 0;
  pthread_mutex_unlock(&g_patch_lock);
  o->epoch = atomic_load(&g_epoch);
}

int cyscope_mem_totals_get(cyscope_mem_totals *o) {
  if (!o || o->size < sizeof(cyscope_mem_totals)) return CYSCOPE_EINVAL;
  thread_sums all, counted;
  sum_threads(&all, &counted);
  /* The peak follows the counted threads; the kernel's machinery threads
   * hold their balance on top of it. */
  fill_totals(o, &all, peak_now(counted.cur, counted.curmax) + (all.cur - counted.cur));
  return CYSCOPE_OK;
}

int cyscope_mem_region_totals_get(cyscope_mem_totals *o) {
  if (!o || o->size < sizeof(cyscope_mem_totals)) return CYSCOPE_EINVAL;
  thread_sums counted;
  sum_threads(NULL, &counted);
  fill_totals(o, &counted, peak_now(counted.cur, counted.curmax));
  return CYSCOPE_OK;
}

int cyscope_mem_exclude_threads(const int64_t *tids, size_t n) { return threads_exclude(tids, n); }

int cyscope_mem_reset_peak(int64_t *previous_peak) {
  thread_sums counted;
  sum_threads(NULL, &counted);
  if (previous_peak) *previous_peak = peak_now(counted.cur, counted.curmax);
  threads_restart_peaks();
  peak_restart(counted.cur);
  return CYSCOPE_OK;
}

int cyscope_mem_next_epoch(uint32_t *epoch) {
  spin_lock(&g_table_lock);
  uint32_t e = atomic_fetch_add(&g_epoch, 1) + 1;
  stack_log_epoch_started(e);
  spin_unlock(&g_table_lock);
  if (epoch) *epoch = e;
  return CYSCOPE_OK;
}

int cyscope_mem_stack_changes(uint32_t lo, uint32_t hi, cyscope_mem_stack_stat *out, size_t cap,
                              size_t *n) {
  if (!n || (!out && cap)) return CYSCOPE_EINVAL;
  return stack_changes(lo, hi, out, cap, n);
}

int cyscope_mem_stack_log_trim(uint32_t epoch) {
  spin_lock(&g_table_lock);
  stack_log_trim(epoch);
  spin_unlock(&g_table_lock);
  return CYSCOPE_OK;
}

int cyscope_mem_thread_pause(int delta) {
  tstate *t = get_ts();
  if (!t || t->shared) return CYSCOPE_ESTATE;
  if (delta > 0) {
    t->off += PAUSE_UNIT;
  } else if (delta < 0) {
    if (t->off < PAUSE_UNIT) return CYSCOPE_ESTATE;
    t->off -= PAUSE_UNIT;
  }
  return CYSCOPE_OK;
}

int cyscope_mem_set_python_layout(const cyscope_py_layout *layout) {
  return python_set_layout(layout);
}

int cyscope_mem_live_by_stack(uint32_t lo, uint32_t hi, cyscope_mem_stack_stat *out, size_t cap,
                              size_t *n) {
  if (!n || (!out && cap)) return CYSCOPE_EINVAL;
  /* No recursion guard needed: aggregate_live allocates only through the
   * tracker's own (never patched) mmap slot, like the other table readers. */
  spin_lock(&g_table_lock);
  size_t need = 0;
  long r = aggregate_live(lo, hi, out, cap, &need);
  spin_unlock(&g_table_lock);
  *n = need;
  if (r == -2) return CYSCOPE_EOS;
  return r < 0 ? CYSCOPE_ENOMEM : CYSCOPE_OK;
}

int cyscope_mem_peak_by_stack(cyscope_mem_stack_stat *out, size_t cap, size_t *n,
                              int64_t *snapshot_current) {
  if (!n) return CYSCOPE_EINVAL;
  return peak_snapshot_copy(out, cap, n, snapshot_current);
}

int cyscope_mem_stack_totals(cyscope_mem_stack_stat *out, size_t cap, size_t *n) {
  if (!n) return CYSCOPE_EINVAL;
  return stack_totals(out, cap, n);
}

int cyscope_mem_stack_frames(uint32_t id, cyscope_mem_frame *out, size_t cap, size_t *n) {
  if (!n) return CYSCOPE_EINVAL;
  return stack_frames(id, out, cap, n);
}

int cyscope_mem_code_info(uint64_t idx, const char **filename, const char **name,
                          int32_t *firstlineno) {
  return code_info(idx, filename, name, firstlineno);
}

int cyscope_mem_scan_patched(uint64_t *n) {
  if (!n) return CYSCOPE_EINVAL;
  pthread_mutex_lock(&g_patch_lock);
  *n = hooks_scan();
  pthread_mutex_unlock(&g_patch_lock);
  return CYSCOPE_OK;
}
