#!/usr/bin/env bash
# Builds dproxy. Usage: scripts/build.sh [release|asan|fuzz]   (default: release)
set -euo pipefail
cd "$(dirname "$0")/.."
kind="${1:-release}"
jobs="$(nproc)"
case "$kind" in
  release)
    cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build build -j"$jobs"
    ;;
  asan)
    cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DDPROXY_SANITIZE=ON >/dev/null
    cmake --build build-asan -j"$jobs"
    ;;
  fuzz)
    cmake -S . -B build-fuzz -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DDPROXY_FUZZ=ON -DDPROXY_BUILD_TESTS=ON >/dev/null
    cmake --build build-fuzz -j"$jobs" --target fuzz_memcache_request fuzz_memcache_reply fuzz_memcache_binary \
      fuzz_memcache_meta fuzz_resp_request fuzz_resp_reply
    ;;
  *)
    echo "usage: $0 [release|asan|fuzz]" >&2
    exit 2
    ;;
esac
