"""dproxy's verifying chaos soak: real memcached and redis-servers on loopback, dproxy with
several pool kinds, verifying clients (workloads.py) that keep a model of every key, and a fault
driver that, at moments drawn from the seed, kills, freezes and restarts backends, fails over and
migrates a Redis Cluster, reloads dproxy's config, and sends garbage, half frames, unread
pipelines and connection bursts. At the end it prints a verdict table (model.Verdict) and dproxy's
RSS and descriptors before and after the faults, and exits non-zero when a must-be-zero column
is not, the memory or descriptors did not come back, or dproxy crashed or reported a sanitizer
error.

Run it through scripts/soak.sh.
"""
import argparse
import json
import os
import random
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "integration"))
sys.path.insert(0, HERE)

import harness  # noqa: E402
from harness import HOST, Dproxy, Processes, free_port  # noqa: E402
from model import PoolLosses, Verdict  # noqa: E402
import workloads as w  # noqa: E402

RSS_MARGIN_MB = 48  # after the faults, RSS may exceed the warm-up level by this much
FD_MARGIN = 8


def proc_rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def proc_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


FAULTS = ("kill-mc", "kill-redis", "kill-repl", "freeze", "freeze-jobs", "failover",
          "kill-cluster-master", "migrate", "reload", "garbage", "half-frames", "unread", "vanish",
          "burst")


class Soak:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.verdict = Verdict(args.seed)
        self.procs = Processes()
        self.events = []
        self.stop_faults = threading.Event()
        self.clients_end = time.monotonic() + args.minutes * 60

    def log(self, text):
        t = time.monotonic() - self.t0
        self.events.append(f"{t:8.1f}s {text}")
        if self.args.verbose:
            print(f"[soak {t:7.1f}s] {text}", flush=True)

    # --- setup --------------------------------------------------------------------------

    def start(self):
        p = self.procs
        self.mc = [p.memcached() for _ in range(3)]
        self.rd = [p.redis() for _ in range(3)]
        self.repl = [p.memcached() for _ in range(2)]
        self.jobs_server = p.redis()
        self.spare = [p.memcached() for _ in range(2)]  # the reloaded pool's servers
        self.cluster = p.redis_cluster(masters=3, replicas=1)
        self.ports = {name: free_port() for name in
                      ("mc", "redis", "repl", "cluster", "jobs", "reload", "tls")}
        # The TLS pool's certificate: self-signed for 127.0.0.1, made with the openssl CLI.
        self.cert = os.path.join(p.tmp.name, "soak-cert.pem")
        self.key = os.path.join(p.tmp.name, "soak-key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=dproxy-soak", "-addext", f"subjectAltName=IP:{HOST}",
                        "-keyout", self.key, "-out", self.cert],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.tls_client = ssl.create_default_context(cafile=self.cert)
        self.losses = {"mc": PoolLosses(), "redis": PoolLosses(), "repl": PoolLosses(2),
                       "cluster": PoolLosses()}
        self.pools = self.config(reload_servers=1)
        self.proxy = Dproxy(p, self.args.dproxy, self.pools, threads=2)
        self.pid = self.proxy.proc.pid

    def config(self, reload_servers):
        def listen(name):
            return f"{HOST}:{self.ports[name]}"
        common = {"timeout_ms": 1000, "server_failure_limit": 2, "server_retry_timeout_ms": 500,
                  "auto_eject_hosts": False}
        return {
            "mc": {"protocol": "memcached", "listen": listen("mc"), "policy": "ketama",
                   "client_connections": 200, **common,
                   "servers": [f"{HOST}:{s.port}:1" for s in self.mc]},
            "redis": {"protocol": "redis", "listen": listen("redis"), "policy": "modula",
                      "hash_tag": "{}", **common,
                      "servers": [f"{HOST}:{s.port}:1" for s in self.rd]},
            "repl": {"protocol": "memcached", "listen": listen("repl"), "policy": "replicated",
                     "write_ack": "all", "read": "first", "failover_on_miss": True, **common,
                     "children": [{"policy": "ketama", "servers": [f"{HOST}:{s.port}:1"]}
                                  for s in self.repl]},
            "cluster": {"protocol": "redis", "listen": listen("cluster"),
                        "policy": "redis_cluster", "timeout_ms": 1000,
                        "servers": [f"{HOST}:{n.port}" for n in self.cluster.nodes[:3]]},
            # The Redis pool's servers again, behind a TLS listener (reloads load its
            # certificate again).
            "tls": {"protocol": "redis", "listen": listen("tls"), "policy": "modula",
                    "hash_tag": "{}", **common, "tls": {"cert": self.cert, "key": self.key},
                    "servers": [f"{HOST}:{s.port}:1" for s in self.rd]},
            "jobs": {"protocol": "redis", "listen": listen("jobs"), "timeout_ms": 1000,
                     "servers": [f"{HOST}:{self.jobs_server.port}"]},
            "reload": {"protocol": "memcached", "listen": listen("reload"), "policy": "ketama",
                       "timeout_ms": 1000,
                       "servers": [f"{HOST}:{s.port}:1" for s in self.spare[:reload_servers]]},
        }

    # --- faults ---------------------------------------------------------------------------

    def restart(self, proc, kind):
        """kill -9, a pause, and a new server on the same port."""
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        time.sleep(self.rng.uniform(0.2, 1.5))
        new = self.procs.memcached(proc.port) if kind == "mc" else self.procs.redis(proc.port)
        return new

    def freeze(self, proc):
        os.kill(proc.pid, signal.SIGSTOP)
        time.sleep(self.rng.uniform(0.3, 2.5))
        os.kill(proc.pid, signal.SIGCONT)

    def fault(self):
        r = self.rng
        kind = r.choice(self.args.faults)
        self.log(kind)
        if kind == "kill-mc":
            i = r.randrange(3)
            self.losses["mc"].killed()
            self.mc[i] = self.restart(self.mc[i], "mc")
        elif kind == "kill-redis":
            i = r.randrange(3)
            self.losses["redis"].killed()
            self.rd[i] = self.restart(self.rd[i], "redis")
        elif kind == "kill-repl":
            i = r.randrange(2)
            self.losses["repl"].killed(i)
            self.repl[i] = self.restart(self.repl[i], "mc")
        elif kind == "freeze":
            self.freeze(r.choice(self.mc + self.rd + self.repl))
        elif kind == "freeze-jobs":
            self.freeze(self.jobs_server)
        elif kind == "failover":
            self.cluster_failover()
        elif kind == "kill-cluster-master":
            self.cluster_kill_master()
        elif kind == "migrate":
            self.cluster_migrate()
        elif kind == "reload":
            self.pools = self.config(reload_servers=r.choice((1, 2)))
            with open(self.proxy.config_path, "w") as f:
                json.dump({"pools": self.pools,
                           "stats": {"listen": f"{HOST}:{self.proxy.stats_port}"}}, f)
            os.kill(self.pid, signal.SIGHUP)
        else:
            port = self.ports[r.choice(list(self.ports))]
            getattr(self, "chaos_" + kind.replace("-", "_"))(port)

    def cluster_failover(self):
        slots = self.cluster.slots()
        if not slots:
            return
        _, _, master, replicas = self.rng.choice(slots)
        if replicas:
            harness._cluster_cmd(replicas[0], "CLUSTER", "FAILOVER")
            harness.wait_for(lambda: self.cluster.converged(), 15, interval=0.2)

    def cluster_kill_master(self):
        """kill -9 of a master that has a replica: the cluster promotes the replica (after its
        node timeout), dproxy follows by itself; the node then comes back as a replica. Writes
        the master acknowledged but had not yet replicated may be lost, or read back older."""
        slots = self.cluster.slots()
        masters = [m for _, _, m, replicas in (slots or []) if replicas]
        if not masters:
            return
        port = self.rng.choice(masters)
        self.losses["cluster"].killed()
        self.procs.kill(self.cluster.node(port))
        # Until the node timeout passes, the live nodes still agree on the old map: wait for the
        # failover itself. (A master started again before its replica took over comes back with
        # whatever old data it has and may be failed over later still: two masters' writes, one
        # lost, for seconds after the restart. A 30-minute run, seed 12, hit exactly that.)
        if not harness.wait_for(lambda: self.cluster.converged() and
                                port not in (self.cluster.masters() or []), 30, interval=0.2):
            self.log(f"cluster did not fail over after master {port} was killed")
        self.cluster.restart(port)
        if not harness.wait_for(lambda: self.cluster.converged(replicas=1), 30, interval=0.2):
            self.log(f"node {port} did not rejoin as a replica")
        # Until the node that came back has learnt that its slots moved on, it still claims
        # them (empty): a client whose map still names it (dproxy, or any cluster client) may
        # write there and read there, and those writes vanish when it turns replica. Redis
        # Cluster's own window, so losses are allowed up to here.
        self.losses["cluster"].killed()
        self.log(f"master {port} killed, failed over, back as a replica")

    def cluster_migrate(self):
        """Moves one slot (with its keys) from its master to another, as redis-cli does."""
        slots = self.cluster.slots()
        if not slots:
            return
        src_range = self.rng.choice(slots)
        dst = self.rng.choice([s for s in slots if s[2] != src_range[2]])
        slot = self.rng.randint(src_range[0], src_range[1])
        src, dstp = src_range[2], dst[2]
        cmd = harness._cluster_cmd
        src_id, dst_id = self.cluster.node_id(src), self.cluster.node_id(dstp)
        cmd(dstp, "CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
        cmd(src, "CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
        while True:
            keys = cmd(src, "CLUSTER", "GETKEYSINSLOT", slot, 100)
            if not keys:
                break
            cmd(src, "MIGRATE", HOST, dstp, "", 0, 5000, "KEYS", *keys)
        for port in [n.port for n in self.cluster.alive()]:
            cmd(port, "CLUSTER", "SETSLOT", slot, "NODE", dst_id)
        self.log(f"slot {slot} moved {src} -> {dstp}")

    def chaos_garbage(self, port):
        with socket.create_connection((HOST, port), timeout=2) as s:
            s.sendall(bytes(self.rng.getrandbits(8) for _ in range(self.rng.randint(1, 3000))))
            time.sleep(0.05)

    def chaos_half_frames(self, port):
        frames = [b"set k 0 0 100\r\nabc", b"*3\r\n$3\r\nSET\r\n$1\r\nk", b"get k",
                  b"\x80\x01\x00\x05\x08\x00\x00\x00\x00\x00\x00\x20abc", b"*2\r\n$3\r\nGE"]
        with socket.create_connection((HOST, port), timeout=2) as s:
            s.sendall(self.rng.choice(frames))
            time.sleep(self.rng.uniform(0, 0.5))

    def chaos_unread(self, port):
        req = b"get unread-key\r\n" if port in (self.ports["mc"], self.ports["repl"],
                                                self.ports["reload"]) \
            else b"*2\r\n$3\r\nGET\r\n$10\r\nunread-key\r\n"
        with socket.create_connection((HOST, port), timeout=2) as s:
            s.setblocking(False)
            end = time.monotonic() + self.rng.uniform(0.5, 3)
            sent = 0
            while time.monotonic() < end and sent < 100000:
                try:
                    s.send(req * 100)
                    sent += 100
                except BlockingIOError:
                    time.sleep(0.05)

    def chaos_vanish(self, port):
        with socket.create_connection((HOST, port), timeout=2) as s:
            s.sendall(b"get a b c\r\nset vanish 0 0 1000\r\nxx" if port != self.ports["redis"]
                      else b"*3\r\n$3\r\nSET\r\n$6\r\nvanish\r\n$1000\r\nxx")
        # closed mid-request

    def chaos_burst(self, port):
        socks = []
        try:
            for _ in range(self.rng.randint(50, 300)):
                try:
                    socks.append(socket.create_connection((HOST, port), timeout=2))
                except OSError:
                    break
            time.sleep(self.rng.uniform(0.1, 1))
        finally:
            for s in socks:
                s.close()

    def fault_loop(self):
        while not self.stop_faults.is_set():
            self.stop_faults.wait(self.rng.uniform(1, 3))
            if self.stop_faults.is_set():
                break
            try:
                self.fault()
            except (OSError, RuntimeError, EOFError) as e:
                self.log(f"fault driver: {e!r}")

    # --- run ------------------------------------------------------------------------------

    def run(self):
        self.t0 = time.monotonic()

        def hook(a):  # a client thread that died is a failure of the soak itself
            self.verdict.fail(a.thread.name, "soak errors", f"{a.exc_type.__name__}: {a.exc_value}")
            sys.__excepthook__(a.exc_type, a.exc_value, a.exc_traceback)
        threading.excepthook = hook
        self.start()
        seeds = random.Random(self.args.seed)
        deadline = lambda: self.clients_end  # noqa: E731
        lost = {n: l.miss_allowed for n, l in self.losses.items()}
        clients = [
            w.McAscii(self.verdict, self.ports["mc"], seeds.random(), deadline, "mca",
                      lambda t: True),
            w.McBinary(self.verdict, self.ports["mc"], seeds.random(), deadline, "mcb",
                       lambda t: True),
            w.McAscii(self.verdict, self.ports["repl"], seeds.random(), deadline, "repl",
                      lost["repl"]),
            w.RedisKV(self.verdict, self.ports["redis"], seeds.random(), deadline, "rkv",
                      lost["redis"]),
            w.RedisKV(self.verdict, self.ports["cluster"], seeds.random(), deadline, "ckv",
                      lost["cluster"], tagged=True),
            w.McAscii(self.verdict, self.ports["reload"], seeds.random(), deadline, "rld",
                      lambda t: True),
            w.McMeta(self.verdict, self.ports["mc"], seeds.random(), deadline, "mcm",
                     lambda t: True),
            w.RedisKV(self.verdict, self.ports["redis"], seeds.random(), deadline, "r3kv",
                      lost["redis"], resp3=True),
            w.RedisKV(self.verdict, self.ports["tls"], seeds.random(), deadline, "tkv",
                      lost["redis"], tls=self.tls_client),
        ]
        clients[2].name = "mc-replicated"
        clients[4].name = "redis-cluster"
        clients[5].name = "mc-reloaded"
        clients[5].stale_ok = True
        clients[4].stale_after_loss = True
        clients[7].name = "redis-resp3"
        clients[8].name = "redis-tls"
        ps = w.PubSub(self.verdict, self.ports["redis"], seeds.random(), deadline, "soak-chan")
        jobs = w.Jobs(self.verdict, self.ports["jobs"], seeds.random(), deadline, "soak-jobs")
        threads = [threading.Thread(target=c.run, name=c.name) for c in clients]
        threads += [threading.Thread(target=f, name=o.name)
                    for o, f in ((ps, ps.publish_loop), (ps, ps.subscribe_loop),
                                 (jobs, jobs.produce_loop), (jobs, jobs.consume_loop))]
        for t in threads:
            t.daemon = True
            t.start()
        warm = min(60.0, self.args.minutes * 60 / 4)
        time.sleep(warm)
        self.rss_warm, self.fds_warm = proc_rss_kb(self.pid), proc_fds(self.pid)
        self.log(f"warm-up: RSS {self.rss_warm // 1024} MB, {self.fds_warm} descriptors")
        if self.args.self_test:
            self.inject(clients[0], clients[4])
        faults = threading.Thread(target=self.fault_loop, daemon=True)
        faults.start()
        self.rss_max = self.rss_warm
        while time.monotonic() < self.clients_end - 10:
            time.sleep(5)
            self.rss_max = max(self.rss_max, proc_rss_kb(self.pid))
            if self.proxy.proc.poll() is not None:
                self.log(f"dproxy exited with {self.proxy.proc.returncode}")
                break
        self.stop_faults.set()
        faults.join()
        for t in threads:
            t.join(timeout=60)
        jobs.settle()
        time.sleep(3)
        self.rss_end, self.fds_end = proc_rss_kb(self.pid), proc_fds(self.pid)
        return self.report()

    def inject(self, mc_client, cluster_client):
        """--self-test: wrongs done behind dproxy's back, which the verdict must catch: a foreign
        value in a memcached key, an acknowledged Redis Cluster key deleted, a job nobody
        produced."""
        # Several keys each: a key the client writes again before it reads it hides the wrong.
        for k in [k for k in mc_client.keys if k.acked is not None][:20]:
            for srv in self.mc:
                c = harness.RawClient(srv.port)
                c.send(b"set %s 0 0 5\r\nbogus\r\n" % k.name.encode())
                c.read_line()
                c.close()
        for k in [k for k in cluster_client.keys if k.acked is not None][:20]:
            for port in self.cluster.masters():
                harness._cluster_cmd(port, "DEL", k.name)
        harness._cluster_cmd(self.jobs_server.port, "RPUSH", "soak-jobs", "999999999")
        self.log("self-test: corrupted a memcached key, deleted a cluster key, forged a job")

    def report(self):
        if self.args.self_test:
            rows = self.verdict.rows
            caught = [rows["mc-ascii"]["wrong values"] > 0,
                      rows["redis-cluster"]["lost acked writes"] > 0,
                      rows["jobs"]["wrong values"] > 0]
            print(self.verdict.table())
            print(f"self-test: injected wrongs caught: {caught}")
            return all(caught)
        ok = self.verdict.ok()
        print(self.verdict.table())
        rss_ok = self.rss_end <= self.rss_warm + RSS_MARGIN_MB * 1024
        fd_ok = self.fds_end <= self.fds_warm + FD_MARGIN
        print(f"dproxy RSS: warm-up {self.rss_warm / 1024:.1f} MB, highest after warm-up "
              f"{self.rss_max / 1024:.1f} MB, after the faults {self.rss_end / 1024:.1f} MB "
              f"(margin {RSS_MARGIN_MB} MB): {'ok' if rss_ok else 'FAILED'}")
        print(f"dproxy descriptors: warm-up {self.fds_warm}, after the faults {self.fds_end} "
              f"(margin {FD_MARGIN}): {'ok' if fd_ok else 'FAILED'}")
        print(f"faults: {len(self.events)} events; seed {self.args.seed}")
        for workload, column, text, history in self.verdict.failures:
            print(f"\nFAILURE [{workload}] {column}: {text}")
            for h in history:
                print(f"    {h}")
        if not (ok and rss_ok and fd_ok) or self.args.verbose:
            print("\nfault log:\n" + "\n".join(self.events[-60:]))
        return ok and rss_ok and fd_ok

    def close(self):
        crashed = self.proxy.proc.poll() is not None
        try:
            self.procs.close()  # raises on a non-zero exit or a sanitizer report
        except harness.UncleanExit as e:
            print(f"dproxy: {e}")
            return False
        return not crashed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--dproxy", default="build/dproxy")
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--self-test", action="store_true",
                    help="inject wrong answers behind dproxy's back; pass only if all are caught")
    ap.add_argument("--faults", default=",".join(FAULTS),
                    help="the fault kinds to draw from, comma-separated (default: all)")
    args = ap.parse_args()
    args.faults = args.faults.split(",")
    unknown = set(args.faults) - set(FAULTS)
    if unknown:
        ap.error(f"unknown fault kinds {sorted(unknown)}; known: {', '.join(FAULTS)}")
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1 << 31)
    print(f"soak: {args.minutes} minutes, seed {args.seed}, {args.dproxy}", flush=True)

    # SIGTERM and SIGINT (even when the shell started the soak in the background, with SIGINT
    # ignored) end the run through the `finally` below, so every process it started is killed.
    def interrupted(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)
    soak = Soak(args)
    try:
        ok = soak.run()
    finally:
        clean = soak.close()
    print("soak: PASSED" if ok and clean else "soak: FAILED")
    sys.exit(0 if ok and clean else 1)


if __name__ == "__main__":
    main()
