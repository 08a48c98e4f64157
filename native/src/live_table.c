/* Live records: the blocks the tracker recorded with a stack and has not
 * yet seen freed. Open addressing keyed by address, plus a counting filter
 * that lets a free of an unrecorded block skip the table (and its lock). */
#include <string.h>

#include "memtrack_internal.h"

#define KEY_EMPTY 0
#define KEY_TOMB 1

spin_t g_table_lock; /* live table, stacks, code registry, arena */
_Atomic uint64_t g_live_count;
_Atomic uint8_t g_filter[1u << FILTER_BITS];
static rec *g_live;
static size_t g_live_cap, g_live_used; /* used = live + tombstones */

static int live_rehash(size_t cap) {
  rec *n = ct_os_alloc(cap * sizeof(rec));
  if (!n) return -1;
  for (size_t i = 0; i < g_live_cap; i++) {
    if (g_live[i].key <= KEY_TOMB) continue;
    size_t j = slot_of(g_live[i].key, cap);
    while (n[j].key != KEY_EMPTY) j = (j + 1) & (cap - 1);
    n[j] = g_live[i];
  }
  if (g_live) ct_os_free(g_live, g_live_cap * sizeof(rec));
  g_live = n;
  g_live_cap = cap;
  g_live_used = atomic_load_explicit(&g_live_count, RLX);
  return 0;
}

#define LIVE_MIN_CAP 4096

/* The capacity for `live` records: at most a quarter full. */
static size_t live_cap_for(uint64_t live) {
  size_t cap = LIVE_MIN_CAP;
  while ((live + 1) * 4 > cap) cap *= 2;
  return cap;
}

int live_insert(const rec *r) { /* table lock held */
  if ((g_live_used + 1) * 2 > g_live_cap) {
    /* Grows, or only drops the tombstones (or shrinks) when most were freed. */
    if (live_rehash(live_cap_for(atomic_load_explicit(&g_live_count, RLX))) != 0) return -1;
  }
  size_t j = slot_of(r->key, g_live_cap);
  while (g_live[j].key > KEY_TOMB && g_live[j].key != r->key) j = (j + 1) & (g_live_cap - 1);
  if (g_live[j].key == r->key) { /* stale record of a block freed untracked */
    g_live[j] = *r;
    return 0;
  }
  if (g_live[j].key == KEY_EMPTY) g_live_used++;
  g_live[j] = *r;
  /* Written only under the table lock: a plain store, no locked RMW. */
  atomic_store_explicit(&g_live_count, atomic_load_explicit(&g_live_count, RLX) + 1, RLX);
  size_t f = filter_slot(r->key);
  uint8_t c = atomic_load_explicit(&g_filter[f], RLX);
  if (c != 255) atomic_store_explicit(&g_filter[f], (uint8_t)(c + 1), RLX);
  return 0;
}

int live_remove(uintptr_t key, rec *out) { /* table lock held */
  if (!g_live_cap) return 0;
  size_t j = slot_of(key, g_live_cap);
  while (g_live[j].key != KEY_EMPTY) {
    if (g_live[j].key == key) {
      *out = g_live[j];
      g_live[j].key = KEY_TOMB;
      atomic_store_explicit(&g_live_count, atomic_load_explicit(&g_live_count, RLX) - 1, RLX);
      size_t f = filter_slot(key);
      uint8_t c = atomic_load_explicit(&g_filter[f], RLX);
      if (c != 255 && c != 0) atomic_store_explicit(&g_filter[f], (uint8_t)(c - 1), RLX);
      /* Shrink once under 1/16 full: a peak snapshot walks the whole table,
       * so a table an exact-mode burst grew must not stay that size after
       * its blocks are gone (a failed allocation keeps the old table). */
      uint64_t live = atomic_load_explicit(&g_live_count, RLX);
      if (g_live_cap > LIVE_MIN_CAP && live * 16 < g_live_cap) live_rehash(live_cap_for(live));
      return 1;
    }
    j = (j + 1) & (g_live_cap - 1);
  }
  return 0;
}

void live_clear(void) { /* table lock held */
  /* Given back, not wiped: the next attach starts small. */
  if (g_live) ct_os_free(g_live, g_live_cap * sizeof(rec));
  g_live = NULL;
  g_live_cap = 0;
  g_live_used = 0;
  atomic_store_explicit(&g_live_count, 0, RLX);
  for (size_t i = 0; i < (1u << FILTER_BITS); i++) atomic_store_explicit(&g_filter[i], 0, RLX);
  maps_clear();
}

/* The (stack, epoch) group table of one aggregation. */
typedef struct groups {
  cyscope_mem_stack_stat *out;
  size_t cap, n, overflow;
  uint32_t *tab; /* index+1 into out */
  size_t tcap;
} groups;

static void group_add(groups *g, uint32_t stack, uint32_t ep, uint64_t size, double weight) {
  uint64_t k = ((uint64_t)stack << 32) | ep;
  size_t j = slot_of_key(k, g->tcap);
  cyscope_mem_stack_stat *s = NULL;
  while (g->tab[j]) {
    cyscope_mem_stack_stat *c = &g->out[g->tab[j] - 1];
    if (c->stack_id == stack && c->epoch == ep) {
      s = c;
      break;
    }
    j = (j + 1) & (g->tcap - 1);
  }
  if (!s) {
    if (g->n >= g->cap) {
      g->overflow++;
      return;
    }
    s = &g->out[g->n++];
    memset(s, 0, sizeof(*s));
    s->stack_id = stack;
    s->epoch = ep;
    g->tab[j] = (uint32_t)g->n;
  }
  s->bytes += (double)size * weight;
  s->count += weight;
  s->exact_bytes += size;
  s->records++;
}

uint64_t records_count(void) {
  return atomic_load_explicit(&g_live_count, RLX) + atomic_load_explicit(&g_map_count, RLX);
}

long aggregate_live(uint32_t lo, uint32_t hi, cyscope_mem_stack_stat *out, size_t cap,
                    size_t *need) { /* table lock held */
  /* The group table holds at most `cap` groups (more are only counted):
   * sized by them, not by the records (millions in exact mode), so a peak
   * snapshot does not map and touch a table that large every time. */
  groups g = {out, cap, 0, 0, NULL, 64};
  while (g.tcap < cap * 2 + 2) g.tcap *= 2;
  g.tab = ct_os_alloc(g.tcap * sizeof(uint32_t));
  if (!g.tab) return -2;
  for (size_t i = 0; i < g_live_cap; i++) {
    const rec *r = &g_live[i];
    if (r->key <= KEY_TOMB || r->epoch < lo || r->epoch > hi) continue;
    group_add(&g, r->stack, r->epoch, r->size, r->weight);
  }
  for (size_t i = 0, nm = maps_n(); i < nm; i++) {
    const mapping *m = maps_at(i);
    if (m->epoch < lo || m->epoch > hi) continue;
    group_add(&g, m->stack, m->epoch, m->hi - m->lo, 1.0);
  }
  ct_os_free(g.tab, g.tcap * sizeof(uint32_t));
  *need = g.n + g.overflow;
  return g.overflow ? -1 : (long)g.n;
}

/* Table lock held. */
uint64_t live_tracker_bytes(void) {
  return g_live_cap * sizeof(rec) + sizeof(g_filter) + maps_tracker_bytes();
}
