/* Stacks: captured (Python frames, native frames through the unwinder) and
 * interned, id = index, so a record carries a 32-bit id. Frames innermost
 * first: native, then Python. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <string.h>
#include <unwind.h>

#include "memtrack_internal.h"

typedef struct stack_hdr {
  uint64_t hash;
  uint32_t n;
  uint32_t next;               /* chain in the hash bucket (0 = end, ids start at 1) */
  double cum_bytes, cum_count; /* estimated allocations recorded on this stack */
  uint64_t cum_records;
  uint32_t touched; /* the last epoch a record was made on this stack */
  cyscope_mem_frame frames[];
} stack_hdr;
static stack_hdr **g_stacks; /* g_stacks[id] */
static size_t g_nstacks = 1, g_stacks_cap;
static uint32_t *g_stack_buckets;
static size_t g_nbuckets;
/* This library's code: its frames are left out of native stacks. */
static uintptr_t g_self_lo, g_self_hi;

/* ---------------------------------------------------------------- interning */
static uint64_t hash_frames(const cyscope_mem_frame *f, int n) {
  uint64_t h = 0xcbf29ce484222325ull ^ (uint64_t)n;
  for (int i = 0; i < n; i++) {
    h = (h ^ f[i].id) * 0x100000001b3ull;
    h = (h ^ (uint64_t)(uint32_t)f[i].line ^ ((uint64_t)f[i].kind << 40)) * 0x100000001b3ull;
  }
  return h;
}

static uint32_t stack_intern(const cyscope_mem_frame *f, int n) { /* table lock held */
  uint64_t h = hash_frames(f, n);
  if (g_nbuckets) {
    for (uint32_t id = g_stack_buckets[h & (g_nbuckets - 1)]; id; id = g_stacks[id]->next) {
      stack_hdr *s = g_stacks[id];
      if (s->hash == h && s->n == (uint32_t)n && memcmp(s->frames, f, n * sizeof(*f)) == 0)
        return id;
    }
  }
  stack_hdr **stacks =
      ct_os_grow(g_stacks, &g_stacks_cap, g_nstacks, g_nstacks + 1, sizeof(*stacks), 4096);
  if (!stacks) return 0;
  g_stacks = stacks;
  if (g_nstacks * 2 > g_nbuckets) {
    size_t nb = g_nbuckets ? g_nbuckets * 4 : 8192;
    uint32_t *b = ct_os_alloc(nb * sizeof(uint32_t));
    if (!b) return 0;
    if (g_stack_buckets) ct_os_free(g_stack_buckets, g_nbuckets * sizeof(uint32_t));
    g_stack_buckets = b;
    g_nbuckets = nb;
    for (size_t id = 1; id < g_nstacks; id++) {
      size_t bi = g_stacks[id]->hash & (nb - 1);
      g_stacks[id]->next = b[bi];
      b[bi] = (uint32_t)id;
    }
  }
  stack_hdr *s = arena_alloc(sizeof(stack_hdr) + (size_t)n * sizeof(*f));
  if (!s) return 0;
  s->hash = h;
  s->n = (uint32_t)n;
  s->cum_bytes = s->cum_count = 0;
  s->cum_records = 0;
  s->touched = 0;
  memcpy(s->frames, f, n * sizeof(*f));
  uint32_t id = (uint32_t)g_nstacks++;
  g_stacks[id] = s;
  size_t bi = h & (g_nbuckets - 1);
  s->next = g_stack_buckets[bi];
  g_stack_buckets[bi] = id;
  return id;
}

/* ---------------------------------------------------------------- capturing */
/* Native frames through the unwinder (only with native=1). */
typedef struct unw_ctx {
  uintptr_t *pcs;
  int n, max;
} unw_ctx;
static _Unwind_Reason_Code unw_cb(struct _Unwind_Context *c, void *arg) {
  unw_ctx *u = arg;
  uintptr_t pc = (uintptr_t)_Unwind_GetIP(c);
  if (!pc) return _URC_END_OF_STACK;
  if (pc >= g_self_lo && pc < g_self_hi) return _URC_NO_REASON; /* our own frames */
  if (u->n >= u->max) return _URC_END_OF_STACK;
  u->pcs[u->n++] = pc;
  return _URC_NO_REASON;
}

/* Capture and intern the calling stack (cache miss path). Kept out of
 * record_block so the cache-hit path has a small stack frame. */
__attribute__((noinline)) uint32_t capture_stack(uintptr_t pyf, int native, uintptr_t ra) {
  uint32_t stack;
  cyscope_mem_frame frames[MAX_FRAMES];
  pyraw py[MAX_FRAMES / 2];
  int npy = walk_python(pyf, py, MAX_FRAMES / 2);
  int n = 0;
  if (native) {
    uintptr_t pcs[MAX_FRAMES / 2];
    unw_ctx u = {pcs, 0, MAX_FRAMES / 2};
    _Unwind_Backtrace(unw_cb, &u);
    for (int i = 0; i < u.n; i++) {
      frames[n].id = pcs[i];
      frames[n].line = 0;
      frames[n].kind = CYSCOPE_FRAME_NATIVE;
      n++;
    }
  } else if (ra) {
    frames[n].id = ra;
    frames[n].line = 0;
    frames[n].kind = CYSCOPE_FRAME_NATIVE;
    n++;
  }
  int lines[MAX_FRAMES / 2];
  py_lines(py, npy, lines);
  spin_lock(&g_table_lock);
  for (int i = 0; i < npy && n < MAX_FRAMES; i++) {
    frames[n].id = code_intern(py[i].code);
    frames[n].line = lines[i];
    frames[n].kind = CYSCOPE_FRAME_PYTHON;
    n++;
  }
  stack = stack_intern(frames, n);
  spin_unlock(&g_table_lock);
  return stack;
}

static int self_range_cb(struct dl_phdr_info *info, size_t sz, void *data) {
  (void)sz;
  (void)data;
  Dl_info di;
  if (!dladdr((void *)&self_range_cb, &di) || (uintptr_t)di.dli_fbase != info->dlpi_addr) return 0;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X)) continue;
    g_self_lo = info->dlpi_addr + ph->p_vaddr;
    g_self_hi = g_self_lo + ph->p_memsz;
  }
  return 1;
}

void stacks_init(void) {
  dl_iterate_phdr(self_range_cb, NULL);
  /* Warm the unwinder (it may allocate and dlopen libgcc_s on first use)
   * before any hook can call it. */
  uintptr_t pcs[4];
  unw_ctx u = {pcs, 0, 4};
  _Unwind_Backtrace(unw_cb, &u);
}

/* ------------------------------------------------------------ the change log */
/* What a region allocated, by stack, without copying every stack: the
 * first record made on a stack in an epoch appends (epoch, stack, the
 * stack's totals before it) to a log. A stack's allocations in epochs
 * lo..hi are its totals at the end of hi minus its totals before its first
 * entry at or after lo, so a region's answer costs what the region did, not
 * what the process ever ran. The log keeps what open regions may still ask
 * for (stack_log_trim). */
typedef struct log_ent {
  uint32_t epoch, stack;
  double bytes, count; /* the stack's totals before this epoch's first record */
  uint64_t records;
} log_ent;
static log_ent *g_log;
static size_t g_log_n, g_log_cap;
/* Where each recent epoch's entries start in the log (a ring; an epoch too
 * old for it is searched from the log's start). */
#define EPOCH_RING 4096
static struct {
  uint32_t epoch;
  size_t pos;
} g_epoch_pos[EPOCH_RING];

static void log_touch(stack_hdr *s, uint32_t id, uint32_t epoch) { /* table lock held */
  if (s->touched == epoch) return;
  log_ent *grown = ct_os_grow(g_log, &g_log_cap, g_log_n, g_log_n + 1, sizeof(log_ent), 1024);
  if (!grown) return; /* out of memory: this stack's share of the epoch is lost */
  g_log = grown;
  g_log[g_log_n++] = (log_ent){epoch, id, s->cum_bytes, s->cum_count, s->cum_records};
  s->touched = epoch;
}

void stack_log_epoch_started(uint32_t epoch) { /* table lock held */
  g_epoch_pos[epoch % EPOCH_RING].epoch = epoch;
  g_epoch_pos[epoch % EPOCH_RING].pos = g_log_n;
}

/* Log entries older than `epoch` are no longer asked for. */
void stack_log_trim(uint32_t epoch) { /* table lock held */
  size_t w = 0;
  for (size_t i = 0; i < g_log_n; i++)
    if (g_log[i].epoch >= epoch) g_log[w++] = g_log[i];
  g_log_n = w;
  /* Positions before the trim are meaningless now. */
  for (size_t i = 0; i < EPOCH_RING; i++) g_epoch_pos[i].epoch = 0;
}

int stack_changes(uint32_t lo, uint32_t hi, cyscope_mem_stack_stat *out, size_t cap, size_t *n) {
  spin_lock(&g_table_lock);
  size_t start = 0;
  if (g_epoch_pos[lo % EPOCH_RING].epoch == lo && g_epoch_pos[lo % EPOCH_RING].pos <= g_log_n)
    start = g_epoch_pos[lo % EPOCH_RING].pos;
  /* One slot per stack of the answer: stack id -> index + 1. */
  size_t tcap = 64;
  while (tcap < (g_log_n - start) * 2 + 2) tcap *= 2;
  uint32_t *tab = ct_os_alloc(tcap * sizeof(uint32_t));
  if (!tab) {
    spin_unlock(&g_table_lock);
    return CYSCOPE_EOS;
  }
  /* Per stack: the totals before its first entry in [lo, hi], and the
   * totals before its first entry after hi (else its current totals). */
  size_t used = 0, need = 0;
  for (size_t i = start; i < g_log_n; i++) {
    const log_ent *e = &g_log[i];
    if (e->epoch < lo) continue;
    size_t j = slot_of_key(e->stack, tcap);
    while (tab[j] && out[tab[j] - 1].stack_id != e->stack) j = (j + 1) & (tcap - 1);
    if (!tab[j]) {
      if (e->epoch > hi) continue; /* first seen after the range: nothing in it */
      need++;
      if (used >= cap) continue;
      cyscope_mem_stack_stat *o = &out[used++];
      tab[j] = (uint32_t)used;
      stack_hdr *s = g_stacks[e->stack];
      /* Start from the current totals; an entry after hi lowers them. */
      o->stack_id = e->stack;
      o->epoch = 0;
      o->bytes = s->cum_bytes - e->bytes;
      o->count = s->cum_count - e->count;
      o->exact_bytes = 0;
      o->records = s->cum_records - e->records;
      continue;
    }
    cyscope_mem_stack_stat *o = &out[tab[j] - 1];
    /* exact_bytes (0 until the end) marks "end of range found". */
    if (e->epoch > hi && o->exact_bytes == 0) {
      /* The stack's totals at the end of hi: what it had before this entry. */
      stack_hdr *s = g_stacks[e->stack];
      o->bytes -= s->cum_bytes - e->bytes;
      o->count -= s->cum_count - e->count;
      o->records -= s->cum_records - e->records;
      o->exact_bytes = 1;
    }
  }
  for (size_t i = 0; i < used; i++) out[i].exact_bytes = 0;
  ct_os_free(tab, tcap * sizeof(uint32_t));
  *n = need;
  spin_unlock(&g_table_lock);
  return need > cap ? CYSCOPE_ENOMEM : CYSCOPE_OK;
}

uint64_t stack_log_tracker_bytes(void) { return g_log_cap * sizeof(log_ent); } /* table lock held */

/* ------------------------------------------------------------------ reading */
void stack_note_record(uint32_t id, uint64_t size, double weight,
                       uint32_t epoch) { /* table lock held */
  stack_hdr *s = g_stacks[id];
  log_touch(s, id, epoch);
  s->cum_bytes += (double)size * weight;
  s->cum_count += weight;
  s->cum_records++;
}

size_t stack_count(void) { return g_nstacks - 1; } /* table lock held */

int stack_totals(cyscope_mem_stack_stat *out, size_t cap, size_t *n) {
  spin_lock(&g_table_lock);
  size_t cnt = g_nstacks - 1;
  *n = cnt;
  int rc = CYSCOPE_OK;
  if (cnt > cap) {
    rc = CYSCOPE_ENOMEM;
  } else {
    for (size_t i = 0; i < cnt; i++) {
      stack_hdr *s = g_stacks[i + 1];
      out[i].stack_id = (uint32_t)(i + 1);
      out[i].epoch = 0;
      out[i].bytes = s->cum_bytes;
      out[i].count = s->cum_count;
      out[i].exact_bytes = 0;
      out[i].records = s->cum_records;
    }
  }
  spin_unlock(&g_table_lock);
  return rc;
}

int stack_frames(uint32_t id, cyscope_mem_frame *out, size_t cap, size_t *n) {
  spin_lock(&g_table_lock);
  int rc = CYSCOPE_OK;
  if (id == 0 || id >= g_nstacks) {
    rc = CYSCOPE_EINVAL;
  } else {
    stack_hdr *s = g_stacks[id];
    *n = s->n;
    if (s->n > cap)
      rc = CYSCOPE_ENOMEM;
    else
      memcpy(out, s->frames, s->n * sizeof(*out));
  }
  spin_unlock(&g_table_lock);
  return rc;
}

int stack_views(const uint32_t *ids, size_t n, const cyscope_mem_frame **frames, uint32_t *counts) {
  spin_lock(&g_table_lock);
  for (size_t i = 0; i < n; i++) {
    stack_hdr *s = ids[i] && ids[i] < g_nstacks ? g_stacks[ids[i]] : NULL;
    frames[i] = s ? s->frames : NULL;
    counts[i] = s ? s->n : 0;
  }
  spin_unlock(&g_table_lock);
  return CYSCOPE_OK;
}

uint64_t stacks_tracker_bytes(void) { /* table lock held */
  return g_stacks_cap * sizeof(void *) + g_nbuckets * 4;
}
