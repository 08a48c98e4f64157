/* Python objects, counted one by one.
 *
 * The interpreter's MEM and OBJ allocator domains are wrapped
 * (PyMem_SetAllocator): every object allocation and free passes through
 * here, with the GIL held. An object counts at its requested size when it
 * is recorded (sampled, exact mode), else at pymalloc's size class, which
 * its pool's header holds: no pointer-to-size map, the price that makes a
 * tracer like tracemalloc costly.
 *
 * Which blocks are pymalloc's? A request of 1..512 bytes is served from a
 * pool unless pymalloc passes it to the raw allocator (size 0, out of
 * arena memory); the raw domain is wrapped too, only to note the block it
 * returned on this thread. Blocks passed to malloc count once, in the
 * malloc hooks. On free, the block's pool (its address rounded down to the
 * pool size) is looked up in a table of pools an allocation was seen from;
 * a block from an unknown pool is either a malloc block (the free hook
 * takes it back) or an object made before the wrappers went in (never
 * counted, not subtracted). The arena allocator is wrapped to keep that
 * table true: an arena's pools are forgotten when it is allocated or freed,
 * and arenas no longer count as mappings (their objects do).
 *
 * All wrappers run with the GIL held (the raw domain aside, which touches
 * only its own thread's state), so the pool table needs no lock. */
#include <string.h>

#include "accounting.h"
#include "memtrack_internal.h"

/* The interpreter's allocator API (Include/cpython/pymem.h, objimpl.h),
 * resolved from the hosting process; weak, like every Python symbol here. */
typedef struct {
  void *ctx;
  void *(*malloc)(void *ctx, size_t size);
  void *(*calloc)(void *ctx, size_t nelem, size_t elsize);
  void *(*realloc)(void *ctx, void *ptr, size_t new_size);
  void (*free)(void *ctx, void *ptr);
} py_mem_allocator;
typedef struct {
  void *ctx;
  void *(*alloc)(void *ctx, size_t size);
  void (*free)(void *ctx, void *ptr, size_t size);
} py_arena_allocator;
enum { DOMAIN_RAW = 0, DOMAIN_MEM = 1, DOMAIN_OBJ = 2 };

#pragma GCC visibility push(default)
extern void PyMem_GetAllocator(int domain, py_mem_allocator *a) __attribute__((weak));
extern void PyMem_SetAllocator(int domain, py_mem_allocator *a) __attribute__((weak));
extern void PyObject_GetArenaAllocator(py_arena_allocator *a) __attribute__((weak));
extern void PyObject_SetArenaAllocator(py_arena_allocator *a) __attribute__((weak));
#pragma GCC visibility pop

static cyscope_pymalloc_layout g_lay;
static int g_installed;
static py_mem_allocator g_mem_orig, g_obj_orig, g_raw_orig;
static py_arena_allocator g_arena_orig;
static uintptr_t g_pool_mask;
static size_t g_small_max;

/* ------------------------------------------------------------ pool table */
/* One bit per pool: "an allocation came from it since its arena was made".
 * Two levels over a 48-bit address space: address bits 47..32 pick a
 * bitmap covering 4 GiB (mapped on first use); mapped memory stays
 * untouched, so unused parts cost no RAM. */
#define L1_ENTRIES (1u << 16)
static uint8_t **g_l1;
static size_t g_l2_bytes; /* one bitmap: 4 GiB / pool size bits */
static uint64_t g_l2_count;

static inline uint8_t *l2_of(uintptr_t p) {
  uintptr_t hi = p >> 32;
  return hi < L1_ENTRIES ? g_l1[hi] : NULL;
}
static inline size_t bit_of(uintptr_t p) { return (size_t)((p & 0xFFFFFFFFu) >> g_lay.pool_bits); }

static inline int pool_known(uintptr_t p) {
  uint8_t *l2 = l2_of(p);
  if (!l2) return 0;
  size_t b = bit_of(p);
  return (l2[b >> 3] >> (b & 7)) & 1;
}

static __attribute__((noinline)) void pool_note_slow(uintptr_t p) {
  uintptr_t hi = p >> 32;
  if (hi >= L1_ENTRIES) return; /* beyond 48 bits: never counted */
  if (!g_l1[hi]) {
    g_l1[hi] = ct_os_alloc(g_l2_bytes);
    if (!g_l1[hi]) return;
    g_l2_count++;
  }
  size_t b = bit_of(p);
  g_l1[hi][b >> 3] |= (uint8_t)(1u << (b & 7));
}

static inline void pool_note(uintptr_t p) {
  if (LIKELY(pool_known(p))) return;
  pool_note_slow(p);
}

/* Forget every pool inside [p, p + size) (an arena made or freed). */
static void pools_forget(uintptr_t p, size_t size) {
  uintptr_t pool = (p + ~g_pool_mask) & g_pool_mask, end = p + size;
  for (; pool + (~g_pool_mask + 1) <= end; pool += ~g_pool_mask + 1) {
    uint8_t *l2 = l2_of(pool);
    if (!l2) continue;
    size_t b = bit_of(pool);
    l2[b >> 3] &= (uint8_t) ~(1u << (b & 7));
  }
}

static void pools_clear(void) {
  if (!g_l1) return;
  for (size_t i = 0; i < L1_ENTRIES; i++)
    if (g_l1[i]) {
      ct_os_free(g_l1[i], g_l2_bytes);
      g_l1[i] = NULL;
    }
  g_l2_count = 0;
}

/* The size class of a block in a known pool, from its pool's header. */
static size_t pool_class_size(void *p) {
  uintptr_t pool = (uintptr_t)p & g_pool_mask;
  uint32_t idx = *(const uint32_t *)(pool + (uintptr_t)g_lay.szidx_offset);
  return (size_t)(idx + 1) << g_lay.align_shift;
}

/* ---------------------------------------------------------------- wrappers */
static inline int small_request(size_t n) { return n - 1 < g_small_max; }

/* p came back from pymalloc for n bytes: an object from a pool, unless
 * pymalloc passed the request to the raw allocator on this thread. */
static inline int from_pool(const tstate *t, void *p, size_t n) {
  return small_request(n) && (uintptr_t)p != t->raw_last;
}

static inline __attribute__((always_inline)) void on_object(tstate *t, void *p, size_t n,
                                                            uintptr_t ra) {
  pool_note((uintptr_t)p);
  account_alloc(t, p, n, pool_class_size, ra);
}

/* An exiting thread (the shared orphan state) never learns which blocks its
 * raw allocator returned: its new objects go uncounted (Python code has
 * finished on a thread before its state retires, so there are next to
 * none). */
#define OBJ_ACTIVE(t) (active_ && !(t)->shared)

static inline __attribute__((always_inline)) void *obj_alloc(py_mem_allocator *o, size_t n,
                                                             uintptr_t ra) {
  HOOK_PROLOGUE_TS(t);
  if (UNLIKELY(!OBJ_ACTIVE(t))) return o->malloc(o->ctx, n);
  t->raw_last = 0;
  void *p = o->malloc(o->ctx, n);
  if (LIKELY(p != NULL) && from_pool(t, p, n)) on_object(t, p, n, ra);
  return p;
}

static inline __attribute__((always_inline)) void *obj_calloc(py_mem_allocator *o, size_t nelem,
                                                              size_t elsize, uintptr_t ra) {
  size_t n;
  HOOK_PROLOGUE_TS(t);
  if (UNLIKELY(!OBJ_ACTIVE(t)) || __builtin_mul_overflow(nelem, elsize, &n))
    return o->calloc(o->ctx, nelem, elsize);
  t->raw_last = 0;
  void *p = o->calloc(o->ctx, nelem, elsize);
  if (LIKELY(p != NULL) && from_pool(t, p, n)) on_object(t, p, n, ra);
  return p;
}

static inline __attribute__((always_inline)) void obj_free(py_mem_allocator *o, void *p) {
  if (LIKELY(p != NULL)) {
    HOOK_PROLOGUE_TS(t);
    if (LIKELY(active_)) {
      /* An unknown pool: a malloc block (the free hook takes it back) or an
       * object older than the wrappers (never counted). */
      if (pool_known((uintptr_t)p)) {
        rec r;
        int had;
        acct_sub(t, account_free_bytes(p, &r, &had, pool_class_size));
      }
    } else if (only_paused(t) && pool_known((uintptr_t)p)) {
      release_recorded(t, p);
    }
  }
  o->free(o->ctx, p);
}

static inline __attribute__((always_inline)) void *obj_realloc(py_mem_allocator *o, void *p,
                                                               size_t n, uintptr_t ra) {
  HOOK_PROLOGUE_TS(t);
  if (!p && active_) return obj_alloc(o, n, ra);
  int known = p && pool_known((uintptr_t)p);
  if (active_ && t->shared) { /* as obj_alloc: the new block goes uncounted */
    if (known) {
      rec r;
      int had;
      acct_sub(t, account_free_bytes(p, &r, &had, pool_class_size));
    }
    return o->realloc(o->ctx, p, n);
  }
  if (!active_) {
    if (!known || !only_paused(t)) return o->realloc(o->ctx, p, n);
    rec r;
    int had = maybe_recorded((uintptr_t)p) && untrack_slow(p, &r);
    void *q = o->realloc(o->ctx, p, n);
    if (had && !q) { /* failed: the block is still the caller's */
      retrack(&r);
    } else if (had) {
      acct_sub(t, r.size);
    }
    return q;
  }
  rec r;
  int had = 0;
  uint64_t old = known ? account_free_bytes(p, &r, &had, pool_class_size) : 0;
  t->raw_last = 0;
  void *q = o->realloc(o->ctx, p, n);
  if (!q) {
    if (had) retrack(&r); /* failed: p is still the caller's */
    return q;
  }
  if (known) acct_sub(t, old);
  /* A block that moved to (or stayed with) malloc was counted there. */
  if (from_pool(t, q, n)) on_object(t, q, n, ra);
  return q;
}

/* One set of entry points per domain: the domain's original allocator is
 * their context. */
static void *w_malloc(void *ctx, size_t n) { return obj_alloc(ctx, n, RA()); }
static void *w_calloc(void *ctx, size_t nelem, size_t elsize) {
  return obj_calloc(ctx, nelem, elsize, RA());
}
static void *w_realloc(void *ctx, void *p, size_t n) { return obj_realloc(ctx, p, n, RA()); }
static void w_free(void *ctx, void *p) { obj_free(ctx, p); }

/* The raw domain (no GIL): only notes what it returned on this thread. */
static inline void note_raw(void *q) {
  tstate *t = t_ts;
  if (t && !t->shared) t->raw_last = (uintptr_t)q;
}
static void *w_raw_malloc(void *ctx, size_t n) {
  (void)ctx;
  void *q = g_raw_orig.malloc(g_raw_orig.ctx, n);
  note_raw(q);
  return q;
}
static void *w_raw_calloc(void *ctx, size_t nelem, size_t elsize) {
  (void)ctx;
  void *q = g_raw_orig.calloc(g_raw_orig.ctx, nelem, elsize);
  note_raw(q);
  return q;
}
static void *w_raw_realloc(void *ctx, void *p, size_t n) {
  (void)ctx;
  void *q = g_raw_orig.realloc(g_raw_orig.ctx, p, n);
  note_raw(q);
  return q;
}
static void w_raw_free(void *ctx, void *p) {
  (void)ctx;
  g_raw_orig.free(g_raw_orig.ctx, p);
}

/* Arenas: not counted themselves (their objects are); their pools start
 * and end unknown. Freeing one still passes the munmap hook, so a mapping
 * counted before the wrappers went in leaves the books. */
static void *w_arena_alloc(void *ctx, size_t size) {
  (void)ctx;
  tstate *t = get_ts();
  int guard = t && !t->shared;
  if (guard) t->off++;
  void *p = g_arena_orig.alloc(g_arena_orig.ctx, size);
  if (guard) t->off--;
  if (p) pools_forget((uintptr_t)p, size);
  return p;
}
static void w_arena_free(void *ctx, void *p, size_t size) {
  (void)ctx;
  if (p) pools_forget((uintptr_t)p, size);
  g_arena_orig.free(g_arena_orig.ctx, p, size);
}

/* ------------------------------------------------------------- install */
static int is_ours(int domain, py_mem_allocator *ctx) {
  py_mem_allocator cur;
  PyMem_GetAllocator(domain, &cur);
  if (domain == DOMAIN_RAW) return cur.malloc == w_raw_malloc;
  return cur.malloc == w_malloc && cur.ctx == ctx;
}

static int arena_is_ours(void) {
  py_arena_allocator cur;
  PyObject_GetArenaAllocator(&cur);
  return cur.alloc == w_arena_alloc;
}

static int install(const cyscope_pymalloc_layout *l) {
  if (g_installed) return CYSCOPE_OK;
  if (l->size < sizeof(cyscope_pymalloc_layout) || l->pool_bits < 10 || l->pool_bits > 24 ||
      l->align_shift < 3 || l->align_shift > 6 || l->small_max < 8 || l->small_max > 4096 ||
      l->szidx_offset < 0 || l->szidx_offset > 256)
    return CYSCOPE_EINVAL;
  if (!g_l1) {
    g_l1 = ct_os_alloc(L1_ENTRIES * sizeof(uint8_t *));
    if (!g_l1) return CYSCOPE_ENOMEM;
  }
  pools_clear(); /* arenas came and went unseen since the last install */
  g_lay = *l;
  g_pool_mask = ~(((uintptr_t)1 << l->pool_bits) - 1);
  g_small_max = (size_t)l->small_max;
  g_l2_bytes = ((size_t)1 << (32 - l->pool_bits)) / 8;
  PyObject_GetArenaAllocator(&g_arena_orig);
  PyMem_GetAllocator(DOMAIN_RAW, &g_raw_orig);
  PyMem_GetAllocator(DOMAIN_MEM, &g_mem_orig);
  PyMem_GetAllocator(DOMAIN_OBJ, &g_obj_orig);
  /* Arenas first, so no arena made from now on goes unseen; the raw domain
   * before the object domains, which rely on it. */
  py_arena_allocator arena = {NULL, w_arena_alloc, w_arena_free};
  PyObject_SetArenaAllocator(&arena);
  py_mem_allocator raw = {NULL, w_raw_malloc, w_raw_calloc, w_raw_realloc, w_raw_free};
  PyMem_SetAllocator(DOMAIN_RAW, &raw);
  py_mem_allocator mem = {&g_mem_orig, w_malloc, w_calloc, w_realloc, w_free};
  PyMem_SetAllocator(DOMAIN_MEM, &mem);
  py_mem_allocator obj = {&g_obj_orig, w_malloc, w_calloc, w_realloc, w_free};
  PyMem_SetAllocator(DOMAIN_OBJ, &obj);
  g_installed = 1;
  return CYSCOPE_OK;
}

static int uninstall(void) {
  if (!g_installed) return CYSCOPE_OK;
  /* Someone wrapped us since (tracemalloc started later): putting the
   * originals back would drop their wrappers. Stay, counting nothing while
   * detached. */
  if (!is_ours(DOMAIN_OBJ, &g_obj_orig) || !is_ours(DOMAIN_MEM, &g_mem_orig) ||
      !is_ours(DOMAIN_RAW, NULL) || !arena_is_ours())
    return CYSCOPE_ESTATE;
  PyMem_SetAllocator(DOMAIN_OBJ, &g_obj_orig);
  PyMem_SetAllocator(DOMAIN_MEM, &g_mem_orig);
  PyMem_SetAllocator(DOMAIN_RAW, &g_raw_orig);
  PyObject_SetArenaAllocator(&g_arena_orig);
  g_installed = 0;
  return CYSCOPE_OK;
}

int cyscope_mem_python_objects(const cyscope_pymalloc_layout *layout) {
  if (!PyMem_GetAllocator || !PyMem_SetAllocator || !PyObject_GetArenaAllocator ||
      !PyObject_SetArenaAllocator)
    return CYSCOPE_ESTATE;
  pthread_mutex_lock(&g_patch_lock);
  init_once();
  int rc = layout ? install(layout) : uninstall();
  pthread_mutex_unlock(&g_patch_lock);
  return rc;
}

uint64_t pyobjects_tracker_bytes(void) {
  return (g_l1 ? L1_ENTRIES * sizeof(uint8_t *) : 0) + g_l2_count * g_l2_bytes;
}
