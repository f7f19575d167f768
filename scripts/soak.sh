#!/usr/bin/env bash
# The verifying chaos soak (tools/soak/soak.py): real memcached and redis-servers on loopback,
# dproxy with several pool kinds, verifying clients and a seeded fault driver. Bounded: it stops
# by itself after --minutes (default 10). Exit status 0 only when every must-be-zero column of
# its verdict table is 0 and dproxy's memory and descriptors came back.
#   scripts/soak.sh [--minutes N] [--seed S] [--dproxy PATH] [--verbose]
set -euo pipefail
cd "$(dirname "$0")/.."
exec /usr/bin/python3 tools/soak/soak.py "$@"
