/* The calling thread's Python stack, read straight from interpreter memory
 * (offsets from cyscope_py_layout), and the registry that turns code
 * objects into stable (filename, name, first line) entries. Nothing here
 * calls code that could allocate, except PyCode_Addr2Line (under the
 * recursion guard). */
#include <string.h>

#include "memtrack_internal.h"

/* Python interpreter entry points, resolved from the hosting process when
 * there is one. Weak: the native tests run without Python. Default
 * visibility: a hidden weak reference would be bound to 0 at link time. */
#pragma GCC visibility push(default)
extern void *PyGILState_GetThisThreadState(void) __attribute__((weak));
extern int Py_IsInitialized(void) __attribute__((weak));
extern int PyCode_Addr2Line(void *code, int addr) __attribute__((weak));
extern char PyCode_Type[] __attribute__((weak));
#pragma GCC visibility pop

static cyscope_py_layout g_py;
static _Atomic int g_py_enabled;

/* ----------------------------------------------------- Python code registry */
typedef struct code_ent {
  uintptr_t code, filename_obj, name_obj;
  int32_t firstlineno;
  const char *filename, *name;
} code_ent;
static code_ent *g_codes; /* g_codes[index], index >= 1 */
static size_t g_ncodes = 1, g_codes_cap;
static uint32_t *g_code_slots; /* open addressing: code ptr -> index */
static size_t g_code_slots_cap;

static const char *copy_unicode(uintptr_t obj) {
  if (!obj) return "?";
  uint32_t state = *(const uint32_t *)(obj + (uintptr_t)g_py.unicode_state);
  int compact = (state >> 5) & 1, ascii = (state >> 6) & 1;
  const char *src = NULL;
  size_t len = 0;
  if (compact && ascii) {
    len = (size_t) * (const int64_t *)(obj + (uintptr_t)g_py.unicode_length);
    src = (const char *)(obj + (uintptr_t)g_py.unicode_ascii_data);
  } else if (compact) {
    /* non-ASCII: only if CPython already cached the UTF-8 form (no encode here). */
    src = *(const char *const *)(obj + (uintptr_t)g_py.unicode_utf8);
    if (src) len = (size_t) * (const int64_t *)(obj + (uintptr_t)g_py.unicode_utf8 - 8);
  }
  if (!src) return "<non-ascii>";
  if (len > 4096) len = 4096;
  char *d = arena_alloc(len + 1);
  if (!d) return "?";
  memcpy(d, src, len);
  d[len] = 0;
  return d;
}

uint32_t code_intern(uintptr_t code) { /* table lock held */
  uintptr_t fn = *(const uintptr_t *)(code + (uintptr_t)g_py.code_filename);
  uintptr_t nm = *(const uintptr_t *)(code + (uintptr_t)g_py.code_name);
  int32_t first = *(const int32_t *)(code + (uintptr_t)g_py.code_firstlineno);
  if (g_code_slots_cap) {
    size_t j = slot_of(code, g_code_slots_cap);
    for (uint32_t idx; (idx = g_code_slots[j]) != 0; j = (j + 1) & (g_code_slots_cap - 1)) {
      code_ent *e = &g_codes[idx];
      if (e->code != code) continue;
      /* A freed code object's address can be reused: check identity. */
      if (e->filename_obj == fn && e->name_obj == nm && e->firstlineno == first) return idx;
      e->code = 0; /* stale: forget, add a fresh entry */
    }
  }
  /* The stack arena is full: no new stack will be kept either, so no new
   * code entry (the registry stays bounded with it). */
  if (arena_refused()) return 0;
  code_ent *codes =
      ct_os_grow(g_codes, &g_codes_cap, g_ncodes, g_ncodes + 1, sizeof(code_ent), 4096);
  if (!codes) return 0;
  g_codes = codes;
  if (g_ncodes * 2 > g_code_slots_cap) {
    size_t cap = g_code_slots_cap ? g_code_slots_cap * 2 : 8192;
    uint32_t *s = ct_os_alloc(cap * sizeof(uint32_t));
    if (!s) return 0;
    for (size_t i = 1; i < g_ncodes; i++) {
      if (!g_codes[i].code) continue;
      size_t j = slot_of(g_codes[i].code, cap);
      while (s[j]) j = (j + 1) & (cap - 1);
      s[j] = (uint32_t)i;
    }
    if (g_code_slots) ct_os_free(g_code_slots, g_code_slots_cap * sizeof(uint32_t));
    g_code_slots = s;
    g_code_slots_cap = cap;
  }
  uint32_t idx = (uint32_t)g_ncodes++;
  code_ent *e = &g_codes[idx];
  e->code = code;
  e->filename_obj = fn;
  e->name_obj = nm;
  e->firstlineno = first;
  e->filename = copy_unicode(fn);
  e->name = copy_unicode(nm);
  size_t j = slot_of(code, g_code_slots_cap);
  while (g_code_slots[j]) j = (j + 1) & (g_code_slots_cap - 1);
  g_code_slots[j] = idx;
  return idx;
}

int code_info(uint64_t idx, const char **filename, const char **name, int32_t *firstlineno) {
  spin_lock(&g_table_lock);
  int rc = CYSCOPE_OK;
  if (idx == 0 || idx >= g_ncodes) {
    rc = CYSCOPE_EINVAL;
  } else {
    if (filename) *filename = g_codes[idx].filename;
    if (name) *name = g_codes[idx].name;
    if (firstlineno) *firstlineno = g_codes[idx].firstlineno;
  }
  spin_unlock(&g_table_lock);
  return rc;
}

uint64_t codes_tracker_bytes(void) { /* table lock held */
  return g_codes_cap * sizeof(code_ent) + g_code_slots_cap * 4;
}

int python_set_layout(const cyscope_py_layout *layout) {
  if (!layout) {
    atomic_store(&g_py_enabled, 0);
    return CYSCOPE_OK;
  }
  if (layout->size < sizeof(cyscope_py_layout)) return CYSCOPE_EINVAL;
  if ((layout->ts_frame < 0) == (layout->ts_cframe < 0) || layout->object_type < 0)
    return CYSCOPE_EINVAL;
  if (!PyGILState_GetThisThreadState || !Py_IsInitialized || !PyCode_Addr2Line || !PyCode_Type)
    return CYSCOPE_ESTATE;
  atomic_store(&g_py_enabled, 0);
  spin_lock(&g_table_lock);
  g_py = *layout;
  spin_unlock(&g_table_lock);
  atomic_store(&g_py_enabled, 1);
  return CYSCOPE_OK;
}

/* ------------------------------------------------------------ frame reading */
/* The thread's own frame chain cannot change while it is inside malloc. */
uintptr_t py_top_frame(void) {
  if (!atomic_load_explicit(&g_py_enabled, RLX) || !PyGILState_GetThisThreadState ||
      !Py_IsInitialized || !Py_IsInitialized())
    return 0;
  uintptr_t ts = (uintptr_t)PyGILState_GetThisThreadState();
  if (!ts) return 0;
  if (g_py.ts_frame >= 0) return *(const uintptr_t *)(ts + (uintptr_t)g_py.ts_frame);
  uintptr_t cframe = *(const uintptr_t *)(ts + (uintptr_t)g_py.ts_cframe);
  if (!cframe) return 0;
  return *(const uintptr_t *)(cframe + (uintptr_t)g_py.cframe_current_frame);
}

/* Identity of the Python stack: every frame's address and position. Two
 * loads per frame, so the exact mode can tell "same stack as last time"
 * without decoding anything. */
uintptr_t py_key(uintptr_t f) {
  uint64_t h = 0x9E3779B97F4A7C15ull;
  for (int n = 0; f && n < MAX_FRAMES / 2; n++) {
    uintptr_t prev = *(const uintptr_t *)(f + (uintptr_t)g_py.frame_prev_instr);
    h = (h ^ f ^ (prev << 17)) * 0x100000001b3ull;
    f = *(const uintptr_t *)(f + (uintptr_t)g_py.frame_previous);
  }
  return (uintptr_t)h;
}

int walk_python(uintptr_t f, pyraw *out, int max) {
  int n = 0;
  while (f && n < max) {
    uintptr_t code = *(const uintptr_t *)(f + (uintptr_t)g_py.frame_code);
    uintptr_t prev = *(const uintptr_t *)(f + (uintptr_t)g_py.frame_prev_instr);
    char owner = *(const char *)(f + (uintptr_t)g_py.frame_owner);
    /* Entry shims owned by the C stack are not Python code; from 3.13 a
     * frame's executable need not be a code object at all. */
    int is_code =
        code && owner != g_py.owner_cstack &&
        *(const uintptr_t *)(code + (uintptr_t)g_py.object_type) == (uintptr_t)PyCode_Type;
    if (is_code) {
      uintptr_t first = code + (uintptr_t)g_py.code_adaptive;
      int complete = 1;
      if (g_py.code_firsttraceable >= 0 && owner != g_py.owner_generator) {
        /* Incomplete frames (being set up) have no meaningful position. */
        int traceable = *(const int32_t *)(code + (uintptr_t)g_py.code_firsttraceable);
        complete = prev >= first + 2 * (uintptr_t)traceable;
      }
      if (complete) {
        out[n].code = code;
        out[n].addr = (int)((intptr_t)prev - (intptr_t)first);
        n++;
      }
    }
    f = *(const uintptr_t *)(f + (uintptr_t)g_py.frame_previous);
  }
  return n;
}

void py_lines(const pyraw *py, int n, int *lines) {
  for (int i = 0; i < n; i++)
    lines[i] = PyCode_Addr2Line ? PyCode_Addr2Line((void *)py[i].code, py[i].addr) : 0;
}
