/* Attach state shared by the API and the hooks (the patch lock and the
 * attach count), one-time initialisation, and fork. */
#define _GNU_SOURCE
#include <pthread.h>

#include "memtrack_internal.h"

_Atomic int g_attached;
pthread_mutex_t g_patch_lock = PTHREAD_MUTEX_INITIALIZER;
int g_refs;
int g_initialised;

static void atfork_prepare(void) {
  pthread_mutex_lock(&g_patch_lock);
  spin_lock(&g_threads_lock);
  spin_lock(&g_table_lock);
}
static void atfork_parent(void) {
  spin_unlock(&g_table_lock);
  spin_unlock(&g_threads_lock);
  pthread_mutex_unlock(&g_patch_lock);
}
static void atfork_child(void) {
  spin_unlock(&g_table_lock);
  spin_unlock(&g_threads_lock);
  /* The child starts detached: its GOT slots go back to the real functions
   * (restoring does not touch the loader lock). */
  if (g_refs) ct_got_restore_all();
  g_refs = 0;
  atomic_store(&g_attached, 0);
  pthread_mutex_unlock(&g_patch_lock);
}

void init_once(void) { /* patch lock held */
  if (g_initialised) return;
  threads_init();
  pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
  stacks_init();
  check_inline_usable();
  hooks_init();
  g_initialised = 1;
}
