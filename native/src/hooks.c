/* The hooks: what runs in place of malloc & co. once attached, and the
 * accounting on their path.
 *
 * Hot path (every malloc/free): one TLS load, the real call, a few plain
 * stores to this thread's counters and, for free, one byte load from a
 * counting filter. No locks and no atomic read-modify-write unless a thread
 * pushes its running balance (every 256 KiB) or an allocation is recorded.
 * Everything that path touches is in this file or `static inline` in
 * accounting.h and memtrack_internal.h. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <malloc.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "accounting.h"
#include "memtrack_internal.h"

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

void check_inline_usable(void) {
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

/* Account a new malloc block; the bytes a free takes back. */
static inline void on_alloc(tstate *t, void *p, size_t req, uintptr_t ra) {
  account_alloc(t, p, req, usable_size, ra);
}

static inline uint64_t block_bytes_untrack(void *p, rec *out, int *had) {
  return account_free_bytes(p, out, had, usable_size);
}

static inline void on_free(tstate *t, void *p) {
  rec r;
  int had;
  acct_sub(t, block_bytes_untrack(p, &r, &had));
}

/* ------------------------------------------------------------------- hooks */
/* What every allocation hook does once the real function returned p for n
 * requested bytes. Always inlined, and ra is the hook's own return address
 * (RA() evaluated in the hook). */
static inline __attribute__((always_inline)) void *after_alloc(void *p, size_t n, uintptr_t ra) {
  if (UNLIKELY(!p)) return p;
  HOOK_PROLOGUE_TS(t);
  if (LIKELY(active_)) on_alloc(t, p, n, ra);
  return p;
}

static void *h_malloc(size_t n) { return after_alloc(malloc(n), n, RA()); }

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

static void *h_calloc(size_t n, size_t sz) { return after_alloc(calloc(n, sz), n * sz, RA()); }

static void *realloc_common(void *p, size_t n, uintptr_t ra) {
  HOOK_PROLOGUE_TS(t);
  if (!active_) {
    if (!p || !only_paused(t)) return realloc(p, n);
    rec r;
    int had = maybe_recorded((uintptr_t)p) && untrack_slow(p, &r);
    void *q = realloc(p, n);
    if (had && !q && n != 0) { /* failed: the block is still the caller's */
      retrack(&r);
    } else if (had) {
      acct_sub(t, r.size);
    }
    return q;
  }
  if (!p) {
    void *q = realloc(NULL, n);
    if (q) on_alloc(t, q, n, ra);
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
      retrack(&r); /* failed: p is still the caller's */
    }
    return q;
  }
  acct_sub(t, old);
  on_alloc(t, q, n, ra);
  return q;
}

static void *h_realloc(void *p, size_t n) { return realloc_common(p, n, RA()); }

static void *h_reallocarray(void *p, size_t nm, size_t sz) {
  size_t n;
  if (__builtin_mul_overflow(nm, sz, &n)) return reallocarray(p, nm, sz); /* sets ENOMEM */
  return realloc_common(p, n, RA());
}

static int h_posix_memalign(void **out, size_t align, size_t n) {
  int rc = posix_memalign(out, align, n);
  if (LIKELY(rc == 0)) after_alloc(*out, n, RA());
  return rc;
}

static void *h_aligned_alloc(size_t align, size_t n) {
  return after_alloc(aligned_alloc(align, n), n, RA());
}

static void *h_memalign(size_t align, size_t n) { return after_alloc(memalign(align, n), n, RA()); }

static void *h_valloc(size_t n) { return after_alloc(valloc(n), n, RA()); }

static void *h_pvalloc(size_t n) { return after_alloc(pvalloc(n), n, RA()); }

/* ---------------------------------------------------------------- mappings */
/* Anonymous mappings count as allocations of their length in whole pages.
 * Whatever a call unmaps, moves or replaces leaves the books the same way,
 * whichever call did it: munmap, mremap, or an mmap over counted pages
 * (MAP_FIXED, or a fresh mapping where a counted one was unmapped behind the
 * tracker's back). PROT_NONE mappings are reservations, not memory, and are
 * not counted; committing their pages with MAP_FIXED is. */
static inline uintptr_t page_end(uintptr_t p, size_t len) {
  uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
  return (p + len + page - 1) & ~(page - 1);
}

/* Pieces of counted mappings a call took out of the table before making the
 * system call, kept to put back if the call fails. One call rarely spans
 * more than one counted mapping; pieces past the first few are dropped from
 * the books instead of restored. */
#define SAVED_PIECES 8
typedef struct cut_pieces {
  mapping saved[SAVED_PIECES];
  size_t n;
  uint64_t bytes;
} cut_pieces;

static void cut_before_call(uintptr_t lo, uintptr_t hi, cut_pieces *c) {
  spin_lock(&g_table_lock);
  c->bytes = maps_cut(lo, hi, c->saved, SAVED_PIECES, &c->n);
  spin_unlock(&g_table_lock);
}

/* The call failed and changed nothing: put the pieces back; what could not
 * be kept leaves the books. */
static void restore_after_failure(tstate *t, const cut_pieces *c) {
  uint64_t back = 0;
  spin_lock(&g_table_lock);
  for (size_t i = 0; i < c->n; i++)
    if (maps_add(&c->saved[i]) == 0) back += c->saved[i].hi - c->saved[i].lo;
  spin_unlock(&g_table_lock);
  if (c->bytes > back) acct_sub(t, c->bytes - back);
}

/* [lo, hi) was just mapped: counted mappings there are gone (replaced, or
 * unmapped unseen); count the new one when asked to. */
static __attribute__((noinline)) void note_mapping(tstate *t, uintptr_t lo, uintptr_t hi,
                                                   int count_it, uintptr_t ra) {
  uint32_t stack = 0;
  if (count_it && !t->shared) {
    t->off++;
    stack = stack_of_call(t, ra, (uintptr_t)__builtin_frame_address(0));
    t->off--;
  }
  mapping m = {lo, hi, stack, atomic_load_explicit(&g_epoch, RLX)};
  spin_lock(&g_table_lock);
  uint64_t gone = maps_any() ? maps_cut(lo, hi, NULL, 0, NULL) : 0;
  /* A mapping the table cannot hold is not counted: its unmap would never
   * be subtracted. */
  if (count_it && maps_add(&m) != 0) count_it = 0;
  if (count_it && stack) stack_note_record(stack, hi - lo, 1.0, m.epoch);
  spin_unlock(&g_table_lock);
  if (gone) acct_sub(t, gone);
  if (count_it) acct_add(t, hi - lo);
}

static void *mmap_common(void *addr, size_t len, int prot, int flags, int fd, off_t off,
                         uintptr_t ra) {
  void *r = mmap(addr, len, prot, flags, fd, off);
  if (r == MAP_FAILED) return r;
  HOOK_PROLOGUE_TS(t);
  int count_it = active_ && (flags & MAP_ANONYMOUS) && prot != PROT_NONE;
  if (count_it || ((active_ || only_paused(t)) && maps_any()))
    note_mapping(t, (uintptr_t)r, page_end((uintptr_t)r, len), count_it, ra);
  return r;
}

static void *h_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
  return mmap_common(addr, len, prot, flags, fd, off, RA());
}

static int h_munmap(void *addr, size_t len) {
  HOOK_PROLOGUE_TS(t);
  if (!((active_ || only_paused(t)) && maps_any())) return munmap(addr, len);
  /* Out of the table before the call: once unmapped, another thread may be
   * given the same pages and count them. */
  cut_pieces c;
  cut_before_call((uintptr_t)addr, page_end((uintptr_t)addr, len), &c);
  int rc = munmap(addr, len);
  if (c.bytes) {
    if (rc != 0)
      restore_after_failure(t, &c);
    else
      acct_sub(t, c.bytes);
  }
  return rc;
}

/* Like realloc: the old pages leave, the new mapping is an allocation made
 * here. A mapping the tracker did not count (made before attach, a
 * reservation, a file) stays uncounted. */
static void *h_mremap(void *old, size_t old_len, size_t new_len, int flags, ...) {
  void *want = NULL;
  if (flags & MREMAP_FIXED) {
    va_list ap;
    va_start(ap, flags);
    want = va_arg(ap, void *);
    va_end(ap);
  }
  uintptr_t ra = RA();
  HOOK_PROLOGUE_TS(t);
  if (!((active_ || only_paused(t)) && maps_any()))
    return mremap(old, old_len, new_len, flags, want);
  cut_pieces c;
  cut_before_call((uintptr_t)old, page_end((uintptr_t)old, old_len), &c);
  void *q = mremap(old, old_len, new_len, flags, want);
  if (q == MAP_FAILED) {
    if (c.bytes) restore_after_failure(t, &c);
    return q;
  }
  if (c.bytes) acct_sub(t, c.bytes);
  int count_it = c.bytes && active_;
  /* MREMAP_FIXED replaced whatever was mapped at the target. */
  if (count_it || (flags & MREMAP_FIXED))
    note_mapping(t, (uintptr_t)q, page_end((uintptr_t)q, new_len), count_it, ra);
  return q;
}

/* Objects loaded after attach (every compiled cell) get patched here. */
static void *h_dlopen(const char *file, int flags) {
  void *h = dlopen(file, flags);
  if (h && atomic_load_explicit(&g_attached, memory_order_acquire)) {
    pthread_mutex_lock(&g_patch_lock);
    if (atomic_load_explicit(&g_attached, RLX)) hooks_patch_all();
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

/* ------------------------------------------------- the hooked functions */
/* dlsym and dlvsym are assembly trampolines (dlsym_trampoline.c): a
 * dlsym(RTLD_NEXT, ...) answer depends on who calls, so those calls must
 * reach the real function with the caller's own return address. */
void *ct_h_dlsym(void *handle, const char *name);
void *ct_h_dlvsym(void *handle, const char *name, const char *version);

/* The one list of what the tracker redirects: attach, dlopen, the slot scan
 * and dlsym all use it. */
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
    {"mremap", (void *)h_mremap},
    {"dlopen", (void *)h_dlopen},
    {"dlclose", (void *)h_dlclose},
    {"dlsym", (void *)ct_h_dlsym},
    {"dlvsym", (void *)ct_h_dlvsym},
};
#define NDEFS (sizeof(g_defs) / sizeof(g_defs[0]))

/* How many of g_defs attach installs: all but the two trampolines (last in
 * the list) if they have nowhere to jump to. */
static size_t g_npatch = NDEFS;

int hooks_patch_all(void) { return ct_got_patch_all(g_defs, g_npatch); } /* patch lock held */
uint64_t hooks_scan(void) { return ct_got_scan(g_defs, NDEFS); }         /* patch lock held */

/* What this library's own calls reach for each hooked name: the values of
 * its own relocation slots (bound at load time, -z now). */
static void *g_targets[NDEFS];
/* Where the trampolines jump to (see dlsym_trampoline.c). */
void *ct_real_dlsym, *ct_real_dlvsym;

void hooks_init(void) { /* patch lock held */
  ct_got_self_values(g_defs, NDEFS, g_targets);
  for (size_t i = 0; i < NDEFS; i++) {
    if (g_defs[i].hook == (void *)ct_h_dlsym) ct_real_dlsym = g_targets[i];
    if (g_defs[i].hook == (void *)ct_h_dlvsym) ct_real_dlvsym = g_targets[i];
  }
  /* Without a slot of its own (never the case: substitute() calls both), a
   * trampoline would have nowhere to go: then it is not installed. */
  if (!ct_real_dlsym || !ct_real_dlvsym) g_npatch = NDEFS - 2;
}

/* A function pointer looked up by name (ctypes' CDLL(None).malloc, a
 * library's dlsym(handle, "malloc")) would bypass every patched slot: hand
 * out the hook instead, while attached. Only when the lookup found exactly
 * the function the hook itself calls, so a pointer to anything else (another
 * allocator's malloc, an interposer looking up the next one) is left alone
 * and no hook can end up calling itself. Returns NULL to let the real
 * lookup answer. */
static void *substitute(void *handle, const char *name, const char *version) {
  if (!name || !atomic_load_explicit(&g_attached, memory_order_acquire)) return NULL;
  const ct_hook_def *d = NULL;
  for (size_t i = 0; i < NDEFS && !d; i++)
    if (strcmp(g_defs[i].name, name) == 0) d = &g_defs[i];
  if (!d) return NULL;
  void *r = version ? dlvsym(handle, name, version) : dlsym(handle, name);
  if (!r) return NULL;
  /* mmap64 is mmap: match any name served by the same hook. */
  for (size_t i = 0; i < NDEFS; i++)
    if (g_defs[i].hook == d->hook && g_targets[i] == r) return d->hook;
  return NULL;
}

void *ct_dlsym_substitute(void *handle, const char *name) { return substitute(handle, name, NULL); }
void *ct_dlvsym_substitute(void *handle, const char *name, const char *version) {
  return substitute(handle, name, version);
}
