/* Native tests for libcyscope: a plain C binary, run by ctest and under valgrind. */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "cyscope.h"

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
  RUN(test_abi_version);
  RUN(test_read_rss);
  return check_report();
}
