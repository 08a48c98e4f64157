/* Counted anonymous mappings, as address ranges.
 *
 * Heap blocks are freed by address; mappings are not: munmap, mremap and a
 * MAP_FIXED mmap act on any page range, splitting or ending whatever counted
 * mappings it overlaps. So mappings live in their own table, sorted by start
 * address, where "which counted bytes does [lo, hi) cover?" is a binary
 * search. They carry a stack and an epoch like heap records and are
 * aggregated with them. The table is small (one entry per live mapping; the
 * kernel allows at most vm.max_map_count) and every change to it comes from a
 * system call, so a sorted array with memmove is cheap enough. */
#include <string.h>

#include "memtrack_internal.h"

static mapping *g_maps;
static size_t g_nmaps, g_maps_cap;
_Atomic uint64_t g_map_count;

static void set_count(void) { atomic_store_explicit(&g_map_count, g_nmaps, RLX); }

/* Index of the first mapping that ends after lo. */
static size_t first_ending_after(uintptr_t lo) {
  size_t a = 0, b = g_nmaps;
  while (a < b) {
    size_t m = (a + b) / 2;
    if (g_maps[m].hi <= lo)
      a = m + 1;
    else
      b = m;
  }
  return a;
}

static int insert_at(size_t i, const mapping *m) {
  mapping *n = ct_os_grow(g_maps, &g_maps_cap, g_nmaps, g_nmaps + 1, sizeof(mapping), 256);
  if (!n) return -1;
  g_maps = n;
  memmove(&g_maps[i + 1], &g_maps[i], (g_nmaps - i) * sizeof(mapping));
  g_maps[i] = *m;
  g_nmaps++;
  return 0;
}

uint64_t maps_cut(uintptr_t lo, uintptr_t hi, mapping *saved, size_t cap, size_t *nsaved) {
  uint64_t removed = 0;
  size_t ns = 0;
  if (nsaved) *nsaved = 0;
  if (lo >= hi || !g_nmaps) return 0;
  size_t i = first_ending_after(lo);
  while (i < g_nmaps && g_maps[i].lo < hi) {
    mapping m = g_maps[i];
    uintptr_t cut_lo = m.lo > lo ? m.lo : lo, cut_hi = m.hi < hi ? m.hi : hi;
    removed += cut_hi - cut_lo;
    if (saved && ns < cap) {
      saved[ns] = m;
      saved[ns].lo = cut_lo;
      saved[ns].hi = cut_hi;
      ns++;
    }
    if (m.lo < lo && m.hi > hi) {
      /* A hole in the middle: the front keeps this slot, the back follows. */
      mapping back = m;
      back.lo = hi;
      g_maps[i].hi = lo;
      if (insert_at(i + 1, &back) != 0) removed += back.hi - back.lo; /* forgotten: uncounted */
      break;
    }
    if (m.lo < lo) { /* keep the front */
      g_maps[i].hi = lo;
      i++;
    } else if (m.hi > hi) { /* keep the back */
      g_maps[i].lo = hi;
      break;
    } else { /* wholly inside: gone */
      memmove(&g_maps[i], &g_maps[i + 1], (g_nmaps - i - 1) * sizeof(mapping));
      g_nmaps--;
    }
  }
  if (nsaved) *nsaved = ns;
  set_count();
  return removed;
}

int maps_add(const mapping *m) {
  if (m->lo >= m->hi) return 0;
  int rc = insert_at(first_ending_after(m->lo), m);
  set_count();
  return rc;
}

void maps_clear(void) {
  g_nmaps = 0;
  set_count();
}

size_t maps_n(void) { return g_nmaps; }
const mapping *maps_at(size_t i) { return &g_maps[i]; }
uint64_t maps_tracker_bytes(void) { return g_maps_cap * sizeof(mapping); }
