#!/usr/bin/env bash
# Native tests under AddressSanitizer + UBSan (native/build-asan), the Python
# memory tests against that sanitized library, and the native tests under
# valgrind (plain build). Exits non-zero on any test failure or sanitizer /
# valgrind error. CI runs this; it is too slow for `npm test`.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== ASan + UBSan build (native/build-asan) (at ${SECONDS} s)"
cmake -S native -B native/build-asan -DCYSCOPE_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build native/build-asan -j2
# halt_on_error makes every report fatal; UBSan does not stop by default.
# allocator_may_return_null: the tests make deliberately impossible requests
# and check that they fail cleanly.
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:abort_on_error=0:exitcode=86:allocator_may_return_null=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
(cd native/build-asan && ctest --output-on-failure)

# The Python memory tests against the sanitized library (and the flamegraph
# payload's, whose tree and key grouping run in it): libasan must come
# first in the process, hence LD_PRELOAD. (CPython itself leaks by design at
# exit: leak detection off here.) The project venv runs every memory suite,
# kernels included; Debian's interpreter (another build of 3.11, the one Sage
# uses) runs the in-process ones, which is where its build could differ.
echo "== memory pytest against native/build-asan/libcyscope.so (at ${SECONDS} s)"
ASAN_SO=$(gcc -print-file-name=libasan.so)
sanitized_pytest() {
  local py="$1"
  shift
  echo "-- $py (at ${SECONDS} s)"
  LD_PRELOAD="$ASAN_SO" ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:exitcode=86:allocator_may_return_null=1" \
    CYSCOPE_NATIVE_LIB="$PWD/native/build-asan/libcyscope.so" PYTHONPATH=python-shim \
    "$py" -m pytest -q -p no:cacheprovider "$@"
}
sanitized_pytest .venv/bin/python test/python/test_memory_tracker.py test/python/test_memory_robustness.py \
  test/python/test_memory_kernel.py test/python/test_memory_drift.py test/python/test_memory_objects.py \
  test/python/test_flamegraph_payload.py
sanitized_pytest /usr/bin/python3 test/python/test_memory_tracker.py test/python/test_memory_robustness.py \
  test/python/test_memory_objects.py
unset ASAN_OPTIONS UBSAN_OPTIONS

echo "== valgrind (native/build) (at ${SECONDS} s)"
command -v valgrind >/dev/null || { echo "valgrind not installed" >&2; exit 1; }
cmake -S native -B native/build >/dev/null
cmake --build native/build -j2
# --fair-sched=yes: valgrind runs one thread at a time, and by default a
# thread can wait minutes for its turn while others spin allocating (the
# fork-under-threads test once took 3 minutes instead of 10 s, and once past
# CI's stage limit). Each binary gets its own deadline, so a hang names itself.
for t in cyscope_native_tests cyscope_memtrack_tests cyscope_shown_keys_tests cyscope_crash_tests; do
  echo "-- valgrind $t (at ${SECONDS} s)"
  rc=0
  timeout --kill-after=10 300 valgrind --quiet --fair-sched=yes --error-exitcode=1 --leak-check=full \
    --errors-for-leak-kinds=definite --trace-children=no "native/build/$t" || rc=$?
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
    echo "valgrind $t: still running after 300 s, stopped (see the last test it printed)" >&2
  fi
  [ "$rc" = 0 ] || exit "$rc"
done
echo "native_sanitize: all clean (${SECONDS} s)"
