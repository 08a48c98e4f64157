/* Allocation tracker: hooks, exact per-thread totals, sampled/exact stacks.
 *
 * Hot path (every malloc/free): one TLS load, the real call, a few plain
 * stores to this thread's counters and, for free, one byte load from a
 * counting filter. No locks and no atomic read-modify-write unless a thread
 * pushes its running balance (every 256 KiB) or an allocation is recorded.
 *
 * Everything the tracker keeps for itself lives in mmap'd memory (never
 * malloc), so hooks never re-enter themselves through their own data. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <unwind.h>

#include "cyscope.h"
#include "memtrack_internal.h"

#define LIKELY(x) __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)
#define RLX memory_order_relaxed

/* A thread moves its private balance to the shared one every PUSH_BYTES;
 * this bounds the peak error with several threads (see docs). */
#define PUSH_BYTES (256 * 1024)
#define DEFAULT_SAMPLE_BYTES (512 * 1024)
#define DEFAULT_RECORD_THRESHOLD (128 * 1024)
#define MAX_FRAMES 128
#define FILTER_BITS 18
/* Per-thread cache of recent (call site, stack depth, Python stack) -> stack id. */
#define STACK_CACHE 64

/* Python interpreter entry points, resolved from the hosting process when
 * there is one. Weak: the native tests run without Python. */
extern void *PyGILState_GetThisThreadState(void) __attribute__((weak));
extern int Py_IsInitialized(void) __attribute__((weak));
extern int PyCode_Addr2Line(void *code, int addr) __attribute__((weak));

/* ---------------------------------------------------------------- spinlock */
#if defined(__x86_64__) || defined(__i386__)
#define CPU_RELAX() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define CPU_RELAX() __asm__ __volatile__("yield")
#else
#define CPU_RELAX() ((void)0)
#endif
typedef struct {
  atomic_int v;
} spin_t;
static inline void spin_lock(spin_t *l) {
  int spins = 0;
  while (atomic_exchange_explicit(&l->v, 1, memory_order_acquire)) {
    while (atomic_load_explicit(&l->v, RLX)) {
      /* Held sections are short, but the holder may be preempted (more
       * threads than cores, e.g. OpenMP): stop burning its core. */
      if (++spins > 200)
        sched_yield();
      else
        CPU_RELAX();
    }
  }
}
static inline void spin_unlock(spin_t *l) { atomic_store_explicit(&l->v, 0, memory_order_release); }

/* ------------------------------------------------------------ thread state */
typedef struct tstate {
  /* Written only by the owning thread (relaxed stores = plain moves), read by
   * readers summing all threads. */
  _Atomic int64_t pend;     /* balance not yet pushed to g_pushed */
  _Atomic int64_t pend_max; /* highest pend since the last push/reset */
  _Atomic uint64_t alloc_bytes, allocs, freed_bytes, frees;
  int64_t countdown; /* bytes until the next sampled stack */
  uint64_t rng;
  int off;    /* >0: pass through (recursion guard + untracked() nesting) */
  int shared; /* the orphan state used by exiting threads: atomic RMW */
  /* exact-mode stack cache: same call site and stack => same stack id */
  struct {
    uintptr_t ra, sp, py;
    uint32_t stack;
    int native; /* -1: empty */
  } ck[STACK_CACHE];
  struct tstate *next_all, *next_free;
  int in_use;
} __attribute__((aligned(128))) tstate;

static __thread tstate *t_ts __attribute__((tls_model("initial-exec")));
static __thread int t_state_flags __attribute__((tls_model("initial-exec"))); /* 1 busy, 2 dead */

static spin_t g_threads_lock;
static tstate *g_all_threads, *g_free_threads;
static tstate g_orphan = {.shared = 1};
static pthread_key_t g_key;
static _Atomic uint64_t g_ret_alloc_bytes, g_ret_allocs, g_ret_freed_bytes, g_ret_frees;

/* ----------------------------------------------------------------- globals */
static _Atomic int g_attached;
static _Atomic int g_exact, g_native;
static _Atomic uint64_t g_sample_bytes = DEFAULT_SAMPLE_BYTES;
static _Atomic uint64_t g_record_threshold = DEFAULT_RECORD_THRESHOLD;
/* Threshold the hot path compares against: 0 in exact mode, so "record this
 * block?" is a single compare. */
static _Atomic uint64_t g_record_from = DEFAULT_RECORD_THRESHOLD;
static _Atomic int64_t g_pushed;
static _Atomic int64_t g_peak;
static _Atomic uint32_t g_epoch = 1;
static _Atomic uint64_t g_live_count;
static _Atomic uint8_t g_filter[1u << FILTER_BITS];
static pthread_mutex_t g_patch_lock = PTHREAD_MUTEX_INITIALIZER;
static int g_refs;
static int g_initialised;
static uintptr_t g_self_lo, g_self_hi;

/* -------------------------------------------------------- tracker storage */
static spin_t g_table_lock; /* live table, stacks, code registry, arena */

/* Bump arena for stacks and strings (never freed: ids stay valid). */
static char *g_arena_cur, *g_arena_end;
static uint64_t g_arena_bytes;
static void *arena_alloc(size_t n) {
  n = (n + 15) & ~(size_t)15;
  if ((size_t)(g_arena_end - g_arena_cur) < n) {
    size_t chunk = n > (1u << 20) ? n : (1u << 20);
    char *c = ct_os_alloc(chunk);
    if (!c) return NULL;
    g_arena_bytes += chunk;
    g_arena_cur = c;
    g_arena_end = c + chunk;
  }
  void *r = g_arena_cur;
  g_arena_cur += n;
  return r;
}

/* Live records: open addressing keyed by address. */
#define KEY_EMPTY 0
#define KEY_TOMB 1
typedef struct rec {
  uintptr_t key;
  uint64_t size;
  uint32_t stack;
  uint32_t epoch;
  float weight;  /* 1/P(recorded): unbiased scale for sampled records */
  uint32_t kind; /* 0 heap block, 1 anonymous mapping */
} rec;
static rec *g_live;
static size_t g_live_cap, g_live_used; /* used = live + tombstones */

static inline size_t hash_ptr(uintptr_t p) { return (size_t)((p >> 4) * 0x9E3779B97F4A7C15ull); }
/* Slot in a power-of-two table: the product's high bits mix every address
 * bit (its low bits would depend on the low address bits only). */
static inline size_t slot_of(uintptr_t p, size_t cap) {
  return (size_t)(hash_ptr(p) >> (64 - __builtin_ctzll(cap))) & (cap - 1);
}
static inline size_t filter_slot(uintptr_t p) { return hash_ptr(p) >> (64 - FILTER_BITS); }

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

static int live_insert(const rec *r) { /* table lock held */
  if ((g_live_used + 1) * 2 > g_live_cap) {
    uint64_t live = atomic_load_explicit(&g_live_count, RLX);
    size_t cap = g_live_cap ? g_live_cap : 4096;
    while ((live + 1) * 4 > cap) cap *= 2;
    if (live_rehash(cap) != 0) return -1;
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

static int live_remove(uintptr_t key, rec *out) { /* table lock held */
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
      return 1;
    }
    j = (j + 1) & (g_live_cap - 1);
  }
  return 0;
}

/* Stacks: interned, id = index. Frames innermost first: native, then Python. */
typedef struct stack_hdr {
  uint64_t hash;
  uint32_t n;
  uint32_t next;               /* chain in the hash bucket (0 = end, ids start at 1) */
  double cum_bytes, cum_count; /* estimated allocations recorded on this stack */
  uint64_t cum_records;
  cyscope_mem_frame frames[];
} stack_hdr;
static stack_hdr **g_stacks; /* g_stacks[id] */
static size_t g_nstacks = 1, g_stacks_cap;
static uint32_t *g_stack_buckets;
static size_t g_nbuckets;

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
  if (g_nstacks + 1 > g_stacks_cap) {
    size_t cap = g_stacks_cap ? g_stacks_cap * 2 : 4096;
    stack_hdr **ns = ct_os_alloc(cap * sizeof(*ns));
    if (!ns) return 0;
    if (g_stacks) {
      memcpy(ns, g_stacks, g_nstacks * sizeof(*ns));
      ct_os_free(g_stacks, g_stacks_cap * sizeof(*ns));
    }
    g_stacks = ns;
    g_stacks_cap = cap;
  }
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
  memcpy(s->frames, f, n * sizeof(*f));
  uint32_t id = (uint32_t)g_nstacks++;
  g_stacks[id] = s;
  size_t bi = h & (g_nbuckets - 1);
  s->next = g_stack_buckets[bi];
  g_stack_buckets[bi] = id;
  return id;
}

/* ----------------------------------------------------- Python code registry */
static cyscope_py_layout g_py;
static _Atomic int g_py_enabled;
typedef struct code_ent {
  uintptr_t code, filename_obj, name_obj;
  int32_t firstlineno;
  const char *filename, *name;
} code_ent;
static code_ent *g_codes; /* g_codes[index], index >= 1 */
static size_t g_ncodes = 1, g_codes_cap;
static uint32_t *g_code_slots; /* open addressing: code ptr -> index */
static size_t g_code_slots_cap;

static const char *copy_unicode(uintptr_t obj) {
  if (!obj) return "?";
  uint32_t state = *(const uint32_t *)(obj + (uintptr_t)g_py.unicode_state);
  int compact = (state >> 5) & 1, ascii = (state >> 6) & 1;
  const char *src = NULL;
  size_t len = 0;
  if (compact && ascii) {
    len = (size_t) * (const int64_t *)(obj + 16); /* PyASCIIObject.length */
    src = (const char *)(obj + (uintptr_t)g_py.unicode_ascii_data);
  } else if (compact) {
    /* non-ASCII: only if CPython already cached the UTF-8 form (no encode here). */
    src = *(const char *const *)(obj + (uintptr_t)g_py.unicode_utf8);
    if (src) len = (size_t) * (const int64_t *)(obj + (uintptr_t)g_py.unicode_utf8 - 8);
  }
  if (!src) return "<non-ascii>";
  if (len > 4096) len = 4096;
  char *d = arena_alloc(len + 1);
  if (!d) return "?";
  memcpy(d, src, len);
  d[len] = 0;
  return d;
}

static uint32_t code_intern(uintptr_t code) { /* table lock held */
  uintptr_t fn = *(const uintptr_t *)(code + (uintptr_t)g_py.code_filename);
  uintptr_t nm = *(const uintptr_t *)(code + (uintptr_t)g_py.code_name);
  int32_t first = *(const int32_t *)(code + (uintptr_t)g_py.code_firstlineno);
  if (g_code_slots_cap) {
    size_t j = slot_of(code, g_code_slots_cap);
    for (uint32_t idx; (idx = g_code_slots[j]) != 0; j = (j + 1) & (g_code_slots_cap - 1)) {
      code_ent *e = &g_codes[idx];
      if (e->code != code) continue;
      /* A freed code object's address can be reused: check identity. */
      if (e->filename_obj == fn && e->name_obj == nm && e->firstlineno == first) return idx;
      e->code = 0; /* stale: forget, add a fresh entry */
    }
  }
  if (g_ncodes + 1 > g_codes_cap) {
    size_t cap = g_codes_cap ? g_codes_cap * 2 : 4096;
    code_ent *n = ct_os_alloc(cap * sizeof(code_ent));
    if (!n) return 0;
    if (g_codes) {
      memcpy(n, g_codes, g_ncodes * sizeof(code_ent));
      ct_os_free(g_codes, g_codes_cap * sizeof(code_ent));
    }
    g_codes = n;
    g_codes_cap = cap;
  }
  if (g_ncodes * 2 > g_code_slots_cap) {
    size_t cap = g_code_slots_cap ? g_code_slots_cap * 2 : 8192;
    uint32_t *s = ct_os_alloc(cap * sizeof(uint32_t));
    if (!s) return 0;
    for (size_t i = 1; i < g_ncodes; i++) {
      if (!g_codes[i].code) continue;
      size_t j = slot_of(g_codes[i].code, cap);
      while (s[j]) j = (j + 1) & (cap - 1);
      s[j] = (uint32_t)i;
    }
    if (g_code_slots) ct_os_free(g_code_slots, g_code_slots_cap * sizeof(uint32_t));
    g_code_slots = s;
    g_code_slots_cap = cap;
  }
  uint32_t idx = (uint32_t)g_ncodes++;
  code_ent *e = &g_codes[idx];
  e->code = code;
  e->filename_obj = fn;
  e->name_obj = nm;
  e->firstlineno = first;
  e->filename = copy_unicode(fn);
  e->name = copy_unicode(nm);
  size_t j = slot_of(code, g_code_slots_cap);
  while (g_code_slots[j]) j = (j + 1) & (g_code_slots_cap - 1);
  g_code_slots[j] = idx;
  return idx;
}

/* Raw Python frames of the calling thread: (code object, byte offset).
 * Reads interpreter memory only; never calls code that could allocate. The
 * thread's own frame chain cannot change while it is inside malloc. */
typedef struct pyraw {
  uintptr_t code;
  int addr;
} pyraw;

static uintptr_t py_top_frame(void) {
  if (!atomic_load_explicit(&g_py_enabled, RLX) || !PyGILState_GetThisThreadState ||
      !Py_IsInitialized || !Py_IsInitialized())
    return 0;
  uintptr_t ts = (uintptr_t)PyGILState_GetThisThreadState();
  if (!ts) return 0;
  uintptr_t cframe = *(const uintptr_t *)(ts + (uintptr_t)g_py.ts_cframe);
  if (!cframe) return 0;
  return *(const uintptr_t *)(cframe + (uintptr_t)g_py.cframe_current_frame);
}

/* Identity of the Python stack: every frame's address and position. Two
 * loads per frame, so the exact mode can tell "same stack as last time"
 * without decoding anything. */
static uintptr_t py_key(uintptr_t f) {
  uint64_t h = 0x9E3779B97F4A7C15ull;
  for (int n = 0; f && n < MAX_FRAMES / 2; n++) {
    uintptr_t prev = *(const uintptr_t *)(f + (uintptr_t)g_py.frame_prev_instr);
    h = (h ^ f ^ (prev << 17)) * 0x100000001b3ull;
    f = *(const uintptr_t *)(f + (uintptr_t)g_py.frame_previous);
  }
  return (uintptr_t)h;
}

static int walk_python(uintptr_t f, pyraw *out, int max) {
  int n = 0;
  while (f && n < max) {
    uintptr_t code = *(const uintptr_t *)(f + (uintptr_t)g_py.frame_code);
    uintptr_t prev = *(const uintptr_t *)(f + (uintptr_t)g_py.frame_prev_instr);
    char owner = *(const char *)(f + (uintptr_t)g_py.frame_owner);
    uintptr_t first = code + (uintptr_t)g_py.code_adaptive;
    int traceable = *(const int32_t *)(code + (uintptr_t)g_py.code_firsttraceable);
    /* Incomplete frames (being set up) have no meaningful position. */
    if (owner == g_py.owner_generator || prev >= first + 2 * (uintptr_t)traceable) {
      out[n].code = code;
      out[n].addr = (int)((intptr_t)prev - (intptr_t)first);
      n++;
    }
    f = *(const uintptr_t *)(f + (uintptr_t)g_py.frame_previous);
  }
  return n;
}

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

/* ----------------------------------------------------------- peak snapshot */
static _Atomic int g_snap_enabled;
static _Atomic int64_t g_snap_level, g_snap_base;
static cyscope_mem_stack_stat *g_snap;
static size_t g_snap_n, g_snap_cap;
static int64_t g_snap_current;

/* Aggregate live records by (stack[, epoch]) into out (table lock held).
 * Returns the number of groups, or -1 if more than cap are needed (the
 * needed number is stored in *need). */
static long aggregate_live(uint32_t lo, uint32_t hi, int by_epoch, cyscope_mem_stack_stat *out,
                           size_t cap, size_t *need) {
  size_t live = atomic_load_explicit(&g_live_count, RLX);
  size_t tcap = 64;
  while (tcap < live * 2 + 2) tcap *= 2;
  uint32_t *tab = ct_os_alloc(tcap * sizeof(uint32_t)); /* index+1 into out */
  if (!tab) return -2;
  size_t n = 0, overflow = 0;
  for (size_t i = 0; i < g_live_cap; i++) {
    const rec *r = &g_live[i];
    if (r->key <= KEY_TOMB || r->epoch < lo || r->epoch > hi) continue;
    uint32_t ep = by_epoch ? r->epoch : 0;
    uint64_t k = ((uint64_t)r->stack << 32) | ep;
    size_t j = (size_t)(k * 0x9E3779B97F4A7C15ull) & (tcap - 1);
    cyscope_mem_stack_stat *s = NULL;
    while (tab[j]) {
      cyscope_mem_stack_stat *c = &out[tab[j] - 1];
      if (c->stack_id == r->stack && c->epoch == ep) {
        s = c;
        break;
      }
      j = (j + 1) & (tcap - 1);
    }
    if (!s) {
      if (n >= cap) {
        overflow++;
        continue;
      }
      s = &out[n++];
      memset(s, 0, sizeof(*s));
      s->stack_id = r->stack;
      s->epoch = ep;
      tab[j] = (uint32_t)n;
    }
    s->bytes += (double)r->size * r->weight;
    s->count += r->weight;
    s->exact_bytes += r->size;
    s->records++;
  }
  ct_os_free(tab, tcap * sizeof(uint32_t));
  *need = n + overflow;
  return overflow ? -1 : (long)n;
}

static void take_snapshot(int64_t current) { /* table lock held */
  size_t live = atomic_load_explicit(&g_live_count, RLX) + 1;
  if (live > g_snap_cap) {
    size_t cap = g_snap_cap ? g_snap_cap : 1024;
    while (cap < live) cap *= 2;
    cyscope_mem_stack_stat *s = ct_os_alloc(cap * sizeof(*s));
    if (!s) return;
    if (g_snap) ct_os_free(g_snap, g_snap_cap * sizeof(*s));
    g_snap = s;
    g_snap_cap = cap;
  }
  size_t need = 0;
  long n = aggregate_live(0, UINT32_MAX, 1, g_snap, g_snap_cap, &need);
  g_snap_n = n > 0 ? (size_t)n : 0;
  g_snap_current = current;
}

static void note_peak(int64_t candidate) {
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

/* --------------------------------------------------------------- counters */
static inline int64_t ld64(_Atomic int64_t *a) { return atomic_load_explicit(a, RLX); }
static inline uint64_t ldu(_Atomic uint64_t *a) { return atomic_load_explicit(a, RLX); }

static void push(tstate *t) {
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
  int64_t old = atomic_fetch_add_explicit(&g_pushed, pend, RLX);
  note_peak(old + pmax);
}

/* Exiting threads share one state: atomic read-modify-write (rare). */
static __attribute__((noinline)) void acct_add_shared(tstate *t, uint64_t bytes) {
  atomic_fetch_add_explicit(&t->alloc_bytes, bytes, RLX);
  atomic_fetch_add_explicit(&t->allocs, 1, RLX);
  int64_t p = atomic_fetch_add_explicit(&t->pend, (int64_t)bytes, RLX) + (int64_t)bytes;
  if (p > ld64(&t->pend_max)) atomic_store_explicit(&t->pend_max, p, RLX);
  if (p >= PUSH_BYTES) push(t);
}

static inline void acct_add(tstate *t, uint64_t bytes) {
  if (UNLIKELY(t->shared)) {
    acct_add_shared(t, bytes);
    return;
  }
  atomic_store_explicit(&t->alloc_bytes, ldu(&t->alloc_bytes) + bytes, RLX);
  atomic_store_explicit(&t->allocs, ldu(&t->allocs) + 1, RLX);
  int64_t p = ld64(&t->pend) + (int64_t)bytes;
  atomic_store_explicit(&t->pend, p, RLX);
  if (p > ld64(&t->pend_max)) atomic_store_explicit(&t->pend_max, p, RLX);
  if (UNLIKELY(p >= PUSH_BYTES)) push(t);
}

static __attribute__((noinline)) void acct_sub_shared(tstate *t, uint64_t bytes) {
  atomic_fetch_add_explicit(&t->freed_bytes, bytes, RLX);
  atomic_fetch_add_explicit(&t->frees, 1, RLX);
  int64_t p = atomic_fetch_sub_explicit(&t->pend, (int64_t)bytes, RLX) - (int64_t)bytes;
  if (p <= -PUSH_BYTES) push(t);
}

static inline void acct_sub(tstate *t, uint64_t bytes) {
  if (UNLIKELY(t->shared)) {
    acct_sub_shared(t, bytes);
    return;
  }
  atomic_store_explicit(&t->freed_bytes, ldu(&t->freed_bytes) + bytes, RLX);
  atomic_store_explicit(&t->frees, ldu(&t->frees) + 1, RLX);
  int64_t p = ld64(&t->pend) - (int64_t)bytes;
  atomic_store_explicit(&t->pend, p, RLX);
  if (UNLIKELY(p <= -PUSH_BYTES)) push(t);
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
static int64_t next_gap(tstate *t) {
  double u = ((double)(rng_next(t) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
  double gap = -log(u) * (double)atomic_load_explicit(&g_sample_bytes, RLX);
  return (int64_t)gap + 1;
}

/* --------------------------------------------------------- thread states */
static void ts_retire(void *arg) {
  tstate *t = arg;
  if (!t || t->shared) return;
  spin_lock(&g_threads_lock);
  atomic_fetch_add_explicit(&g_pushed, ld64(&t->pend), RLX);
  atomic_fetch_add_explicit(&g_ret_alloc_bytes, ldu(&t->alloc_bytes), RLX);
  atomic_fetch_add_explicit(&g_ret_allocs, ldu(&t->allocs), RLX);
  atomic_fetch_add_explicit(&g_ret_freed_bytes, ldu(&t->freed_bytes), RLX);
  atomic_fetch_add_explicit(&g_ret_frees, ldu(&t->frees), RLX);
  atomic_store_explicit(&t->pend, 0, RLX);
  atomic_store_explicit(&t->pend_max, 0, RLX);
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

static __attribute__((noinline)) tstate *ts_slow(void) {
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

static inline tstate *get_ts(void) {
  tstate *t = t_ts;
  if (LIKELY(t != NULL)) return t;
  return ts_slow();
}

/* --------------------------------------------------------------- recording */
/* Capture and intern the calling stack (cache miss path). Kept out of
 * record_block so the cache-hit path has a small stack frame. */
static __attribute__((noinline)) uint32_t capture_stack(uintptr_t pyf, int native, uintptr_t ra) {
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
  for (int i = 0; i < npy; i++)
    lines[i] = PyCode_Addr2Line ? PyCode_Addr2Line((void *)py[i].code, py[i].addr) : 0;
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

/* Record a block with its stack. Stacks are captured before taking the table
 * lock: unwinding can take the loader lock, and a thread inside dlopen may be
 * waiting for our lock from a malloc hook. */
static __attribute__((noinline)) void record_block(tstate *t, uintptr_t p, uint64_t size,
                                                   double weight, uint32_t kind, uintptr_t ra,
                                                   uintptr_t sp) {
  t->off++;
  sp ^= (uintptr_t)__builtin_frame_address(0);
  uintptr_t pyf = py_top_frame();
  uintptr_t pykey = py_key(pyf);
  /* Sampled records are rare, so they always get a native stack: that is how
   * an allocation Cython code makes through the C API (a list, a bytes
   * object) reaches its .pyx line without native=1. Exact mode records every
   * block and unwinds only when asked to. */
  int native = atomic_load_explicit(&g_native, RLX) || !atomic_load_explicit(&g_exact, RLX);
  uint32_t stack = 0;
  size_t ci = (size_t)(((ra ^ (sp << 7) ^ pykey) * 0x9E3779B97F4A7C15ull) >> 58);
  if (t->ck[ci].native == native && t->ck[ci].ra == ra && t->ck[ci].sp == sp &&
      t->ck[ci].py == pykey) {
    /* Same call site, same native stack depth and same Python frames as the
     * previous record: reuse its stack instead of unwinding again. */
    stack = t->ck[ci].stack;
  } else {
    stack = capture_stack(pyf, native, ra);
    t->ck[ci].ra = ra;
    t->ck[ci].sp = sp;
    t->ck[ci].py = pykey;
    t->ck[ci].stack = stack;
    t->ck[ci].native = native;
  }
  rec r = {p, size, stack, atomic_load_explicit(&g_epoch, RLX), (float)weight, kind};
  spin_lock(&g_table_lock);
  live_insert(&r);
  if (stack) {
    g_stacks[stack]->cum_bytes += (double)size * weight;
    g_stacks[stack]->cum_count += weight;
    g_stacks[stack]->cum_records++;
  }
  spin_unlock(&g_table_lock);
  t->off--;
}

/* malloc_usable_size() costs a call per event; glibc's answer is the chunk
 * size in the header word before the block, minus that word (minus two words
 * for mmap'd chunks, flag 0x2). Used only after init_once() verified it
 * against malloc_usable_size() in this process, and never under a sanitizer
 * or valgrind (their allocators lay blocks out differently, and the header
 * read would be reported). */
static int g_inline_usable;
static inline size_t usable_size(void *p) {
  if (LIKELY(g_inline_usable)) {
    size_t h = *(const size_t *)((uintptr_t)p - sizeof(size_t));
    return (h & ~(size_t)7) - ((h & 2) ? 16 : 8);
  }
  return malloc_usable_size(p);
}

static void check_inline_usable(void) {
#if defined(__SANITIZE_ADDRESS__)
  g_inline_usable = 0;
#else
  const char *pre = getenv("LD_PRELOAD");
  if (pre && strstr(pre, "vgpreload")) return; /* valgrind */
  static const size_t sizes[] = {1, 24, 25, 100, 1000, 5000, 70000, 300000};
  int ok = 1;
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    void *p = malloc(sizes[i]);
    if (!p) return;
    size_t h = *(const size_t *)((uintptr_t)p - sizeof(size_t));
    size_t mine = (h & ~(size_t)7) - ((h & 2) ? 16 : 8);
    if (mine != malloc_usable_size(p)) ok = 0;
    free(p);
  }
  g_inline_usable = ok;
#endif
}

/* Account a new block of `req` requested bytes at p. */
static inline void on_alloc(tstate *t, void *p, size_t req, uintptr_t ra, uintptr_t sp) {
  if (UNLIKELY(t->shared)) { /* exiting thread: count only, no stacks */
    acct_add(t, usable_size(p));
    return;
  }
  if (UNLIKELY(req >= atomic_load_explicit(&g_record_from, RLX))) {
    record_block(t, (uintptr_t)p, req, 1.0, 0, ra, sp);
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
    record_block(t, (uintptr_t)p, req, prob > 0 ? 1.0 / prob : 1.0, 0, ra, sp);
    acct_add(t, req);
    return;
  }
  acct_add(t, usable_size(p));
}

/* Bytes a block counted for, removing its record if any. */
static __attribute__((noinline)) int untrack_slow(void *p, rec *out) {
  spin_lock(&g_table_lock);
  int had = live_remove((uintptr_t)p, out);
  spin_unlock(&g_table_lock);
  return had;
}

static inline uint64_t block_bytes_untrack(void *p, rec *out, int *had) {
  *had = 0;
  if (UNLIKELY(atomic_load_explicit(&g_live_count, RLX) &&
               atomic_load_explicit(&g_filter[filter_slot((uintptr_t)p)], RLX))) {
    *had = untrack_slow(p, out);
    if (*had) return out->size;
  }
  return usable_size(p);
}

static inline void on_free(tstate *t, void *p) {
  rec r;
  int had;
  acct_sub(t, block_bytes_untrack(p, &r, &had));
}

/* untracked() nesting lives in the high bits of tstate.off, the recursion
 * guard in the low bits. */
#define PAUSE_UNIT (1 << 16)

/* A paused thread (untracked(), not inside the tracker itself) still
 * releases blocks the tracker recorded: they were counted, so their bytes
 * and records must go. Unrecorded blocks cannot be told apart and are left. */
static inline int only_paused(const tstate *t) {
  return t && !t->shared && t->off >= PAUSE_UNIT && !(t->off & (PAUSE_UNIT - 1));
}

static __attribute__((noinline)) void release_recorded(tstate *t, void *p) {
  rec r;
  if (atomic_load_explicit(&g_live_count, RLX) &&
      atomic_load_explicit(&g_filter[filter_slot((uintptr_t)p)], RLX) && untrack_slow(p, &r))
    acct_sub(t, r.size);
}

/* ------------------------------------------------------------------- hooks */
#define HOOK_PROLOGUE_TS(t) \
  tstate *t = get_ts();     \
  int active_ = t && !t->off
#define RA() ((uintptr_t)__builtin_return_address(0))
/* The stack depth of the call enters the stack-cache key through
 * record_block's own frame address (a fixed offset below the hook's, for a
 * given hook), so the hot path sets up no frame pointer. */
#define SP() ((uintptr_t)0)

static void *h_malloc(size_t n) {
  void *p = malloc(n);
  if (UNLIKELY(!p)) return p;
  HOOK_PROLOGUE_TS(t);
  if (LIKELY(active_)) on_alloc(t, p, n, RA(), SP());
  return p;
}

static void h_free(void *p) {
  if (UNLIKELY(!p)) return; /* free(NULL): nothing to do, nothing counted */
  HOOK_PROLOGUE_TS(t);
  /* Untrack before the real free: once freed, another thread may get the
   * same address from malloc and record it. */
  if (LIKELY(active_))
    on_free(t, p);
  else if (only_paused(t))
    release_recorded(t, p);
  free(p);
}

static void *h_calloc(size_t n, size_t sz) {
  void *p = calloc(n, sz);
  if (UNLIKELY(!p)) return p;
  HOOK_PROLOGUE_TS(t);
  if (LIKELY(active_)) on_alloc(t, p, n * sz, RA(), SP());
  return p;
}

static void *realloc_common(void *p, size_t n, uintptr_t ra, uintptr_t sp) {
  HOOK_PROLOGUE_TS(t);
  if (!active_) {
    if (!p || !only_paused(t)) return realloc(p, n);
    rec r;
    int had = atomic_load_explicit(&g_live_count, RLX) &&
              atomic_load_explicit(&g_filter[filter_slot((uintptr_t)p)], RLX) &&
              untrack_slow(p, &r);
    void *q = realloc(p, n);
    if (had && !q && n != 0) { /* failed: the block is still the caller's */
      spin_lock(&g_table_lock);
      live_insert(&r);
      spin_unlock(&g_table_lock);
    } else if (had) {
      acct_sub(t, r.size);
    }
    return q;
  }
  if (!p) {
    void *q = realloc(NULL, n);
    if (q) on_alloc(t, q, n, ra, sp);
    return q;
  }
  rec r;
  int had;
  uint64_t old = block_bytes_untrack(p, &r, &had);
  void *q = realloc(p, n);
  if (!q) {
    if (n == 0) {
      acct_sub(t, old); /* glibc frees p for realloc(p, 0) */
    } else if (had) {
      spin_lock(&g_table_lock); /* failed: p is still the caller's */
      live_insert(&r);
      spin_unlock(&g_table_lock);
    }
    return q;
  }
  acct_sub(t, old);
  on_alloc(t, q, n, ra, sp);
  return q;
}

static void *h_realloc(void *p, size_t n) { return realloc_common(p, n, RA(), SP()); }

static void *h_reallocarray(void *p, size_t nm, size_t sz) {
  size_t n;
  if (__builtin_mul_overflow(nm, sz, &n)) return reallocarray(p, nm, sz); /* sets ENOMEM */
  return realloc_common(p, n, RA(), SP());
}

static int h_posix_memalign(void **out, size_t align, size_t n) {
  int rc = posix_memalign(out, align, n);
  if (rc != 0) return rc;
  HOOK_PROLOGUE_TS(t);
  if (LIKELY(active_)) on_alloc(t, *out, n, RA(), SP());
  return rc;
}

static void *h_aligned_alloc(size_t align, size_t n) {
  void *p = aligned_alloc(align, n);
  if (!p) return p;
  HOOK_PROLOGUE_TS(t);
  if (LIKELY(active_)) on_alloc(t, p, n, RA(), SP());
  return p;
}

static void *h_memalign(size_t align, size_t n) {
  void *p = memalign(align, n);
  if (!p) return p;
  HOOK_PROLOGUE_TS(t);
  if (LIKELY(active_)) on_alloc(t, p, n, RA(), SP());
  return p;
}

static void *h_valloc(size_t n) {
  void *p = valloc(n);
  if (!p) return p;
  HOOK_PROLOGUE_TS(t);
  if (LIKELY(active_)) on_alloc(t, p, n, RA(), SP());
  return p;
}

static void *h_pvalloc(size_t n) {
  void *p = pvalloc(n);
  if (!p) return p;
  HOOK_PROLOGUE_TS(t);
  if (LIKELY(active_)) on_alloc(t, p, n, RA(), SP());
  return p;
}

/* Anonymous mappings count as allocations of their length. MAP_FIXED
 * (replacing part of an existing mapping) and PROT_NONE reservations are not
 * memory being allocated and are left alone. */
static void *mmap_common(void *addr, size_t len, int prot, int flags, int fd, off_t off,
                         uintptr_t ra, uintptr_t sp) {
  void *r = mmap(addr, len, prot, flags, fd, off);
  if (r == MAP_FAILED || !(flags & MAP_ANONYMOUS) || (flags & MAP_FIXED) || prot == PROT_NONE)
    return r;
  HOOK_PROLOGUE_TS(t);
  if (active_) {
    if (!t->shared) record_block(t, (uintptr_t)r, len, 1.0, 1, ra, sp);
    acct_add(t, len);
  }
  return r;
}

static void *h_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
  return mmap_common(addr, len, prot, flags, fd, off, RA(), SP());
}

static int h_munmap(void *addr, size_t len) {
  HOOK_PROLOGUE_TS(t);
  if ((active_ || only_paused(t)) && atomic_load_explicit(&g_live_count, RLX) &&
      atomic_load_explicit(&g_filter[filter_slot((uintptr_t)addr)], RLX)) {
    rec r;
    spin_lock(&g_table_lock);
    int had = live_remove((uintptr_t)addr, &r);
    if (had && r.kind != 1) { /* not a mapping we counted: put it back */
      live_insert(&r);
      had = 0;
    }
    /* Unmapping the front of a counted mapping: keep the rest counted. */
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t cut = (len + page - 1) & ~(page - 1);
    if (had && cut < r.size) {
      rec rest = r;
      rest.key = r.key + cut;
      rest.size = r.size - cut;
      live_insert(&rest);
      r.size = cut;
    }
    spin_unlock(&g_table_lock);
    if (had) acct_sub(t, r.size);
  }
  return munmap(addr, len);
}

static void *h_dlopen(const char *file, int flags);
static int h_dlclose(void *h);

static const ct_hook_def g_defs[] = {
    {"malloc", (void *)h_malloc},
    {"free", (void *)h_free},
    {"calloc", (void *)h_calloc},
    {"realloc", (void *)h_realloc},
    {"reallocarray", (void *)h_reallocarray},
    {"posix_memalign", (void *)h_posix_memalign},
    {"aligned_alloc", (void *)h_aligned_alloc},
    {"memalign", (void *)h_memalign},
    {"valloc", (void *)h_valloc},
    {"pvalloc", (void *)h_pvalloc},
    {"mmap", (void *)h_mmap},
    {"mmap64", (void *)h_mmap},
    {"munmap", (void *)h_munmap},
    {"dlopen", (void *)h_dlopen},
    {"dlclose", (void *)h_dlclose},
};
#define NDEFS (sizeof(g_defs) / sizeof(g_defs[0]))

/* Objects loaded after attach (every compiled cell) get patched here. */
static void *h_dlopen(const char *file, int flags) {
  void *h = dlopen(file, flags);
  if (h && atomic_load_explicit(&g_attached, memory_order_acquire)) {
    pthread_mutex_lock(&g_patch_lock);
    if (atomic_load_explicit(&g_attached, RLX)) ct_got_patch_all(g_defs, NDEFS);
    pthread_mutex_unlock(&g_patch_lock);
  }
  return h;
}

static int h_dlclose(void *h) {
  int rc = dlclose(h);
  /* The object's slots may be gone: forget them so detach never writes into
   * memory that now belongs to something else. */
  pthread_mutex_lock(&g_patch_lock);
  ct_got_prune();
  pthread_mutex_unlock(&g_patch_lock);
  return rc;
}

/* -------------------------------------------------------------------- fork */
static void atfork_prepare(void) {
  pthread_mutex_lock(&g_patch_lock);
  spin_lock(&g_threads_lock);
  spin_lock(&g_table_lock);
}
static void atfork_parent(void) {
  spin_unlock(&g_table_lock);
  spin_unlock(&g_threads_lock);
  pthread_mutex_unlock(&g_patch_lock);
}
static void atfork_child(void) {
  spin_unlock(&g_table_lock);
  spin_unlock(&g_threads_lock);
  /* The child starts detached: its GOT slots go back to the real functions
   * (restoring does not touch the loader lock). */
  if (g_refs) ct_got_restore_all();
  g_refs = 0;
  atomic_store(&g_attached, 0);
  pthread_mutex_unlock(&g_patch_lock);
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

static void init_once(void) {
  if (g_initialised) return;
  pthread_key_create(&g_key, ts_retire);
  pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
  dl_iterate_phdr(self_range_cb, NULL);
  /* Warm the unwinder (it may allocate and dlopen libgcc_s on first use)
   * before any hook can call it. */
  uintptr_t pcs[4];
  unw_ctx u = {pcs, 0, 4};
  _Unwind_Backtrace(unw_cb, &u);
  check_inline_usable();
  g_orphan.rng = 88172645463325252ull;
  g_orphan.countdown = INT64_MAX / 2;
  g_initialised = 1;
}

/* ---------------------------------------------------------------- C API */
static void apply_config(const cyscope_mem_config *c) {
  if (!c) return;
  atomic_store(&g_exact, c->exact ? 1 : 0);
  atomic_store(&g_native, c->native ? 1 : 0);
  uint64_t rate = c->sample_bytes ? c->sample_bytes : DEFAULT_SAMPLE_BYTES;
  if (atomic_exchange(&g_sample_bytes, rate) != rate) {
    /* Gaps already drawn used the old interval (possibly huge): make every
     * thread draw a fresh one at its next allocation. A store racing with
     * the owner's own update can be lost; the owner then keeps its old gap. */
    spin_lock(&g_threads_lock);
    for (tstate *t = g_all_threads; t; t = t->next_all)
      if (t->in_use) __atomic_store_n(&t->countdown, 0, __ATOMIC_RELAXED);
    spin_unlock(&g_threads_lock);
  }
  atomic_store(&g_record_threshold,
               c->record_threshold ? c->record_threshold : DEFAULT_RECORD_THRESHOLD);
  atomic_store(&g_record_from, c->exact ? 0 : atomic_load(&g_record_threshold));
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
    if (ct_got_patch_all(g_defs, NDEFS) != 0) {
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
    if (g_live) memset(g_live, 0, g_live_cap * sizeof(rec));
    g_live_used = 0;
    atomic_store_explicit(&g_live_count, 0, RLX);
    for (size_t i = 0; i < (1u << FILTER_BITS); i++) atomic_store_explicit(&g_filter[i], 0, RLX);
    g_snap_n = 0;
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
  return CYSCOPE_OK;
}

/* Sum of all threads; the calling thread's own figures are exact, other
 * threads' are as of their last store. */
static void sum_threads(int64_t *cur, int64_t *curmax, uint64_t *ab, uint64_t *ac, uint64_t *fb,
                        uint64_t *fc) {
  spin_lock(&g_threads_lock);
  int64_t c = ld64(&g_pushed), cm = 0;
  uint64_t a = ldu(&g_ret_alloc_bytes), n = ldu(&g_ret_allocs);
  uint64_t f = ldu(&g_ret_freed_bytes), k = ldu(&g_ret_frees);
  for (tstate *t = g_all_threads; t; t = t->next_all) {
    int64_t p = ld64(&t->pend);
    c += p;
    cm += ld64(&t->pend_max);
    a += ldu(&t->alloc_bytes);
    n += ldu(&t->allocs);
    f += ldu(&t->freed_bytes);
    k += ldu(&t->frees);
  }
  tstate *o = &g_orphan;
  c += ld64(&o->pend);
  cm += ld64(&o->pend_max);
  a += ldu(&o->alloc_bytes);
  n += ldu(&o->allocs);
  f += ldu(&o->freed_bytes);
  k += ldu(&o->frees);
  spin_unlock(&g_threads_lock);
  *cur = c;
  *curmax = ld64(&g_pushed) + cm;
  *ab = a;
  *ac = n;
  *fb = f;
  *fc = k;
}

int cyscope_mem_totals_get(cyscope_mem_totals *o) {
  if (!o || o->size < sizeof(cyscope_mem_totals)) return CYSCOPE_EINVAL;
  int64_t cur, curmax;
  sum_threads(&cur, &curmax, &o->allocated_bytes, &o->allocations, &o->freed_bytes, &o->frees);
  o->current_bytes = cur;
  int64_t pk = atomic_load(&g_peak);
  if (curmax > pk) pk = curmax;
  if (cur > pk) pk = cur;
  o->peak_bytes = pk;
  o->live_records = atomic_load(&g_live_count);
  spin_lock(&g_table_lock);
  o->stacks = g_nstacks - 1;
  o->tracker_bytes = g_arena_bytes + g_live_cap * sizeof(rec) + g_stacks_cap * sizeof(void *) +
                     g_nbuckets * 4 + g_codes_cap * sizeof(code_ent) + g_code_slots_cap * 4 +
                     g_snap_cap * sizeof(cyscope_mem_stack_stat) + sizeof(g_filter);
  spin_unlock(&g_table_lock);
  spin_lock(&g_threads_lock);
  for (tstate *t = g_all_threads; t; t = t->next_all) o->tracker_bytes += sizeof(tstate);
  spin_unlock(&g_threads_lock);
  pthread_mutex_lock(&g_patch_lock);
  o->tracker_bytes += ct_got_tracker_bytes();
  o->patched_slots = ct_got_patched_slots();
  o->attached = g_refs > 0;
  pthread_mutex_unlock(&g_patch_lock);
  o->epoch = atomic_load(&g_epoch);
  return CYSCOPE_OK;
}

int cyscope_mem_reset_peak(int64_t *previous_peak) {
  int64_t cur, curmax;
  uint64_t a, b, c, d;
  sum_threads(&cur, &curmax, &a, &b, &c, &d);
  int64_t prev = atomic_load(&g_peak);
  if (curmax > prev) prev = curmax;
  if (cur > prev) prev = cur;
  if (previous_peak) *previous_peak = prev;
  /* Every thread's running maximum restarts at its current balance. A racing
   * owner may lose one update here (peak low by at most one block). */
  spin_lock(&g_threads_lock);
  for (tstate *t = g_all_threads; t; t = t->next_all)
    atomic_store_explicit(&t->pend_max, ld64(&t->pend), RLX);
  atomic_store_explicit(&g_orphan.pend_max, ld64(&g_orphan.pend), RLX);
  spin_unlock(&g_threads_lock);
  atomic_store(&g_peak, cur);
  spin_lock(&g_table_lock);
  g_snap_n = 0;
  g_snap_current = cur;
  spin_unlock(&g_table_lock);
  atomic_store(&g_snap_base, cur);
  atomic_store(&g_snap_level, cur + PUSH_BYTES / 2);
  atomic_store(&g_snap_enabled, 1);
  return CYSCOPE_OK;
}

int cyscope_mem_next_epoch(uint32_t *epoch) {
  uint32_t e = atomic_fetch_add(&g_epoch, 1) + 1;
  if (epoch) *epoch = e;
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
  if (!layout) {
    atomic_store(&g_py_enabled, 0);
    return CYSCOPE_OK;
  }
  if (layout->size < sizeof(cyscope_py_layout)) return CYSCOPE_EINVAL;
  if (!PyGILState_GetThisThreadState || !Py_IsInitialized || !PyCode_Addr2Line)
    return CYSCOPE_ESTATE;
  atomic_store(&g_py_enabled, 0);
  spin_lock(&g_table_lock);
  g_py = *layout;
  spin_unlock(&g_table_lock);
  atomic_store(&g_py_enabled, 1);
  return CYSCOPE_OK;
}

int cyscope_mem_live_by_stack(uint32_t lo, uint32_t hi, cyscope_mem_stack_stat *out, size_t cap,
                              size_t *n) {
  if (!n || (!out && cap)) return CYSCOPE_EINVAL;
  tstate *t = get_ts();
  if (t) t->off++;
  spin_lock(&g_table_lock);
  size_t need = 0;
  long r = aggregate_live(lo, hi, 1, out, cap, &need);
  spin_unlock(&g_table_lock);
  if (t) t->off--;
  *n = need;
  if (r == -2) return CYSCOPE_EOS;
  return r < 0 ? CYSCOPE_ENOMEM : CYSCOPE_OK;
}

int cyscope_mem_peak_by_stack(cyscope_mem_stack_stat *out, size_t cap, size_t *n,
                              int64_t *snapshot_current) {
  if (!n) return CYSCOPE_EINVAL;
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

int cyscope_mem_stack_totals(cyscope_mem_stack_stat *out, size_t cap, size_t *n) {
  if (!n) return CYSCOPE_EINVAL;
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

int cyscope_mem_stack_frames(uint32_t id, cyscope_mem_frame *out, size_t cap, size_t *n) {
  if (!n) return CYSCOPE_EINVAL;
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

int cyscope_mem_code_info(uint64_t idx, const char **filename, const char **name,
                          int32_t *firstlineno) {
  spin_lock(&g_table_lock);
  int rc = CYSCOPE_OK;
  if (idx == 0 || idx >= g_ncodes) {
    rc = CYSCOPE_EINVAL;
  } else {
    if (filename) *filename = g_codes[idx].filename;
    if (name) *name = g_codes[idx].name;
    if (firstlineno) *firstlineno = g_codes[idx].firstlineno;
  }
  spin_unlock(&g_table_lock);
  return rc;
}

int cyscope_mem_scan_patched(uint64_t *n) {
  if (!n) return CYSCOPE_EINVAL;
  pthread_mutex_lock(&g_patch_lock);
  *n = ct_got_scan(g_defs, NDEFS);
  pthread_mutex_unlock(&g_patch_lock);
  return CYSCOPE_OK;
}
