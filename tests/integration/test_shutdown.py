"""Graceful shutdown of dproxy (SIGTERM / SIGINT), memcached and Redis: in-flight requests (to a
backend frozen with SIGSTOP for a moment) still get their replies, acknowledged writes are on the
backend, new connections are refused as soon as the signal arrives, and dproxy exits 0 within
shutdown_timeout_ms; idle clients and a backend that never answers do not hold exit past the
deadline.
"""
import json
import os
import signal
import socket
import threading
import time
import unittest

import harness
from harness import HOST, MemcachedOps, Processes, RedisOps, resume

ARGS = None


class ShutdownBase:
    ops = None

    def setUp(self):
        self.procs = Processes()
        self.prefix = f"{self._testMethodName}:{time.monotonic_ns()}".encode()

    def tearDown(self):
        for p in self.procs.procs:
            resume(p)
        self.procs.close()

    def start(self, shutdown_timeout_ms, n=3, **pool):
        backends, proxy, port = harness.start_cluster(
            self.procs, ARGS.dproxy, self.ops, n=n, pool=pool,
            top={"shutdown_timeout_ms": shutdown_timeout_ms})
        self.addCleanup(proxy.log.close)
        return backends, proxy, port

    def refused(self, port):
        try:
            socket.create_connection((HOST, port), timeout=1).close()
            return False
        except (ConnectionRefusedError, ConnectionResetError):
            # Reset: the connect raced the listener closing and landed in its backlog, which
            # the kernel then resets; either way no connection was served.
            return True

    def wait_exit(self, proxy, timeout):
        try:
            return proxy.proc.wait(timeout=timeout)
        except Exception:  # noqa: BLE001 (subprocess.TimeoutExpired)
            return None

    def test_sigterm_finishes_in_flight_requests(self):
        shutdown_ms = 3000
        backends, proxy, port = self.start(shutdown_ms, timeout_ms=10000,
                                           server_failure_limit=1000000)
        ports = [b.port for b in backends]
        keys = harness.spread_keys(self.ops, port, ports, 4, self.prefix)
        slow = backends[1]
        clients = [self.ops.client(port, timeout=15) for _ in range(4)]
        idle = [self.ops.client(port, timeout=15) for _ in range(2)]
        for c in clients + idle:
            self.addCleanup(c.close)
        # Warm up each client's backend connection.
        for i, c in enumerate(clients):
            c.send(self.ops.get_req(keys[slow.port][i]))
            self.assertEqual(self.ops.read_get(c), ("ok", b"seed"))

        harness.freeze(slow)
        self.addCleanup(resume, slow)
        expected = {}
        for i, c in enumerate(clients):
            # A write and a read to the frozen server, and a read to a healthy one behind them.
            k = keys[slow.port][i]
            other = keys[ports[0]][i]
            expected[i] = (k, b"in-flight-%d" % i, other)
            c.send(self.ops.set_req(k, b"in-flight-%d" % i) + self.ops.get_req(k)
                   + self.ops.get_req(other))
        # dproxy has read them: 8 requests wait on the frozen backend.
        self.assertTrue(harness.wait_for(
            lambda: proxy.in_flight("p", f"{HOST}:{slow.port}") == 2 * len(clients), 10))
        os.kill(proxy.proc.pid, signal.SIGTERM)
        t_term = time.monotonic()
        # New connections are refused while the in-flight requests are still pending.
        self.assertTrue(harness.wait_for(lambda: self.refused(port), 2),
                        "dproxy still accepts connections after SIGTERM")
        refused_after = time.monotonic() - t_term
        self.assertIsNone(proxy.proc.poll(), "dproxy exited with requests in flight")
        # Idle clients are closed right away.
        for c in idle:
            self.assertTrue(c.is_closed(timeout=2), "an idle client was not closed")
        time.sleep(max(0.0, 0.3 - (time.monotonic() - t_term)))
        os.kill(slow.pid, signal.SIGCONT)

        for i, c in enumerate(clients):
            k, v, other = expected[i]
            self.assertEqual(self.ops.read_set(c), ("ok", None), k)
            self.assertEqual(self.ops.read_get(c), ("ok", v), k)
            self.assertEqual(self.ops.read_get(c), ("ok", b"seed"), other)
            self.assertTrue(c.is_closed(timeout=5), "client not closed after its replies")
        rc = self.wait_exit(proxy, shutdown_ms / 1000 + 5)
        exited = time.monotonic() - t_term
        self.assertEqual(rc, 0, "dproxy did not exit 0 after draining")
        self.assertLess(exited, shutdown_ms / 1000 + 2)
        for i in range(len(clients)):
            k, v, _ = expected[i]
            self.assertEqual(self.ops.direct_get(slow.port, k), v, "acknowledged write lost")
        log = proxy.log_text()
        self.assertIn("received SIGTERM", log)
        self.assertIn("shutdown: every in-flight request answered", log)
        print(f"\n[{self.ops.name}] shutdown: refused new connections {refused_after * 1000:.0f} ms "
              f"after SIGTERM; exited 0 {exited * 1000:.0f} ms after SIGTERM (backend resumed "
              f"at 300 ms, shutdown_timeout_ms={shutdown_ms})")

    def test_stuck_backend_does_not_hold_exit_past_deadline(self):
        shutdown_ms = 1000
        backends, proxy, port = self.start(shutdown_ms, n=2, timeout_ms=60000,
                                           server_failure_limit=1000000)
        keys = harness.spread_keys(self.ops, port, [b.port for b in backends], 1, self.prefix)
        stuck = backends[0]
        c = self.ops.client(port, timeout=15)
        idle = self.ops.client(port, timeout=15)
        self.addCleanup(c.close)
        self.addCleanup(idle.close)
        harness.freeze(stuck)
        self.addCleanup(resume, stuck)
        c.send(self.ops.get_req(keys[stuck.port][0]))
        self.assertTrue(harness.wait_for(
            lambda: proxy.in_flight("p", f"{HOST}:{stuck.port}") == 1, 10))
        t0 = time.monotonic()
        os.kill(proxy.proc.pid, signal.SIGTERM)
        rc = self.wait_exit(proxy, shutdown_ms / 1000 + 10)
        exited = time.monotonic() - t0
        self.assertEqual(rc, 0, "dproxy did not exit 0")
        self.assertGreater(exited, shutdown_ms / 1000 * 0.8, "exited before the deadline")
        self.assertLess(exited, shutdown_ms / 1000 + 3, "exit held past the deadline")
        self.assertTrue(c.is_closed(timeout=2))
        self.assertTrue(idle.is_closed(timeout=2))
        self.assertIn("deadline reached with requests still in flight", proxy.log_text())
        print(f"\n[{self.ops.name}] shutdown with a frozen backend: exited 0 after "
              f"{exited * 1000:.0f} ms (shutdown_timeout_ms={shutdown_ms})")


class MemcachedShutdown(ShutdownBase, unittest.TestCase):
    ops = MemcachedOps


class RedisShutdown(ShutdownBase, unittest.TestCase):
    ops = RedisOps


class PlainShutdown(unittest.TestCase):
    def setUp(self):
        self.procs = Processes()

    def tearDown(self):
        self.procs.close()

    def start(self, shutdown_timeout_ms):
        mc = self.procs.memcached()
        port = harness.free_port()
        proxy = harness.DproxyTop(
            self.procs, ARGS.dproxy,
            {"p": {"protocol": "memcached", "listen": f"{HOST}:{port}",
                   "servers": [f"{HOST}:{mc.port}"]}},
            top={"shutdown_timeout_ms": shutdown_timeout_ms})
        self.addCleanup(proxy.log.close)
        return proxy, port

    def test_no_clients_exits_promptly(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            proxy, _ = self.start(5000)
            # Signals that arrive in the first moments after the port opens are the subject of
            # test_signal_right_after_the_port_opens.
            time.sleep(0.3)
            t0 = time.monotonic()
            os.kill(proxy.proc.pid, sig)
            rc = proxy.proc.wait(timeout=10)
            exited = time.monotonic() - t0
            self.assertEqual(rc, 0, f"exit code after {sig.name}")
            self.assertLess(exited, 1.0, f"{sig.name} with no clients took {exited:.2f}s")
            print(f"\n[shutdown] {sig.name}, no clients: exit 0 in {exited * 1000:.0f} ms")

    # Regression (fixed): a SIGTERM that arrives after dproxy's listen port accepts connections but before
    # Proxy::run() installs its asio::signal_set kills dproxy with the default action (exit
    # status -15, no graceful drain). In src/main.cpp / src/core/proxy.cpp, Proxy::start() opens
    # the listeners and starts the workers and only then does run() register SIGINT/SIGTERM;
    # registering the signal_set (or blocking the signals) before the listeners open closes the
    # window. Hit in about 2 of 3 attempts here.
    def test_signal_right_after_the_port_opens(self):
        mc = self.procs.memcached()
        results = []
        for i in range(20):
            port = harness.free_port()
            config = os.path.join(self.procs.tmp.name, f"early-{i}.json")
            with open(config, "w") as f:
                json.dump({"stats": {"listen": f"{HOST}:{harness.free_port()}"},
                           "pools": {"p": {"protocol": "memcached", "listen": f"{HOST}:{port}",
                                           "servers": [f"{HOST}:{mc.port}"]}}}, f)
            proc = self.procs.spawn_dproxy([ARGS.dproxy, "--config", config, "--threads", "2"])
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    socket.create_connection((HOST, port), timeout=1).close()
                    break
                except OSError:
                    pass
            os.kill(proc.pid, signal.SIGTERM)  # as soon as the port accepts connections
            results.append(proc.wait(timeout=10))
        self.assertEqual(results, [0] * 20, "exit statuses after an early SIGTERM")

    def test_idle_clients_do_not_block_exit(self):
        # The deadline is far above the bound below: a dproxy that waits for idle clients (or
        # for the deadline) instead of closing them at once fails.
        shutdown_ms = 20000
        proxy, port = self.start(shutdown_ms)
        socks = []
        for i in range(50):
            s = harness.RawClient(port)
            if i % 2:
                # Used once, then idle.
                s.send(b"version\r\n")
                self.assertTrue(s.read_line().startswith(b"VERSION "))
            socks.append(s)
        # A client in the middle of a request line, and one in the middle of a value.
        socks[0].send(b"get partial")
        socks[2].send(b"set k 0 0 10\r\nabc")
        time.sleep(0.1)
        t0 = time.monotonic()
        os.kill(proxy.proc.pid, signal.SIGTERM)
        rc = proxy.proc.wait(timeout=shutdown_ms / 1000 + 10)
        exited = time.monotonic() - t0
        self.assertEqual(rc, 0)
        # README: idle clients are closed at once and dproxy exits when nothing is in flight.
        # 3 s leaves room for a loaded machine and ASan, and is far below the deadline.
        self.assertLess(exited, 3.0, f"idle clients held exit for {exited:.2f} s "
                                     f"(shutdown_timeout_ms={shutdown_ms})")
        log = proxy.log_text()
        self.assertIn("shutdown: every in-flight request answered", log)
        self.assertNotIn("deadline reached", log)
        for s in socks:
            self.assertTrue(s.is_closed(timeout=2))
            s.close()
        print(f"\n[shutdown] 50 idle clients: exit 0 in {exited * 1000:.0f} ms "
              f"(shutdown_timeout_ms={shutdown_ms})")


if __name__ == "__main__":
    import warnings
    warnings.simplefilter("ignore", ResourceWarning)
    ARGS = harness.parse_args()
    unittest.main(verbosity=2)
