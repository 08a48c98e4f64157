/* Native tests for libcyscope: a plain C binary, run by ctest and under valgrind. */
#include <stdio.h>
#include <string.h>

#include "cyscope.h"

static int failures = 0;
static int passes = 0;
#define CHECK(cond)                                                            \
  do {                                                                         \
    if (cond) {                                                                \
      passes++;                                                                \
    } else {                                                                   \
      failures++;                                                              \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                          \
  } while (0)

static void test_abi_version(void) {
  CHECK(cyscope_abi_version() == CYSCOPE_ABI_VERSION);
  CHECK(strlen(cyscope_version()) > 0);
}

static void test_read_rss(void) {
  uint64_t rss = 0;
  CHECK(cyscope_read_rss(&rss) == CYSCOPE_OK);
  CHECK(rss > 0);
  CHECK(cyscope_read_rss(NULL) == CYSCOPE_EINVAL);
}

int main(void) {
  test_abi_version();
  test_read_rss();
  printf("%d passed, %d failed\n", passes, failures);
  return failures == 0 ? 0 : 1;
}
