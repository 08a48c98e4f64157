/*
 * cyscope native C ABI.
 *
 * Everything the Python package (loaded with ctypes, so the same library serves
 * every CPython 3.x interpreter) may call is declared here. Rules of this ABI:
 *   - every symbol is prefixed `cyscope_` and has C linkage;
 *   - functions return an int status: CYSCOPE_OK (0) or a negative CYSCOPE_E*;
 *   - structs passed out carry their own `size` field, set by the caller, so a
 *     newer library can serve an older caller (fields are only ever appended);
 *   - CYSCOPE_ABI_VERSION changes only when an existing signature changes.
 */
#ifndef CYSCOPE_H
#define CYSCOPE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CYSCOPE_ABI_VERSION 1

#define CYSCOPE_OK 0
#define CYSCOPE_EINVAL (-1) /* a bad argument (NULL, size too small) */
#define CYSCOPE_ESTATE (-2) /* not allowed in the current state */
#define CYSCOPE_EOS (-3)    /* the operating system refused */
#define CYSCOPE_ENOMEM (-4) /* the tracker's own arena is exhausted */

#if defined(__GNUC__)
#define CYSCOPE_API __attribute__((visibility("default")))
#else
#define CYSCOPE_API
#endif

/* The ABI version this library implements (CYSCOPE_ABI_VERSION). */
CYSCOPE_API int cyscope_abi_version(void);

/* Library version, e.g. "0.1.0". Static storage; never free it. */
CYSCOPE_API const char *cyscope_version(void);

/* Resident set size of this process, in bytes, read from /proc. */
CYSCOPE_API int cyscope_read_rss(uint64_t *rss_bytes);

/* ------------------------------------------------------------------------
 * Allocation tracking. The library patches the GOT/PLT slots of
 * every loaded object so malloc & co. go through its hooks; nothing is
 * preloaded. Byte unit: a block counts with its requested size when the
 * tracker keeps a record of it (sampled, >= record_threshold, exact mode,
 * anonymous mmap), otherwise with malloc_usable_size(); free() removes the
 * same number that was added. Totals count every thread.
 * ------------------------------------------------------------------------ */

typedef struct cyscope_mem_config {
  size_t size;                /* sizeof(cyscope_mem_config), set by the caller */
  int exact;                  /* 1: record the stack of every allocation */
  int native;                 /* 1: capture full native stacks (unwinding) */
  uint64_t sample_bytes;      /* mean bytes between sampled stacks (0 = default 512 KiB) */
  uint64_t record_threshold;  /* blocks >= this are always recorded (0 = default 128 KiB) */
  uint64_t stack_arena_limit; /* most bytes kept for stacks and names (0 = default 256 MiB) */
} cyscope_mem_config;

typedef struct cyscope_mem_totals {
  size_t size;              /* sizeof(cyscope_mem_totals), set by the caller */
  int64_t current_bytes;    /* bytes allocated minus bytes freed since the first attach */
  int64_t peak_bytes;       /* highest current_bytes since the last reset_peak */
  uint64_t allocated_bytes; /* cumulative */
  uint64_t allocations;     /* cumulative count */
  uint64_t freed_bytes;     /* cumulative, includes frees of blocks older than the attach */
  uint64_t frees;           /* cumulative count (free(NULL) not counted) */
  uint64_t live_records;    /* recorded blocks (with a stack) still live */
  uint64_t stacks;          /* distinct stacks interned */
  uint64_t tracker_bytes;   /* memory the tracker holds for itself (mmap'd) */
  uint64_t patched_slots;   /* GOT slots we patched that still hold a hook */
  uint32_t epoch;           /* current epoch (see cyscope_mem_next_epoch) */
  int32_t attached;         /* 1 while the hooks are installed */
  uint64_t stacks_refused;  /* stacks not interned: the stack arena is at its limit */
} cyscope_mem_totals;

/* Frame kinds in a recorded stack. */
#define CYSCOPE_FRAME_NATIVE 0 /* id = instruction address (return address) */
#define CYSCOPE_FRAME_PYTHON 1 /* id = code index (cyscope_mem_code_info), line set */

typedef struct cyscope_mem_frame {
  uint64_t id;
  int32_t line;
  int32_t kind;
} cyscope_mem_frame;

typedef struct cyscope_mem_stack_stat {
  uint32_t stack_id;
  uint32_t epoch;
  double bytes;         /* unbiased estimate (exact for always-recorded blocks) */
  double count;         /* unbiased estimate of the number of blocks */
  uint64_t exact_bytes; /* bytes of the records themselves (no scaling) */
  uint64_t records;     /* number of records aggregated */
} cyscope_mem_stack_stat;

/* CPython internal layout, supplied by the Python side for the running
 * interpreter (offsets in bytes, from its headers or its _Py_DebugOffsets);
 * lets hooks read Python frames without calling into the interpreter (which
 * could allocate). -1 marks what a version does not have. */
typedef struct cyscope_py_layout {
  size_t size;
  int32_t ts_cframe, cframe_current_frame; /* 3.11, 3.12: tstate->cframe->current_frame */
  /* frame_prev_instr: the frame's instruction pointer (prev_instr, 3.13: instr_ptr) */
  int32_t frame_code, frame_previous, frame_prev_instr, frame_owner, owner_generator;
  int32_t code_filename, code_name, code_firstlineno, code_firsttraceable, code_adaptive;
  int32_t unicode_state, unicode_ascii_data, unicode_utf8;
  int32_t ts_frame;     /* 3.13: tstate->current_frame */
  int32_t owner_cstack; /* frames owned by the C stack (entry shims), skipped */
  int32_t object_type;  /* PyObject.ob_type: a frame's code is checked to be a code object */
  int32_t unicode_length;
} cyscope_py_layout;

/* Install the hooks (first call) or change the mode. Reference counted:
 * every attach needs a detach; the last detach restores every GOT slot. */
CYSCOPE_API int cyscope_mem_attach(const cyscope_mem_config *config);
CYSCOPE_API int cyscope_mem_detach(void);
/* Change mode without attaching (exact/native/sampling). */
CYSCOPE_API int cyscope_mem_configure(const cyscope_mem_config *config);
CYSCOPE_API int cyscope_mem_get_config(cyscope_mem_config *config);
CYSCOPE_API int cyscope_mem_totals_get(cyscope_mem_totals *out);
/* The figures regions use: the same as cyscope_mem_totals_get, from the
 * threads regions count (not those excluded with cyscope_mem_exclude_threads). */
CYSCOPE_API int cyscope_mem_region_totals_get(cyscope_mem_totals *out);
/* Leave these threads (kernel thread ids, gettid) out of region figures and
 * of the peak: the kernel's own machinery (message, history, sampler
 * threads). They stay in cyscope_mem_totals_get. Replaces the set (at most 64). */
CYSCOPE_API int cyscope_mem_exclude_threads(const int64_t *tids, size_t n);
/* Peak := current; returns the peak before the reset. Clears the peak snapshot. */
CYSCOPE_API int cyscope_mem_reset_peak(int64_t *previous_peak);
/* Start a new epoch; records carry the epoch they were allocated in. */
CYSCOPE_API int cyscope_mem_next_epoch(uint32_t *epoch);
/* +1 pauses accounting on the calling thread, -1 resumes (nests). */
CYSCOPE_API int cyscope_mem_thread_pause(int delta);
CYSCOPE_API int cyscope_mem_set_python_layout(const cyscope_py_layout *layout);
/* Live records grouped by (stack, epoch), epochs in [epoch_lo, epoch_hi].
 * Returns CYSCOPE_ENOMEM with *n = needed when cap is too small. */
CYSCOPE_API int cyscope_mem_live_by_stack(uint32_t epoch_lo, uint32_t epoch_hi,
                                          cyscope_mem_stack_stat *out, size_t cap, size_t *n);
/* Records live at the last peak snapshot, grouped by (stack, epoch). */
CYSCOPE_API int cyscope_mem_peak_by_stack(cyscope_mem_stack_stat *out, size_t cap, size_t *n,
                                          int64_t *snapshot_current);
/* Cumulative recorded allocations per stack (epoch field = 0). */
CYSCOPE_API int cyscope_mem_stack_totals(cyscope_mem_stack_stat *out, size_t cap, size_t *n);
/* Recorded allocations per stack made in epochs [lo, hi] (epoch field = 0),
 * at a cost that follows what those epochs recorded, not how many stacks
 * exist. Answers need the change log from lo on: see stack_log_trim.
 * Returns CYSCOPE_ENOMEM with *n = needed when cap is too small. */
CYSCOPE_API int cyscope_mem_stack_changes(uint32_t lo, uint32_t hi, cyscope_mem_stack_stat *out,
                                          size_t cap, size_t *n);
/* Forget the change log before `epoch` (no region older than it is open). */
CYSCOPE_API int cyscope_mem_stack_log_trim(uint32_t epoch);
CYSCOPE_API int cyscope_mem_stack_frames(uint32_t stack_id, cyscope_mem_frame *out, size_t cap,
                                         size_t *n);
/* Shown stacks in bulk (what a flamegraph draws): Python notes what each raw
 * frame is once; then many stacks become keys of frame numbers in one call.
 * A native frame's note is looked up with line = 1 in native mode, 0 else
 * (the modes name native frames differently). */
typedef struct cyscope_mem_frame_note {
  cyscope_mem_frame frame; /* the raw frame (see above for a native frame's line) */
  uint32_t number;         /* the shown frame's number, written into keys */
  uint32_t flags;          /* CYSCOPE_NOTE_* */
  uint32_t lib;            /* CYSCOPE_NOTE_LIBRARY frames: which library */
  uint32_t reserved;
} cyscope_mem_frame_note;
#define CYSCOPE_NOTE_HIDDEN 1u    /* a native frame the report does not show */
#define CYSCOPE_NOTE_EVAL_LOOP 2u /* native mode: the interpreter's loop; frames outside it go */
#define CYSCOPE_NOTE_CELL_CODE 4u /* a cell's own top-level code */
#define CYSCOPE_NOTE_IN_CELL 8u   /* code defined in a cell */
#define CYSCOPE_NOTE_HOST 16u     /* the kernel's code that runs cells (ipykernel, asyncio...) */
#define CYSCOPE_NOTE_IMPORT 32u   /* import machinery, never shown when trimmed */
#define CYSCOPE_NOTE_LIBRARY 64u  /* a native frame whose runs of one library collapse */
/* Options of cyscope_mem_shown_keys. */
#define CYSCOPE_KEYS_COLLAPSE 1u /* stacks with a run to collapse are left to the caller */
#define CYSCOPE_KEYS_TRIM 2u     /* start at the cell */
#define CYSCOPE_KEYS_NATIVE 4u   /* a report with native stacks */
#define CYSCOPE_KEYS_INVERTED 8u /* innermost frame first */
CYSCOPE_API int cyscope_mem_note_frames(const cyscope_mem_frame_note *notes, size_t n);
CYSCOPE_API int cyscope_mem_forget_frame_notes(void);
/* Stack i's key is keys[ends[i-1] .. ends[i]) (big-endian 32-bit frame
 * numbers, outermost first), unless fallback[i]: a stack this call could not
 * write (stack 0, a frame without a note, a run to collapse). Frames without
 * a note are listed in `unknown` (each once per call; *n_unknown > cap: more
 * are left, call again after noting these). CYSCOPE_ENOMEM: keys_cap is
 * short of *used bytes. */
CYSCOPE_API int cyscope_mem_shown_keys(const uint32_t *ids, size_t n, uint32_t options,
                                       uint8_t *keys, size_t keys_cap, uint32_t *ends,
                                       uint8_t *fallback, cyscope_mem_frame *unknown,
                                       size_t unknown_cap, size_t *n_unknown, size_t *used);
/* Sort n keys (key i is data[starts[i] .. ends[i]), bytes order) and group
 * equal ones: firsts[g] is the first key of group g in that order, and
 * sums[c * (n + 1) + g] the total of column c (columns[c * n + i] for key i)
 * over the groups before g, g = 0 .. *ngroups. order and scratch hold n
 * entries each (order: the keys in sorted order); keys lie in data's
 * data_len bytes. Needs no tracker. */
CYSCOPE_API int cyscope_keys_group(const uint8_t *data, size_t data_len, const uint32_t *starts,
                                   const uint32_t *ends, size_t n, const double *columns,
                                   size_t ncolumns, uint32_t *order, uint32_t *scratch,
                                   uint32_t *firsts, double *sums, size_t *ngroups);
/* The flamegraph's nested set (the payload's node columns) from sorted,
 * distinct keys (key g: data[starts[firsts[g]] .. ends[firsts[g]]), as
 * cyscope_keys_group leaves them) and running sums over them (value, count,
 * base or NULL; width: what orders siblings and meets the threshold). Nodes
 * in depth-first order, widest sibling first, a parent's children under
 * `threshold` merged into one "other" node (frame -2 - how many). frame -1:
 * the root. *n_nodes = 0 with CYSCOPE_OK: more than max_nodes nodes (raise
 * the threshold). Output columns hold `cap` entries; CYSCOPE_ENOMEM if too
 * few. Needs no tracker; flamegraph/payload.py is the reference. */
CYSCOPE_API int cyscope_flame_tree(const uint8_t *data, size_t data_len, const uint32_t *starts,
                                   const uint32_t *ends, const uint32_t *firsts, size_t nkeys,
                                   const double *value, const double *count, const double *base,
                                   const double *width, double threshold, size_t max_nodes,
                                   size_t cap, int32_t *level, int32_t *frame, int64_t *out_value,
                                   int64_t *out_self, int64_t *out_count, int64_t *out_base,
                                   size_t *n_nodes);
/* Walk every loaded object's relocations and count slots holding a hook
 * (independent of the tracker's own bookkeeping; costs ~0.3 ms). */
CYSCOPE_API int cyscope_mem_scan_patched(uint64_t *n);
/* Strings are owned by the tracker and live as long as the process. */
CYSCOPE_API int cyscope_mem_code_info(uint64_t code_index, const char **filename, const char **name,
                                      int32_t *firstlineno);

/* ------------------------------------------------------------------------
 * Crash catcher. While installed, a fatal signal (SIGSEGV, SIGBUS, SIGFPE,
 * SIGILL, SIGABRT) runs a handler on an alternate stack: it writes an
 * in-process report (async-signal-safe), lets a tracer (gdb in batch mode,
 * argv prepared by the caller) attach and write the full report, waits for
 * it with a time limit, then calls the handler installed before (if any)
 * and dies of the signal with the default action (core dumps still happen).
 * Everything the handler uses is prepared here, in advance; the handler
 * allocates nothing and does not run fork handlers. Reports are JSON files
 * `crash-<id>.json` in report_dir (protocol/crash.schema.json).
 * ------------------------------------------------------------------------ */

typedef struct cyscope_crash_config {
  size_t size;                    /* sizeof(cyscope_crash_config), set by the caller */
  const char *report_dir;         /* private folder of this kernel's reports (absolute) */
  const char *pending_path;       /* the in-process report while the tracer runs */
  const char *tracer_log_path;    /* the tracer's stdout and stderr */
  const char *const *tracer_argv; /* NULL-terminated, argv[0] absolute; NULL: no tracer */
  const char *const *tracer_envp; /* NULL-terminated environment of the tracer */
  uint32_t tracer_timeout_ms;     /* how long to wait for the tracer (0 = 4000) */
  const char *report_json;        /* `"key":value` members added to every report, or NULL */
  const char *no_tracer_message;  /* why there is no tracer (tracer_argv NULL) */
  const char *refused_message;    /* the tracer was not allowed to attach */
  const char *failed_message;     /* the tracer ran but wrote no report */
  const char *timeout_message;    /* the tracer did not finish in time */
} cyscope_crash_config;

/* CPython internals the handler reads to list the crashing thread's Python
 * frames (offsets in bytes, for the running interpreter). */
typedef struct cyscope_crash_py_layout {
  size_t size;
  int32_t ts_cframe, cframe_current_frame, ts_recursion_remaining;
  int32_t frame_code, frame_previous, frame_prev_instr, frame_is_entry, frame_owner;
  int32_t owner_generator;
  int32_t code_filename, code_name, code_firsttraceable, code_adaptive;
  int32_t unicode_state, unicode_ascii_data, unicode_utf8;
} cyscope_crash_py_layout;

#define CYSCOPE_CRASH_CELL_PYTHON 0 /* path: the file IPython compiled a cell to */
#define CYSCOPE_CRASH_CELL_CYTHON 1 /* path: the extension module a %%cython cell built */

/* Install the handlers, or update the configuration of installed ones. */
CYSCOPE_API int cyscope_crash_install(const cyscope_crash_config *config);
/* Put back the handlers found at install (where ours is still installed). */
CYSCOPE_API int cyscope_crash_uninstall(void);
/* Where another handler replaced ours since (SageMath's kernel installs
 * cysignals' again before every request), install ours in front of it
 * again (theirs then runs after ours), and put back our alternate stack on
 * the calling thread. *reclaimed (may be NULL): how many signals were retaken. */
CYSCOPE_API int cyscope_crash_reclaim(int *reclaimed);
/* NULL: no Python frames in in-process reports. */
CYSCOPE_API int cyscope_crash_set_python_layout(const cyscope_crash_py_layout *layout);
/* The last cell that ran (count < 0: none), and whether it is still running. */
CYSCOPE_API int cyscope_crash_set_cell(int64_t execution_count, const char *cell_id, int running);
/* Which cell some code came from (the last CR_MAX_CELLS notes are kept). */
CYSCOPE_API int cyscope_crash_note_cell_code(int kind, const char *path, int64_t execution_count,
                                             const char *cell_id);
/* While *counter > 0, a handler installed before ours recovers from the
 * signal itself (cysignals' sig_on): only chain to it. NULL: never. */
CYSCOPE_API int cyscope_crash_defer_while(const volatile int *counter);
/* A Python callable guard(f, *args, **kwargs): calls f; a fatal signal on
 * this thread inside f (with no Python frame pushed since) raises
 * exception_type(signal number, report path) instead of killing the process.
 * Returns a new reference in *function (PyObject *). */
CYSCOPE_API int cyscope_crash_make_guard(void *exception_type, void **function);

/* ------------------------------------------------------------------------
 * Python objects at object granularity. The tracker wraps the interpreter's
 * MEM and OBJ allocator domains (and its arena allocator), so every object
 * allocation and free counts at its size: the requested size when recorded,
 * else pymalloc's size class, read from the block's pool header (no map from
 * pointers to sizes). Blocks pymalloc hands to malloc count once, in the
 * malloc hooks; pymalloc's arenas are no longer counted as mappings.
 * ------------------------------------------------------------------------ */
typedef struct cyscope_pymalloc_layout {
  size_t size;          /* sizeof(cyscope_pymalloc_layout), set by the caller */
  int32_t pool_bits;    /* log2 of pymalloc's pool size (14: 16 KiB) */
  int32_t szidx_offset; /* offset of pool_header.szidx (uint32) */
  int32_t align_shift;  /* size class i holds blocks of (i + 1) << align_shift bytes */
  int32_t small_max;    /* largest request pymalloc serves from pools (512) */
} cyscope_pymalloc_layout;

/* Install (layout) or remove (NULL) the object allocator wrappers. The
 * caller must hold the GIL (call it through ctypes.PyDLL). Removing leaves
 * the wrappers in place, counting nothing while detached, when someone else
 * has wrapped them since (e.g. tracemalloc started later): ESTATE then. */
CYSCOPE_API int cyscope_mem_python_objects(const cyscope_pymalloc_layout *layout);

#ifdef __cplusplus
}
#endif

#endif /* CYSCOPE_H */
