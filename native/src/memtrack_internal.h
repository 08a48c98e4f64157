/* Internal interfaces shared by the allocation tracker's translation units. */
#ifndef CYSCOPE_MEMTRACK_INTERNAL_H
#define CYSCOPE_MEMTRACK_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

/* One symbol the tracker redirects: its name and the hook to install. */
typedef struct ct_hook_def {
  const char *name;
  void *hook;
} ct_hook_def;

/* got_patch.c: redirect/restore relocation slots of every loaded object
 * except this library itself (its own calls must reach the real functions).
 * Callers serialise these (ct_patch_lock). */
int ct_got_patch_all(const ct_hook_def *defs, size_t ndefs);
void ct_got_restore_all(void);
/* Forget slots that belong to objects no longer loaded (after dlclose). */
void ct_got_prune(void);
uint64_t ct_got_patched_slots(void);
/* Walk every loaded object and count relocation slots holding a hook. */
uint64_t ct_got_scan(const ct_hook_def *defs, size_t ndefs);
uint64_t ct_got_tracker_bytes(void);

/* Page-granular memory for the tracker itself: never goes through malloc. */
void *ct_os_alloc(size_t bytes);
void ct_os_free(void *p, size_t bytes);

#endif
