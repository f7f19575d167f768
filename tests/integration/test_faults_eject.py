"""Server health through dproxy, memcached and Redis: server_failure_limit marks a dead backend
down; with auto_eject_hosts its keys move to the remaining servers, without it its requests fail
fast; a down server is probed every server_retry_timeout_ms and re-added only when the probe
answers (never when it answers garbage).

Every test starts its own backends and dproxy on free loopback ports.
"""
import signal
import time
import unittest

import harness
from harness import HOST, FakeServer, MemcachedOps, Processes, RedisOps, resume

ARGS = None

GARBAGE = (b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n"
           b"\r\n")
RETRY_MS = 500


class EjectBase:
    ops = None

    def setUp(self):
        self.procs = Processes()
        self.proxy = None
        self.prefix = f"{self._testMethodName}:{time.monotonic_ns()}".encode()

    def tearDown(self):
        for p in self.procs.procs:
            resume(p)
        if self.proxy is not None:
            self.proxy.stop()
            self.proxy.log.close()
        self.procs.close()

    def finish(self):
        """Every test ends here: dproxy is still running and stops cleanly (exit 0)."""
        self.assertIsNone(self.proxy.proc.poll(), "dproxy died during the test")
        rc = self.proxy.stop()
        self.assertEqual(rc, 0, f"dproxy exited with {rc}")

    def cluster(self, n=3, **pool):
        backends, self.proxy, port = harness.start_cluster(self.procs, ARGS.dproxy, self.ops,
                                                           n=n, pool=pool)
        return backends, port

    def client(self, port):
        c = self.ops.client(port)
        self.addCleanup(c.close)
        return c

    def request(self, c, req, read):
        t0 = time.monotonic()
        c.send(req)
        r = read(c)
        return r, time.monotonic() - t0

    def drive_until_down(self, c, keys, address, limit=200):
        """Sends sets for `keys` (of a dead server) until dproxy marks it down; returns the
        errors seen. Every one must name the server."""
        prefix = self.ops.error_prefix(address)
        seen = []
        deadline = time.monotonic() + 10
        for i in range(limit):
            if f"server {address} marked DOWN" in self.proxy.log_text():
                return seen
            self.assertLess(time.monotonic(), deadline)
            c.send(self.ops.set_req(keys[i % len(keys)], b"x"))
            kind, text = self.ops.read_set(c)
            if kind == "error":
                self.assertTrue(text.startswith(prefix), text)
                seen.append(text[len(prefix):])
            time.sleep(0.02)
        self.fail(f"{address} was never marked DOWN; errors: {seen[-5:]}")

    def wait_first_probe(self, address):
        """Waits for the first failed probe of the down server `address`; dproxy must survive it."""
        harness.wait_for(lambda: f"probe of down server {address} failed" in self.proxy.log_text()
                         or self.proxy.proc.poll() is not None, 5)
        self.assertIsNone(self.proxy.proc.poll(), f"dproxy died (exit {self.proxy.proc.poll()}) "
                                                  f"when it probed the down server {address}")
        self.assertIn(f"probe of down server {address} failed", self.proxy.log_text())

    # --- auto_eject_hosts: keys move away and come back ----------------------------------

    # Regression (fixed): dproxy crashes (SIGSEGV) at the first probe of a down server: Proxy::start
    # (src/core/proxy.cpp) resolves the backends into the local `endpoints` but hands the never
    # filled member `endpoints_` to the Prober, and Prober::probe (src/core/prober.cpp) indexes
    # endpoints_[pool][server] out of bounds.
    def test_eject_then_readd_after_probe(self):
        backends, port = self.cluster(auto_eject_hosts=True, server_failure_limit=2,
                                      server_retry_timeout_ms=RETRY_MS, timeout_ms=1000)
        ports = [b.port for b in backends]
        keys = harness.spread_keys(self.ops, port, ports, 10, self.prefix)
        victim = backends[1]
        address = f"{HOST}:{victim.port}"
        vkeys = keys[victim.port]
        c = self.client(port)

        self.procs.kill(victim, signal.SIGKILL)
        killed = time.monotonic()
        errors = self.drive_until_down(c, vkeys, address)
        down_after = time.monotonic() - killed
        log = self.proxy.log_text()
        self.assertIn(f"server {address} marked DOWN after 2 consecutive failures", log)
        self.assertIn("ejected, its keys move to the remaining servers", log)

        # The victim's keys are now served by the remaining servers.
        for k in vkeys:
            c.send(self.ops.set_req(k, b"moved-" + k))
            self.assertEqual(self.ops.read_set(c), ("ok", None), k)
            c.send(self.ops.get_req(k))
            self.assertEqual(self.ops.read_get(c), ("ok", b"moved-" + k), k)
        alive_ports = [ports[0], ports[2]]
        where = harness.locate_keys(self.ops, alive_ports, vkeys)
        for k in vkeys:
            self.assertEqual(len(where[k]), 1, (k, where[k]))
        # Keys of the live servers did not move (consistent hashing).
        for p in alive_ports:
            for k, w in harness.locate_keys(self.ops, [p], keys[p]).items():
                self.assertEqual(w, [p], k)

        # Probes of the dead server fail (connection refused) and are logged.
        self.wait_first_probe(address)
        time.sleep(RETRY_MS / 1000)
        self.assertNotIn(f"server {address} is UP again", self.proxy.log_text())

        # Restart the backend on the same port: re-added only once a probe answers.
        log_mark = len(self.proxy.log_text())
        self.ops.backend(self.procs, port=victim.port)
        restarted = time.monotonic()
        self.assertTrue(harness.wait_log(self.proxy, f"server {address} is UP again (probe "
                                         f"answered); re-added to the distribution",
                                         timeout=RETRY_MS / 1000 + 5, start=log_mark),
                        "the restarted server was not re-added")
        readd = time.monotonic() - restarted
        # Keys route back to it: stored through dproxy, found on the restarted backend.
        for k in vkeys:
            c.send(self.ops.set_req(k, b"back-" + k))
            self.assertEqual(self.ops.read_set(c), ("ok", None), k)
            c.send(self.ops.get_req(k))
            self.assertEqual(self.ops.read_get(c), ("ok", b"back-" + k), k)
            self.assertEqual(self.ops.direct_get(victim.port, k), b"back-" + k, k)
        print(f"\n[{self.ops.name}] eject: marked DOWN {down_after * 1000:.0f} ms after the kill "
              f"(errors before: {sorted(set(errors))}); re-added {readd * 1000:.0f} ms after "
              f"the restart (server_retry_timeout_ms={RETRY_MS})")
        self.finish()

    # --- without auto_eject_hosts: fail fast while down ----------------------------------

    # Regression (fixed): dproxy crashes (SIGSEGV) at the first probe of a down server: Proxy::start
    # (src/core/proxy.cpp) resolves the backends into the local `endpoints` but hands the never
    # filled member `endpoints_` to the Prober, and Prober::probe (src/core/prober.cpp) indexes
    # endpoints_[pool][server] out of bounds.
    def test_no_eject_fails_fast_then_recovers(self):
        timeout_ms = 3000
        backends, port = self.cluster(auto_eject_hosts=False, server_failure_limit=2,
                                      server_retry_timeout_ms=RETRY_MS, timeout_ms=timeout_ms)
        ports = [b.port for b in backends]
        keys = harness.spread_keys(self.ops, port, ports, 10, self.prefix)
        victim = backends[0]
        address = f"{HOST}:{victim.port}"
        vkeys = keys[victim.port]
        c = self.client(port)

        self.procs.kill(victim, signal.SIGKILL)
        self.drive_until_down(c, vkeys, address)
        self.assertIn("its requests fail fast", self.proxy.log_text())
        down_error = (self.ops.error_prefix(address) + "is down (marked after 2 consecutive "
                      f"failures; dproxy probes it every {RETRY_MS} ms)")
        times = []
        for i in range(40):
            k = vkeys[i % len(vkeys)]
            if i % 2:
                r, dt = self.request(c, self.ops.set_req(k, b"y"), self.ops.read_set)
            else:
                r, dt = self.request(c, self.ops.get_req(k), self.ops.read_get)
            self.assertEqual(r, ("error", down_error))
            times.append(dt)
            # The other servers are unaffected.
            other = keys[ports[1 + i % 2]][i % 10]
            r, _ = self.request(c, self.ops.set_req(other, b"z%d" % i), self.ops.read_set)
            self.assertEqual(r, ("ok", None))
        self.assertLess(max(times), timeout_ms / 1000 / 3,
                        "requests to a down server did not fail fast")
        self.wait_first_probe(address)

        log_mark = len(self.proxy.log_text())
        self.ops.backend(self.procs, port=victim.port)
        restarted = time.monotonic()
        self.assertTrue(harness.wait_log(self.proxy, f"server {address} is UP again",
                                         timeout=RETRY_MS / 1000 + 5, start=log_mark))
        readd = time.monotonic() - restarted
        for k in vkeys:
            r, _ = self.request(c, self.ops.set_req(k, b"again-" + k), self.ops.read_set)
            self.assertEqual(r, ("ok", None), k)
            r, _ = self.request(c, self.ops.get_req(k), self.ops.read_get)
            self.assertEqual(r, ("ok", b"again-" + k), k)
            self.assertEqual(self.ops.direct_get(victim.port, k), b"again-" + k)
        times.sort()
        print(f"\n[{self.ops.name}] no eject: 'is down' errors in median "
              f"{times[len(times) // 2] * 1000:.2f} ms, max {times[-1] * 1000:.2f} ms "
              f"(timeout_ms={timeout_ms}); UP again {readd * 1000:.0f} ms after the restart")
        self.finish()

    # --- a probe answered with garbage does not re-add -----------------------------------

    # Regression (fixed): dproxy crashes (SIGSEGV) at the first probe of a down server: Proxy::start
    # (src/core/proxy.cpp) resolves the backends into the local `endpoints` but hands the never
    # filled member `endpoints_` to the Prober, and Prober::probe (src/core/prober.cpp) indexes
    # endpoints_[pool][server] out of bounds.
    def test_garbage_probe_does_not_readd(self):
        real = self.ops.backend(self.procs)
        fake = FakeServer(lambda data: GARBAGE)
        self.addCleanup(fake.close)
        _, port = self.cluster(n=0, auto_eject_hosts=True, server_failure_limit=2,
                               server_retry_timeout_ms=200, timeout_ms=1000,
                               servers=[f"{HOST}:{real.port}", f"{HOST}:{fake.port}"])
        address = f"{HOST}:{fake.port}"
        c = self.client(port)
        keys = [b"%s:%d" % (self.prefix, i) for i in range(60)]
        # Requests to the fake server fail (malformed replies) until it is marked down.
        deadline = time.monotonic() + 10
        while f"server {address} marked DOWN" not in self.proxy.log_text():
            self.assertLess(time.monotonic(), deadline, "the garbage server was never marked down")
            c.send(b"".join(self.ops.get_req(k) for k in keys))
            for k in keys:
                kind, text = self.ops.read_get(c)
                if kind == "error":
                    self.assertTrue(text.startswith(self.ops.error_prefix(address)), text)
            time.sleep(0.06)
        time.sleep(0.05)
        mark = len(fake.received)
        self.wait_first_probe(address)
        # Several probe rounds: every probe gets garbage, so the server stays out.
        self.assertTrue(harness.wait_for(
            lambda: self.proxy.log_text().count(f"probe of down server {address} failed "
                                                "(unexpected answer") >= 3, 5),
            "fewer than 3 failed probes logged")
        self.assertNotIn(f"server {address} is UP again", self.proxy.log_text())
        # All keys are served by the real server, none reaches the fake one.
        for k in keys:
            c.send(self.ops.set_req(k, b"v-" + k))
            self.assertEqual(self.ops.read_set(c), ("ok", None), k)
            c.send(self.ops.get_req(k))
            self.assertEqual(self.ops.read_get(c), ("ok", b"v-" + k), k)
            self.assertEqual(self.ops.direct_get(real.port, k), b"v-" + k)
        time.sleep(0.5)
        self.assertNotIn(f"server {address} is UP again", self.proxy.log_text())
        probe = b"version\r\n" if self.ops is MemcachedOps else b"*1\r\n$4\r\nPING\r\n"
        after = fake.received[mark:]
        self.assertTrue(after, "the fake server was never probed")
        self.assertEqual(after.replace(probe, b""), b"",
                         "the fake server got more than probes after it was marked down")
        self.finish()


class MemcachedEject(EjectBase, unittest.TestCase):
    ops = MemcachedOps


class RedisEject(EjectBase, unittest.TestCase):
    ops = RedisOps


if __name__ == "__main__":
    import warnings
    warnings.simplefilter("ignore", ResourceWarning)
    ARGS = harness.parse_args()
    unittest.main(verbosity=2)
