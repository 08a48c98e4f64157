/* The crash catcher's handler and its installation.
 *
 * On a fatal signal: one thread at a time takes the handler (others wait;
 * the process is about to die); the in-process report is written to the
 * pending file; the tracer attaches, reads it and writes the full report;
 * if it did not, the in-process report becomes the report, with a message
 * saying why. Then either a --catch-crashes guard on this thread takes the
 * jump back, or the previous handler runs (faulthandler, cysignals), and
 * the process dies of the signal with the default action.
 *
 * A fault inside the handler itself (reading a corrupt interpreter, the
 * unwinder) jumps back to the phase that faulted, which is skipped. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <setjmp.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <unwind.h>

#include "crash_internal.h"

cr_config g_cr;
cr_cell_code g_cr_cells[CR_MAX_CELLS];
atomic_uint g_cr_ncells;
cr_running g_cr_running = {.count = -1};
cyscope_crash_py_layout g_cr_py;
_Atomic int g_cr_py_enabled;

static const int k_signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
#define NSIGNALS (int)(sizeof k_signals / sizeof *k_signals)

static struct sigaction g_prev[NSIGNALS];
static int g_installed;
static const volatile int *g_defer_counter;

/* The thread handling a crash (0: none), and where a fault inside the
 * handler goes back to. */
static atomic_int g_owner;
static sigjmp_buf g_recover;
static volatile sig_atomic_t g_recover_armed;

static cr_capture g_capture;
static char g_report[1 << 20];
static char g_id[64], g_final[CR_PATH + 96], g_tmp[CR_PATH + 96];
static char g_detail[1024];

/* ---------------------------------------------------------------- config */
static char *g_arena;
static size_t g_arena_cap;

static size_t strings_size(const char *const *v) {
  size_t n = 0;
  for (; v && *v; v++) n += strlen(*v) + 1 + sizeof(char *);
  return n + sizeof(char *);
}

static char *put_string(char **cur, const char *s) {
  if (!s) return NULL;
  size_t n = strlen(s) + 1;
  char *d = *cur;
  memcpy(d, s, n);
  *cur += n;
  return d;
}

static char *const *put_vector(char **cur, const char *const *v) {
  if (!v) return NULL;
  size_t n = 0;
  while (v[n]) n++;
  uintptr_t aligned = ((uintptr_t)*cur + 7) & ~(uintptr_t)7;
  char **out = (char **)aligned;
  *cur = (char *)(out + n + 1);
  for (size_t i = 0; i < n; i++) out[i] = put_string(cur, v[i]);
  out[n] = NULL;
  return out;
}

#define MAX_REPORT_JSON (16 * 1024)

static int copy_config(const cyscope_crash_config *c) {
  const char *const singles[] = {c->report_dir,     c->pending_path,      c->tracer_log_path,
                                 c->report_json,    c->no_tracer_message, c->refused_message,
                                 c->failed_message, c->timeout_message};
  size_t need = 64 + strings_size(c->tracer_argv) + strings_size(c->tracer_envp);
  for (size_t i = 0; i < sizeof singles / sizeof *singles; i++)
    need += singles[i] ? strlen(singles[i]) + 1 : 0;
  size_t cap = (need + 4095) & ~(size_t)4095;
  char *arena = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (arena == MAP_FAILED) return CYSCOPE_ENOMEM;
  char *cur = arena;
  cr_config next = g_cr;
  next.report_dir = put_string(&cur, c->report_dir);
  next.pending_path = put_string(&cur, c->pending_path);
  next.tracer_log_path = put_string(&cur, c->tracer_log_path);
  next.report_json = put_string(&cur, c->report_json);
  next.no_tracer_message = put_string(&cur, c->no_tracer_message);
  next.refused_message = put_string(&cur, c->refused_message);
  next.failed_message = put_string(&cur, c->failed_message);
  next.timeout_message = put_string(&cur, c->timeout_message);
  next.tracer_argv = c->tracer_argv && c->tracer_argv[0] ? put_vector(&cur, c->tracer_argv) : NULL;
  next.tracer_envp = put_vector(&cur, c->tracer_envp);
  next.tracer_timeout_ms = c->tracer_timeout_ms;
  next.pid = getpid();
  /* The old strings stay mapped: a handler running right now may read them.
   * Reconfiguring is rare (a few times per kernel). */
  next.armed = 0;
  atomic_thread_fence(memory_order_seq_cst);
  g_cr.armed = 0;
  atomic_thread_fence(memory_order_seq_cst);
  g_cr = next;
  atomic_thread_fence(memory_order_seq_cst);
  g_cr.armed = 1;
  g_arena = arena;
  g_arena_cap = cap;
  return CYSCOPE_OK;
}

/* Where the interpreter's frame loop lives: Python frames are slotted in
 * at its native frames. */
static void find_eval_loop(void) {
  void *sym = dlsym(RTLD_DEFAULT, "_PyEval_EvalFrameDefault");
  Dl_info info;
  const ElfW(Sym) *entry = NULL;
  if (!sym || !dladdr1(sym, &info, (void **)&entry, RTLD_DL_SYMENT) || !entry) return;
  g_cr.eval_lo = (uintptr_t)sym;
  g_cr.eval_hi = (uintptr_t)sym + (entry->st_size ? entry->st_size : 1);
  static char module[CR_PATH];
  cr_copy(module, sizeof module, info.dli_fname);
  g_cr.python_module = module[0] ? module : NULL;
}

/* A stack for the handler, so a stack overflow can still be reported. One
 * mapping, made once: a library that sets its own small alternate stack
 * again and again (cysignals, before every request of Sage's kernel) gets
 * ours put back by cyscope_crash_reclaim, never a new one. A large enough
 * stack found at install (not ours) is kept. */
#define ALT_STACK (128 * 1024)
static char *g_alt;

static void ensure_alt_stack(void) {
  stack_t cur;
  if (sigaltstack(NULL, &cur) != 0 || (cur.ss_flags & SS_ONSTACK)) return;
  if (!(cur.ss_flags & SS_DISABLE) && (cur.ss_sp == g_alt || (!g_alt && cur.ss_size >= ALT_STACK)))
    return;
  if (!g_alt) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    char *mem =
        mmap(NULL, ALT_STACK + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) return;
    mprotect(mem, page, PROT_NONE); /* guard page below the stack */
    g_alt = mem + page;
  }
  stack_t ss = {.ss_sp = g_alt, .ss_size = ALT_STACK, .ss_flags = 0};
  sigaltstack(&ss, NULL);
}

static _Unwind_Reason_Code prime_cb(struct _Unwind_Context *c, void *arg) {
  (void)c;
  return ++*(int *)arg > 2 ? _URC_END_OF_STACK : _URC_NO_REASON;
}

static void on_fatal(int sig, siginfo_t *info, void *uctx);

static struct sigaction our_action(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_fatal;
  /* NODEFER: a fault inside the handler must reach it again (to recover),
   * not kill the process as a blocked synchronous signal would. */
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
  sigemptyset(&sa.sa_mask);
  const int quiet[] = {SIGINT,  SIGTERM, SIGHUP,  SIGQUIT, SIGALRM,
                       SIGCHLD, SIGUSR1, SIGUSR2, SIGPIPE};
  for (size_t i = 0; i < sizeof quiet / sizeof *quiet; i++) sigaddset(&sa.sa_mask, quiet[i]);
  return sa;
}

static int is_ours(const struct sigaction *sa) {
  return (sa->sa_flags & SA_SIGINFO) && sa->sa_sigaction == on_fatal;
}

CYSCOPE_API int cyscope_crash_install(const cyscope_crash_config *config) {
  if (!config || config->size < sizeof(cyscope_crash_config) || !config->report_dir ||
      !config->pending_path || !config->tracer_log_path || config->report_dir[0] != '/')
    return CYSCOPE_EINVAL;
  if (config->report_json && strlen(config->report_json) > MAX_REPORT_JSON) return CYSCOPE_EINVAL;
  if (strlen(config->report_dir) >= CR_PATH || strlen(config->pending_path) >= CR_PATH)
    return CYSCOPE_EINVAL;
  int rc = copy_config(config);
  if (rc != CYSCOPE_OK) return rc;
  if (g_installed) return CYSCOPE_OK;

  /* Everything the handler would otherwise do for the first time: */
  find_eval_loop();
  int depth = 0;
  _Unwind_Backtrace(prime_cb, &depth); /* libgcc's unwinder initialised */
  cr_probe_pipe_init();
  ensure_alt_stack();

  struct sigaction sa = our_action();
  for (int i = 0; i < NSIGNALS; i++) {
    if (sigaction(k_signals[i], &sa, &g_prev[i]) != 0) {
      for (int j = 0; j < i; j++) sigaction(k_signals[j], &g_prev[j], NULL);
      return CYSCOPE_EOS;
    }
  }
  g_installed = 1;
  return CYSCOPE_OK;
}

CYSCOPE_API int cyscope_crash_uninstall(void) {
  if (!g_installed) return CYSCOPE_OK;
  g_cr.armed = 0;
  for (int i = 0; i < NSIGNALS; i++) {
    struct sigaction cur;
    /* Someone installed theirs over ours since: leave it (theirs chains,
     * or not, to what it found). */
    if (sigaction(k_signals[i], NULL, &cur) == 0 && is_ours(&cur))
      sigaction(k_signals[i], &g_prev[i], NULL);
  }
  g_installed = 0;
  return CYSCOPE_OK;
}

CYSCOPE_API int cyscope_crash_reclaim(int *reclaimed) {
  int n = 0;
  if (g_installed) {
    struct sigaction sa = our_action(), cur;
    for (int i = 0; i < NSIGNALS; i++) {
      if (sigaction(k_signals[i], NULL, &cur) != 0 || is_ours(&cur)) continue;
      /* Theirs runs after ours, as the handler found at install would. */
      if (sigaction(k_signals[i], &sa, &g_prev[i]) == 0) n++;
    }
    ensure_alt_stack();
  }
  if (reclaimed) *reclaimed = n;
  return CYSCOPE_OK;
}

CYSCOPE_API int cyscope_crash_set_python_layout(const cyscope_crash_py_layout *layout) {
  if (!layout) {
    atomic_store(&g_cr_py_enabled, 0);
    return CYSCOPE_OK;
  }
  if (layout->size < sizeof(cyscope_crash_py_layout)) return CYSCOPE_EINVAL;
  atomic_store(&g_cr_py_enabled, 0);
  g_cr_py = *layout;
  atomic_store(&g_cr_py_enabled, 1);
  return CYSCOPE_OK;
}

CYSCOPE_API int cyscope_crash_set_cell(int64_t execution_count, const char *cell_id, int running) {
  atomic_fetch_add(&g_cr_running.seq, 1); /* odd: being written */
  g_cr_running.count = execution_count;
  g_cr_running.running = running != 0;
  cr_copy(g_cr_running.cell_id, sizeof g_cr_running.cell_id, cell_id);
  atomic_fetch_add(&g_cr_running.seq, 1);
  return CYSCOPE_OK;
}

CYSCOPE_API int cyscope_crash_note_cell_code(int kind, const char *path, int64_t execution_count,
                                             const char *cell_id) {
  if (!path || (kind != CYSCOPE_CRASH_CELL_PYTHON && kind != CYSCOPE_CRASH_CELL_CYTHON))
    return CYSCOPE_EINVAL;
  if (strlen(path) >= CR_PATH) return CYSCOPE_EINVAL;
  unsigned total = atomic_load(&g_cr_ncells);
  /* The same code noted again (a cell re-run) updates its entry. */
  unsigned n = total < CR_MAX_CELLS ? total : CR_MAX_CELLS;
  cr_cell_code *e = NULL;
  for (unsigned k = 0; k < n && !e; k++) {
    cr_cell_code *x = &g_cr_cells[(total - 1 - k) % CR_MAX_CELLS];
    if (x->kind == kind && strcmp(x->path, path) == 0) e = x;
  }
  int fresh = e == NULL;
  if (fresh) e = &g_cr_cells[total % CR_MAX_CELLS];
  atomic_fetch_add(&e->seq, 1);
  e->kind = kind;
  e->count = execution_count;
  cr_copy(e->path, sizeof e->path, path);
  cr_copy(e->cell_id, sizeof e->cell_id, cell_id);
  atomic_fetch_add(&e->seq, 1);
  if (fresh) atomic_store(&g_cr_ncells, total + 1);
  return CYSCOPE_OK;
}

CYSCOPE_API int cyscope_crash_defer_while(const volatile int *counter) {
  g_defer_counter = counter;
  return CYSCOPE_OK;
}

/* ---------------------------------------------------------------- handler */
static int index_of(int sig) {
  for (int i = 0; i < NSIGNALS; i++)
    if (k_signals[i] == sig) return i;
  return -1;
}

/* Die of the signal as if nothing had caught it. */
static void die_by_default(int sig, const siginfo_t *info) {
  struct sigaction dfl;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  sigaction(sig, &dfl, NULL);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, sig);
  sigprocmask(SIG_UNBLOCK, &set, NULL);
  /* A fault (raised by the CPU) repeats when the handler returns and dies
   * there, so a core shows the real place; a signal sent by kill(),
   * raise() or abort() would not repeat: send it again. */
  if (!info || info->si_code <= 0 || sig == SIGABRT) raise(sig);
}

/* Hand the signal to the handler found at install; it may recover
 * (longjmp away), re-raise, or return. */
static void chain(int sig, siginfo_t *info, void *uctx) {
  int i = index_of(sig);
  struct sigaction *prev = i >= 0 ? &g_prev[i] : NULL;
  if (!prev || (!(prev->sa_flags & SA_SIGINFO) &&
                (prev->sa_handler == SIG_DFL || prev->sa_handler == SIG_IGN))) {
    die_by_default(sig, info);
    return;
  }
  if (prev->sa_flags & SA_SIGINFO)
    prev->sa_sigaction(sig, info, uctx);
  else
    prev->sa_handler(sig);
  /* It returned: the crash stands (returning would fault again, forever). */
  die_by_default(sig, info);
}

static void make_paths(const cr_capture *c) {
  char num[24];
  size_t n = 0;
  n += cr_utoa((uint64_t)c->unix_ms, g_id + n);
  g_id[n++] = '-';
  cr_utoa((uint64_t)cr_getpid(), num);
  cr_copy(g_id + n, sizeof g_id - n, num);
  n = cr_strlen(g_id);
  g_id[n++] = '-';
  cr_utoa((uint64_t)c->tid, num);
  cr_copy(g_id + n, sizeof g_id - n, num);

  size_t d = cr_strlen(g_cr.report_dir);
  cr_copy(g_final, sizeof g_final, g_cr.report_dir);
  cr_copy(g_final + d, sizeof g_final - d, "/crash-");
  n = cr_strlen(g_final);
  cr_copy(g_final + n, sizeof g_final - n, g_id);
  n = cr_strlen(g_final);
  cr_copy(g_final + n, sizeof g_final - n, ".json");
  cr_copy(g_tmp, sizeof g_tmp, g_cr.report_dir);
  cr_copy(g_tmp + d, sizeof g_tmp - d, "/.crash-");
  n = cr_strlen(g_tmp);
  cr_copy(g_tmp + n, sizeof g_tmp - n, g_id);
  n = cr_strlen(g_tmp);
  cr_copy(g_tmp + n, sizeof g_tmp - n, ".tmp");
}

static void capture_guarded(cr_capture *c) {
  /* Each phase may fault on a corrupt process; a fault comes back here
   * through g_recover and the phase is left as far as it got. */
  if (sigsetjmp(g_recover, 1) == 0) {
    g_recover_armed = 1;
    cr_capture_native(c);
  }
  if (sigsetjmp(g_recover, 1) == 0) {
    g_recover_armed = 1;
    cr_capture_python(c);
  } else {
    c->py_failed = 1;
  }
  g_recover_armed = 0;
}

static size_t write_report(jbuf *b, size_t body_len, const char *status, const char *message,
                           const char *detail, const char *path) {
  b->len = body_len;
  b->p[body_len] = 0;
  cr_report_finish(b, status, message, detail);
  cr_write_file_atomic(g_tmp, path, b->p, b->len);
  return b->len;
}

static void on_fatal(int sig, siginfo_t *info, void *uctx) {
  int saved_errno = errno;
  int tid = cr_gettid();
  if (atomic_load(&g_owner) == tid) {
    /* A fault inside our own handler. */
    if (g_recover_armed) {
      g_recover_armed = 0;
      siglongjmp(g_recover, 1);
    }
    /* Or the previous handler re-raised: the default action, now. */
    die_by_default(sig, info);
    return;
  }
  if (!g_cr.armed || cr_getpid() != g_cr.pid || (g_defer_counter && *g_defer_counter > 0)) {
    /* A forked child, or a handler installed before ours recovers from
     * this one (cysignals' sig_on): theirs decides. */
    chain(sig, info, uctx);
    errno = saved_errno;
    return;
  }
  int expected = 0;
  while (!atomic_compare_exchange_strong(&g_owner, &expected, tid)) {
    /* Another thread is reporting its crash; the process ends with it,
     * or that thread's guard catches it and lets us go next. */
    expected = 0;
    struct timespec nap = {0, 20 * 1000 * 1000};
    nanosleep(&nap, NULL);
  }

  cr_capture *c = &g_capture;
  memset(c, 0, sizeof *c);
  cr_capture_basics(c, sig, info, uctx);
  capture_guarded(c);
  make_paths(c);

  cr_catch *guard = cr_catch_current();
  int caught = guard && cr_catch_eligible(guard);
  jbuf b = {g_report, 0, sizeof g_report, 0};
  cr_report_body(&b, c, g_id, caught);
  size_t body = b.len;

  if (!g_cr.tracer_argv) {
    write_report(&b, body, "missing", g_cr.no_tracer_message, NULL, g_final);
  } else {
    write_report(&b, body, "running", NULL, NULL, g_cr.pending_path);
    cr_trace_result r = cr_run_tracer(g_final, g_detail, sizeof g_detail);
    if (r != CR_TRACE_OK) {
      const char *status = r == CR_TRACE_REFUSED   ? "refused"
                           : r == CR_TRACE_TIMEOUT ? "timeout"
                                                   : "failed";
      const char *message = r == CR_TRACE_REFUSED   ? g_cr.refused_message
                            : r == CR_TRACE_TIMEOUT ? g_cr.timeout_message
                                                    : g_cr.failed_message;
      write_report(&b, body, status, message, g_detail, g_final);
    }
    unlink(g_cr.pending_path);
  }

  if (caught) {
    atomic_store(&g_owner, 0);
    errno = saved_errno;
    cr_catch_jump(guard, sig, g_final);
  }
  /* Other crashing threads keep waiting: the process ends here. */
  chain(sig, info, uctx);
  errno = saved_errno;
}
