/* Internal interfaces shared by the allocation tracker's translation units.
 *
 * Nothing here is exported: the whole header is hidden, which also lets the
 * compiler reach the shared globals directly instead of through the GOT.
 * What the malloc path needs is `static inline` here, so splitting the
 * tracker into files costs the hooks no calls. */
#ifndef CYSCOPE_MEMTRACK_INTERNAL_H
#define CYSCOPE_MEMTRACK_INTERNAL_H

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "cyscope.h"

#pragma GCC visibility push(hidden)

#define LIKELY(x) __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)
#define RLX memory_order_relaxed

/* A thread moves its private balance to the shared one every PUSH_BYTES;
 * this bounds the peak error with several threads (see docs). */
#define PUSH_BYTES (256 * 1024)
#define MAX_FRAMES 128
#define FILTER_BITS 18
/* Per-thread cache of recent (call site, stack depth, Python stack) -> stack id. */
#define STACK_CACHE 64
/* untracked() nesting lives in the high bits of tstate.off, the recursion
 * guard in the low bits. */
#define PAUSE_UNIT (1 << 16)

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

static inline int64_t ld64(_Atomic int64_t *a) { return atomic_load_explicit(a, RLX); }
static inline uint64_t ldu(_Atomic uint64_t *a) { return atomic_load_explicit(a, RLX); }

/* ------------------------------------------------- got_patch.c: attaching */
/* One symbol the tracker redirects: its name and the hook to install. */
typedef struct ct_hook_def {
  const char *name;
  void *hook;
} ct_hook_def;

/* Redirect/restore relocation slots of every loaded object except this
 * library itself (its own calls must reach the real functions).
 * Callers serialise these (g_patch_lock). */
int ct_got_patch_all(const ct_hook_def *defs, size_t ndefs);
void ct_got_restore_all(void);
/* Forget slots that belong to objects no longer loaded (after dlclose). */
void ct_got_prune(void);
uint64_t ct_got_patched_slots(void);
/* Walk every loaded object and count relocation slots holding a hook. */
uint64_t ct_got_scan(const ct_hook_def *defs, size_t ndefs);
uint64_t ct_got_tracker_bytes(void);
/* The current value of this library's own slot for each name (NULL where it
 * has none). */
void ct_got_self_values(const ct_hook_def *defs, size_t ndefs, void **out);

/* ----------------------------------------- arena.c: the tracker's memory */
/* Page-granular memory for the tracker itself: never goes through malloc. */
void *ct_os_alloc(size_t bytes);
void ct_os_free(void *p, size_t bytes);
/* An array of `elem`-byte items in that memory, with `used` items and room
 * for *cap, grown (doubling, from `first`) to hold at least `need`: returns
 * the array to use from now on and updates *cap, or NULL with the array and
 * *cap unchanged when memory runs out. */
void *ct_os_grow(void *array, size_t *cap, size_t used, size_t need, size_t elem, size_t first);
/* Bump allocation for stacks and strings, never freed (ids stay valid).
 * Table lock held. */
void *arena_alloc(size_t n);
uint64_t arena_bytes(void);   /* table lock held */
uint64_t arena_refused(void); /* table lock held: allocations refused at the limit */
extern _Atomic uint64_t g_arena_limit;

/* ---------------------------------- thread_state.c: per-thread counters */
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
  /* The block the Python raw allocator last returned on this thread: tells
   * the object wrappers that pymalloc handed a request to malloc. */
  uintptr_t raw_last;
  /* The kernel's own machinery (IOPub, history, sampler threads): counted
   * in the process's totals, left out of region figures and the peak. */
  int excluded;
  int64_t tid;
  /* exact-mode stack cache: same call site and stack => same stack id */
  struct {
    uintptr_t ra, sp, py;
    uint32_t stack;
    int native; /* -1: empty */
  } ck[STACK_CACHE];
  struct tstate *next_all, *next_free;
  int in_use;
} __attribute__((aligned(128))) tstate;

extern __thread tstate *t_ts __attribute__((tls_model("initial-exec")));
/* Guards the list of thread states (and is held across fork). */
extern spin_t g_threads_lock;

/* First call on a thread (or after it retired): find or make its state. */
tstate *ts_slow(void);
void threads_init(void);
/* Move a thread's running balance to the shared one (and note the peak). */
void push(tstate *t);
void acct_add_shared(tstate *t, uint64_t bytes);
void acct_sub_shared(tstate *t, uint64_t bytes);
/* Bytes until the next sampled stack, drawn for the current interval. */
int64_t next_gap(tstate *t);
/* Figures summed over threads: the calling thread's own are exact, other
 * threads' as of their last store. */
typedef struct thread_sums {
  int64_t cur;    /* balance since attach */
  int64_t curmax; /* what the peak may have reached that was not noted yet */
  uint64_t alloc_bytes, allocs, freed_bytes, frees;
} thread_sums;
/* Every thread (all), and the threads regions count (not excluded). */
void sum_threads(thread_sums *all, thread_sums *counted);
/* Which threads (kernel thread ids) regions leave out; replaces the set. */
int threads_exclude(const int64_t *tids, size_t n);
void threads_redraw_gaps(void);
void threads_restart_peaks(void);
uint64_t threads_tracker_bytes(void);

static inline tstate *get_ts(void) {
  tstate *t = t_ts;
  if (LIKELY(t != NULL)) return t;
  return ts_slow();
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

/* ------------------------------------------ live_table.c: live records */
/* Guards the live table, stacks, code registry, arena and peak snapshot. */
extern spin_t g_table_lock;

typedef struct rec {
  uintptr_t key;
  uint64_t size;
  uint32_t stack;
  uint32_t epoch;
  float weight;  /* 1/P(recorded): unbiased scale for sampled records */
  uint32_t kind; /* 0: a heap block */
} rec;

extern _Atomic uint64_t g_live_count;
/* Counting filter over recorded addresses: a zero byte means "no record",
 * which is all a free of an unrecorded block needs to know. */
extern _Atomic uint8_t g_filter[1u << FILTER_BITS];

static inline size_t hash_ptr(uintptr_t p) { return (size_t)((p >> 4) * 0x9E3779B97F4A7C15ull); }
/* Slot of a 64-bit key in a table of cap entries (a power of two, > 1):
 * the product's high bits mix every key bit (its low bits would depend on
 * the low key bits only). */
static inline size_t slot_of_key(uint64_t key, size_t cap) {
  return (size_t)((key * 0x9E3779B97F4A7C15ull) >> (64 - __builtin_ctzll(cap))) & (cap - 1);
}
static inline size_t slot_of(uintptr_t p, size_t cap) { return slot_of_key(p >> 4, cap); }
static inline size_t filter_slot(uintptr_t p) { return hash_ptr(p) >> (64 - FILTER_BITS); }

/* All table lock held. */
int live_insert(const rec *r);
int live_remove(uintptr_t key, rec *out);
void live_clear(void);
/* Aggregate live records of epochs lo..hi by (stack, epoch) into out.
 * Returns the number of groups, -1 if more than cap are needed (the needed
 * number is stored in *need), -2 if the tracker is out of memory. */
long aggregate_live(uint32_t lo, uint32_t hi, cyscope_mem_stack_stat *out, size_t cap,
                    size_t *need);
uint64_t live_tracker_bytes(void);
/* Recorded heap blocks plus counted mappings (no lock: a relaxed sum). */
uint64_t records_count(void);

/* ------------------------------------ mappings.c: counted mappings */
/* A counted anonymous mapping: the page range [lo, hi), with the stack and
 * epoch of the call that made it. */
typedef struct mapping {
  uintptr_t lo, hi;
  uint32_t stack, epoch;
} mapping;

extern _Atomic uint64_t g_map_count;
/* All table lock held. Remove whatever counted pages [lo, hi) covers
 * (splitting mappings it cuts) and return how many bytes that was; the
 * removed pieces go to saved[0..cap) when saved is not NULL. */
uint64_t maps_cut(uintptr_t lo, uintptr_t hi, mapping *saved, size_t cap, size_t *nsaved);
/* Add a mapping that overlaps no counted one (cut its range first). */
int maps_add(const mapping *m);
void maps_clear(void);
size_t maps_n(void);
const mapping *maps_at(size_t i);
uint64_t maps_tracker_bytes(void);
/* Could anything be counted in a mapping? (a relaxed read, no lock) */
static inline int maps_any(void) { return atomic_load_explicit(&g_map_count, RLX) != 0; }

/* ------------------------------ python_frames.c: the interpreter's stack */
/* Raw Python frames of the calling thread: (code object, byte offset). */
typedef struct pyraw {
  uintptr_t code;
  int addr;
} pyraw;

uintptr_t py_top_frame(void);
uintptr_t py_key(uintptr_t f);
int walk_python(uintptr_t f, pyraw *out, int max);
void py_lines(const pyraw *py, int n, int *lines);
uint32_t code_intern(uintptr_t code); /* table lock held */
int python_set_layout(const cyscope_py_layout *layout);
int code_info(uint64_t idx, const char **filename, const char **name, int32_t *firstlineno);
uint64_t codes_tracker_bytes(void); /* table lock held */

/* ------------------------------------------ stacks.c: interned stacks */
void stacks_init(void);
/* Capture and intern the calling stack. */
uint32_t capture_stack(uintptr_t pyf, int native, uintptr_t ra);
/* All table lock held. */
void stack_note_record(uint32_t id, uint64_t size, double weight, uint32_t epoch);
/* The change log (what regions allocated, by stack). */
void stack_log_epoch_started(uint32_t epoch);
void stack_log_trim(uint32_t epoch);
int stack_changes(uint32_t lo, uint32_t hi, cyscope_mem_stack_stat *out, size_t cap, size_t *n);
uint64_t stack_log_tracker_bytes(void);
size_t stack_count(void);
int stack_totals(cyscope_mem_stack_stat *out, size_t cap, size_t *n);
int stack_frames(uint32_t id, cyscope_mem_frame *out, size_t cap, size_t *n);
/* Where the frames of n stacks are (NULL, 0: no such stack). Interned stacks
 * never move and never change, so they can be read after the lock is let go. */
int stack_views(const uint32_t *ids, size_t n, const cyscope_mem_frame **frames, uint32_t *counts);
uint64_t stacks_tracker_bytes(void);

/* --------------------------------------------- peak.c: peak and snapshot */
void note_peak(int64_t candidate);
int64_t peak_get(void);
/* Start a new region: the peak and its snapshot restart at `current`. */
void peak_restart(int64_t current);
void peak_forget_snapshot(void); /* table lock held */
int peak_snapshot_copy(cyscope_mem_stack_stat *out, size_t cap, size_t *n,
                       int64_t *snapshot_current);
uint64_t peak_tracker_bytes(void); /* table lock held */

/* -------------------------------------------------- hooks.c: the hooks */
int hooks_patch_all(void);
uint64_t hooks_scan(void);
void hooks_init(void);
/* Called by the dlsym/dlvsym trampolines: the hook to hand out, or NULL. */
void *ct_dlsym_substitute(void *handle, const char *name);
void *ct_dlvsym_substitute(void *handle, const char *name, const char *version);
void check_inline_usable(void);

/* --------------------------- pyobjects.c: Python object allocator wrappers */
uint64_t pyobjects_tracker_bytes(void);

/* ------------------------------- lifecycle.c: attach state, init, fork */
extern _Atomic int g_attached;
extern pthread_mutex_t g_patch_lock;
extern int g_refs;
extern int g_initialised;
void init_once(void);

/* -------------------------------------- mem_api.c: configuration, epoch */
extern _Atomic int g_exact, g_native;
extern _Atomic uint64_t g_sample_bytes;
/* Threshold the hot path compares against: 0 in exact mode, so "record this
 * block?" is a single compare. */
extern _Atomic uint64_t g_record_from;
extern _Atomic uint32_t g_epoch;

#pragma GCC visibility pop

#endif
