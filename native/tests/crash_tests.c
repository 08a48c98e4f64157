/* The crash catcher, natively: each case runs in a forked child that
 * installs the catcher and crashes for real; the parent checks how the
 * child died and what report it left. (The Python tests cover gdb, the
 * interpreter's frames and --catch-crashes, which need a Python.) */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "cyscope.h"

/* The handlers under test are ours: ASan's must stay out of the way. */
__attribute__((visibility("default"))) const char *__asan_default_options(void) {
  return "handle_segv=0:handle_sigbus=0:handle_sigfpe=0:handle_sigill=0:handle_abort=0:"
         "detect_leaks=0";
}

static char g_dir[256];
static char g_pending[300], g_log[300];

static void fresh_dir(void) {
  char cmd[300];
  if (g_dir[0]) {
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    (void)!system(cmd);
  }
  snprintf(g_dir, sizeof g_dir, "/tmp/cyscope-crash-test-XXXXXX");
  if (!mkdtemp(g_dir)) abort();
  snprintf(g_pending, sizeof g_pending, "%s/.pending.json", g_dir);
  snprintf(g_log, sizeof g_log, "%s/.tracer.log", g_dir);
}

static cyscope_crash_config config(const char *const *argv, uint32_t timeout_ms) {
  cyscope_crash_config c;
  memset(&c, 0, sizeof c);
  c.size = sizeof c;
  c.report_dir = g_dir;
  c.pending_path = g_pending;
  c.tracer_log_path = g_log;
  c.tracer_argv = argv;
  static const char *const envp[] = {"PATH=/usr/bin:/bin", NULL};
  c.tracer_envp = envp;
  c.tracer_timeout_ms = timeout_ms;
  c.report_json = "\"kernel\":{\"key\":\"native-test\"}";
  c.no_tracer_message = "no tracer: install gdb";
  c.refused_message = "tracing refused";
  c.failed_message = "tracer failed";
  c.timeout_message = "tracer too slow";
  return c;
}

/* The one report the child left (NULL if none or several). */
static char *read_report(void) {
  DIR *d = opendir(g_dir);
  if (!d) return NULL;
  char path[600] = "";
  int count = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    if (strncmp(e->d_name, "crash-", 6) == 0) {
      snprintf(path, sizeof path, "%s/%s", g_dir, e->d_name);
      count++;
    }
  closedir(d);
  if (count != 1) {
    fprintf(stderr, "  %d reports in %s\n", count, g_dir);
    return NULL;
  }
  FILE *f = fopen(path, "r");
  if (!f) return NULL;
  static char buf[1 << 20];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  return buf;
}

/* --------------------------------------------- a small JSON syntax check */
static const char *skip_ws(const char *p) {
  while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r') p++;
  return p;
}
static const char *value(const char *p);
static const char *string(const char *p) {
  if (*p != '"') return NULL;
  for (p++; *p && *p != '"'; p++) {
    if ((unsigned char)*p < 0x20) return NULL;
    if (*p == '\\') {
      p++;
      if (!strchr("\"\\/bfnrtu", *p)) return NULL;
    }
  }
  return *p == '"' ? p + 1 : NULL;
}
static const char *value(const char *p) {
  p = skip_ws(p);
  if (*p == '{' || *p == '[') {
    char close = *p == '{' ? '}' : ']';
    p = skip_ws(p + 1);
    if (*p == close) return p + 1;
    for (;;) {
      if (close == '}') {
        if (!(p = string(skip_ws(p)))) return NULL;
        p = skip_ws(p);
        if (*p++ != ':') return NULL;
      }
      if (!(p = value(p))) return NULL;
      p = skip_ws(p);
      if (*p == ',') {
        p++;
        continue;
      }
      return *p == close ? p + 1 : NULL;
    }
  }
  if (*p == '"') return string(p);
  if (!strncmp(p, "true", 4)) return p + 4;
  if (!strncmp(p, "false", 5)) return p + 5;
  if (!strncmp(p, "null", 4)) return p + 4;
  const char *start = p;
  if (*p == '-') p++;
  while ((*p >= '0' && *p <= '9') || *p == '.' || *p == 'e' || *p == 'E' || *p == '+' || *p == '-')
    p++;
  return p > start ? p : NULL;
}
static int valid_json(const char *s) {
  const char *end = value(s);
  return end && *skip_ws(end) == 0;
}

/* ------------------------------------------------------------- crashers */
/* Real faults, kept from UBSan (which would report them and exit first). */
#define CRASHER __attribute__((noinline, no_sanitize_undefined))
static int *volatile g_null; /* the compiler cannot prove it NULL */
CRASHER static void crash_null(void) { *g_null = 42; }
CRASHER static void crash_fpe(void) {
  volatile int zero = 0, n = 7;
  n = n / zero;
}
static void *thread_crash(void *arg) {
  (void)arg;
  crash_null();
  return NULL;
}
static void crash_in_thread(void) {
  pthread_t t;
  pthread_create(&t, NULL, thread_crash, NULL);
  pthread_join(t, NULL);
}
/* Unbounded on purpose: a stack overflow. */
#pragma GCC diagnostic ignored "-Winfinite-recursion"
static int recurse(int n) {
  volatile char pad[1024];
  pad[0] = (char)n;
  return recurse(n + 1) + pad[0];
}
static void crash_overflow(void) { recurse(0); }

/* Run `crash` in a child with the catcher installed; the exit signal. */
static int run_child(const char *const *argv, uint32_t timeout_ms, void (*before)(void),
                     void (*crash)(void)) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    if (before) before();
    cyscope_crash_config c = config(argv, timeout_ms);
    if (cyscope_crash_install(&c) != CYSCOPE_OK) _exit(3);
    cyscope_crash_set_cell(7, "cell-seven", 1);
    crash();
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFSIGNALED(status) ? WTERMSIG(status) : -WEXITSTATUS(status);
}

static void test_install_restores_previous(void) {
  struct sigaction mine, seen;
  memset(&mine, 0, sizeof mine);
  mine.sa_handler = SIG_IGN;
  sigaction(SIGBUS, &mine, NULL);
  fresh_dir();
  cyscope_crash_config c = config(NULL, 0);
  CHECK_EQ(cyscope_crash_install(&c), CYSCOPE_OK);
  CHECK_EQ(cyscope_crash_install(&c), CYSCOPE_OK); /* reconfigure */
  sigaction(SIGBUS, NULL, &seen);
  CHECK(seen.sa_flags & SA_SIGINFO);
  CHECK(seen.sa_flags & SA_ONSTACK);
  CHECK_EQ(cyscope_crash_uninstall(), CYSCOPE_OK);
  sigaction(SIGBUS, NULL, &seen);
  CHECK(!(seen.sa_flags & SA_SIGINFO) && seen.sa_handler == SIG_IGN);
  mine.sa_handler = SIG_DFL;
  sigaction(SIGBUS, &mine, NULL);
  /* Bad configurations are refused. */
  c.report_dir = "relative/dir";
  CHECK_EQ(cyscope_crash_install(&c), CYSCOPE_EINVAL);
  CHECK_EQ(cyscope_crash_install(NULL), CYSCOPE_EINVAL);
  CHECK_EQ(cyscope_crash_note_cell_code(9, "/x", 1, NULL), CYSCOPE_EINVAL);
}

static void test_segv_without_tracer(void) {
  fresh_dir();
  CHECK_EQ(run_child(NULL, 0, NULL, crash_null), SIGSEGV);
  char *r = read_report();
  CHECK(r != NULL);
  if (!r) return;
  CHECK(valid_json(r));
  CHECK(strstr(r, "\"name\":\"SIGSEGV\""));
  CHECK(strstr(r, "\"code\":\"SEGV_MAPERR\""));
  CHECK(strstr(r, "\"address\":\"0x0\""));
  CHECK(strstr(r, "\"status\":\"missing\""));
  CHECK(strstr(r, "\"message\":\"no tracer: install gdb\""));
  CHECK(strstr(r, "\"execution_count\":7,\"cell_id\":\"cell-seven\",\"running\":true"));
  CHECK(strstr(r, "\"kernel\":{\"key\":\"native-test\"}"));
  CHECK(strstr(r, "\"main\":true"));
  CHECK(strstr(r, "cyscope_crash_tests\"")); /* a frame in this binary */
  CHECK(strstr(r, "\"exact\":true"));        /* the faulting pc */
  CHECK(access(g_pending, F_OK) != 0);       /* no pending left */
}

static void test_abort_and_fpe(void) {
  fresh_dir();
  CHECK_EQ(run_child(NULL, 0, NULL, abort), SIGABRT);
  char *r = read_report();
  CHECK(r && valid_json(r) && strstr(r, "\"name\":\"SIGABRT\"") && strstr(r, "\"address\":null") &&
        strstr(r, "\"code\":\"SI_TKILL\""));
  fresh_dir();
  CHECK_EQ(run_child(NULL, 0, NULL, crash_fpe), SIGFPE);
  r = read_report();
  CHECK(r && valid_json(r) && strstr(r, "\"name\":\"SIGFPE\"") &&
        strstr(r, "\"code\":\"FPE_INTDIV\""));
}

static void test_thread_and_overflow(void) {
  fresh_dir();
  CHECK_EQ(run_child(NULL, 0, NULL, crash_in_thread), SIGSEGV);
  char *r = read_report();
  CHECK(r && valid_json(r) && strstr(r, "\"main\":false"));
  fresh_dir();
  CHECK_EQ(run_child(NULL, 0, NULL, crash_overflow), SIGSEGV);
  r = read_report();
  CHECK(r && valid_json(r) && strstr(r, "\"name\":\"SIGSEGV\""));
}

/* The handler found at install still runs, after the report. */
static const char *g_marker;
static void previous_handler(int sig, siginfo_t *info, void *uctx) {
  (void)info;
  (void)uctx;
  FILE *f = fopen(g_marker, "w");
  if (f) {
    fprintf(f, "previous handler ran for %d\n", sig);
    fclose(f);
  }
}
static void install_previous(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = previous_handler;
  sa.sa_flags = SA_SIGINFO;
  sigaction(SIGSEGV, &sa, NULL);
}

static void test_chains_to_previous(void) {
  fresh_dir();
  char marker[400];
  snprintf(marker, sizeof marker, "%s/marker", g_dir);
  g_marker = marker;
  CHECK_EQ(run_child(NULL, 0, install_previous, crash_null), SIGSEGV);
  CHECK(read_report() != NULL);
  CHECK(access(marker, F_OK) == 0);
}

/* A library that installs its handler over ours later (SageMath's kernel
 * does so with cysignals' before every request): reclaim puts ours in front
 * again, and theirs still runs after ours. */
static int g_reclaimed = -1;
static void steal_then_crash(void) {
  install_previous(); /* over ours now */
  cyscope_crash_reclaim(&g_reclaimed);
  if (g_reclaimed != 1) _exit(40 + g_reclaimed);
  int again = -1;
  cyscope_crash_reclaim(&again);
  if (again != 0) _exit(50);
  crash_null();
}
static void test_reclaim_after_another_handler(void) {
  fresh_dir();
  char marker[400];
  snprintf(marker, sizeof marker, "%s/marker", g_dir);
  g_marker = marker;
  CHECK_EQ(run_child(NULL, 0, NULL, steal_then_crash), SIGSEGV);
  CHECK(read_report() != NULL);
  CHECK(access(marker, F_OK) == 0);
  int n = -1;
  CHECK_EQ(cyscope_crash_reclaim(&n), CYSCOPE_OK); /* not installed here: nothing to do */
  CHECK_EQ(n, 0);
}

/* A forked child of a process with the catcher inherits the handler but
 * is not the process the tracer's argv names: no report, same death. */
static void fork_then_crash(void) {
  pid_t pid = fork();
  if (pid == 0) crash_null();
  int status = 0;
  waitpid(pid, &status, 0);
  _exit(WIFSIGNALED(status) ? 100 + WTERMSIG(status) : 1);
}
static void test_forked_child_only_chains(void) {
  fresh_dir();
  CHECK_EQ(run_child(NULL, 0, NULL, fork_then_crash), -(100 + SIGSEGV));
  DIR *d = opendir(g_dir);
  int reports = 0;
  struct dirent *e;
  while (d && (e = readdir(d))) reports += strncmp(e->d_name, "crash-", 6) == 0;
  if (d) closedir(d);
  CHECK_EQ(reports, 0);
}

/* The tracer protocol: it finds the pending report, writes the final one;
 * a tracer that is refused, fails or hangs leaves the in-process report
 * with the matching status. */
static void test_tracer_outcomes(void) {
  char script[2400];
  fresh_dir();
  /* Copies the pending report to crash-<id>.json, as gdb's script would. */
  snprintf(script, sizeof script,
           "id=$(sed -n 's/.*\"id\":\"\\([^\"]*\\)\".*/\\1/p' '%s'); "
           "sed 's/\"status\":\"running\"/\"status\":\"ok\"/' '%s' > '%s/.t' && "
           "mv '%s/.t' \"%s/crash-$id.json\"",
           g_pending, g_pending, g_dir, g_dir, g_dir);
  const char *const ok[] = {"/bin/sh", "-c", script, NULL};
  CHECK_EQ(run_child(ok, 5000, NULL, crash_null), SIGSEGV);
  char *r = read_report();
  CHECK(r && valid_json(r) && strstr(r, "\"status\":\"ok\""));
  CHECK(access(g_pending, F_OK) != 0);

  fresh_dir();
  const char *const refused[] = {"/bin/sh", "-c",
                                 "echo 'ptrace: Operation not permitted.' >&2; exit 1", NULL};
  CHECK_EQ(run_child(refused, 5000, NULL, crash_null), SIGSEGV);
  r = read_report();
  CHECK(r && valid_json(r) && strstr(r, "\"status\":\"refused\"") &&
        strstr(r, "\"message\":\"tracing refused\"") &&
        strstr(r, "\"detail\":\"ptrace: Operation not permitted.\""));

  fresh_dir();
  const char *const broken[] = {"/nonexistent/gdb", NULL};
  CHECK_EQ(run_child(broken, 5000, NULL, crash_null), SIGSEGV);
  r = read_report();
  CHECK(r && valid_json(r) && strstr(r, "\"status\":\"failed\"") &&
        strstr(r, "\"message\":\"tracer failed\"") && strstr(r, "\"detail\":\""));

  fresh_dir();
  const char *const hangs[] = {"/bin/sleep", "30", NULL};
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  CHECK_EQ(run_child(hangs, 300, NULL, crash_null), SIGSEGV);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  r = read_report();
  CHECK(r && valid_json(r) && strstr(r, "\"status\":\"timeout\"") &&
        strstr(r, "\"message\":\"tracer too slow\""));
  double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
  CHECK(secs < 5.0); /* the limit holds (valgrind included) */
}

static void test_cell_notes(void) {
  /* The ring keeps the newest notes and updates a re-noted path in place. */
  char path[64];
  for (int i = 0; i < 300; i++) {
    snprintf(path, sizeof path, "/cells/%d.py", i);
    CHECK_EQ(cyscope_crash_note_cell_code(CYSCOPE_CRASH_CELL_PYTHON, path, i, "id"), CYSCOPE_OK);
  }
  CHECK_EQ(cyscope_crash_note_cell_code(CYSCOPE_CRASH_CELL_CYTHON, "/m.so", 3, NULL), CYSCOPE_OK);
  CHECK_EQ(cyscope_crash_note_cell_code(CYSCOPE_CRASH_CELL_CYTHON, "/m.so", 4, "b"), CYSCOPE_OK);
  char longpath[2000];
  memset(longpath, 'a', sizeof longpath - 1);
  longpath[sizeof longpath - 1] = 0;
  CHECK_EQ(cyscope_crash_note_cell_code(CYSCOPE_CRASH_CELL_CYTHON, longpath, 1, NULL),
           CYSCOPE_EINVAL);
  fresh_dir();
  CHECK_EQ(run_child(NULL, 0, NULL, crash_null), SIGSEGV);
  char *r = read_report();
  CHECK(r && valid_json(r));
  CHECK(r &&
        strstr(r,
               "{\"kind\":\"cython\",\"path\":\"/m.so\",\"execution_count\":4,\"cell_id\":\"b\"}"));
  CHECK(r && strstr(r, "\"/cells/299.py\"") && !strstr(r, "\"/cells/10.py\""));
}

int main(void) {
  RUN(test_install_restores_previous);
  RUN(test_segv_without_tracer);
  RUN(test_abort_and_fpe);
  RUN(test_thread_and_overflow);
  RUN(test_chains_to_previous);
  RUN(test_reclaim_after_another_handler);
  RUN(test_forked_child_only_chains);
  RUN(test_tracer_outcomes);
  RUN(test_cell_notes);
  if (g_dir[0]) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    (void)!system(cmd);
  }
  return check_report();
}
