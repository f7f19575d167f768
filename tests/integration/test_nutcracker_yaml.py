"""nutcracker's YAML config and command line, as they are.

One realistic nutcracker.yml (two memcached pools, two Redis pools, hash tags, redis_auth,
redis_db, a unix socket listener with mode 0666, auto_eject_hosts) is served first by Debian's
/usr/sbin/nutcracker and then by dproxy started with nutcracker's own flags
(-c FILE -s PORT -a IP -d -p PIDFILE -o LOG). The same keys are written through each; every key
must land on the same backend both times. dproxy's stats must answer on the -s port.
"""
import json
import os
import random
import signal
import socket
import stat
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from pymemcache.client.base import Client  # noqa: E402

ARGS = harness.parse_args()
HOST = harness.HOST
N_KEYS = 10_000
BATCH = 500
PASSWORD = "s3cret-pw"


def key_list(prefix, n, tagged=False):
    rng = random.Random(prefix)
    keys = []
    for i in range(n):
        body = "%s:%d:%x" % (prefix, i, rng.getrandbits(40))
        if tagged and i % 3 == 0:
            body = "{user%d}.%s" % (i % 97, body)  # hash tag: only user<n> is hashed
        keys.append(body)
    return keys


def kill_pid_file(path):
    """SIGTERM (then SIGKILL) the daemon whose pid this test's pid file holds."""
    try:
        with open(path) as f:
            pid = int(f.read().strip())
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    if not harness.wait_for(lambda: not os.path.exists(f"/proc/{pid}"), 10):
        os.kill(pid, signal.SIGKILL)


def stats_json(port):
    with socket.create_connection((HOST, port), timeout=5) as s:
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return json.loads(data)


class NutcrackerYamlTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.procs = harness.Processes()
        tmp = cls.procs.tmp.name
        cls.mc = [cls.procs.memcached() for _ in range(5)]
        cls.rd_auth = [cls.procs.redis(extra=["--requirepass", PASSWORD]) for _ in range(2)]
        cls.rd_db = [cls.procs.redis() for _ in range(2)]
        cls.sock = os.path.join(tmp, "sessions.sock")
        cls.ports = {name: harness.free_port() for name in ("alpha", "beta", "cache")}
        m, a, d = cls.mc, cls.rd_auth, cls.rd_db
        cls.yaml_path = os.path.join(tmp, "nutcracker.yml")
        with open(cls.yaml_path, "w") as f:
            f.write(f"""\
# A nutcracker config as it is found in production.
alpha:
  listen: {HOST}:{cls.ports['alpha']}
  hash: fnv1a_64
  hash_tag: "{{}}"
  distribution: ketama
  auto_eject_hosts: true
  redis: false
  server_retry_timeout: 2000
  server_failure_limit: 1
  timeout: 4000
  backlog: 1024
  preconnect: true
  servers:
   - {HOST}:{m[0].port}:1 mc-a
   - {HOST}:{m[1].port}:2 mc-b
   - {HOST}:{m[2].port}:1 mc-c

beta:
  listen: {HOST}:{cls.ports['beta']}
  hash: murmur
  distribution: modula
  server_connections: 2
  tcpkeepalive: true
  client_connections: 100
  servers:
   - {HOST}:{m[3].port}:1
   - {HOST}:{m[4].port}:1

cache:
  listen: {HOST}:{cls.ports['cache']}
  redis: true
  redis_auth: {PASSWORD}
  hash: md5
  hash_tag: "{{}}"
  distribution: ketama
  auto_eject_hosts: false
  timeout: 3000
  servers:
   - {HOST}:{a[0].port}:1 redis-a
   - {HOST}:{a[1].port}:1 redis-b

sessions:
  listen: {cls.sock} 0666
  redis: true
  redis_db: 3
  hash: crc32a
  distribution: ketama
  servers:
   - {HOST}:{d[0].port}:1 sess-a
   - {HOST}:{d[1].port}:3 sess-b
""")

    @classmethod
    def tearDownClass(cls):
        cls.procs.close()

    # --- placement ------------------------------------------------------------------------

    def memcached_placement(self, backends, keys):
        where = {}
        for idx, m in enumerate(backends):
            c = Client((HOST, m.port), timeout=10)
            try:
                for i in range(0, len(keys), BATCH):
                    for k in c.get_many(keys[i:i + BATCH]):
                        self.assertNotIn(k, where, "a key on two backends")
                        where[k] = idx
            finally:
                c.close()
        return where

    def redis_placement(self, backends, keys, password=None, db=0):
        found = harness.redis_key_on([b.port for b in backends], keys, password=password, db=db)
        ports = [b.port for b in backends]
        where = {}
        for k, on in found.items():
            self.assertLessEqual(len(on), 1, f"{k} on two backends")
            if on:
                where[k] = ports.index(on[0])
        return where

    def flush_all(self):
        for m in self.mc:
            c = Client((HOST, m.port), timeout=10)
            c.flush_all()
            c.close()
        for b in self.rd_auth:
            harness.redis_direct(b.port, password=PASSWORD).flushall()
        for b in self.rd_db:
            harness.redis_direct(b.port).flushall()

    def write_all(self, sock_path):
        """Writes every pool's keys through the proxy listening on this file's addresses."""
        import redis
        for pool in ("alpha", "beta"):
            c = Client((HOST, self.ports[pool]), timeout=10)
            try:
                keys = self.keys[pool]
                for i in range(0, len(keys), BATCH):
                    self.assertEqual(c.set_many({k: k for k in keys[i:i + BATCH]}), [])
            finally:
                c.close()
        r = redis.Redis(host=HOST, port=self.ports["cache"], password=PASSWORD, socket_timeout=10)
        # nutcracker's redis_auth: a client that has not sent AUTH is refused.
        with self.assertRaisesRegex(redis.exceptions.RedisError, "(?i)auth"):
            redis.Redis(host=HOST, port=self.ports["cache"], socket_timeout=10).set("x", "1")
        u = redis.Redis(unix_socket_path=sock_path, socket_timeout=10)
        for client, pool in ((r, "cache"), (u, "sessions")):
            keys = self.keys[pool]
            for i in range(0, len(keys), BATCH):
                pipe = client.pipeline(transaction=False)
                for k in keys[i:i + BATCH]:
                    pipe.set(k, k)
                self.assertTrue(all(pipe.execute()))
            client.close()

    def placements(self):
        return {
            "alpha": self.memcached_placement(self.mc[0:3], self.keys["alpha"]),
            "beta": self.memcached_placement(self.mc[3:5], self.keys["beta"]),
            "cache": self.redis_placement(self.rd_auth, self.keys["cache"], password=PASSWORD),
            "sessions": self.redis_placement(self.rd_db, self.keys["sessions"], db=3),
        }

    def test_same_backends_as_nutcracker_from_the_same_file(self):
        started = time.monotonic()
        self.keys = {
            "alpha": key_list("alpha", N_KEYS, tagged=True),
            "beta": key_list("beta", N_KEYS),
            "cache": key_list("cache", N_KEYS, tagged=True),
            "sessions": key_list("sessions", N_KEYS),
        }
        tmp = self.procs.tmp.name
        # 1. nutcracker itself.
        nc_stats = harness.free_port()
        nc = self.procs.spawn([harness.NUTCRACKER, "-c", self.yaml_path, "-s", str(nc_stats),
                               "-a", HOST, "-o", os.path.join(tmp, "nc.log"),
                               "-p", os.path.join(tmp, "nc.pid")])
        for pool in ("alpha", "beta", "cache"):
            harness.wait_port(self.ports[pool], nc)
        harness.wait_unix_socket(self.sock, nc)
        nc_mode = stat.S_IMODE(os.stat(self.sock).st_mode)
        self.write_all(self.sock)
        by_nutcracker = self.placements()
        self.procs.kill(nc, signal.SIGTERM)
        self.flush_all()

        # 2. dproxy, with nutcracker's command line, daemonized.
        dp_stats = harness.free_port()
        pid_file = os.path.join(tmp, "dproxy.pid")
        log_file = os.path.join(tmp, "dproxy.log")
        self.addCleanup(kill_pid_file, pid_file)
        run = harness.run_dproxy(ARGS.dproxy, ["-c", self.yaml_path, "-s", str(dp_stats),
                                               "--stats-addr=" + HOST, "-d", "-p", pid_file,
                                               "-o", log_file, "-v", "6"], timeout=30)
        self.assertEqual(run.returncode, 0, run.stderr)
        with open(pid_file) as f:
            pid = int(f.read())
        self.assertNotEqual(pid, os.getpid())
        self.assertTrue(os.path.exists(f"/proc/{pid}"), "the daemon named in the pid file runs")
        for pool in ("alpha", "beta", "cache"):
            harness.wait_port(self.ports[pool])
        harness.wait_unix_socket(self.sock)
        self.assertEqual(stat.S_IMODE(os.stat(self.sock).st_mode), 0o666)
        self.assertEqual(nc_mode, 0o666, "nutcracker applies the listen mode too")
        self.write_all(self.sock)
        by_dproxy = self.placements()

        for pool in ("alpha", "beta", "cache", "sessions"):
            nc_map, dp_map = by_nutcracker[pool], by_dproxy[pool]
            self.assertEqual(len(nc_map), N_KEYS, f"{pool}: nutcracker stored every key")
            self.assertEqual(len(dp_map), N_KEYS, f"{pool}: dproxy stored every key")
            differ = [k for k in nc_map if nc_map[k] != dp_map.get(k)]
            self.assertEqual(differ[:10], [], f"{pool}: {len(differ)} keys on another backend")
            counts = [list(dp_map.values()).count(i) for i in set(dp_map.values())]
            self.assertGreater(len(counts), 1, f"{pool}: keys spread over backends")

        # The stats listener is where -s / -a put it, with the pools of the YAML file.
        doc = stats_json(dp_stats)
        for pool in ("alpha", "beta", "cache", "sessions"):
            self.assertIn(pool, doc)
        with open(log_file) as f:
            log = f.read()
        self.assertIn(f"pid {pid}, config {self.yaml_path}", log)

        # SIGHUP re-reads the YAML file: a changed key is applied.
        text = open(self.yaml_path).read()
        with open(self.yaml_path, "w") as f:
            f.write(text.replace("client_connections: 100", "client_connections: 1"))
        os.kill(pid, signal.SIGHUP)
        self.assertTrue(harness.wait_for(lambda: "reload" in open(log_file).read() and
                                         "beta" in open(log_file).read().split("reload", 1)[1],
                                         10), open(log_file).read()[-2000:])
        first = Client((HOST, self.ports["beta"]), timeout=5)
        first.set("held", "1")
        second = harness.RawClient(self.ports["beta"])
        second.send(b"get held\r\n")
        self.assertIn(b"too many client connections", second.read_line())
        first.close()
        second.close()

        kill_pid_file(pid_file)
        self.assertTrue(harness.wait_for(lambda: not os.path.exists(pid_file), 10),
                        "the pid file is removed at exit")
        print(f"\n4 pools x {N_KEYS} keys compared in {time.monotonic() - started:.1f}s",
              file=sys.stderr)

    def test_print_config_shows_the_dproxy_json(self):
        run = harness.run_dproxy(ARGS.dproxy, ["--print-config", self.yaml_path])
        self.assertEqual(run.returncode, 0, run.stderr)
        doc = json.loads(run.stdout)
        alpha, beta = doc["pools"]["alpha"], doc["pools"]["beta"]
        cache, sessions = doc["pools"]["cache"], doc["pools"]["sessions"]
        self.assertEqual(alpha["policy"], "ketama")
        self.assertEqual(alpha["timeout_ms"], 4000)
        self.assertEqual(beta["timeout_ms"], 0, "no timeout: nutcracker waits forever")
        self.assertEqual(beta["server_connections_per_process"], 2)
        self.assertEqual(beta["tcp_keepalive"], True)
        self.assertEqual(beta["backlog"], 512)
        self.assertEqual((cache["protocol"], cache["client_password"], cache["server_password"]),
                         ("redis", PASSWORD, PASSWORD))
        self.assertEqual((sessions["db"], sessions["listen"]), (3, self.sock + " 0666"))
        # The printed JSON is a config dproxy takes as it is.
        path = os.path.join(self.procs.tmp.name, "printed.json")
        with open(path, "w") as f:
            f.write(run.stdout)
        check = harness.run_dproxy(ARGS.dproxy, ["--test-config", "--config", path])
        self.assertEqual(check.returncode, 0, check.stderr)

    def test_debian_example_config_loads(self):
        example = "/usr/share/doc/nutcracker/examples/nutcracker.yml"
        nc = subprocess.run([harness.NUTCRACKER, "-t", "-c", example], capture_output=True,
                            text=True, timeout=10)
        self.assertEqual(nc.returncode, 0, nc.stderr)
        run = harness.run_dproxy(ARGS.dproxy, ["--print-config", example])
        self.assertEqual(run.returncode, 0, run.stderr)
        pools = json.loads(run.stdout)["pools"]
        self.assertEqual(list(pools), ["alpha", "beta", "gamma", "delta", "omega"])
        self.assertEqual(pools["beta"]["timeout_ms"], 400)
        self.assertEqual(pools["gamma"]["backlog"], 1024)
        self.assertEqual(pools["omega"]["listen"], "/tmp/gamma")
        self.assertEqual(pools["omega"]["servers"][0], "127.0.0.1:11214:100000")

    def test_nutcracker_key_dproxy_cannot_take_is_named(self):
        path = os.path.join(self.procs.tmp.name, "bad.yml")
        with open(path, "w") as f:
            f.write(f"web:\n  listen: {HOST}:1\n  servers:\n   - {HOST}:2:1\n"
                    "  dyn_seed_provider: simple\n")
        run = harness.run_dproxy(ARGS.dproxy, ["-t", "-c", path])
        self.assertEqual(run.returncode, 1)
        self.assertIn(f"{path}: web.dyn_seed_provider (line 5): unknown key", run.stderr)
        with open(path, "w") as f:
            f.write(f"web:\n  listen: {HOST}:1\n  distribution: rendezvous\n"
                    f"  servers:\n   - {HOST}:2:1\n")
        run = harness.run_dproxy(ARGS.dproxy, ["-t", "-c", path])
        self.assertEqual(run.returncode, 1)
        self.assertIn(f"{path}: web.distribution: \"rendezvous\"", run.stderr)


if __name__ == "__main__":
    unittest.main()
