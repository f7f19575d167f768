"""dproxy under connection and pipeline pressure: 10,000 idle client connections (memory per
connection), and a client that pipelines 1,000,000 requests without ever reading its replies
(backpressure bounds dproxy's memory while other clients stay served), memcached and Redis.
"""
import socket
import threading
import time
import unittest

import harness
from harness import HOST, MemcachedOps, Processes, RedisOps, resp_command

ARGS = None

IDLE_CONNECTIONS = 10000
# KiB of VmRSS per idle connection: README ~2 KiB; ASan adds redzones and shadow memory.
IDLE_BOUND_KIB = 6
ASAN_IDLE_BOUND_KIB = 12
# Raised before any process is started, so that dproxy (a child) inherits it too.
NOFILE = harness.raise_nofile_limit()


class LoadBase(unittest.TestCase):
    def setUp(self):
        self.procs = Processes()
        self.proxy = None
        self.asan = harness.is_asan_binary(ARGS.dproxy)
        self.prefix = f"{self._testMethodName}:{time.monotonic_ns()}".encode()

    def tearDown(self):
        rc = None
        if self.proxy is not None:
            alive = self.proxy.proc.poll() is None
            rc = self.proxy.stop()
            self.proxy.log.close()
        self.procs.close()
        if self.proxy is not None:
            self.assertTrue(alive, "dproxy died during the test")
            self.assertEqual(rc, 0, f"dproxy exited with {rc}")

    def check_served(self, ops, port, tag=b"x"):
        t0 = time.monotonic()
        c = ops.client(port, timeout=10)
        try:
            k = self.prefix + b":served:" + tag
            c.send(ops.set_req(k, b"yes"))
            self.assertEqual(ops.read_set(c), ("ok", None))
            c.send(ops.get_req(k))
            self.assertEqual(ops.read_get(c), ("ok", b"yes"))
        finally:
            c.close()
        return time.monotonic() - t0

    def warm(self, ops, port):
        """Opens every backend connection (one per server per worker thread; consecutive
        clients go to different workers), so dproxy's descriptor count is a stable baseline."""
        for n in range(4):
            c = ops.client(port)
            keys = [self.prefix + b":warm:%d:%d" % (n, i) for i in range(32)]
            c.send(b"".join(ops.set_req(k, b"w") for k in keys))
            for k in keys:
                self.assertEqual(ops.read_set(c), ("ok", None))
            c.close()
        time.sleep(0.2)


class IdleConnectionsTest(LoadBase):
    def test_10000_idle_connections(self):
        soft, hard = NOFILE
        if soft != -1 and soft < IDLE_CONNECTIONS + 2000:
            self.skipTest(f"RLIMIT_NOFILE hard limit is {hard}: 10,000 idle connections need "
                          f"at least {IDLE_CONNECTIONS + 2000} descriptors")
        backends, self.proxy, port = harness.start_cluster(self.procs, ARGS.dproxy, MemcachedOps,
                                                           n=2, threads=2)
        pid = self.proxy.proc.pid
        # Warm up: both workers' backend connections and allocator arenas.
        self.warm(MemcachedOps, port)
        fds0 = harness.fd_count(pid)
        rss0 = harness.vm_rss_kb(pid)
        socks = []
        t0 = time.monotonic()
        try:
            for i in range(IDLE_CONNECTIONS):
                socks.append(socket.create_connection((HOST, port), timeout=10))
            opened = time.monotonic() - t0
            # Every one accepted by dproxy (not just queued by the kernel).
            accepted = harness.wait_for(
                lambda: harness.fd_count(pid) >= fds0 + IDLE_CONNECTIONS, 30, interval=0.1)
            self.assertTrue(accepted, f"dproxy holds {harness.fd_count(pid) - fds0} of "
                                      f"{IDLE_CONNECTIONS} connections")
            time.sleep(0.5)
            rss1 = harness.vm_rss_kb(pid)
            # A fresh client is served promptly; a sample of the idle ones still answer.
            fresh = self.check_served(MemcachedOps, port, b"fresh")
            self.assertLess(fresh, 2.0)
            for s in socks[::500]:
                s.sendall(b"version\r\n")
                self.assertTrue(s.recv(100).startswith(b"VERSION "))
        finally:
            for s in socks:
                s.close()
        per_conn = (rss1 - rss0) * 1024 / IDLE_CONNECTIONS
        closed = harness.wait_for(lambda: harness.fd_count(pid) <= fds0, 30, interval=0.1)
        self.assertTrue(closed, f"dproxy still holds {harness.fd_count(pid) - fds0} extra "
                                f"descriptors after every client closed")
        self.check_served(MemcachedOps, port, b"after")
        # Bound: 64 KiB per idle connection (256 KiB under ASan, whose allocations carry
        # redzones and shadow memory).
        bound = ASAN_IDLE_BOUND_KIB if self.asan else IDLE_BOUND_KIB
        print(f"\n[load] {IDLE_CONNECTIONS} idle connections opened in {opened:.1f}s; dproxy "
              f"VmRSS {rss0 / 1024:.1f} -> {rss1 / 1024:.1f} MiB = {per_conn / 1024:.1f} KiB per "
              f"idle connection (bound {bound} KiB); fresh client served in "
              f"{fresh * 1000:.1f} ms")
        self.assertLess(per_conn, bound * 1024)


class BackpressureBase(LoadBase):
    ops = None
    REQUESTS = 1000000

    def request_bytes(self, key):
        raise NotImplementedError

    def test_pipeline_1m_requests_without_reading(self):
        ops = self.ops
        # dproxy's VmRSS growth while flooded (ASan: redzones, shadow and quarantine of
        # freed blocks).
        self.GROWTH_BOUND_MIB = 64 if self.asan else 40
        backends, self.proxy, port = harness.start_cluster(self.procs, ARGS.dproxy, ops, n=2,
                                                           threads=2)
        pid = self.proxy.proc.pid
        # The key the flood asks for holds 100 bytes: 1M replies would be ~125 MB unbounded.
        key = self.prefix + b":hot"
        c = ops.client(port)
        c.send(ops.set_req(key, b"v" * 100))
        self.assertEqual(ops.read_set(c), ("ok", None))
        c.close()
        self.warm(ops, port)
        rss0 = harness.vm_rss_kb(pid)
        fds0 = harness.fd_count(pid)

        chunk_requests = 10000
        chunk = self.request_bytes(key) * chunk_requests
        flood = socket.create_connection((HOST, port), timeout=10)
        flood.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        state = {"sent": 0, "blocked": False, "error": None, "done": False}

        def sender():
            flood.settimeout(3.0)  # a send blocked this long: dproxy stopped reading
            try:
                for _ in range(self.REQUESTS // chunk_requests):
                    flood.sendall(chunk)
                    state["sent"] += chunk_requests
            except socket.timeout:
                state["blocked"] = True
            except OSError as e:
                state["error"] = e
            state["done"] = True

        t = threading.Thread(target=sender, daemon=True)
        t0 = time.monotonic()
        t.start()
        peak = rss0
        slowest = 0.0
        probes = 0
        deadline = time.monotonic() + 30
        while not state["done"] and time.monotonic() < deadline:
            peak = max(peak, harness.vm_rss_kb(pid))
            slowest = max(slowest, self.check_served(ops, port, b"during%d" % probes))
            probes += 1
            time.sleep(0.05)
        t.join(timeout=15)
        elapsed = time.monotonic() - t0
        self.assertFalse(t.is_alive(), "the sender is stuck")
        peak = max(peak, harness.vm_rss_kb(pid))
        self.assertIsNone(state["error"], f"the flood connection failed: {state['error']}")
        self.assertIsNone(self.proxy.proc.poll(), "dproxy died")
        # Still serves everyone else while the flood connection is stuck, then after it closes.
        slowest = max(slowest, self.check_served(ops, port, b"stuck"))
        flood.close()
        after = self.check_served(ops, port, b"after")
        self.assertTrue(harness.wait_for(lambda: harness.fd_count(pid) <= fds0, 10),
                        "the flood connection was not released")
        growth = (peak - rss0) / 1024
        print(f"\n[load] {ops.name} flood: {state['sent']} of {self.REQUESTS} requests written "
              f"in {elapsed:.1f}s ({'blocked: dproxy stopped reading' if state['blocked'] else 'all written'}); "
              f"dproxy VmRSS {rss0 / 1024:.1f} -> peak {peak / 1024:.1f} MiB, growth "
              f"{growth:.1f} MiB (bound {self.GROWTH_BOUND_MIB} MiB); other clients' slowest "
              f"set+get {slowest * 1000:.1f} ms over {probes} probes; after close "
              f"{after * 1000:.1f} ms")
        # Backpressure: dproxy stopped reading the flood (a send blocked for 3 s), long before
        # the client could write every request.
        self.assertTrue(state["blocked"], "dproxy read all 1M requests: no backpressure")
        self.assertLess(state["sent"], self.REQUESTS // 2)
        # README: a client's memory is bounded by one request, 8 MiB of unsent replies and the
        # replies of at most 4096 requests at the backends. Buffering every reply would cost
        # ~103 MiB (Redis) / ~172 MiB (memcached); the bound is well under that.
        self.assertLess(growth, self.GROWTH_BOUND_MIB)
        self.assertLess(slowest, 2.0, "other clients were not served promptly")


class MemcachedBackpressureTest(BackpressureBase):
    ops = MemcachedOps

    def request_bytes(self, key):
        return b"get " + key + b"\r\n"


class RedisBackpressureTest(BackpressureBase):
    ops = RedisOps

    def request_bytes(self, key):
        return resp_command(b"GET", key)


del LoadBase, BackpressureBase  # only the concrete classes hold tests

if __name__ == "__main__":
    import warnings
    warnings.simplefilter("ignore", ResourceWarning)
    ARGS = harness.parse_args()
    unittest.main(verbosity=2)
