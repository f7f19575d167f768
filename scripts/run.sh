#!/usr/bin/env bash
# Builds dproxy, starts two memcached and two redis-server processes on loopback and runs dproxy in front of them with
# configs/pools.json, in the foreground. Ctrl-C stops everything this script started.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh release

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

for port in 21211 21212; do
  memcached -u "$(id -un)" -l 127.0.0.1 -p "$port" -U 0 -m 64 &
  pids+=($!)
done
for port in 26379 26380; do
  redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no --loglevel warning &
  pids+=($!)
done
sleep 0.3
cat <<MSG
dproxy is starting with configs/pools.json:
  memcached pool "cache": 127.0.0.1:22121  (backends 127.0.0.1:21211, 127.0.0.1:21212)
  redis pool "store":     127.0.0.1:22122  (backends 127.0.0.1:26379, 127.0.0.1:26380)
Try:  redis-cli -p 22122 set hello world; redis-cli -p 22122 mget hello other
      memccp --servers=127.0.0.1:22121 /etc/hostname; memccat --servers=127.0.0.1:22121 hostname
Stats: curl 127.0.0.1:22222/metrics   (Prometheus)   curl 127.0.0.1:22222/stats   (JSON)
       curl 127.0.0.1:22222/healthz   curl 127.0.0.1:22222/readyz
Press Ctrl-C to stop.
MSG
./build/dproxy --config configs/pools.json &
pids+=($!)
echo "dproxy runs as PID $!; after editing configs/pools.json reload it with: kill -HUP $!"
wait "${pids[-1]}"
