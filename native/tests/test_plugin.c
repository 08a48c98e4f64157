/* Loaded with dlopen after the tracker attached: its malloc slot must be
 * patched by the dlopen hook. */
#include <stdlib.h>

__attribute__((visibility("default"))) void *plugin_alloc(size_t n) { return malloc(n); }
__attribute__((visibility("default"))) void plugin_free(void *p) { free(p); }
