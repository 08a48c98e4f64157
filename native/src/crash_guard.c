/* `%%cython --catch-crashes`: guard(f, *args, **kwargs) calls f with a
 * jump point set (sigsetjmp); the crash handler, once the report is
 * written, jumps back to it (siglongjmp) and the guard raises the exception
 * type it was made with, as cysignals' sig_on() does for Sage.
 *
 * The jump skips every C frame between the guard and the crash without
 * running their cleanup, so it is taken only when no Python frame was
 * pushed in between (the interpreter's own state would be left pointing at
 * dead frames); the guard restores what the skipped C frames of the call
 * machinery change: the thread's GIL (a crash inside `with nogil`) and
 * CPython's C recursion counter. Memory the crashed code allocated stays
 * allocated, and whatever it was updating stays half-updated.
 *
 * This file uses the Python C API through weak symbols resolved from the
 * hosting interpreter (the library does not link libpython). */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stddef.h>

#include "crash_internal.h"

typedef ptrdiff_t py_ssize;
#pragma GCC visibility push(default)
extern py_ssize PyTuple_Size(void *) __attribute__((weak));
extern void *PyTuple_GetItem(void *, py_ssize) __attribute__((weak));
extern void *PyTuple_GetSlice(void *, py_ssize, py_ssize) __attribute__((weak));
extern void *PyObject_Call(void *, void *, void *) __attribute__((weak));
extern void Py_IncRef(void *) __attribute__((weak));
extern void Py_DecRef(void *) __attribute__((weak));
extern void PyErr_SetString(void *, const char *) __attribute__((weak));
extern void PyErr_SetObject(void *, void *) __attribute__((weak));
extern void *Py_BuildValue(const char *, ...) __attribute__((weak));
extern int PyGILState_Check(void) __attribute__((weak));
extern void PyEval_RestoreThread(void *) __attribute__((weak));
extern void *PyGILState_GetThisThreadState(void) __attribute__((weak));
extern void *PyCFunction_NewEx(void *, void *, void *) __attribute__((weak));
extern void *PyExc_TypeError __attribute__((weak));
#pragma GCC visibility pop

struct cr_catch {
  sigjmp_buf env;
  cr_catch *prev;
  void *tstate;
  uintptr_t pyframe; /* the thread's Python frame when the guard was entered */
  int32_t recursion; /* CPython's recursion_remaining then */
  int sig;
  char report[CR_PATH + 96];
};

/* initial-exec: reading it from the signal handler must not allocate. */
static __thread cr_catch *t_catch __attribute__((tls_model("initial-exec")));
static void *g_exc_type;

cr_catch *cr_catch_current(void) { return t_catch; }

static uintptr_t current_pyframe(void *tstate) {
  const cyscope_crash_py_layout *L = &g_cr_py;
  uintptr_t cframe = 0, f = 0;
  if (!tstate || cr_read_mem((uintptr_t)tstate + (uintptr_t)L->ts_cframe, &cframe, sizeof cframe) ||
      cr_read_mem(cframe + (uintptr_t)L->cframe_current_frame, &f, sizeof f))
    return 0;
  return f;
}

int cr_catch_eligible(cr_catch *k) {
  if (!k || !atomic_load(&g_cr_py_enabled) || !PyGILState_GetThisThreadState) return 0;
  void *tstate = PyGILState_GetThisThreadState();
  return tstate == k->tstate && current_pyframe(tstate) == k->pyframe;
}

void cr_catch_jump(cr_catch *k, int sig, const char *report_path) {
  k->sig = sig;
  cr_copy(k->report, sizeof k->report, report_path);
  siglongjmp(k->env, 1);
}

static int32_t *recursion_slot(void *tstate) {
  int32_t off = g_cr_py.ts_recursion_remaining;
  return off > 0 && tstate ? (int32_t *)((char *)tstate + off) : NULL;
}

static void *guard_call(void *self, void *args, void *kwargs) {
  (void)self;
  py_ssize n = PyTuple_Size(args);
  if (n < 1) {
    PyErr_SetString(PyExc_TypeError, "guard(f, *args, **kwargs): f is missing");
    return NULL;
  }
  void *fn = PyTuple_GetItem(args, 0);
  void *volatile rest = PyTuple_GetSlice(args, 1, n);
  if (!rest) return NULL;
  cr_catch k;
  k.prev = t_catch;
  k.tstate = PyGILState_GetThisThreadState();
  k.pyframe = atomic_load(&g_cr_py_enabled) ? current_pyframe(k.tstate) : 0;
  int32_t *slot = recursion_slot(k.tstate);
  k.recursion = slot ? *slot : 0;
  k.sig = 0;
  k.report[0] = 0;
  if (sigsetjmp(k.env, 1) != 0) {
    t_catch = k.prev;
    if (!PyGILState_Check()) PyEval_RestoreThread(k.tstate);
    if (slot) *slot = k.recursion;
    Py_DecRef(rest);
    void *value = Py_BuildValue("(is)", k.sig, k.report);
    if (value) {
      PyErr_SetObject(g_exc_type, value);
      Py_DecRef(value);
    }
    return NULL;
  }
  t_catch = &k;
  void *result = PyObject_Call(fn, rest, kwargs);
  t_catch = k.prev;
  Py_DecRef(rest);
  return result;
}

/* PyMethodDef, spelled out (no Python.h here). */
static struct {
  const char *name;
  void *meth;
  int flags;
  const char *doc;
} g_guard_def = {"guard", (void *)guard_call, 0x0001 | 0x0002 /* VARARGS | KEYWORDS */,
                 "guard(f, *args, **kwargs): call f; a fatal signal inside it raises instead of "
                 "killing the process (cyscope's --catch-crashes)."};

CYSCOPE_API int cyscope_crash_make_guard(void *exception_type, void **function) {
  if (!exception_type || !function) return CYSCOPE_EINVAL;
  if (!PyTuple_Size || !PyTuple_GetItem || !PyTuple_GetSlice || !PyObject_Call || !Py_IncRef ||
      !Py_DecRef || !PyErr_SetString || !PyErr_SetObject || !Py_BuildValue || !PyGILState_Check ||
      !PyEval_RestoreThread || !PyGILState_GetThisThreadState || !PyCFunction_NewEx ||
      !&PyExc_TypeError)
    return CYSCOPE_ESTATE;
  if (!g_exc_type) {
    Py_IncRef(exception_type); /* kept for the life of the process */
    g_exc_type = exception_type;
  }
  void *f = PyCFunction_NewEx(&g_guard_def, NULL, NULL);
  if (!f) return CYSCOPE_ENOMEM;
  *function = f;
  return CYSCOPE_OK;
}
