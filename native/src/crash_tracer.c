/* Running the tracer (gdb in batch mode) from the crash handler.
 *
 * The child is made with a raw clone() system call, not fork(): fork runs
 * the process's atfork handlers (the allocation tracker registers some that
 * take locks), which a signal handler must not do. The child only makes
 * system calls before execve. The crashing process lets exactly that child
 * trace it (PR_SET_PTRACER, which Yama's ptrace_scope=1 requires), and the
 * child waits on a pipe until it has. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "crash_internal.h"

#ifndef PR_SET_PTRACER
#define PR_SET_PTRACER 0x59616d61
#endif

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int raw_fork(void) {
#if defined(__x86_64__) || defined(__aarch64__)
  return (int)syscall(SYS_clone, (unsigned long)SIGCHLD, 0UL, 0UL, 0UL, 0UL);
#else
  return -1;
#endif
}

static __attribute__((noreturn)) void child(int go) {
  char byte;
  while (read(go, &byte, 1) < 0 && errno == EINTR) {
  }
  int log = open(g_cr.tracer_log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  int nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (nul >= 0) dup2(nul, 0);
  if (log >= 0) {
    dup2(log, 1);
    dup2(log, 2);
  }
  /* Everything else the kernel had open (its sockets) stays out of gdb. */
  if (syscall(SYS_close_range, 3U, ~0U, 0U) != 0)
    for (int fd = 3; fd < 4096; fd++) close(fd);
  execve(g_cr.tracer_argv[0], g_cr.tracer_argv, g_cr.tracer_envp);
  static const char msg[] = "cyscope: could not run the tracer (execve failed)\n";
  (void)!write(2, msg, sizeof msg - 1);
  syscall(SYS_exit_group, 127);
  for (;;) {
  }
}

/* The tracer's first line that says what went wrong. */
static void first_error_line(const char *log, char *out, size_t cap) {
  static const char *const keys[] = {
      "ptrace:", "Could not attach", "Operation not permitted", "cyscope:", "Error",
      "error",   "No such"};
  out[0] = 0;
  for (unsigned k = 0; k < sizeof keys / sizeof *keys; k++) {
    for (const char *line = log; *line;) {
      const char *eol = line;
      while (*eol && *eol != '\n') eol++;
      for (const char *p = line; p + cr_strlen(keys[k]) <= eol; p++) {
        const char *a = p, *b = keys[k];
        while (*b && *a == *b) a++, b++;
        if (!*b) {
          size_t n = (size_t)(eol - line) < cap - 1 ? (size_t)(eol - line) : cap - 1;
          for (size_t i = 0; i < n; i++) out[i] = line[i];
          out[n] = 0;
          return;
        }
      }
      line = *eol ? eol + 1 : eol;
    }
  }
}

static int refused(const char *log) {
  static const char *const keys[] = {"ptrace: Operation not permitted", "ptrace: Permission denied",
                                     "Could not attach to process"};
  for (unsigned k = 0; k < sizeof keys / sizeof *keys; k++) {
    size_t n = cr_strlen(keys[k]);
    for (const char *p = log; *p; p++) {
      size_t i = 0;
      while (i < n && p[i] == keys[k][i]) i++;
      if (i == n) return 1;
    }
  }
  return 0;
}

cr_trace_result cr_run_tracer(const char *final_path, char *detail, size_t detail_cap) {
  detail[0] = 0;
  int go[2];
  if (pipe2(go, O_CLOEXEC) != 0) {
    cr_copy(detail, detail_cap, "pipe() failed");
    return CR_TRACE_FAILED;
  }
  int pid = raw_fork();
  if (pid == 0) {
    close(go[1]);
    child(go[0]);
  }
  close(go[0]);
  if (pid < 0) {
    close(go[1]);
    cr_copy(detail, detail_cap, "clone() failed");
    return CR_TRACE_FAILED;
  }
  /* Only this child may trace us (a no-op without Yama). */
  prctl(PR_SET_PTRACER, (unsigned long)pid, 0UL, 0UL, 0UL);
  (void)!write(go[1], "g", 1);
  close(go[1]);

  uint32_t limit = g_cr.tracer_timeout_ms ? g_cr.tracer_timeout_ms : 4000;
  int64_t deadline = now_ms() + limit;
  int status = 0, timed_out = 0, reaped_elsewhere = 0;
  for (;;) {
    if (!reaped_elsewhere) {
      int r = (int)waitpid(pid, &status, WNOHANG);
      if (r == pid) break;
      /* Not our child to wait for (SIGCHLD ignored: reaped on exit; or
       * someone else waits): watch the pid instead. */
      if (r < 0 && errno == ECHILD) reaped_elsewhere = 1;
    }
    if (reaped_elsewhere && kill(pid, 0) != 0 && errno == ESRCH) break;
    if (now_ms() >= deadline) {
      timed_out = 1;
      kill(pid, SIGKILL);
      while (!reaped_elsewhere && waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      /* A tracer killed mid-attach can leave threads stopped. */
      kill(cr_getpid(), SIGCONT);
      break;
    }
    struct timespec nap = {0, 10 * 1000 * 1000};
    nanosleep(&nap, NULL);
  }
  prctl(PR_SET_PTRACER, 0UL, 0UL, 0UL, 0UL);

  if (!timed_out && access(final_path, F_OK) == 0) return CR_TRACE_OK;
  static char log[16384];
  if (cr_read_file(g_cr.tracer_log_path, log, sizeof log) < 0) log[0] = 0;
  if (timed_out) return CR_TRACE_TIMEOUT;
  first_error_line(log, detail, detail_cap);
  if (refused(log)) return CR_TRACE_REFUSED;
  if (!detail[0] && WIFEXITED(status) && WEXITSTATUS(status) == 127)
    cr_copy(detail, detail_cap, "the tracer could not be started (execve failed)");
  return CR_TRACE_FAILED;
}
