/* What the crash handler learns in-process, async-signal-safely: the
 * signal and its address, the faulting thread, its native frames (the
 * unwinder, primed at install) and Python frames (interpreter memory read
 * through cr_read_mem), and the in-process report built from them. Native
 * frames are written as (module, offset); the kernel that reads the report
 * later names them (addr2line and the %%cython line map). */
#define _GNU_SOURCE
#include <signal.h>
#include <time.h>
#include <ucontext.h>
#include <unwind.h>

#include "crash_internal.h"

#pragma GCC visibility push(default)
extern void *PyGILState_GetThisThreadState(void) __attribute__((weak));
extern int PyCode_Addr2Line(void *code, int addr) __attribute__((weak));
#pragma GCC visibility pop

/* ------------------------------------------------------------- signals */
typedef struct {
  int code;
  const char *name, *text;
} code_name;

static const code_name k_segv[] = {
    {SEGV_MAPERR, "SEGV_MAPERR", "address not mapped to object"},
    {SEGV_ACCERR, "SEGV_ACCERR", "invalid permissions for mapped object"},
    {0, 0, 0}};
static const code_name k_bus[] = {{BUS_ADRALN, "BUS_ADRALN", "invalid address alignment"},
                                  {BUS_ADRERR, "BUS_ADRERR", "nonexistent physical address"},
                                  {BUS_OBJERR, "BUS_OBJERR", "object-specific hardware error"},
                                  {0, 0, 0}};
static const code_name k_fpe[] = {{FPE_INTDIV, "FPE_INTDIV", "integer divide by zero"},
                                  {FPE_INTOVF, "FPE_INTOVF", "integer overflow"},
                                  {FPE_FLTDIV, "FPE_FLTDIV", "floating-point divide by zero"},
                                  {FPE_FLTOVF, "FPE_FLTOVF", "floating-point overflow"},
                                  {FPE_FLTUND, "FPE_FLTUND", "floating-point underflow"},
                                  {FPE_FLTRES, "FPE_FLTRES", "floating-point inexact result"},
                                  {FPE_FLTINV, "FPE_FLTINV", "invalid floating-point operation"},
                                  {FPE_FLTSUB, "FPE_FLTSUB", "subscript out of range"},
                                  {0, 0, 0}};
static const code_name k_ill[] = {{ILL_ILLOPC, "ILL_ILLOPC", "illegal opcode"},
                                  {ILL_ILLOPN, "ILL_ILLOPN", "illegal operand"},
                                  {ILL_ILLADR, "ILL_ILLADR", "illegal addressing mode"},
                                  {ILL_ILLTRP, "ILL_ILLTRP", "illegal trap"},
                                  {ILL_PRVOPC, "ILL_PRVOPC", "privileged opcode"},
                                  {ILL_PRVREG, "ILL_PRVREG", "privileged register"},
                                  {ILL_COPROC, "ILL_COPROC", "coprocessor error"},
                                  {ILL_BADSTK, "ILL_BADSTK", "internal stack error"},
                                  {0, 0, 0}};
static const code_name k_any[] = {{SI_USER, "SI_USER", "sent by kill()"},
                                  {SI_TKILL, "SI_TKILL", "sent by tkill() (raise(), abort())"},
                                  {SI_QUEUE, "SI_QUEUE", "sent by sigqueue()"},
                                  {0, 0, 0}};

static const char *signal_name(int sig, const char **text) {
  switch (sig) {
    case SIGSEGV:
      *text = "segmentation fault (invalid memory access)";
      return "SIGSEGV";
    case SIGBUS:
      *text = "bus error (invalid memory access)";
      return "SIGBUS";
    case SIGFPE:
      *text = "arithmetic error";
      return "SIGFPE";
    case SIGILL:
      *text = "illegal instruction";
      return "SIGILL";
    case SIGABRT:
      *text = "aborted (abort() was called)";
      return "SIGABRT";
    default:
      *text = "fatal signal";
      return "SIG?";
  }
}

static const code_name *code_of(int sig, int code) {
  const code_name *table = k_any;
  if (code > 0) {
    if (sig == SIGSEGV) table = k_segv;
    if (sig == SIGBUS) table = k_bus;
    if (sig == SIGFPE) table = k_fpe;
    if (sig == SIGILL) table = k_ill;
  }
  for (; table->name; table++)
    if (table->code == code) return table;
  return NULL;
}

static uintptr_t pc_of(const void *uctx) {
  if (!uctx) return 0;
  const ucontext_t *uc = uctx;
#if defined(__x86_64__)
  return (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
#elif defined(__aarch64__)
  return (uintptr_t)uc->uc_mcontext.pc;
#else
  (void)uc;
  return 0;
#endif
}

void cr_capture_basics(cr_capture *c, int sig, const siginfo_t *info, const void *uctx) {
  c->sig = sig;
  c->code = info ? info->si_code : 0;
  c->tid = cr_gettid();
  c->main_thread = c->tid == cr_getpid();
  c->pc = pc_of(uctx);
  c->has_addr = info && info->si_code > 0 && sig != SIGABRT;
  c->addr = c->has_addr ? (uintptr_t)info->si_addr : 0;
  c->sender_pid = info && info->si_code <= 0 ? (int)info->si_pid : 0;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  c->unix_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
  char path[64] = "/proc/self/task/";
  size_t n = cr_strlen(path);
  n += cr_utoa((uint64_t)c->tid, path + n);
  cr_copy(path + n, sizeof path - n, "/comm");
  if (cr_read_file(path, c->thread_name, sizeof c->thread_name) > 0) {
    for (char *p = c->thread_name; *p; p++)
      if (*p == '\n') *p = 0;
  }
}

/* ------------------------------------------------------------- frames */
typedef struct unw {
  cr_capture *c;
  int found;
} unw;

static _Unwind_Reason_Code unw_cb(struct _Unwind_Context *ctx, void *arg) {
  unw *u = arg;
  int before = 0;
  uintptr_t ip = (uintptr_t)_Unwind_GetIPInfo(ctx, &before);
  if (!ip) return _URC_END_OF_STACK;
  /* Frames above the interrupted one are the handler's own; the first
   * frame the unwinder marks as interrupted by a signal is the crash. */
  if (!u->found) {
    if (!before) return _URC_NO_REASON;
    u->found = 1;
  }
  if (u->c->nnative >= CR_MAX_NATIVE) return _URC_END_OF_STACK;
  u->c->native[u->c->nnative].pc = ip;
  u->c->native[u->c->nnative].exact = u->c->nnative == 0;
  u->c->nnative++;
  return _URC_NO_REASON;
}

void cr_capture_native(cr_capture *c) {
  unw u = {c, 0};
  c->nnative = 0;
  _Unwind_Backtrace(unw_cb, &u);
  if (c->nnative == 0 && c->pc) {
    /* The unwinder could not get past the signal frame (a jump to a bad
     * address): the faulting pc is still worth a line. */
    c->native[0].pc = c->pc;
    c->native[0].exact = 1;
    c->nnative = 1;
  }
}

#define RD(addr, var) (cr_read_mem((uintptr_t)(addr), &(var), sizeof(var)) == 0)

static void read_unicode(uintptr_t obj, char *out, size_t cap) {
  const cyscope_crash_py_layout *L = &g_cr_py;
  uint32_t state;
  int64_t len;
  uintptr_t src = 0;
  out[0] = 0;
  if (!obj || !RD(obj + (uintptr_t)L->unicode_state, state)) return;
  int compact = (state >> 5) & 1, ascii = (state >> 6) & 1;
  if (compact && ascii) {
    if (!RD(obj + 16, len)) return; /* PyASCIIObject.length */
    src = obj + (uintptr_t)L->unicode_ascii_data;
  } else if (compact) {
    /* Non-ASCII: only if CPython already cached the UTF-8 form. */
    if (!RD(obj + (uintptr_t)L->unicode_utf8, src) || !src) {
      cr_copy(out, cap, "<non-ascii>");
      return;
    }
    if (!RD(obj + (uintptr_t)L->unicode_utf8 - 8, len)) return;
  } else {
    return;
  }
  if (len < 0) return;
  size_t n = (size_t)len < cap - 1 ? (size_t)len : cap - 1;
  if (cr_read_mem(src, out, n) != 0) n = 0;
  out[n] = 0;
}

void cr_capture_python(cr_capture *c) {
  const cyscope_crash_py_layout *L = &g_cr_py;
  c->npy = 0;
  if (!atomic_load(&g_cr_py_enabled) || !PyGILState_GetThisThreadState) return;
  uintptr_t ts = (uintptr_t)PyGILState_GetThisThreadState(), cframe = 0, f = 0;
  if (!ts || !RD(ts + (uintptr_t)L->ts_cframe, cframe) ||
      !RD(cframe + (uintptr_t)L->cframe_current_frame, f))
    return;
  for (int guard = 0; f && c->npy < CR_MAX_PYTHON && guard < 100000; guard++) {
    uintptr_t code = 0, prev = 0, previous = 0, fn = 0, nm = 0;
    char entry = 0, owner = 0;
    int32_t traceable = 0;
    if (!RD(f + (uintptr_t)L->frame_code, code) || !RD(f + (uintptr_t)L->frame_prev_instr, prev) ||
        !RD(f + (uintptr_t)L->frame_previous, previous) ||
        !RD(f + (uintptr_t)L->frame_is_entry, entry) || !RD(f + (uintptr_t)L->frame_owner, owner) ||
        !RD(code + (uintptr_t)L->code_firsttraceable, traceable))
      break;
    uintptr_t first = code + (uintptr_t)L->code_adaptive;
    /* A frame still being set up has no position yet. */
    if (owner == L->owner_generator || prev >= first + 2 * (uintptr_t)traceable) {
      cr_pyframe *p = &c->py[c->npy];
      p->entry = entry != 0;
      p->line = PyCode_Addr2Line ? PyCode_Addr2Line((void *)code, (int)(prev - first)) : 0;
      if (RD(code + (uintptr_t)L->code_filename, fn))
        read_unicode(fn, p->filename, sizeof p->filename);
      if (RD(code + (uintptr_t)L->code_name, nm)) read_unicode(nm, p->name, sizeof p->name);
      c->npy++;
    } else if (entry && c->npy > 0) {
      c->py[c->npy - 1].entry = 1;
    }
    f = previous;
  }
}

/* ------------------------------------------------------- /proc/self/maps */
static char g_maps[1 << 20];
static long g_maps_len;

static uintptr_t parse_hex(const char **p) {
  uintptr_t v = 0;
  for (;; (*p)++) {
    char ch = **p;
    if (ch >= '0' && ch <= '9')
      v = v * 16 + (uintptr_t)(ch - '0');
    else if (ch >= 'a' && ch <= 'f')
      v = v * 16 + (uintptr_t)(ch - 'a' + 10);
    else
      return v;
  }
}

typedef struct mapping {
  uintptr_t start, end, offset;
  const char *path; /* points into g_maps, up to end of line */
  size_t path_len;
} mapping;

static int next_mapping(const char **cur, mapping *m) {
  const char *p = *cur;
  if (!*p) return 0;
  const char *eol = p;
  while (*eol && *eol != '\n') eol++;
  m->start = parse_hex(&p);
  if (*p == '-') p++;
  m->end = parse_hex(&p);
  while (p < eol && *p == ' ') p++;
  while (p < eol && *p != ' ') p++; /* perms */
  while (p < eol && *p == ' ') p++;
  m->offset = parse_hex(&p);
  for (int field = 0; field < 2; field++) { /* dev, inode */
    while (p < eol && *p == ' ') p++;
    while (p < eol && *p != ' ') p++;
  }
  while (p < eol && *p == ' ') p++;
  m->path = p;
  m->path_len = (size_t)(eol - p);
  *cur = *eol ? eol + 1 : eol;
  return 1;
}

static int same_path(const mapping *a, const mapping *b) {
  if (a->path_len != b->path_len) return 0;
  for (size_t i = 0; i < a->path_len; i++)
    if (a->path[i] != b->path[i]) return 0;
  return 1;
}

/* The mapped file holding pc, and the address its offset 0 is mapped at. */
static int module_of(uintptr_t pc, mapping *out, uintptr_t *base) {
  const char *cur = g_maps;
  mapping m;
  while (next_mapping(&cur, &m)) {
    if (pc < m.start || pc >= m.end) continue;
    if (m.path_len == 0 || m.path[0] != '/') return 0;
    *out = m;
    *base = m.start - m.offset;
    const char *scan = g_maps;
    mapping first;
    while (next_mapping(&scan, &first)) {
      if (first.offset == 0 && same_path(&first, &m)) {
        *base = first.start;
        break;
      }
    }
    return 1;
  }
  return 0;
}

/* ------------------------------------------------------------- the report */
static const cr_cell_code *cell_code(int kind, const char *path, size_t len, cr_cell_code *copy) {
  unsigned total = atomic_load(&g_cr_ncells);
  unsigned n = total < CR_MAX_CELLS ? total : CR_MAX_CELLS;
  for (unsigned k = 0; k < n; k++) {
    const cr_cell_code *e = &g_cr_cells[(total - 1 - k) % CR_MAX_CELLS]; /* newest first */
    unsigned seq = atomic_load(&e->seq);
    if (seq & 1 || e->kind != kind) continue;
    size_t i = 0;
    while (i < len && e->path[i] == path[i]) i++;
    if (i != len || e->path[i] != 0) continue;
    *copy = *e;
    if (atomic_load(&e->seq) != seq) continue;
    return copy;
  }
  return NULL;
}

static void cell_ref(jbuf *b, const cr_cell_code *cc, int line) {
  jb_key(b, "cell");
  if (!cc) {
    jb_raw(b, "null");
    return;
  }
  jb_raw(b, "{");
  jb_key(b, "execution_count");
  if (cc->count >= 0)
    jb_int(b, cc->count);
  else
    jb_raw(b, "null");
  jb_key(b, "cell_id");
  jb_str(b, cc->cell_id[0] ? cc->cell_id : NULL);
  jb_key(b, "line");
  if (line > 0)
    jb_int(b, line);
  else
    jb_raw(b, "null");
  jb_raw(b, "}");
}

static void python_frame(jbuf *b, const cr_pyframe *p) {
  cr_cell_code copy;
  const cr_cell_code *cc =
      cell_code(CYSCOPE_CRASH_CELL_PYTHON, p->filename, cr_strlen(p->filename), &copy);
  jb_raw(b, "{");
  jb_key(b, "kind");
  jb_str(b, "python");
  jb_key(b, "function");
  jb_str(b, p->name[0] ? p->name : NULL);
  jb_key(b, "file");
  jb_str(b, p->filename[0] ? p->filename : NULL);
  jb_key(b, "line");
  if (p->line > 0)
    jb_int(b, p->line);
  else
    jb_raw(b, "null");
  cell_ref(b, cc, p->line);
  jb_key(b, "python_entry");
  jb_raw(b, p->entry ? "true" : "false");
  jb_raw(b, "}");
}

static void native_frame(jbuf *b, const cr_native *n) {
  mapping m;
  uintptr_t base = 0;
  int known = g_maps_len > 0 && module_of(n->pc, &m, &base);
  cr_cell_code copy;
  const cr_cell_code *cc =
      known ? cell_code(CYSCOPE_CRASH_CELL_CYTHON, m.path, m.path_len, &copy) : NULL;
  jb_raw(b, "{");
  jb_key(b, "kind");
  jb_str(b, cc ? "cython" : "native");
  jb_key(b, "function");
  jb_raw(b, "null");
  jb_key(b, "file");
  jb_raw(b, "null");
  jb_key(b, "line");
  jb_raw(b, "null");
  jb_key(b, "address");
  jb_hex(b, n->pc);
  jb_key(b, "exact");
  jb_raw(b, n->exact ? "true" : "false");
  jb_key(b, "module");
  if (known)
    jb_strn(b, m.path, m.path_len);
  else
    jb_raw(b, "null");
  jb_key(b, "module_base");
  if (known)
    jb_hex(b, base);
  else
    jb_raw(b, "null");
  if (cc) cell_ref(b, cc, 0);
  jb_raw(b, "}");
}

static int in_eval(uintptr_t pc) { return pc >= g_cr.eval_lo && pc < g_cr.eval_hi; }

void cr_report_body(jbuf *b, const cr_capture *c, const char *id, int caught) {
  const char *text, *name = signal_name(c->sig, &text);
  const code_name *cn = code_of(c->sig, c->code);
  char when[32];
  cr_format_time(c->unix_ms, when);
  g_maps_len = cr_read_file("/proc/self/maps", g_maps, sizeof g_maps);
  if (g_maps_len < 0) g_maps[0] = 0;

  jb_raw(b, "{");
  jb_key(b, "v");
  jb_int(b, 1);
  jb_key(b, "id");
  jb_str(b, id);
  jb_key(b, "source");
  jb_str(b, "in-process");
  jb_key(b, "signal");
  jb_raw(b, "{");
  jb_key(b, "number");
  jb_int(b, c->sig);
  jb_key(b, "name");
  jb_str(b, name);
  jb_key(b, "description");
  jb_str(b, text);
  jb_key(b, "code");
  jb_str(b, cn ? cn->name : NULL);
  jb_key(b, "code_description");
  jb_str(b, cn ? cn->text : NULL);
  jb_key(b, "address");
  if (c->has_addr)
    jb_hex(b, c->addr);
  else
    jb_raw(b, "null");
  jb_key(b, "sender_pid");
  if (c->code <= 0)
    jb_int(b, c->sender_pid);
  else
    jb_raw(b, "null");
  jb_raw(b, "}");
  jb_key(b, "time");
  jb_str(b, when);
  jb_key(b, "time_unix_ms");
  jb_int(b, c->unix_ms);
  jb_key(b, "pid");
  jb_int(b, cr_getpid());
  jb_key(b, "thread");
  jb_raw(b, "{");
  jb_key(b, "tid");
  jb_int(b, c->tid);
  jb_key(b, "name");
  jb_str(b, c->thread_name[0] ? c->thread_name : NULL);
  jb_key(b, "main");
  jb_raw(b, c->main_thread ? "true" : "false");
  jb_raw(b, "}");
  if (g_cr.report_json && g_cr.report_json[0]) {
    jb_raw(b, ",");
    jb_raw(b, g_cr.report_json);
  }

  jb_key(b, "cell");
  unsigned seq = atomic_load(&g_cr_running.seq);
  cr_running run = g_cr_running;
  if (seq & 1 || atomic_load(&g_cr_running.seq) != seq || run.count < 0) {
    jb_raw(b, "null");
  } else {
    jb_raw(b, "{");
    jb_key(b, "execution_count");
    jb_int(b, run.count);
    jb_key(b, "cell_id");
    jb_str(b, run.cell_id[0] ? run.cell_id : NULL);
    jb_key(b, "running");
    jb_raw(b, run.running ? "true" : "false");
    jb_raw(b, "}");
  }
  jb_key(b, "python_module");
  jb_str(b, g_cr.python_module);

  /* Native frames innermost first; at each interpreter frame, the Python
   * frames it was running (up to the one entered from C). */
  jb_key(b, "frames");
  jb_raw(b, "[");
  int py = 0;
  const size_t frame_room = 2 * CR_PATH + 1024; /* the largest frame written */
  for (int i = 0; i < c->nnative && jb_room(b, frame_room); i++) {
    if (i) jb_raw(b, ",");
    native_frame(b, &c->native[i]);
    if (in_eval(c->native[i].pc)) {
      while (py < c->npy && jb_room(b, frame_room)) {
        jb_raw(b, ",");
        python_frame(b, &c->py[py]);
        if (c->py[py++].entry) break;
      }
    }
  }
  for (; py < c->npy && jb_room(b, frame_room); py++) { /* the unwinder stopped early */
    if (c->nnative || py) jb_raw(b, ",");
    python_frame(b, &c->py[py]);
  }
  jb_raw(b, "]");
  jb_key(b, "python_frames_complete");
  jb_raw(b, c->py_failed ? "false" : "true");
  jb_key(b, "threads");
  jb_raw(b, "[]");

  jb_key(b, "cells");
  jb_raw(b, "[");
  unsigned total = atomic_load(&g_cr_ncells);
  unsigned n = total < CR_MAX_CELLS ? total : CR_MAX_CELLS;
  int first = 1;
  for (unsigned k = 0; k < n; k++) {
    const cr_cell_code *e = &g_cr_cells[(total - n + k) % CR_MAX_CELLS];
    unsigned s = atomic_load(&e->seq);
    if (s & 1) continue;
    cr_cell_code copy = *e;
    if (atomic_load(&e->seq) != s) continue;
    if (!jb_room(b, CR_PATH + CR_ID + 256)) break;
    if (!first) jb_raw(b, ",");
    first = 0;
    jb_raw(b, "{");
    jb_key(b, "kind");
    jb_str(b, copy.kind == CYSCOPE_CRASH_CELL_CYTHON ? "cython" : "python");
    jb_key(b, "path");
    jb_str(b, copy.path);
    jb_key(b, "execution_count");
    if (copy.count >= 0)
      jb_int(b, copy.count);
    else
      jb_raw(b, "null");
    jb_key(b, "cell_id");
    jb_str(b, copy.cell_id[0] ? copy.cell_id : NULL);
    jb_raw(b, "}");
  }
  jb_raw(b, "]");
  jb_key(b, "caught");
  jb_raw(b, caught ? "true" : "false");
}

void cr_report_finish(jbuf *b, const char *status, const char *message, const char *detail) {
  /* Written even into the reserve: the report must stay valid JSON. */
  static char tail[16384]; /* one handler runs at a time */
  jbuf t = {tail, 0, sizeof tail, 0};
  jb_raw(&t, ",\"truncated\":");
  jb_raw(&t, b->truncated ? "true" : "false");
  jb_raw(&t, ",\"tracer\":{\"name\":");
  jb_str(&t, g_cr.tracer_argv ? "gdb" : NULL);
  jb_raw(&t, ",\"status\":");
  jb_str(&t, status);
  jb_raw(&t, ",\"message\":");
  jb_str(&t, message && message[0] ? message : NULL);
  jb_raw(&t, ",\"detail\":");
  jb_str(&t, detail && detail[0] ? detail : NULL);
  jb_raw(&t, "}}\n");
  jb_close(b, tail);
}
