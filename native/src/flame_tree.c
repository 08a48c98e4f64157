/* The flamegraph's tree as a nested set, from sorted, distinct stack keys
 * and running sums: the same walk as flamegraph/payload.py's _emit and
 * _columns (which stay as the reference and the fallback; tests compare
 * the two), in C because a report of 100,000 stacks must build in well
 * under 200 ms.
 *
 * Every node is a range [lo, hi) of the sorted keys sharing their first
 * `depth` frames. A chain of nodes with one child each is emitted at once;
 * where the keys branch, the children are the runs of equal next frames,
 * widest first, and a parent's children under the threshold are merged
 * into one "other" node after the kept ones. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "memtrack_internal.h"

#define W 4 /* bytes per frame number in a key */

typedef struct tree_keys {
  const uint8_t *data;
  const uint32_t *starts, *ends, *firsts; /* key g is data[starts[firsts[g]] .. ends[firsts[g]]) */
} tree_keys;

static const uint8_t *key_at(const tree_keys *k, uint32_t g) {
  return k->data + k->starts[k->firsts[g]];
}
static uint32_t frames_in(const tree_keys *k, uint32_t g) {
  return (k->ends[k->firsts[g]] - k->starts[k->firsts[g]]) / W;
}
static int32_t frame_at(const uint8_t *key, uint32_t i) {
  const uint8_t *p = key + (size_t)i * W;
  return (int32_t)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]);
}
static int same_frame(const tree_keys *k, uint32_t a, uint32_t b, uint32_t i) {
  return memcmp(key_at(k, a) + (size_t)i * W, key_at(k, b) + (size_t)i * W, W) == 0;
}

/* Growable arrays in the tracker's own pages. */
typedef struct grow {
  void *p;
  size_t cap, used, elem;
} grow;

static void *grow_push(grow *g) {
  void *p = ct_os_grow(g->p, &g->cap, g->used, g->used + 1, g->elem, 1024);
  if (!p) return NULL;
  g->p = p;
  return (char *)p + g->elem * g->used++;
}
static void grow_free(grow *g) {
  if (g->p) ct_os_free(g->p, g->cap * g->elem);
  g->p = NULL;
  g->cap = g->used = 0;
}

typedef struct child {
  double width;
  uint32_t lo, hi;
} child;

/* Python's tuple order, descending: width, then lo, then hi. */
static int child_cmp_desc(const void *a, const void *b) {
  const child *x = a, *y = b;
  if (x->width != y->width) return x->width < y->width ? 1 : -1;
  if (x->lo != y->lo) return x->lo < y->lo ? 1 : -1;
  return (x->hi < y->hi) - (x->hi > y->hi);
}

typedef struct task {
  uint32_t lo, hi, depth;
  int32_t own;      /* an "other" node: its parent's own stack, or -1 */
  uint32_t kept_at; /* an "other" node: its parent's kept children, in g_kept */
  uint32_t kept_n;
  uint32_t merged; /* an "other" node: how many frames it merges; 0: a range */
} task;

typedef struct node {
  uint32_t lo, hi;
} node;

typedef struct merged_node {
  uint32_t node;
  int32_t own;
  uint32_t kept_at, kept_n;
} merged_node;

typedef struct tree {
  const tree_keys *k;
  const double *width;
  double threshold;
  size_t max_nodes, cap;
  int32_t *level, *frame;
  grow nodes, tasks, kept, merged, selfs, plain, children;
  size_t n;
} tree;

static int add_node(tree *t, uint32_t depth, uint32_t lo, uint32_t hi, int32_t frame) {
  if (t->n >= t->cap) return 0;
  node *nd = grow_push(&t->nodes);
  if (!nd) return 0;
  nd->lo = lo;
  nd->hi = hi;
  t->level[t->n] = (int32_t)depth;
  t->frame[t->n] = frame;
  t->n++;
  return 1;
}

static int push_task(tree *t, task v) {
  task *p = grow_push(&t->tasks);
  if (!p) return 0;
  *p = v;
  return 1;
}

/* Push `nc` children (widest first in c[]) so that the widest is taken first. */
static int push_children(tree *t, const child *c, size_t nc, uint32_t depth) {
  for (size_t j = nc; j-- > 0;)
    if (!push_task(t, (task){c[j].lo, c[j].hi, depth, -1, 0, 0, 0})) return 0;
  return 1;
}

static int push_other(tree *t, uint32_t lo, uint32_t hi, int32_t own, const child *kept,
                      size_t nkept, uint32_t how_many, uint32_t depth) {
  uint32_t at = (uint32_t)t->kept.used;
  for (size_t j = 0; j < nkept; j++) {
    child *c = grow_push(&t->kept);
    if (!c) return 0;
    *c = kept[j];
  }
  return push_task(t, (task){lo, hi, depth, own, at, (uint32_t)nkept, how_many});
}

static int64_t whole(double x) { return (int64_t)nearbyint(x); } /* Python's round() */

/* Returns 1 done, 0 out of memory or out of room, -1 more than max_nodes. */
static int walk(tree *t, uint32_t nkeys) {
  const tree_keys *k = t->k;
  const double *width = t->width;
  if (!add_node(t, 0, 0, nkeys, -1)) return 0;
  if (nkeys && !push_task(t, (task){0, nkeys, 0, -1, 0, 0, 0})) return 0;
  while (t->tasks.used) {
    task tk = ((task *)t->tasks.p)[--t->tasks.used];
    if (tk.merged) { /* an "other" node */
      uint32_t me = (uint32_t)t->n;
      if (!add_node(t, tk.depth, tk.lo, tk.hi, -2 - (int32_t)tk.merged)) return 0;
      if (tk.own >= 0 || tk.kept_n) {
        merged_node *m = grow_push(&t->merged);
        if (!m) return 0;
        *m = (merged_node){me, tk.own, tk.kept_at, tk.kept_n};
      } else {
        uint32_t *pl = grow_push(&t->plain);
        if (!pl) return 0;
        *pl = me;
      }
      continue;
    }
    uint32_t lo = tk.lo, hi = tk.hi, depth = tk.depth;
    uint32_t first_len = frames_in(k, lo), end;
    if (hi - lo == 1) {
      end = first_len;
    } else { /* the frames all keys of the range share: the first's and the last's */
      uint32_t m = first_len < frames_in(k, hi - 1) ? first_len : frames_in(k, hi - 1);
      end = depth;
      while (end < m && same_frame(k, lo, hi - 1, end)) end++;
    }
    if (depth) { /* the node and its chain */
      for (uint32_t d = depth; d <= end; d++)
        if (!add_node(t, d, lo, hi, frame_at(key_at(k, lo), d - 1))) return 0;
      if (t->n > t->max_nodes) return -1;
    } else if (end) { /* a chain below the root */
      if (!push_task(t, (task){lo, hi, 1, -1, 0, 0, 0})) return 0;
      continue;
    }
    uint32_t pos = lo;
    int32_t own = -1;
    if (first_len == end) { /* the stack that ends here */
      own = (int32_t)lo;
      uint32_t *sp = grow_push(&t->selfs);
      if (!sp) return 0;
      sp[0] = (uint32_t)t->n - 1; /* (node, stack) pairs, two entries */
      sp = grow_push(&t->selfs);
      if (!sp) return 0;
      sp[0] = lo;
      pos++;
    }
    if (pos >= hi) continue;
    /* The children: runs of keys with the same next frame. */
    t->children.used = 0;
    uint32_t all_end_below = 1;
    for (uint32_t p = pos; p < hi && all_end_below; p++) all_end_below = frames_in(k, p) == end + 1;
    for (uint32_t p = pos; p < hi;) {
      uint32_t e = p + 1;
      if (!all_end_below)
        while (e < hi && same_frame(k, p, e, end)) e++;
      child *c = grow_push(&t->children);
      if (!c) return 0;
      *c = (child){width[e] - width[p], p, e};
      p = e;
    }
    child *c = t->children.p;
    size_t nc = t->children.used;
    if (all_end_below && hi - pos > 8) {
      /* Every stack left ends one frame down: each is a child of its own.
       * Only the wide ones are kept; if fewer than two would be merged,
       * all are kept. */
      size_t wide = 0;
      for (size_t j = 0; j < nc; j++) wide += c[j].width >= t->threshold;
      if (wide == 0 && own < 0) {
        uint32_t me = (uint32_t)t->n;
        if (!add_node(t, end + 1, lo, hi, -2 - (int32_t)(hi - pos))) return 0;
        uint32_t *pl = grow_push(&t->plain);
        if (!pl) return 0;
        *pl = me;
        continue;
      }
      if (nc - wide < 2) {
        wide = nc;
      } else { /* the wide ones first, in order */
        size_t w = 0;
        for (size_t j = 0; j < nc; j++)
          if (c[j].width >= t->threshold) c[w++] = c[j];
      }
      qsort(c, wide, sizeof *c, child_cmp_desc);
      if (wide < nc && !push_other(t, lo, hi, own, c, wide, (uint32_t)(nc - wide), end + 1))
        return 0;
      if (!push_children(t, c, wide, end + 1)) return 0;
      continue;
    }
    size_t keep = nc;
    if (nc > 1) {
      qsort(c, nc, sizeof *c, child_cmp_desc);
      if (c[nc - 2].width < t->threshold) {
        size_t cut = nc - 2;
        while (cut > 0 && c[cut - 1].width < t->threshold) cut--;
        if (!push_other(t, lo, hi, own, c, cut, (uint32_t)(nc - cut), end + 1)) return 0;
        keep = cut;
      }
    }
    if (!push_children(t, c, keep, end + 1)) return 0;
  }
  return 1;
}

int cyscope_flame_tree(const uint8_t *data, size_t data_len, const uint32_t *starts,
                       const uint32_t *ends, const uint32_t *firsts, size_t nkeys,
                       const double *value, const double *count, const double *base,
                       const double *width, double threshold, size_t max_nodes, size_t cap,
                       int32_t *level, int32_t *frame, int64_t *out_value, int64_t *out_self,
                       int64_t *out_count, int64_t *out_base, size_t *n_nodes) {
  if (!n_nodes || !value || !count || !width || !level || !frame || !out_value || !out_self ||
      !out_count || (base && !out_base) || (nkeys && (!data || !starts || !ends || !firsts)) ||
      nkeys >= UINT32_MAX || cap < 1)
    return CYSCOPE_EINVAL;
  for (size_t g = 0; g < nkeys; g++) {
    uint32_t i = firsts[g];
    if (ends[i] < starts[i] || ends[i] > data_len || (ends[i] - starts[i]) % W)
      return CYSCOPE_EINVAL;
  }
  *n_nodes = 0;
  tree_keys k = {data, starts, ends, firsts};
  tree t;
  memset(&t, 0, sizeof t);
  t.k = &k;
  t.width = width;
  t.threshold = threshold;
  t.max_nodes = max_nodes;
  t.cap = cap;
  t.level = level;
  t.frame = frame;
  t.nodes.elem = sizeof(node);
  t.tasks.elem = sizeof(task);
  t.kept.elem = sizeof(child);
  t.merged.elem = sizeof(merged_node);
  t.selfs.elem = sizeof(uint32_t);
  t.plain.elem = sizeof(uint32_t);
  t.children.elem = sizeof(child);
  int done = walk(&t, (uint32_t)nkeys);
  int rc = CYSCOPE_OK;
  if (done == 1) {
    const node *nd = t.nodes.p;
    const double *sums[3] = {value, count, base};
    int64_t *cols[3] = {out_value, out_count, out_base};
    for (int c = 0; c < 3; c++) {
      if (!sums[c]) continue;
      const double *s = sums[c];
      int64_t *col = cols[c];
      for (size_t i = 0; i < t.n; i++) col[i] = whole(s[nd[i].hi]) - whole(s[nd[i].lo]);
      /* An "other" node: its parent's range, less the parent's own stack and
       * its kept children. */
      for (size_t m = 0; m < t.merged.used; m++) {
        const merged_node *mn = &((merged_node *)t.merged.p)[m];
        int64_t rest = col[mn->node];
        for (uint32_t j = 0; j < mn->kept_n; j++) {
          const child *kc = &((child *)t.kept.p)[mn->kept_at + j];
          rest -= whole(s[kc->hi]) - whole(s[kc->lo]);
        }
        if (mn->own >= 0) rest -= whole(s[mn->own + 1]) - whole(s[mn->own]);
        col[mn->node] = rest;
      }
    }
    memset(out_self, 0, t.n * sizeof *out_self);
    const uint32_t *sp = t.selfs.p;
    for (size_t j = 0; j + 1 < t.selfs.used; j += 2)
      out_self[sp[j]] = whole(value[sp[j + 1] + 1]) - whole(value[sp[j + 1]]);
    for (size_t m = 0; m < t.merged.used; m++) {
      uint32_t i = ((merged_node *)t.merged.p)[m].node;
      out_self[i] = out_value[i];
    }
    for (size_t j = 0; j < t.plain.used; j++) {
      uint32_t i = ((uint32_t *)t.plain.p)[j];
      out_self[i] = out_value[i];
    }
    *n_nodes = t.n;
  } else if (done == 0) {
    rc = CYSCOPE_ENOMEM;
  } /* done == -1: *n_nodes = 0, more than max_nodes: raise the threshold */
  grow *all[] = {&t.nodes, &t.tasks, &t.kept, &t.merged, &t.selfs, &t.plain, &t.children};
  for (size_t j = 0; j < sizeof all / sizeof *all; j++) grow_free(all[j]);
  return rc;
}
