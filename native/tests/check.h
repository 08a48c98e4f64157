/* The tiny assertion kit shared by the native test binaries: count checks,
 * report each failure with its place, and let main() print the closing
 * "N passed, N failed" line that CI reads. Include it once per binary. */
#ifndef CYSCOPE_TESTS_CHECK_H
#define CYSCOPE_TESTS_CHECK_H

#include <stdio.h>
#include <time.h>

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

#define CHECK_EQ(a, b)                                                                          \
  do {                                                                                          \
    long long a_ = (long long)(a), b_ = (long long)(b);                                         \
    if (a_ == b_) {                                                                             \
      passes++;                                                                                 \
    } else {                                                                                    \
      failures++;                                                                               \
      fprintf(stderr, "%s:%d: %s == %s failed: %lld != %lld\n", __FILE__, __LINE__, #a, #b, a_, \
              b_);                                                                              \
    }                                                                                           \
  } while (0)

/* Run one test and say how long it took: under valgrind a test can take
 * minutes, and CI's log should show which one. */
static inline double check_now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#define RUN(test)                                              \
  do {                                                         \
    double start_ = check_now_s();                             \
    test();                                                    \
    printf("  %-36s %.2f s\n", #test, check_now_s() - start_); \
    fflush(stdout);                                            \
  } while (0)

/* Print the closing line and turn the counts into an exit status. */
static inline int check_report(void) {
  printf("%d passed, %d failed\n", passes, failures);
  return failures == 0 ? 0 : 1;
}

#endif /* CYSCOPE_TESTS_CHECK_H */
