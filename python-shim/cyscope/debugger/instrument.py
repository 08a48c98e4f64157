"""Put breakpoint probes into the C file Cython generated for a cell, and describe them.

Each ``__Pyx_TraceLine`` site of the cell's own code becomes::

    if (unlikely(__cyscope_armed_M[K])) { <read the stack pointer>;
        if (unlikely(__cyscope_stop_F(K, sp, <the function's locals, by value>) < 0)) { <Cython's error exit> } }

so a disarmed probe costs one byte load and a branch the compiler lays out of line.
No local's address is taken on the hot path: the locals are passed by value to a cold,
never-inlined helper per function, which copies them into a snapshot struct on its own
stack and hands that to the runtime (``cyscope.debugger.runtime.probe_hit``) with the
GIL (``PyGILState_Ensure`` also covers ``nogil`` code and ``prange`` workers). A
negative answer (the kernel was interrupted while stopped) leaves through the very
error exit Cython wrote for the statement, so the cell ends with a clean traceback.

The runtime reads the snapshot with layouts the compiler computed (``offsetof`` and
``sizeof`` tables emitted at the end of the file), so nothing about C type sizes or
struct padding is guessed in Python. The probe map (:func:`instrument`'s second
result, stored as JSON beside the module) says what each site, function, local and
struct is.
"""

from __future__ import annotations

import re

from . import generated_c
from .generated_c import GeneratedC, Local

MAP_VERSION = 1
_CPP_OBJECT = re.compile(r"::|<")
_RECORD_REF = re.compile(r"\b(struct|union)\s+(\w+)")
_ERR_LABEL = re.compile(r"__PYX_ERR\(\s*\d+\s*,\s*\d+\s*,\s*(\w+)\s*\)")

# Armed byte bits (the runtime writes them; see runtime.py).
ARM_BREAKPOINT = 1
ARM_STEP = 2

PREAMBLE = r"""
/* ---- cyscope breakpoint probes (added by cyscope's %%cython debug build) ---- */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#if defined(__GLIBC__)
#include <execinfo.h>
#endif
#if defined(__GNUC__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wunused-function"
#endif
#if defined(__clang__)
#pragma clang diagnostic ignored "-Wuninitialized"
#pragma clang diagnostic ignored "-Wsometimes-uninitialized"
#endif
#define __CYSCOPE_EXPORT __attribute__((visibility("default")))
#define __CYSCOPE_COLD __attribute__((noinline, cold))

/* Step control, written by the runtime while the program is stopped. */
struct __cyscope_ctl_s {
  volatile int kind;               /* 0 none, 1 step in, 2 next, 3 step out */
  volatile int func;               /* index of the step's function in this module, or -1 */
  volatile uintptr_t sp;           /* stack pointer of the step's frame */
  volatile unsigned long thread;   /* PyThread_get_thread_ident() of the stepping thread */
};
#ifdef __cplusplus
extern "C" {
#endif
/* One byte per probe (bit 1: breakpoint, bit 2: step), padded so that a group of
   neighbouring probes can be tested with one 32-bit load. Static, so the hot path
   addresses it directly; the runtime finds it through the exported pointer. */
static volatile unsigned char __cyscope_armed[@NSITES@ + 4];
__CYSCOPE_EXPORT volatile unsigned char *__cyscope_armed_@TAG@ = __cyscope_armed;
/* Non-zero while any probe of this module is armed (or a step is on): functions entered
   from outside run their probed version; otherwise a copy without probes, so code that
   is not being debugged runs as the plain build does (vectorised loops included). */
static volatile int __cyscope_active;
__CYSCOPE_EXPORT volatile int *__cyscope_active_@TAG@ = &__cyscope_active;
__CYSCOPE_EXPORT struct __cyscope_ctl_s __cyscope_ctl_@TAG@;
#ifdef __cplusplus
}
#endif
static PyObject *__cyscope_hit_fn = NULL;
#if defined(__GNUC__)
typedef uint32_t __attribute__((may_alias)) __cyscope_u32;
#define __cyscope_any(site, mask) (*(const volatile __cyscope_u32 *)(__cyscope_armed + (site)) & (mask))
#else
#define __cyscope_any(site, mask) (__cyscope_armed[site])
#endif

/* The stack pointer of the probed frame: one value per physical frame, so a frame and
   the functions the compiler inlined into it compare equal. A macro, so that it reads
   the probed function's own stack pointer even at -O0. */
#if defined(__x86_64__) && defined(__GNUC__)
#define __CYSCOPE_SP(v) __asm__ volatile("mov %%rsp, %0" : "=r"(v))
#elif defined(__aarch64__) && defined(__GNUC__)
#define __CYSCOPE_SP(v) __asm__ volatile("mov %0, sp" : "=r"(v))
#else
#define __CYSCOPE_SP(v) ((v) = (uintptr_t)__builtin_frame_address(0))
#endif

/* While stepping, most probes on the way are not where the step ends: decide that here,
   without the GIL. 1 = skip this probe. */
static CYTHON_INLINE int __cyscope_skip(int site, uintptr_t sp, int func) {
  unsigned char armed = __cyscope_armed[site];
  int kind;
  if (armed & 1) return 0;
  if (__cyscope_ctl_@TAG@.thread != (unsigned long)PyThread_get_thread_ident()) return 1;
  kind = __cyscope_ctl_@TAG@.kind;
  if (kind == 1) return 0;
  if (sp > __cyscope_ctl_@TAG@.sp) return 0;
  if (sp == __cyscope_ctl_@TAG@.sp) return kind == 3 && func == __cyscope_ctl_@TAG@.func;
  return 1;
}

static __CYSCOPE_COLD int __cyscope_call(int site, uintptr_t sp, const void *snapshot) {
  PyGILState_STATE gil = PyGILState_Ensure();
  PyObject *trace = NULL, *result = NULL;
  int rc = 0;
#if defined(__GLIBC__)
  void *frames[64];
  int nframes = backtrace(frames, 64), k;
  trace = PyTuple_New(nframes > 0 ? nframes : 0);
  for (k = 0; trace && k < nframes; k++) {
    PyObject *pc = PyLong_FromSize_t((size_t)frames[k]);
    if (!pc) { Py_CLEAR(trace); break; }
    PyTuple_SET_ITEM(trace, k, pc);
  }
#else
  trace = PyTuple_New(0);
#endif
  if (!trace) goto unraisable;
  if (!__cyscope_hit_fn) {
    PyObject *runtime = PyImport_ImportModule("cyscope.debugger.runtime");
    if (!runtime) goto unraisable;
    __cyscope_hit_fn = PyObject_GetAttrString(runtime, "probe_hit");
    Py_DECREF(runtime);
    if (!__cyscope_hit_fn) goto unraisable;
  }
  result = PyObject_CallFunction(__cyscope_hit_fn, "sinnN", "@TAG@", site, (Py_ssize_t)sp, (Py_ssize_t)snapshot, trace);
  trace = NULL;
  if (result) {
    rc = PyLong_Check(result) ? (int)PyLong_AsLong(result) : 0;
    Py_DECREF(result);
    if (rc < 0 && !PyErr_Occurred()) rc = 0;
  } else if (PyErr_ExceptionMatches(PyExc_KeyboardInterrupt)) {
    /* A fresh one, without the runtime's frames: the traceback starts at the cell's line. */
    PyErr_Clear();
    PyErr_SetNone(PyExc_KeyboardInterrupt);
    rc = -1; /* the probe leaves through Cython's error exit */
  } else {
    goto unraisable;
  }
  PyGILState_Release(gil);
  return rc;
unraisable:
  /* The debugger must never break the program it watches: report and carry on. */
  Py_XDECREF(trace);
  PyErr_WriteUnraisable(__cyscope_hit_fn ? __cyscope_hit_fn : Py_None);
  PyGILState_Release(gil);
  return 0;
}
/* Called once, before the cell's module code: the runtime registers this module and
   arms its breakpoints, so that breakpoints on module-level lines stop too. */
static __CYSCOPE_COLD void __cyscope_loading(void) {
  PyObject *runtime = PyImport_ImportModule("cyscope.debugger.runtime"), *result = NULL;
  if (runtime) {
    result = PyObject_CallMethod(runtime, "module_loading", "sn", "@TAG@", (Py_ssize_t)&__cyscope_armed_@TAG@);
    Py_DECREF(runtime);
  }
  if (!result) {
    if (PyErr_ExceptionMatches(PyExc_ImportError)) PyErr_Clear(); /* no cyscope here: no debugger */
    else PyErr_WriteUnraisable(Py_None);
  }
  Py_XDECREF(result);
}
/* ---- end of the cyscope preamble ---- */
"""


def _is_cpp_object(ctype: str) -> bool:
    return bool(_CPP_OBJECT.search(ctype)) and "*" not in ctype


def _member(local: Local, index: int) -> str:
    return f"v{index}"


def _snapshot_struct(fn_index: int, locals_: list[Local]) -> str:
    members = []
    for k, local in enumerate(locals_):
        if _is_cpp_object(local.type):
            members.append(f"  const void *{_member(local, k)};")
        else:
            members.append("  " + local.declaration.format(name=_member(local, k)) + ";")
    if not members:
        members.append("  char unused;")
    return f"struct __cyscope_snap_{fn_index} {{\n" + "\n".join(members) + "\n};\n"


def _helper(fn_index: int, locals_: list[Local]) -> str:
    params = ["int site", "uintptr_t sp"]
    copies = []
    for k, local in enumerate(locals_):
        arg = f"a{k}"
        member = f"snap.{_member(local, k)}"
        if _is_cpp_object(local.type):
            params.append(f"const {local.type} &{arg}")
            copies.append(f"  {member} = (const void *)&{arg};")
        elif local.array:
            params.append(local.declaration.format(name=arg))
            copies.append(f"  memcpy({member}, {arg}, sizeof({member}));")
        else:
            params.append(local.declaration.format(name=arg))
            copies.append(f"  {member} = {arg};")
    return (
        f"static __CYSCOPE_COLD int __cyscope_stop_{fn_index}({', '.join(params)}) {{\n"
        f"  struct __cyscope_snap_{fn_index} snap;\n"
        f"  if (__cyscope_skip(site, sp, {fn_index})) return 0;\n"
        f"  memset(&snap, 0, sizeof(snap));\n" + "\n".join(copies) + "\n"
        "  return __cyscope_call(site, sp, &snap);\n"
        "}\n"
    )


def _probe(site: generated_c.Site, fn_index: int, locals_: list[Local]) -> str:
    args = ", ".join([f"{site.index}", "__cyscope_sp_"] + [loc.cname for loc in locals_])
    return (
        f"if (__cyscope_armed[{site.index}]) {{ "
        f"uintptr_t __cyscope_sp_; __CYSCOPE_SP(__cyscope_sp_); "
        f"if (unlikely(__cyscope_stop_{fn_index}({args}) < 0)) {{ {site.error_goto} }} }}"
    )


_COMMENT = re.compile(r"/\*.*?\*/", re.DOTALL)


def _groups(lines: list[str], sites: list[generated_c.Site]) -> list[list[generated_c.Site]]:
    """Runs of up to 4 probes with no code between them (a loop's header and the first
    line of its body, say): one 32-bit load tests the whole run."""
    groups: list[list[generated_c.Site]] = []
    for site in sites:
        if groups:
            last = groups[-1][-1]
            between = "\n".join(lines[last.c_line + 1 : site.c_line])
            if (
                len(groups[-1]) < 4
                and site.index == last.index + 1
                and site.function == last.function
                and not _COMMENT.sub("", between).strip()
            ):
                groups[-1].append(site)
                continue
        groups.append([site])
    return groups


def _probe_group(group: list[generated_c.Site], fn_index: int, locals_: list[Local]) -> str:
    first = group[0]
    inner = " ".join(_probe(site, fn_index, locals_) for site in group)
    if len(group) == 1:
        return f"{first.indent}if (unlikely(__cyscope_armed[{first.index}])) {{ {inner} }}"
    mask = "0x" + "ff" * len(group)
    return f"{first.indent}if (unlikely(__cyscope_any({first.index}, {mask}u))) {{ {inner} }}"


PLAIN_SUFFIX = "__cyscope_plain"
_PARAM_NAME = re.compile(r"(?:\(\s*\*\s*(\w+)\s*\))|(\w+)\s*(?:\[[^\]]*\]\s*)*$")


def _param_names(params: str) -> list[str] | None:
    names = []
    for part in generated_c.split_top_level(params):
        part = part.strip()
        if part in ("void", ""):
            continue
        if part == "...":
            return None
        m = _PARAM_NAME.search(part)
        if not m:
            return None
        names.append(m.group(1) or m.group(2))
    return names


def _copyable(fn: generated_c.Function) -> bool:
    """A function gets a copy without probes if it is an ordinary one-line-header function."""
    return (
        fn.kind == "function"
        and bool(fn.header)
        and not fn.static_locals
        and fn.header.split("(")[0].split()[-1].lstrip("*") == fn.cname
        and _param_names(fn.params) is not None
    )


def _rename_calls(text: str, plain: dict[str, str]) -> str:
    if not plain:
        return text
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, plain)) + r")\b(?=\s*\()")
    return pattern.sub(lambda m: plain[m.group(1)], text)


def _plain_copy(lines: list[str], fn: generated_c.Function, plain: dict[str, str]) -> tuple[str, str]:
    """(prototype, definition) of the function's copy without probes, calling copies."""
    body = "\n".join(lines[fn.header_line + 1 : fn.end_line + 1])
    header = _rename_calls(fn.header, {fn.cname: plain[fn.cname]})
    definition = header + " {\n" + _rename_calls(body, plain) + "\n"
    return header + ";", definition


def _dispatch(fn: generated_c.Function, plain: str) -> str:
    args = ", ".join(_param_names(fn.params) or [])
    returns_void = re.search(r"\bvoid\s*$", fn.header.split(fn.cname + "(")[0]) is not None
    call = f"{plain}({args})"
    go = f"{{ {call}; return; }}" if returns_void else f"return {call};"
    return f"  if (likely(!__cyscope_active)) {go}"


def _records_needed(parsed: GeneratedC, locals_: list[Local]) -> list[str]:
    """Struct/union types whose layout the runtime needs (reachable from the locals and globals)."""
    todo = []
    for local in locals_:
        todo += [f"{m.group(1)} {m.group(2)}" for m in _RECORD_REF.finditer(local.type)]
        base = local.type.replace("*", "").replace("const", "").strip()
        resolved = parsed.typedefs.get(base, base)
        todo.append(resolved if resolved in parsed.records else base)
    seen: list[str] = []
    while todo:
        ctype = todo.pop()
        if ctype in seen or ctype not in parsed.records:
            continue
        seen.append(ctype)
        for fld in parsed.records[ctype].fields:
            todo += [f"{m.group(1)} {m.group(2)}" for m in _RECORD_REF.finditer(fld.type)]
            base = fld.type.replace("*", "").replace("const", "").strip()
            todo.append(parsed.typedefs.get(base, base))
    return seen


def _layout(ctype: str, members: list[str]) -> str:
    parts = [f"sizeof({ctype})"]
    for m in members:
        parts += [f"offsetof({ctype}, {m})", f"sizeof((({ctype} *)0)->{m})"]
    return "{" + ", ".join(parts) + "}"


def _module_sites(parsed: GeneratedC) -> set[int]:
    """Sites of module code that are not statements of the cell: a ``def`` line (the
    function's definition at import; a breakpoint there means the function's entry) and
    the ``__test__`` dictionary Cython adds at the end."""
    def_lines = {f.def_line for f in parsed.functions if f.kind == "function" and f.def_line}
    skip = set()
    for site in parsed.sites:
        fn = parsed.functions[site.function]
        if fn.kind != "module":
            continue
        following = "\n".join(parsed.lines[site.c_line + 1 : site.c_line + 4])
        if site.line in def_lines or "__pyx_n_s_test" in following or "__pyx_n_s___test__" in following:
            skip.add(site.index)
    return skip


def instrument(c_text: str, pyx_name: str, module: str, keep_tracing: bool = False) -> tuple[str, dict]:
    """The C file with probes, and the probe map. ``module`` is the extension's name (a C
    identifier). With ``keep_tracing`` (the cell asked for ``linetrace``/``profile``
    itself) Cython's own trace hooks stay as they were next to the probes."""
    parsed = generated_c.parse(c_text, pyx_name)
    skipped = _module_sites(parsed)
    sites = [s for s in parsed.sites if s.index not in skipped]
    # Renumber the kept sites densely.
    for new, site in enumerate(sites):
        site.index = new
    by_function: dict[int, list] = {}
    for site in sites:
        by_function.setdefault(site.function, []).append(site)
    tag = module
    lines = list(parsed.lines)
    funcs_out = []
    layouts: list[str] = []
    record_layout: dict[str, int] = {}

    probed = [parsed.functions[i] for i in sorted(by_function)]
    index_of = {fn.cname: k for k, fn in enumerate(probed)}
    all_locals = [loc for fn in probed for loc in fn.locals] + parsed.module_globals
    records = _records_needed(parsed, all_locals)
    for ctype in records:
        record_layout[ctype] = len(layouts)
        layouts.append(_layout(ctype, [f.cname for f in parsed.records[ctype].fields]))

    plain = {fn.cname: fn.cname + PLAIN_SUFFIX for fn in probed if _copyable(fn)}
    copies = {fn.cname: _plain_copy(parsed.lines, fn, plain) for fn in probed if fn.cname in plain}
    inserts: dict[int, str] = {}
    after: dict[int, str] = {}
    for k, fn in enumerate(probed):
        locals_ = fn.locals
        snap_layout = len(layouts)
        layouts.append(_layout(f"struct __cyscope_snap_{k}", [f"v{j}" for j in range(len(locals_))] if locals_ else []))
        text = _snapshot_struct(k, locals_) + _helper(k, locals_)
        if k == 0:
            prototypes = "\n".join(proto for proto, _definition in copies.values())
            text = (
                PREAMBLE.replace("@TAG@", tag).replace("@NSITES@", str(max(len(sites), 1))) + prototypes + "\n" + text
            )
        if fn.cname in copies:
            text += copies[fn.cname][1]
            after[fn.body_start] = _dispatch(fn, plain[fn.cname])
        inserts[fn.header_line] = text
        groups = _groups(parsed.lines, by_function[fn.index])
        first_module_group = groups[0] if groups else None
        for group in groups:
            originals = [parsed.lines[site.c_line] for site in group]
            for site, original in zip(group, originals):
                lines[site.c_line] = original if keep_tracing else ""
            probe = _probe_group(group, k, locals_)
            if fn.kind == "module" and group is first_module_group:
                probe = f"{group[0].indent}__cyscope_loading();\n{probe}"
            lines[group[0].c_line] = probe + ("\n" + originals[0] if keep_tracing else "")
        funcs_out.append(
            {
                "cname": fn.cname,
                "name": fn.name,
                "kind": fn.kind,
                "def_line": fn.def_line,
                "snapshot_layout": snap_layout,
                "calls": sorted(index_of[c] for c in fn.calls if c in index_of),
                "locals": [_local_json(loc) for loc in locals_],
            }
        )
    out = []
    for i, text in enumerate(lines):
        if i in inserts:
            out.append(inserts[i])
        if i in after:
            out.append(after[i])
        out.append(text)
    tail = [
        "/* ---- cyscope probe tables ---- */",
        "#ifdef __cplusplus",
        'extern "C" {',
        "#endif",
    ]
    for k, layout in enumerate(layouts):
        tail.append(f"static const Py_ssize_t __cyscope_layout_{k}[] = {layout};")
    tail.append(
        f"__CYSCOPE_EXPORT const Py_ssize_t *__cyscope_layouts_{tag}[] = {{"
        + ", ".join(f"__cyscope_layout_{k}" for k in range(len(layouts)))
        + (", " if layouts else "")
        + "0};"
    )
    tail.append(
        f"__CYSCOPE_EXPORT const void *__cyscope_globals_{tag}[] = {{"
        + "".join(f"(const void *)&{g.cname}, " for g in parsed.module_globals)
        + "0};"
    )
    tail += ["#ifdef __cplusplus", "}", "#endif", ""]
    header = (
        []
        if keep_tracing
        else [
            "/* cyscope debug build: Cython's trace hooks are replaced by breakpoint probes. */",
            "#undef CYTHON_PROFILE",
            "#define CYTHON_PROFILE 0",
            "#undef CYTHON_TRACE",
            "#define CYTHON_TRACE 0",
            "#undef CYTHON_TRACE_NOGIL",
            "#define CYTHON_TRACE_NOGIL 0",
        ]
    )
    probe_map = {
        "v": MAP_VERSION,
        "module": module,
        "tag": tag,
        "sites": [[s.line, index_of[parsed.functions[s.function].cname], int(s.nogil)] for s in sites],
        "functions": funcs_out,
        "records": {
            ctype: {
                "kind": parsed.records[ctype].kind,
                "name": generated_c.cython_name(ctype.split()[-1]),
                "layout": record_layout[ctype],
                "fields": [_local_json(f) for f in parsed.records[ctype].fields],
            }
            for ctype in records
        },
        "typedefs": parsed.typedefs,
        "enums": {k: {str(v): name for v, name in vals.items()} for k, vals in parsed.enums.items()},
        "globals": [_local_json(g) for g in parsed.module_globals],
    }
    # After Cython's own first line ("/* Generated by Cython ... */"), which Cython checks
    # before it overwrites a C file.
    return "\n".join(out[:1] + header + out[1:] + tail), probe_map


def _local_json(local: Local) -> dict:
    return {"name": local.name, "cname": local.cname, "type": local.type, "array": local.array, "role": local.role}
