/* The peak of the tracked balance since the last reset (the start of a
 * region), and a snapshot of the live records near that peak: what the
 * peak flamegraph shows. */
#include <string.h>

#include "memtrack_internal.h"

static _Atomic int64_t g_peak;
static _Atomic int g_snap_enabled;
static _Atomic int64_t g_snap_level, g_snap_base;
static cyscope_mem_stack_stat *g_snap;
static size_t g_snap_n, g_snap_cap;
static int64_t g_snap_current;

static int snap_reserve(size_t want) { /* table lock held */
  if (want <= g_snap_cap) return 0;
  size_t cap = g_snap_cap ? g_snap_cap : 1024;
  while (cap < want) cap *= 2;
  cyscope_mem_stack_stat *s = ct_os_alloc(cap * sizeof(*s));
  if (!s) return -1;
  if (g_snap) ct_os_free(g_snap, g_snap_cap * sizeof(*s));
  g_snap = s;
  g_snap_cap = cap;
  return 0;
}

/* The snapshot holds one entry per (stack, epoch) group, far fewer than the
 * records (a million objects in exact mode, a few hundred stacks): it grows
 * when the groups outgrow it, not with the records. */
static void take_snapshot(int64_t current) { /* table lock held */
  if (snap_reserve(1024) != 0) return;
  size_t need = 0;
  long n = aggregate_live(0, UINT32_MAX, g_snap, g_snap_cap, &need);
  if (n == -1 && snap_reserve(need) == 0)
    n = aggregate_live(0, UINT32_MAX, g_snap, g_snap_cap, &need);
  g_snap_n = n > 0 ? (size_t)n : 0;
  g_snap_current = current;
}

void note_peak(int64_t candidate) {
  int64_t p = atomic_load_explicit(&g_peak, RLX);
  while (candidate > p &&
         !atomic_compare_exchange_weak_explicit(&g_peak, &p, candidate, RLX, RLX)) {
  }
  if (atomic_load_explicit(&g_snap_enabled, RLX) &&
      candidate > atomic_load_explicit(&g_snap_level, RLX)) {
    /* Snapshot the live records each time the peak grows by 1/16 of the
     * region's growth (at least 256 KiB): the peak flamegraph is the state at
     * most that far below the true peak, at a bounded number of snapshots. */
    int64_t base = atomic_load_explicit(&g_snap_base, RLX);
    int64_t step = (candidate - base) / 16;
    if (step < PUSH_BYTES) step = PUSH_BYTES;
    atomic_store_explicit(&g_snap_level, candidate + step, RLX);
    spin_lock(&g_table_lock);
    take_snapshot(candidate);
    spin_unlock(&g_table_lock);
  }
}

int64_t peak_get(void) { return atomic_load(&g_peak); }

void peak_restart(int64_t current) {
  atomic_store(&g_peak, current);
  spin_lock(&g_table_lock);
  g_snap_n = 0;
  g_snap_current = current;
  spin_unlock(&g_table_lock);
  atomic_store(&g_snap_base, current);
  atomic_store(&g_snap_level, current + PUSH_BYTES / 2);
  atomic_store(&g_snap_enabled, 1);
}

void peak_forget_snapshot(void) { g_snap_n = 0; } /* table lock held */

int peak_snapshot_copy(cyscope_mem_stack_stat *out, size_t cap, size_t *n,
                       int64_t *snapshot_current) {
  spin_lock(&g_table_lock);
  *n = g_snap_n;
  if (snapshot_current) *snapshot_current = g_snap_current;
  int rc = CYSCOPE_OK;
  if (g_snap_n > cap) {
    rc = CYSCOPE_ENOMEM;
  } else if (g_snap_n) {
    memcpy(out, g_snap, g_snap_n * sizeof(*out));
  }
  spin_unlock(&g_table_lock);
  return rc;
}

uint64_t peak_tracker_bytes(void) { /* table lock held */
  return g_snap_cap * sizeof(cyscope_mem_stack_stat);
}
