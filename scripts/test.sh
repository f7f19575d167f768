#!/usr/bin/env bash
# Installs what is missing, builds the normal and the ASan+UBSan builds, and runs every test
# (unit + integration against real memcached / redis-server / nutcracker on loopback) in both,
# then runs each libFuzzer target for a bounded time.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh

echo "== build (release)"
scripts/build.sh release
echo "== build (asan+ubsan)"
scripts/build.sh asan
echo "== build (libFuzzer targets, clang)"
scripts/build.sh fuzz

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
status=0
echo "== tests (release)"
(cd build && ctest --output-on-failure --timeout 900) || status=1
echo "== tests (asan+ubsan)"
(cd build-asan && ctest --output-on-failure --timeout 900) || status=1
echo "== fuzz (bounded run of every parser target, committed corpus first)"
# --no-tests=error: a fuzz build that produced no target fails instead of passing vacuously.
(cd build-fuzz && ctest --output-on-failure --no-tests=error -R '^fuzz\.') || status=1
if [ "$status" -ne 0 ]; then
  echo "test.sh: FAILED"
else
  echo "test.sh: all tests passed"
fi
exit "$status"
