/* The tracker's own memory. Everything the tracker keeps lives in mmap'd
 * memory (never malloc), so hooks never re-enter themselves through their
 * own data. */
#define _GNU_SOURCE
#include <string.h>
#include <sys/mman.h>

#include "memtrack_internal.h"

void *ct_os_alloc(size_t bytes) {
  void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? NULL : p;
}

void ct_os_free(void *p, size_t bytes) {
  if (p) munmap(p, bytes);
}

void *ct_os_grow(void *array, size_t *cap, size_t used, size_t need, size_t elem, size_t first) {
  if (need <= *cap) return array;
  size_t n = *cap ? *cap * 2 : first;
  while (n < need) n *= 2;
  void *grown = ct_os_alloc(n * elem);
  if (!grown) return NULL;
  if (array) {
    memcpy(grown, array, used * elem);
    ct_os_free(array, *cap * elem);
  }
  *cap = n;
  return grown;
}

/* Bump arena for stacks and strings (never freed: ids stay valid). It stops
 * growing at ARENA_LIMIT: a session that keeps running new code (every cell
 * is new code) would otherwise grow it forever; past the limit new stacks
 * are not interned (their records carry stack 0, "<other stacks>"). */
#define ARENA_LIMIT ((uint64_t)256 << 20)
_Atomic uint64_t g_arena_limit = ARENA_LIMIT;
static char *g_arena_cur, *g_arena_end;
static uint64_t g_arena_bytes, g_arena_refused;

void *arena_alloc(size_t n) {
  n = (n + 15) & ~(size_t)15;
  if ((size_t)(g_arena_end - g_arena_cur) < n) {
    size_t chunk = n > (1u << 20) ? n : (1u << 20);
    if (g_arena_bytes + chunk > atomic_load_explicit(&g_arena_limit, RLX)) {
      g_arena_refused++;
      return NULL;
    }
    char *c = ct_os_alloc(chunk);
    if (!c) return NULL;
    g_arena_bytes += chunk;
    g_arena_cur = c;
    g_arena_end = c + chunk;
  }
  void *r = g_arena_cur;
  g_arena_cur += n;
  return r;
}

uint64_t arena_bytes(void) { return g_arena_bytes; }
uint64_t arena_refused(void) { return g_arena_refused; }
