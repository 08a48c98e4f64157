/* Shown stacks in bulk: a recorded stack as the flamegraph shows it (cut
 * to the cell, frames the report does not show dropped), written as a key
 * of frame numbers, for many stacks in one call.
 *
 * Python decides what each raw frame is (its name, its cell, whether it is
 * the host's code) once per frame and notes it here; the per-stack walk,
 * which is what grows with a report (100,000 stacks of 10 to 30 frames),
 * runs in C. The rules are the ones of memory/_report.py (resolve_stack,
 * _trim), which keeps the Python version for the stacks this file hands
 * back: see docs/flamegraph.md. */
#include <pthread.h>
#include <string.h>

#include "memtrack_internal.h"

typedef struct note_slot {
  uint64_t id;
  int32_t line;
  int32_t kind; /* -1: empty */
  uint32_t number;
  uint32_t flags;
  uint32_t lib;
} note_slot;

static pthread_mutex_t g_notes_lock = PTHREAD_MUTEX_INITIALIZER;
static note_slot *g_notes;
/* A frame handed to Python as unknown and not noted yet. */
#define NOTE_PENDING 0x80000000u
static size_t g_notes_cap, g_notes_used;

/* Python frames differ by line within one code object, native ones by
 * address: every input bit must reach the slot's bits. */
static size_t note_hash(uint64_t id, int32_t line, int32_t kind, size_t cap) {
  uint64_t h = id * 0x9e3779b97f4a7c15ull ^ ((uint64_t)(uint32_t)line << 8 | (uint64_t)kind);
  h ^= h >> 29;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 32;
  return (size_t)h & (cap - 1);
}

static note_slot *note_find(uint64_t id, int32_t line, int32_t kind) { /* notes lock held */
  if (!g_notes_cap) return NULL;
  for (size_t j = note_hash(id, line, kind, g_notes_cap);; j = (j + 1) & (g_notes_cap - 1)) {
    note_slot *s = &g_notes[j];
    if (s->kind < 0) return NULL;
    if (s->id == id && s->line == line && s->kind == kind) return s;
  }
}

static void note_put(note_slot *table, size_t cap, const note_slot *n) {
  for (size_t j = note_hash(n->id, n->line, n->kind, cap);; j = (j + 1) & (cap - 1)) {
    note_slot *s = &table[j];
    if (s->kind < 0 || (s->id == n->id && s->line == n->line && s->kind == n->kind)) {
      *s = *n;
      return;
    }
  }
}

static int notes_reserve(size_t more) { /* notes lock held; at most half full */
  if ((g_notes_used + more) * 2 <= g_notes_cap) return 1;
  size_t cap = g_notes_cap ? g_notes_cap : 4096;
  while ((g_notes_used + more) * 2 > cap) cap *= 2;
  note_slot *table = ct_os_alloc(cap * sizeof(note_slot));
  if (!table) return 0;
  for (size_t j = 0; j < cap; j++) table[j].kind = -1;
  for (size_t j = 0; j < g_notes_cap; j++)
    if (g_notes[j].kind >= 0) note_put(table, cap, &g_notes[j]);
  if (g_notes) ct_os_free(g_notes, g_notes_cap * sizeof(note_slot));
  g_notes = table;
  g_notes_cap = cap;
  return 1;
}

int cyscope_mem_note_frames(const cyscope_mem_frame_note *notes, size_t n) {
  if (n && !notes) return CYSCOPE_EINVAL;
  for (size_t i = 0; i < n; i++)
    if (notes[i].frame.kind < 0) return CYSCOPE_EINVAL;
  pthread_mutex_lock(&g_notes_lock);
  int rc = CYSCOPE_ENOMEM;
  if (notes_reserve(n)) {
    for (size_t i = 0; i < n; i++) {
      const cyscope_mem_frame_note *in = &notes[i];
      note_slot s = {in->frame.id, in->frame.line, in->frame.kind, in->number, in->flags, in->lib};
      if (!note_find(s.id, s.line, s.kind)) g_notes_used++;
      note_put(g_notes, g_notes_cap, &s);
    }
    rc = CYSCOPE_OK;
  }
  pthread_mutex_unlock(&g_notes_lock);
  return rc;
}

int cyscope_mem_forget_frame_notes(void) {
  pthread_mutex_lock(&g_notes_lock);
  if (g_notes) ct_os_free(g_notes, g_notes_cap * sizeof(note_slot));
  g_notes = NULL;
  g_notes_cap = g_notes_used = 0;
  pthread_mutex_unlock(&g_notes_lock);
  return CYSCOPE_OK;
}

/* One stack's shown frames (notes), outermost first, or -1 when a frame has
 * no note yet (it is added to `unknown` if there is room, else *more is
 * set). Notes lock held. */
static int shown_frames(const cyscope_mem_frame *raw, uint32_t nraw, uint32_t options,
                        const note_slot **out, cyscope_mem_frame *unknown, size_t unknown_cap,
                        size_t *n_unknown, int *more) {
  const int native = (options & CYSCOPE_KEYS_NATIVE) != 0;
  const note_slot *py[MAX_FRAMES], *nat[MAX_FRAMES];
  int npy = 0, nnat = 0, missing = 0, stopped = 0;
  /* Raw frames are innermost first. Native frames are read up to the
   * interpreter's own loop (native mode) and kept if the report shows them;
   * every Python frame is kept. */
  for (uint32_t i = 0; i < nraw; i++) {
    const cyscope_mem_frame *f = &raw[i];
    int python = f->kind == CYSCOPE_FRAME_PYTHON;
    if (!python && stopped) continue;
    /* A native frame's note depends on the mode (native mode names frames
     * that the default mode does not look up): the mode is its `line`. */
    int32_t line = python ? f->line : native;
    const note_slot *s = note_find(f->id, line, f->kind);
    if (!s || (s->flags & NOTE_PENDING)) {
      /* (A placeholder can grow the table and move the notes py[] and
       * nat[] point to: they are not read again, the stack has no key.) */
      /* Asked for once: a placeholder keeps the frame out of the list of
       * unknown frames for the rest of the call. */
      if (!s && *n_unknown < unknown_cap && notes_reserve(1)) {
        note_slot pending = {f->id, line, f->kind, 0, NOTE_PENDING, 0};
        note_put(g_notes, g_notes_cap, &pending);
        g_notes_used++;
        unknown[*n_unknown].id = f->id;
        unknown[*n_unknown].line = line;
        unknown[*n_unknown].kind = f->kind;
        ++*n_unknown;
      } else if (!s) {
        *more = 1; /* past the list's room: the next call asks for it */
      }
      missing = 1;
      continue;
    }
    if (python) {
      py[npy++] = s;
    } else if (native && (s->flags & CYSCOPE_NOTE_EVAL_LOOP)) {
      stopped = 1;
    } else if (!(s->flags & CYSCOPE_NOTE_HIDDEN)) {
      nat[nnat++] = s;
    }
  }
  if (missing) return -1;
  int n = 0;
  for (int i = npy - 1; i >= 0; i--) out[n++] = py[i];
  for (int i = nnat - 1; i >= 0; i--) out[n++] = nat[i];
  if (!(options & CYSCOPE_KEYS_TRIM)) return n;
  /* Start at the cell: its innermost top-level code, else the outermost
   * frame of any cell, else after the host's frames (keeping the innermost
   * Python frame); import machinery is dropped wherever it is. */
  int start = -1;
  for (int i = n - 1; i >= 0 && start < 0; i--)
    if (out[i]->flags & CYSCOPE_NOTE_CELL_CODE) start = i;
  for (int i = 0; i < n && start < 0; i++)
    if (out[i]->flags & CYSCOPE_NOTE_IN_CELL) start = i;
  if (start < 0) {
    int last_py = npy - 1; /* Python frames come first */
    start = 0;
    while (start < last_py && (out[start]->flags & CYSCOPE_NOTE_HOST)) start++;
  }
  int kept = 0;
  for (int i = start; i < n; i++)
    if (!(out[i]->flags & CYSCOPE_NOTE_IMPORT)) out[kept++] = out[i];
  return kept;
}

/* Do two neighbouring frames make a run that collapses into one? */
static int collapses(const note_slot *a, const note_slot *b) {
  return (a->flags & CYSCOPE_NOTE_LIBRARY) && (b->flags & CYSCOPE_NOTE_LIBRARY) && a->lib == b->lib;
}

static void put_be32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

int cyscope_mem_shown_keys(const uint32_t *ids, size_t n, uint32_t options, uint8_t *keys,
                           size_t keys_cap, uint32_t *ends, uint8_t *fallback,
                           cyscope_mem_frame *unknown, size_t unknown_cap, size_t *n_unknown,
                           size_t *used) {
  if ((n && (!ids || !ends || !fallback)) || !n_unknown || !used || (keys_cap && !keys) ||
      (unknown_cap && !unknown))
    return CYSCOPE_EINVAL;
  *n_unknown = 0;
  size_t at = 0;
  int rc = CYSCOPE_OK, more = 0;
  const note_slot *shown[MAX_FRAMES];
  /* Stacks are found in batches (one lock for many) and read ahead of use:
   * a report's stacks lie all over the stack arena, and waiting for each
   * one's memory was most of the time. */
  enum { BATCH = 256, AHEAD = 8 };
  const cyscope_mem_frame *views[BATCH];
  uint32_t counts[BATCH];
  pthread_mutex_lock(&g_notes_lock);
  for (size_t i = 0; i < n; i++) {
    size_t b = i % BATCH;
    if (b == 0) stack_views(ids + i, n - i < BATCH ? n - i : BATCH, views, counts);
    if (b + AHEAD < BATCH && i + AHEAD < n && views[b + AHEAD])
      __builtin_prefetch(views[b + AHEAD]);
    fallback[i] = 1; /* until a key is written */
    ends[i] = (uint32_t)(at < keys_cap ? at : keys_cap);
    /* Stack 0 (the merged rest of a capped report) has no frames here. */
    if (!views[b]) continue;
    int k =
        shown_frames(views[b], counts[b], options, shown, unknown, unknown_cap, n_unknown, &more);
    if (k < 0) continue;
    int runs = 0;
    if (options & CYSCOPE_KEYS_COLLAPSE)
      for (int j = 1; j < k && !runs; j++) runs = collapses(shown[j - 1], shown[j]);
    if (runs) continue; /* a collapsed run is numbered by Python */
    size_t need = at + 4 * (size_t)k;
    if (need > keys_cap || need > UINT32_MAX) {
      rc = CYSCOPE_ENOMEM;
      at = need;
      continue;
    }
    for (int j = 0; j < k; j++) {
      int from = (options & CYSCOPE_KEYS_INVERTED) ? k - 1 - j : j;
      put_be32(keys + at + 4 * (size_t)j, shown[from]->number);
    }
    at = need;
    ends[i] = (uint32_t)at;
    fallback[i] = 0;
  }
  pthread_mutex_unlock(&g_notes_lock);
  *used = at;
  if (more) *n_unknown = unknown_cap + 1; /* room was short: ask again after noting these */
  return rc;
}

/* ------------------------------------------------------ sorting and grouping */
typedef struct key_set {
  const uint8_t *data;
  const uint32_t *starts, *ends;
} key_set;

/* Bytes order, a key before every longer key it starts (Python's order of
 * bytes, which the payload's bisections rely on). */
static int key_cmp(const key_set *k, uint32_t a, uint32_t b) {
  uint32_t la = k->ends[a] - k->starts[a], lb = k->ends[b] - k->starts[b];
  uint32_t m = la < lb ? la : lb, i = 0;
  const uint8_t *pa = k->data + k->starts[a], *pb = k->data + k->starts[b];
  /* Eight bytes at a time (keys are short and share long prefixes: a call
   * to memcmp per comparison cost more than the comparing). */
  for (; i + 8 <= m; i += 8) {
    uint64_t x, y;
    memcpy(&x, pa + i, 8);
    memcpy(&y, pb + i, 8);
    if (x != y) {
      x = __builtin_bswap64(x);
      y = __builtin_bswap64(y);
      return x < y ? -1 : 1;
    }
  }
  for (; i < m; i++)
    if (pa[i] != pb[i]) return pa[i] < pb[i] ? -1 : 1;
  return (la > lb) - (la < lb);
}

/* Stable merge sort of idx[0..n) with tmp as scratch. */
static void merge_sort(const key_set *k, uint32_t *idx, uint32_t *tmp, size_t n) {
  if (n <= 16) {
    for (size_t i = 1; i < n; i++) {
      uint32_t v = idx[i];
      size_t j = i;
      while (j > 0 && key_cmp(k, idx[j - 1], v) > 0) {
        idx[j] = idx[j - 1];
        j--;
      }
      idx[j] = v;
    }
    return;
  }
  size_t half = n / 2;
  merge_sort(k, idx, tmp, half);
  merge_sort(k, idx + half, tmp, n - half);
  if (key_cmp(k, idx[half - 1], idx[half]) <= 0) return; /* already in order */
  memcpy(tmp, idx, half * sizeof(*idx));
  size_t a = 0, b = half, o = 0;
  while (a < half && b < n) idx[o++] = key_cmp(k, idx[b], tmp[a]) < 0 ? idx[b++] : tmp[a++];
  while (a < half) idx[o++] = tmp[a++];
}

int cyscope_keys_group(const uint8_t *data, size_t data_len, const uint32_t *starts,
                       const uint32_t *ends, size_t n, const double *columns, size_t ncolumns,
                       uint32_t *order, uint32_t *scratch, uint32_t *firsts, double *sums,
                       size_t *ngroups) {
  if (!ngroups || (n && (!data || !starts || !ends || !order || !scratch || !firsts)) ||
      (n && ncolumns && (!columns || !sums)) || n > UINT32_MAX)
    return CYSCOPE_EINVAL;
  for (size_t i = 0; i < n; i++)
    if (ends[i] < starts[i] || ends[i] > data_len) return CYSCOPE_EINVAL;
  key_set k = {data, starts, ends};
  for (size_t i = 0; i < n; i++) order[i] = (uint32_t)i;
  merge_sort(&k, order, scratch, n);
  /* sums[c * (n + 1) + g]: column c's total over the groups before g. */
  size_t g = 0;
  for (size_t c = 0; c < ncolumns; c++) sums[c * (n + 1)] = 0.0;
  for (size_t i = 0; i < n; i++) {
    if (i == 0 || key_cmp(&k, order[i - 1], order[i]) != 0) {
      if (i) g++;
      firsts[g] = order[i];
      for (size_t c = 0; c < ncolumns; c++) sums[c * (n + 1) + g + 1] = sums[c * (n + 1) + g];
    }
    for (size_t c = 0; c < ncolumns; c++) sums[c * (n + 1) + g + 1] += columns[c * n + order[i]];
  }
  *ngroups = n ? g + 1 : 0;
  return CYSCOPE_OK;
}
