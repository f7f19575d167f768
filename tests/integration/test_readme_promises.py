"""README promises no other test exercised, each checked lean (one small dproxy per test, shared
backends): memcached "line too long" and Redis "request too large" through a socket, a connect
that times out (connect_timeout_ms), server_connections > 1, the random policy, health shared
by the worker threads, reloads of listen / stats / shutdown_timeout_ms (applied, and rejected
for an unbindable address or an unresolvable server name) with counters surviving, the stats
listener's 405 / 400 answers and the warning when its default port is taken.
"""
import json
import os
import signal
import socket
import unittest

import harness
from harness import (HOST, Dproxy, HeldPort, Processes, RawClient, RespClient, free_port,
                     wait_for, wait_log)

ARGS = None


def mc_pool(port, servers, **extra):
    """A memcached pool listening on `port`; `servers` are ports or "host:port" strings."""
    pool = {"protocol": "memcached", "listen": f"{HOST}:{port}",
            "servers": [s if isinstance(s, str) else f"{HOST}:{s}" for s in servers]}
    pool.update(extra)
    return pool


def read_all(c, timeout=10.0):
    """Everything `c` (a RawClient) receives until the peer closes; (bytes, closed)."""
    c.sock.settimeout(timeout)
    data = c.buf
    c.buf = b""
    try:
        while True:
            chunk = c.sock.recv(65536)
            if not chunk:
                return data, True
            data += chunk
    except (ConnectionResetError, BrokenPipeError):
        return data, True
    except socket.timeout:
        return data, False


def mc_stats(port):
    c = RawClient(port)
    try:
        c.send(b"stats\r\n")
        out = {}
        while True:
            line = c.read_line()
            if line == b"END\r\n":
                return out
            _, name, value = line.decode().split(" ", 2)
            out[name] = value.strip()
    finally:
        c.close()


class ReadmePromisesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.procs = Processes()
        try:
            cls.mc = [cls.procs.memcached() for _ in range(2)]
            cls.rd = cls.procs.redis()
        except Exception:
            cls.procs.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.procs.close()

    def start(self, pools, **kw):
        proxy = Dproxy(self.procs, ARGS.dproxy, pools, **kw)
        self.addCleanup(self.stop, proxy)
        return proxy

    def stop(self, proxy):
        rc = proxy.stop()
        self.assertEqual(rc, 0, proxy.log_text()[-3000:])

    # --- framing limits, through a socket ---------------------------------------------------

    def test_memcached_line_too_long(self):
        port = free_port()
        self.start({"m": mc_pool(port, [self.mc[0].port])})
        c = RawClient(port)
        self.addCleanup(c.close)
        # README: a line over 2 MiB loses the framing: the error, then the connection closes;
        # replies to earlier requests come first.
        c.send(b"version\r\n" + b"get " + b"k" * (2 * 1024 * 1024 + 64))
        data, closed = read_all(c)
        self.assertTrue(data.startswith(b"VERSION "), data[:100])
        self.assertTrue(data.endswith(b"\r\nCLIENT_ERROR line too long\r\n"), data[-100:])
        self.assertTrue(closed, "the connection stayed open")

    def test_redis_request_too_large(self):
        port = free_port()
        self.start({"r": {"protocol": "redis", "listen": f"{HOST}:{port}",
                          "max_value_bytes": 1024, "servers": [f"{HOST}:{self.rd.port}"]}})
        c = RespClient(port)
        self.addCleanup(c.close)
        self.assertEqual(c.call("PING"), b"PONG")
        # Every argument is under max_value_bytes, the whole request (8 MB) is far over
        # max_value_bytes + 3 MiB: refused, then closed.
        n = 8000
        big = b"*%d\r\n$4\r\nMSET\r\n" % (2 * n + 1) + b"".join(
            b"$4\r\nk%03d\r\n$1000\r\n%s\r\n" % (i % 1000, b"v" * 1000) for i in range(n))
        self.assertGreater(len(big), 1024 + 3 * 1024 * 1024)
        try:
            c.send(big)
        except (BrokenPipeError, ConnectionResetError):
            pass  # closed while the rest was still being sent: the reply is already queued
        data, closed = read_all(c)
        self.assertEqual(data, b"-ERR dproxy: request too large\r\n")
        self.assertTrue(closed)
        self.assertEqual(harness.redis_direct(self.rd.port).exists("k000"), 0)

    # --- backends ---------------------------------------------------------------------------

    def test_connect_timed_out(self):
        # A listener whose accept queue is full: the kernel drops further SYNs, so a connect
        # neither succeeds nor fails until dproxy's connect_timeout_ms.
        full = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(full.close)
        full.bind((HOST, 0))
        full.listen(0)
        fillers = []
        for _ in range(3):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.connect_ex(full.getsockname())
            fillers.append(s)
        self.addCleanup(lambda: [s.close() for s in fillers])
        probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        probe.settimeout(0.5)
        try:
            probe.connect(full.getsockname())
            self.skipTest("this kernel completes connects to a full accept queue")
        except socket.timeout:
            pass
        finally:
            probe.close()

        address = f"{HOST}:{full.getsockname()[1]}"
        port = free_port()
        proxy = self.start({"m": mc_pool(port, [address], connect_timeout_ms=300,
                                         timeout_ms=5000, server_failure_limit=100)})
        c = RawClient(port)
        self.addCleanup(c.close)
        c.send(b"get k\r\n")
        self.assertEqual(c.read_line(),
                         f"SERVER_ERROR backend {address} connect timed out\r\n".encode())
        self.assertTrue(wait_log(proxy, f"backend {address}: connect timed out after"))

    def test_server_connections_spread(self):
        port = free_port()
        self.start({"r": {"protocol": "redis", "listen": f"{HOST}:{port}",
                          "server_connections": 3, "servers": [f"{HOST}:{self.rd.port}"]}},
                   threads=1)
        direct = harness.redis_direct(self.rd.port)
        self.addCleanup(direct.close)
        before = {c["id"] for c in direct.client_list()}
        clients = [RespClient(port) for _ in range(9)]
        for i, c in enumerate(clients):
            self.addCleanup(c.close)
            self.assertEqual(c.call("SET", f"sc{i}", str(i)), b"OK")
        for i, c in enumerate(clients):
            self.assertEqual(c.call("GET", f"sc{i}"), str(i).encode())
        me = direct.client_id()
        new = [c for c in direct.client_list() if c["id"] not in before and int(c["id"]) != me]
        # One worker thread, server_connections 3: nine clients use exactly three connections.
        self.assertEqual(len(new), 3, new)
        self.assertTrue(all(int(c["id"]) for c in new))

    def test_random_policy_routes_each_key_to_one_server(self):
        port = free_port()
        ports = [m.port for m in self.mc]
        self.start({"m": mc_pool(port, ports, policy="random")})
        c = RawClient(port)
        self.addCleanup(c.close)
        keys = [b"rnd:%s:%d" % (os.urandom(4).hex().encode(), i) for i in range(100)]
        for k in keys:
            c.send(b"set %s 0 0 1\r\nx\r\n" % k)
            self.assertEqual(c.read_line(), b"STORED\r\n")
        where = harness.locate_keys(harness.MemcachedOps, ports, keys)
        self.assertTrue(all(len(v) == 1 for v in where.values()), where)
        per_server = {p: sum(1 for v in where.values() if v == [p]) for p in ports}
        # Random over 2 servers: all 100 on one of them has probability 2^-99.
        self.assertTrue(all(n > 0 for n in per_server.values()), per_server)

    def test_weight_0_takes_no_keys(self):
        # nutcracker 0.5 rejects weight 0, so this is checked against the README alone.
        ports = [m.port for m in self.mc]
        for policy in ("ketama", "modula"):
            port = free_port()
            self.start({"m": mc_pool(port, [f"{HOST}:{ports[0]}:1", f"{HOST}:{ports[1]}:0"],
                                     policy=policy)})
            c = RawClient(port)
            self.addCleanup(c.close)
            keys = [b"w0:%s:%d" % (policy.encode(), i) for i in range(200)]
            c.send(b"".join(b"set %s 0 0 1\r\nx\r\n" % k for k in keys))
            for _ in keys:
                self.assertEqual(c.read_line(), b"STORED\r\n")
            where = harness.locate_keys(harness.MemcachedOps, ports, keys)
            self.assertEqual({k: v for k, v in where.items() if v != [ports[0]]}, {}, policy)

    def test_health_is_shared_by_the_workers(self):
        dead = HeldPort()  # connects are refused
        self.addCleanup(dead.close)
        address = f"{HOST}:{dead.port}"
        port = free_port()
        proxy = self.start({"m": mc_pool(port, [address], server_failure_limit=1,
                                         server_retry_timeout_ms=60000)}, threads=2)
        # Clients are handed to the workers in turn: a and b are served by different workers.
        a, b = RawClient(port), RawClient(port)
        self.addCleanup(a.close)
        self.addCleanup(b.close)
        a.send(b"get k\r\n")
        self.assertIn(b"connect failed", a.read_line())
        self.assertTrue(wait_log(proxy, f"server {address} marked DOWN"), proxy.log_text())
        # b's worker never tried the server: it knows it is down from the shared health.
        for c in (b, a):
            c.send(b"get k\r\n")
            self.assertTrue(c.read_line().startswith(
                f"SERVER_ERROR backend {address} is down (".encode()))

    # --- reload -----------------------------------------------------------------------------

    def reload(self, proxy, config, expect):
        with open(proxy.config_path + ".tmp", "w") as f:
            json.dump(config, f)
        os.replace(proxy.config_path + ".tmp", proxy.config_path)
        before = proxy.log_text().count(expect)
        os.kill(proxy.proc.pid, signal.SIGHUP)
        self.assertTrue(wait_for(lambda: proxy.log_text().count(expect) > before, 20),
                        f"no new {expect!r} in the log: {proxy.log_text()[-2000:]}")

    def refused(self, port):
        try:
            socket.create_connection((HOST, port), timeout=2).close()
            return False
        except ConnectionRefusedError:
            return True

    def test_reload_listen_stats_shutdown_timeout(self):
        port, stats = free_port(), free_port()
        pool = mc_pool(port, [self.mc[0].port])
        proxy = Dproxy(self.procs, ARGS.dproxy, {"m": pool},
                       top={"stats": {"listen": f"{HOST}:{stats}"}})
        c = RawClient(port)
        self.addCleanup(c.close)
        for i in range(5):
            c.send(b"set rl%d 0 0 1\r\nx\r\n" % i)
            self.assertEqual(c.read_line(), b"STORED\r\n")
        requests = int(mc_stats(port)["pool_requests"])
        self.assertGreaterEqual(requests, 5)

        # Rejected: a listen address that cannot be bound, a server name that does not
        # resolve. Nothing changes.
        taken = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(taken.close)
        taken.bind((HOST, 0))
        taken.listen(1)
        bad = dict(pool, listen=f"{HOST}:{taken.getsockname()[1]}")
        self.reload(proxy, {"pools": {"m": bad}, "stats": {"listen": f"{HOST}:{stats}"}},
                    "reload rejected")
        bad = dict(pool, servers=["no-such-host.invalid:11211"])
        self.reload(proxy, {"pools": {"m": bad}, "stats": {"listen": f"{HOST}:{stats}"}},
                    "reload rejected")
        self.assertEqual(proxy.log_text().count("reload rejected"), 2)
        self.assertNotIn("reload: applied", proxy.log_text())
        harness.exchange(stats, b"GET /stats HTTP/1.0\r\n\r\n")  # the stats listener stays

        # Applied: a new listen address, stats address and shutdown_timeout_ms.
        port2, stats2 = free_port(), free_port()
        self.reload(proxy, {"pools": {"m": dict(pool, listen=f"{HOST}:{port2}")},
                            "stats": {"listen": f"{HOST}:{stats2}"},
                            "shutdown_timeout_ms": 1234}, "reload: applied")
        self.assertTrue(wait_for(lambda: self.refused(port), 10), "the old listen address")
        self.assertTrue(wait_for(lambda: self.refused(stats), 10), "the old stats address")
        doc = json.loads(harness.exchange(stats2))
        self.assertIn("m", doc)
        # The client connected to the old address stays and is served.
        c.send(b"get rl0\r\n")
        self.assertEqual(c.read_retrieval(), [(b"rl0", 0, b"x")])
        # The pool's counters survived the reload (the listen change made it a changed pool).
        self.assertGreater(int(mc_stats(port2)["pool_requests"]), requests)
        rc = proxy.stop()
        self.assertEqual(rc, 0)
        self.assertIn("(up to 1234 ms)", proxy.log_text())

    # --- stats listener ---------------------------------------------------------------------

    def test_stats_listener_405_and_400(self):
        port = free_port()
        proxy = self.start({"m": mc_pool(port, [self.mc[0].port])})
        post = harness.exchange(proxy.stats_port, b"POST /stats HTTP/1.0\r\n\r\n")
        self.assertTrue(post.startswith(b"HTTP/1.0 405 Method Not Allowed\r\n")
                        or post.startswith(b"HTTP/1.1 405 Method Not Allowed\r\n"), post)
        bad = harness.exchange(proxy.stats_port, b"NONSENSE\r\n\r\n")
        self.assertRegex(bad.split(b"\r\n", 1)[0], rb"^HTTP/1\.[01] 400 Bad Request$")
        self.assertIn(b"GET /metrics", bad)

    def test_taken_default_stats_port_is_a_warning(self):
        holder = None
        try:
            holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            holder.bind((HOST, 22222))
            holder.listen(1)
        except OSError:
            holder.close()  # taken by someone else already: the case under test either way
            holder = None
        if holder is not None:
            self.addCleanup(holder.close)
        port = free_port()
        config = os.path.join(self.procs.tmp.name, "default-stats.json")
        with open(config, "w") as f:
            json.dump({"pools": {"m": mc_pool(port, [self.mc[0].port])}}, f)
        proc = self.procs.spawn_dproxy([ARGS.dproxy, "--config", config, "--threads", "1"])
        harness.wait_port(port, proc)
        c = RawClient(port)
        c.send(b"version\r\n")
        self.assertTrue(c.read_line().startswith(b"VERSION "))
        c.close()
        with open(proc.log_path) as f:
            log = f.read()
        self.assertIn("the stats listener is off", log)
        self.assertIn("127.0.0.1:22222", log)
        self.procs.kill(proc, signal.SIGTERM, timeout=30)
        self.assertEqual(proc.returncode, 0)


if __name__ == "__main__":
    import warnings
    warnings.simplefilter("ignore", ResourceWarning)
    ARGS = harness.parse_args()
    unittest.main(verbosity=2)
