/* Native tests of shown stacks in bulk (src/shown_keys.c): keys built from
 * frame notes, the frames asked for, the mode rules (hidden frames, the
 * interpreter's loop, runs left to the caller), and sorting and grouping
 * keys. Python frames and the trimming to a cell are tested from Python
 * (test/python/test_flamegraph_stacks.py), against the Python rules. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cyscope.h"

static void *volatile sink;

static __attribute__((noinline)) void *site_inner(size_t n) { return sink = malloc(n); }
static __attribute__((noinline)) void *site_outer(size_t n) {
  void *p = site_inner(n);
  __asm__ volatile("" ::: "memory"); /* not a tail call: keep this frame */
  return p;
}

static uint32_t be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The one recorded stack of the test's allocation, and its frames. */
static uint32_t g_stack;
static cyscope_mem_frame g_frames[128];
static size_t g_nframes;

static void record_one_stack(void) {
  cyscope_mem_config c;
  memset(&c, 0, sizeof c);
  c.size = sizeof c;
  c.exact = 1;
  c.native = 1;
  CHECK_EQ(cyscope_mem_attach(&c), CYSCOPE_OK);
  void *p = site_outer(4000);
  cyscope_mem_stack_stat stats[64];
  size_t n = 0;
  CHECK_EQ(cyscope_mem_live_by_stack(0, UINT32_MAX, stats, 64, &n), CYSCOPE_OK);
  free(p);
  CHECK_EQ(cyscope_mem_detach(), CYSCOPE_OK);
  for (size_t i = 0; i < n; i++)
    if (stats[i].exact_bytes == 4000) g_stack = stats[i].stack_id;
  CHECK(g_stack != 0);
  CHECK_EQ(cyscope_mem_stack_frames(g_stack, g_frames, 128, &g_nframes), CYSCOPE_OK);
  CHECK(g_nframes >= 3); /* site_inner, site_outer, main at least */
}

typedef struct keys_out {
  uint8_t keys[4096];
  uint32_t ends[4];
  uint8_t fallback[4];
  cyscope_mem_frame unknown[256];
  size_t n_unknown, used;
  int rc;
} keys_out;

static keys_out *shown(const uint32_t *ids, size_t n, uint32_t options, size_t unknown_cap) {
  static keys_out o;
  memset(&o, 0xab, sizeof o);
  o.rc = cyscope_mem_shown_keys(ids, n, options, o.keys, sizeof o.keys, o.ends, o.fallback,
                                o.unknown, unknown_cap, &o.n_unknown, &o.used);
  return &o;
}

/* Note every frame `o` asked for: frame number = 100 + its place in the
 * stack (innermost 0), flags from `flags_of`. */
static void note_asked(const keys_out *o, uint32_t (*flags_of)(size_t place)) {
  cyscope_mem_frame_note notes[256];
  size_t n = o->n_unknown < 256 ? o->n_unknown : 256;
  for (size_t i = 0; i < n; i++) {
    size_t place = 0;
    while (place < g_nframes && g_frames[place].id != o->unknown[i].id) place++;
    CHECK(place < g_nframes);
    memset(&notes[i], 0, sizeof notes[i]);
    notes[i].frame = o->unknown[i];
    notes[i].number = 100 + (uint32_t)place;
    notes[i].flags = flags_of(place);
    notes[i].lib = 7;
  }
  CHECK_EQ(cyscope_mem_note_frames(notes, n), CYSCOPE_OK);
}

static uint32_t shown_all(size_t place) {
  (void)place;
  return 0;
}
static uint32_t loop_at_2(size_t place) { return place == 2 ? CYSCOPE_NOTE_EVAL_LOOP : 0; }
static uint32_t only_0_shown(size_t place) { return place == 0 ? 0 : CYSCOPE_NOTE_HIDDEN; }
static uint32_t one_library(size_t place) {
  (void)place;
  return CYSCOPE_NOTE_LIBRARY;
}

static void test_keys_of_native_stacks(void) {
  CHECK_EQ(cyscope_mem_forget_frame_notes(), CYSCOPE_OK);
  uint32_t ids[2] = {g_stack, 0};
  /* Nothing noted: every frame is asked for, once, and no key is made. */
  keys_out *o = shown(ids, 2, CYSCOPE_KEYS_NATIVE, 256);
  CHECK_EQ(o->rc, CYSCOPE_OK);
  CHECK_EQ(o->n_unknown, g_nframes);
  CHECK(o->fallback[0] && o->fallback[1]);
  for (size_t i = 0; i < o->n_unknown; i++) {
    CHECK_EQ(o->unknown[i].line, 1); /* native mode */
    for (size_t j = 0; j < i; j++) CHECK(o->unknown[i].id != o->unknown[j].id);
  }
  note_asked(o, shown_all);
  o = shown(ids, 2, CYSCOPE_KEYS_NATIVE, 256);
  CHECK_EQ(o->rc, CYSCOPE_OK);
  CHECK_EQ(o->n_unknown, 0);
  CHECK_EQ(o->fallback[0], 0);
  CHECK_EQ(o->fallback[1], 1); /* stack 0, the merged rest, is the caller's */
  CHECK_EQ(o->ends[0], 4 * g_nframes);
  CHECK_EQ(o->ends[1], o->ends[0]);
  CHECK_EQ(o->used, 4 * g_nframes);
  /* Outermost first: the innermost frame (place 0) last. */
  for (size_t j = 0; j < g_nframes; j++) CHECK_EQ(be32(o->keys + 4 * j), 100 + g_nframes - 1 - j);
  o = shown(ids, 1, CYSCOPE_KEYS_NATIVE | CYSCOPE_KEYS_INVERTED, 256);
  for (size_t j = 0; j < g_nframes; j++) CHECK_EQ(be32(o->keys + 4 * j), 100 + j);
  /* Too little room: the size needed comes back. */
  uint8_t small[4];
  uint32_t end = 0;
  uint8_t fb = 0;
  size_t nu = 0, used = 0;
  CHECK_EQ(cyscope_mem_shown_keys(ids, 1, CYSCOPE_KEYS_NATIVE, small, sizeof small, &end, &fb, NULL,
                                  0, &nu, &used),
           CYSCOPE_ENOMEM);
  CHECK_EQ(used, 4 * g_nframes);
  CHECK_EQ(fb, 1);
}

static void test_the_interpreter_loop_ends_native_frames(void) {
  CHECK_EQ(cyscope_mem_forget_frame_notes(), CYSCOPE_OK);
  uint32_t ids[1] = {g_stack};
  note_asked(shown(ids, 1, CYSCOPE_KEYS_NATIVE, 256), loop_at_2);
  keys_out *o = shown(ids, 1, CYSCOPE_KEYS_NATIVE, 256);
  CHECK_EQ(o->fallback[0], 0);
  CHECK_EQ(o->ends[0], 8); /* places 1 and 0: the loop and what calls it go */
  CHECK_EQ(be32(o->keys), 101);
  CHECK_EQ(be32(o->keys + 4), 100);
}

static void test_the_default_mode_notes_frames_apart(void) {
  CHECK_EQ(cyscope_mem_forget_frame_notes(), CYSCOPE_OK);
  uint32_t ids[1] = {g_stack};
  note_asked(shown(ids, 1, CYSCOPE_KEYS_NATIVE, 256), shown_all);
  /* Native mode's notes are not the default mode's: asked for again. */
  keys_out *o = shown(ids, 1, 0, 256);
  CHECK_EQ(o->n_unknown, g_nframes);
  CHECK_EQ(o->unknown[0].line, 0);
  note_asked(o, only_0_shown);
  o = shown(ids, 1, 0, 256);
  CHECK_EQ(o->fallback[0], 0);
  CHECK_EQ(o->ends[0], 4);
  CHECK_EQ(be32(o->keys), 100);
}

static void test_runs_to_collapse_are_left_to_the_caller(void) {
  CHECK_EQ(cyscope_mem_forget_frame_notes(), CYSCOPE_OK);
  uint32_t ids[1] = {g_stack};
  note_asked(shown(ids, 1, CYSCOPE_KEYS_NATIVE, 256), one_library);
  CHECK_EQ(shown(ids, 1, CYSCOPE_KEYS_NATIVE | CYSCOPE_KEYS_COLLAPSE, 256)->fallback[0], 1);
  keys_out *o = shown(ids, 1, CYSCOPE_KEYS_NATIVE, 256); /* not collapsing: a key */
  CHECK_EQ(o->fallback[0], 0);
  CHECK_EQ(o->ends[0], 4 * g_nframes);
}

static void test_a_short_list_of_unknown_frames_asks_again(void) {
  CHECK_EQ(cyscope_mem_forget_frame_notes(), CYSCOPE_OK);
  uint32_t ids[1] = {g_stack};
  size_t rounds = 0;
  for (;;) {
    keys_out *o = shown(ids, 1, CYSCOPE_KEYS_NATIVE, 1);
    if (o->n_unknown == 0) {
      CHECK_EQ(o->fallback[0], 0);
      break;
    }
    CHECK(o->n_unknown == 1 || o->n_unknown == 2); /* 2: one listed, more left */
    o->n_unknown = 1;
    note_asked(o, shown_all);
    if (++rounds > g_nframes) break;
  }
  CHECK_EQ(rounds, g_nframes);
}

/* The notes table grows (rehashing what it holds) and a frame noted again
 * takes its new note. */
static void test_many_notes(void) {
  CHECK_EQ(cyscope_mem_forget_frame_notes(), CYSCOPE_OK);
  uint32_t ids[1] = {g_stack};
  note_asked(shown(ids, 1, CYSCOPE_KEYS_NATIVE, 256), shown_all);
  enum { MANY = 20000 };
  static cyscope_mem_frame_note notes[MANY];
  memset(notes, 0, sizeof notes);
  for (int i = 0; i < MANY; i++) {
    notes[i].frame.id = (uint64_t)i;
    notes[i].frame.line = i % 7;
    notes[i].frame.kind = CYSCOPE_FRAME_PYTHON;
    notes[i].number = (uint32_t)i;
  }
  CHECK_EQ(cyscope_mem_note_frames(notes, MANY), CYSCOPE_OK);
  keys_out *o = shown(ids, 1, CYSCOPE_KEYS_NATIVE, 256);
  CHECK_EQ(o->n_unknown, 0);
  CHECK_EQ(o->fallback[0], 0);
  CHECK_EQ(be32(o->keys + 4 * (g_nframes - 1)), 100); /* the innermost, noted before */
  /* Noted again: the innermost frame now shows as 5. */
  cyscope_mem_frame_note again;
  memset(&again, 0, sizeof again);
  again.frame = g_frames[0];
  again.frame.line = 1;
  again.number = 5;
  CHECK_EQ(cyscope_mem_note_frames(&again, 1), CYSCOPE_OK);
  o = shown(ids, 1, CYSCOPE_KEYS_NATIVE, 256);
  CHECK_EQ(be32(o->keys + 4 * (g_nframes - 1)), 5);
}

static void test_bad_arguments(void) {
  size_t nu = 0, used = 0;
  uint32_t id = g_stack, end = 0;
  uint8_t fb = 0;
  CHECK_EQ(cyscope_mem_shown_keys(NULL, 1, 0, NULL, 0, &end, &fb, NULL, 0, &nu, &used),
           CYSCOPE_EINVAL);
  CHECK_EQ(cyscope_mem_shown_keys(&id, 1, 0, NULL, 0, &end, &fb, NULL, 0, NULL, &used),
           CYSCOPE_EINVAL);
  cyscope_mem_frame_note bad;
  memset(&bad, 0, sizeof bad);
  bad.frame.kind = -1;
  CHECK_EQ(cyscope_mem_note_frames(&bad, 1), CYSCOPE_EINVAL);
  CHECK_EQ(cyscope_mem_note_frames(NULL, 1), CYSCOPE_EINVAL);
}

static void test_group_sorts_and_merges_keys(void) {
  /* Keys "b", "a", "ab", "", "a", "b": sorted "", "a", "ab", "b". */
  const uint8_t data[] = "baaba";
  uint32_t starts[6] = {0, 1, 2, 0, 4, 0}, ends[6] = {1, 2, 4, 0, 5, 1};
  double columns[12] = {1, 2, 3, 4, 5, 6, /* second column */ 10, 20, 30, 40, 50, 60};
  uint32_t order[6], scratch[6], firsts[6];
  double sums[14];
  size_t groups = 0;
  CHECK_EQ(cyscope_keys_group(data, 5, starts, ends, 6, columns, 2, order, scratch, firsts, sums,
                              &groups),
           CYSCOPE_OK);
  CHECK_EQ(groups, 4);
  CHECK_EQ(firsts[0], 3);
  CHECK_EQ(firsts[1], 1); /* the first of the equal keys, in input order */
  CHECK_EQ(firsts[2], 2);
  CHECK_EQ(firsts[3], 0);
  const double want[5] = {0, 4, 4 + 2 + 5, 4 + 2 + 5 + 3, 21};
  for (int g = 0; g <= 4; g++) {
    CHECK(sums[g] == want[g]);
    CHECK(sums[7 + g] == 10 * want[g]);
  }
  /* A key past the data is refused. */
  ends[2] = 9;
  CHECK_EQ(cyscope_keys_group(data, 5, starts, ends, 6, columns, 2, order, scratch, firsts, sums,
                              &groups),
           CYSCOPE_EINVAL);
  CHECK_EQ(cyscope_keys_group(data, 5, starts, ends, 0, NULL, 0, NULL, NULL, NULL, NULL, &groups),
           CYSCOPE_OK);
  CHECK_EQ(groups, 0);
}

/* Many keys: the merge sort's order is bytes order and stable. */
static void test_group_of_many_keys(void) {
  enum { N = 5000, W = 3 };
  static uint8_t data[N * W];
  static uint32_t starts[N], ends[N], order[N], scratch[N], firsts[N];
  static double columns[N], sums[N + 1];
  unsigned seed = 12345;
  for (int i = 0; i < N; i++) {
    int len = 1 + (int)(rand_r(&seed) % W);
    starts[i] = (uint32_t)(i * W);
    ends[i] = starts[i] + (uint32_t)len;
    for (int j = 0; j < len; j++) data[i * W + j] = (uint8_t)(rand_r(&seed) % 4);
    columns[i] = 1.0;
  }
  size_t groups = 0;
  CHECK_EQ(cyscope_keys_group(data, sizeof data, starts, ends, N, columns, 1, order, scratch,
                              firsts, sums, &groups),
           CYSCOPE_OK);
  CHECK(groups > 1 && groups < N);
  CHECK(sums[groups] == N);
  int out_of_order = 0;
  for (size_t g = 1; g < groups; g++) {
    uint32_t a = firsts[g - 1], b = firsts[g];
    uint32_t la = ends[a] - starts[a], lb = ends[b] - starts[b];
    int c = memcmp(data + starts[a], data + starts[b], la < lb ? la : lb);
    if (c > 0 || (c == 0 && la >= lb)) out_of_order++;
  }
  CHECK_EQ(out_of_order, 0);
}

int main(void) {
  record_one_stack();
  RUN(test_keys_of_native_stacks);
  RUN(test_the_interpreter_loop_ends_native_frames);
  RUN(test_the_default_mode_notes_frames_apart);
  RUN(test_runs_to_collapse_are_left_to_the_caller);
  RUN(test_a_short_list_of_unknown_frames_asks_again);
  RUN(test_many_notes);
  RUN(test_bad_arguments);
  RUN(test_group_sorts_and_merges_keys);
  RUN(test_group_of_many_keys);
  CHECK_EQ(cyscope_mem_forget_frame_notes(), CYSCOPE_OK);
  return check_report();
}
