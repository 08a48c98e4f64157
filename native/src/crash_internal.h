/* Internal interfaces of the crash catcher (crash_*.c); all hidden.
 *
 * Everything here runs, or prepares what runs, inside a fatal-signal
 * handler: only async-signal-safe calls (raw syscalls, no malloc, no stdio,
 * no locks), fixed static buffers filled in advance or on the spot. */
#ifndef CYSCOPE_CRASH_INTERNAL_H
#define CYSCOPE_CRASH_INTERNAL_H

#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "cyscope.h"

#pragma GCC visibility push(hidden)

#define CR_MAX_NATIVE 96  /* native frames captured in-process */
#define CR_MAX_PYTHON 128 /* Python frames of the crashing thread */
#define CR_MAX_CELLS 256  /* cell code noted by the kernel side (ring) */
#define CR_PATH 1024      /* longest path kept */
#define CR_ID 80          /* longest cell id kept */

/* ------------------------------------------------------------ the config */
/* Strings copied at install into one private mapping, so the handler never
 * reads memory the Python side may have freed. */
typedef struct cr_config {
  int armed;
  int pid; /* the process the argv names; a forked child only chains */
  const char *report_dir, *pending_path, *tracer_log_path;
  char *const *tracer_argv; /* NULL: no tracer */
  char *const *tracer_envp;
  uint32_t tracer_timeout_ms;
  const char *report_json;
  const char *no_tracer_message, *refused_message, *failed_message, *timeout_message;
  uintptr_t eval_lo, eval_hi; /* _PyEval_EvalFrameDefault's code */
  const char *python_module;  /* the object that holds it */
} cr_config;
extern cr_config g_cr;

/* The kernel side's facts about cells. Written with the GIL held (one
 * writer at a time), read by the handler without locking: an entry being
 * rewritten has an odd sequence number and is skipped. */
typedef struct cr_cell_code {
  atomic_uint seq;
  int kind; /* CYSCOPE_CRASH_CELL_PYTHON or CYSCOPE_CRASH_CELL_CYTHON */
  int64_t count;
  char path[CR_PATH];
  char cell_id[CR_ID];
} cr_cell_code;
extern cr_cell_code g_cr_cells[CR_MAX_CELLS];
extern atomic_uint g_cr_ncells; /* total ever noted; the ring keeps the last CR_MAX_CELLS */

typedef struct cr_running {
  atomic_uint seq;
  int64_t count; /* < 0: none yet */
  int running;
  char cell_id[CR_ID];
} cr_running;
extern cr_running g_cr_running;

extern cyscope_crash_py_layout g_cr_py;
extern _Atomic int g_cr_py_enabled;

/* ------------------------------------------------- async-signal-safe text */
typedef struct jbuf {
  char *p;
  size_t len, cap;
  int truncated;
} jbuf;
void jb_raw(jbuf *b, const char *s);
void jb_close(jbuf *b, const char *s); /* written even into the reserve */
/* 1 when n more bytes fit outside the reserve; else marks b truncated. */
int jb_room(jbuf *b, size_t n);
void jb_rawn(jbuf *b, const char *s, size_t n);
void jb_str(jbuf *b, const char *s); /* quoted, escaped; NULL -> null */
void jb_strn(jbuf *b, const char *s, size_t n);
void jb_int(jbuf *b, int64_t v);
void jb_hex(jbuf *b, uint64_t v);    /* "0x..." quoted */
void jb_key(jbuf *b, const char *k); /* ,"k": (comma unless just after { or [) */
size_t cr_strlen(const char *s);
int cr_streq(const char *a, const char *b);
void cr_copy(char *dst, size_t cap, const char *src);
/* UTC "YYYY-MM-DDTHH:MM:SS.mmmZ" from Unix milliseconds (24 bytes + NUL). */
void cr_format_time(int64_t unix_ms, char out[32]);
/* Unsigned decimal into out (>= 21 bytes); returns the length. */
size_t cr_utoa(uint64_t v, char *out);

/* ------------------------------------------------------ raw system access */
int cr_gettid(void);
int cr_getpid(void);
/* Copy n bytes from addr, or return -1 when any of them is unreadable. */
int cr_read_mem(uintptr_t addr, void *out, size_t n);
/* The pipe cr_read_mem falls back on where process_vm_readv is refused. */
void cr_probe_pipe_init(void);
/* A file's first bytes into buf (NUL-terminated); returns the length or -1. */
long cr_read_file(const char *path, char *buf, size_t cap);
int cr_write_file_atomic(const char *tmp, const char *final, const char *data, size_t n);

/* -------------------------------------------------------------- capture */
typedef struct cr_native {
  uintptr_t pc;
  int exact; /* 1: the faulting instruction; 0: a return address */
} cr_native;
typedef struct cr_pyframe {
  char filename[CR_PATH];
  char name[256];
  int line;
  int entry; /* the first frame a C call into the interpreter ran */
} cr_pyframe;
typedef struct cr_capture {
  int sig, code, tid, main_thread, sender_pid;
  uintptr_t addr, pc;
  int has_addr;
  int64_t unix_ms;
  char thread_name[32];
  cr_native native[CR_MAX_NATIVE];
  int nnative;
  cr_pyframe py[CR_MAX_PYTHON];
  int npy;
  int py_failed; /* reading the Python frames faulted */
} cr_capture;

/* Fill everything but the frames (cheap, cannot fault). */
void cr_capture_basics(cr_capture *c, int sig, const siginfo_t *info, const void *uctx);
/* The faulting thread's native frames (the unwinder) and Python frames
 * (interpreter memory); either may fault, the caller guards them. */
void cr_capture_native(cr_capture *c);
void cr_capture_python(cr_capture *c);

/* The in-process report: everything except the closing tracer members,
 * which the handler appends (cr_report_finish) once it knows the outcome. */
void cr_report_body(jbuf *b, const cr_capture *c, const char *id, int caught);
void cr_report_finish(jbuf *b, const char *status, const char *message, const char *detail);

/* ---------------------------------------------------------------- tracer */
typedef enum { CR_TRACE_OK, CR_TRACE_FAILED, CR_TRACE_REFUSED, CR_TRACE_TIMEOUT } cr_trace_result;
/* Run the tracer, wait for it (deadline), and say whether it wrote
 * `final_path`; on failure, `detail` gets the tracer's first error line. */
cr_trace_result cr_run_tracer(const char *final_path, char *detail, size_t detail_cap);

/* -------------------------------------------------- --catch-crashes guard */
/* The innermost guarded call of this thread, or NULL; set by crash_guard.c. */
typedef struct cr_catch cr_catch;
cr_catch *cr_catch_current(void);
/* 1 when a crash on this thread may jump back to the guard (no Python frame
 * was pushed since it was entered). */
int cr_catch_eligible(cr_catch *k);
/* Jump back to the guard with this signal and report path (never returns). */
__attribute__((noreturn)) void cr_catch_jump(cr_catch *k, int sig, const char *report_path);

#pragma GCC visibility pop

#endif /* CYSCOPE_CRASH_INTERNAL_H */
