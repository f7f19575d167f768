"""memcached through dproxy: every command, placement, ordering, limits and errors.

Starts three real memcached servers on free loopback ports and dproxy in front of them.
"""
import os
import signal
import socket
import subprocess
import threading
import time
import unittest

import harness
from harness import HOST, Dproxy, Processes, RawClient, backend_get, free_port

from pymemcache.client.base import Client

ARGS = None


def key_on(backends, key):
    """Returns the list of backend ports that hold `key`."""
    return [b.port for b in backends if backend_get(b.port, key) is not None]


class MemcachedProxyTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.procs = Processes()
        cls.backends = [cls.procs.memcached() for _ in range(3)]
        cls.dead = harness.HeldPort()  # bound, never listening: connects are refused
        cls.dead_port = cls.dead.port
        cls.port = free_port()
        cls.down_port = free_port()
        cls.sock_path = os.path.join(cls.procs.tmp.name, "dproxy.sock")
        servers = [f"{HOST}:{b.port}:{w} mc{i}" for i, (b, w) in
                   enumerate(zip(cls.backends, (1, 2, 1)))]
        pools = {
            "main": {"protocol": "memcached", "listen": f"{HOST}:{cls.port}",
                     "policy": "ketama", "hash": "md5", "timeout_ms": 2000,
                     "servers": servers},
            "halfdown": {"protocol": "memcached", "listen": f"{HOST}:{cls.down_port}",
                         "policy": "modula", "hash": "fnv1a_64", "timeout_ms": 500,
                         "server_failure_limit": 1000000,
                         "servers": [f"{HOST}:{cls.backends[0].port}",
                                     f"{HOST}:{cls.dead_port}"]},
            "unix": {"protocol": "memcached", "listen": cls.sock_path, "hash": "md5",
                     "servers": servers},
        }
        cls.proxy = Dproxy(cls.procs, ARGS.dproxy, pools)

    @classmethod
    def tearDownClass(cls):
        rc = cls.proxy.stop()
        cls.procs.close()
        assert rc == 0, f"dproxy exited with {rc}"

    def setUp(self):
        self.prefix = f"{self._testMethodName}:{time.monotonic_ns()}:".encode()

    def k(self, name):
        return self.prefix + (name if isinstance(name, bytes) else str(name).encode())

    def client(self):
        mc = Client((HOST, self.port), connect_timeout=5, timeout=10)
        self.addCleanup(mc.close)
        return mc

    def raw(self, port=None):
        c = RawClient(port or self.port)
        self.addCleanup(c.close)
        return c

    def assert_alive(self, c):
        """The same connection still serves requests."""
        key = self.k(b"alive")
        c.send(b"set " + key + b" 0 0 2\r\nok\r\nget " + key + b"\r\n")
        self.assertEqual(c.read_line(), b"STORED\r\n")
        self.assertEqual(c.read_retrieval(), [(key, 0, b"ok")])

    # --- placement -----------------------------------------------------------------------

    def test_keys_spread_and_each_on_exactly_one_backend(self):
        mc = self.client()
        keys = [self.k(os.urandom(8).hex()) for i in range(400)]
        for key in keys:
            self.assertTrue(mc.set(key, b"v" + key, noreply=False))
        per_backend = {b.port: 0 for b in self.backends}
        for key in keys:
            where = key_on(self.backends, key)
            self.assertEqual(len(where), 1, f"{key!r} on {where}")
            per_backend[where[0]] += 1
            self.assertEqual(mc.get(key), b"v" + key)
        # Weights 1:2:1 -> the middle server holds clearly more keys than each other one.
        counts = [per_backend[b.port] for b in self.backends]
        self.assertTrue(all(c > 20 for c in counts), counts)
        self.assertGreater(counts[1], max(counts[0], counts[2]), counts)

    # --- commands ------------------------------------------------------------------------

    def test_storage_and_arith_commands_exact_replies(self):
        c = self.raw()
        a, n = self.k("a"), self.k("n")
        script = [
            (b"set " + a + b" 5 0 3\r\nabc\r\n", b"STORED\r\n"),
            (b"add " + a + b" 0 0 1\r\nx\r\n", b"NOT_STORED\r\n"),
            (b"replace " + a + b" 7 0 3\r\nxyz\r\n", b"STORED\r\n"),
            (b"append " + a + b" 0 0 2\r\n12\r\n", b"STORED\r\n"),
            (b"prepend " + a + b" 0 0 2\r\n00\r\n", b"STORED\r\n"),
            (b"replace " + self.k("missing") + b" 0 0 1\r\nx\r\n", b"NOT_STORED\r\n"),
            (b"set " + n + b" 0 0 2\r\n10\r\n", b"STORED\r\n"),
            (b"incr " + n + b" 5\r\n", b"15\r\n"),
            (b"decr " + n + b" 20\r\n", b"0\r\n"),
            (b"incr " + self.k("nope") + b" 1\r\n", b"NOT_FOUND\r\n"),
            (b"touch " + n + b" 100\r\n", b"TOUCHED\r\n"),
            (b"touch " + self.k("nope") + b" 100\r\n", b"NOT_FOUND\r\n"),
            (b"delete " + n + b"\r\n", b"DELETED\r\n"),
            (b"delete " + n + b"\r\n", b"NOT_FOUND\r\n"),
        ]
        for req, want in script:
            c.send(req)
            self.assertEqual(c.read_line(), want, req)
        c.send(b"get " + a + b"\r\n")
        self.assertEqual(c.read_retrieval(), [(a, 7, b"00xyz12")])

    def test_gets_cas_gat_gats(self):
        c = self.raw()
        a = self.k("a")
        c.send(b"set " + a + b" 3 0 2\r\nv1\r\ngets " + a + b"\r\n")
        self.assertEqual(c.read_line(), b"STORED\r\n")
        items = c.read_retrieval()
        self.assertEqual(items[0][:3], (a, 3, b"v1"))
        cas = items[0][3]
        c.send(b"cas " + a + b" 4 0 2 " + str(cas + 1000).encode() + b"\r\nzz\r\n")
        self.assertEqual(c.read_line(), b"EXISTS\r\n")
        c.send(b"cas " + a + b" 4 0 2 " + str(cas).encode() + b"\r\nv2\r\n")
        self.assertEqual(c.read_line(), b"STORED\r\n")
        c.send(b"cas " + self.k("none") + b" 0 0 1 1\r\nx\r\n")
        self.assertEqual(c.read_line(), b"NOT_FOUND\r\n")
        c.send(b"gat 100 " + a + b"\r\n")
        self.assertEqual(c.read_retrieval(), [(a, 4, b"v2")])
        c.send(b"gats 100 " + a + b" " + self.k("none") + b"\r\n")
        items = c.read_retrieval()
        self.assertEqual(len(items), 1)
        self.assertEqual(items[0][:3], (a, 4, b"v2"))

    def test_multiget_1000_keys_in_client_order_with_misses_and_duplicates(self):
        mc = self.client()
        keys = [self.k(i) for i in range(1000)]
        mc.set_many({key: b"val-" + key for key in keys[::2]}, noreply=False)
        # Every key must really be spread: make sure all three servers are involved.
        owners = {key_on(self.backends, key)[0] for key in keys[::20]}
        self.assertEqual(len(owners), 3)
        c = self.raw()
        request = keys + [keys[0], keys[2]]  # duplicates at the end
        c.send(b"get " + b" ".join(request) + b"\r\n")
        items = c.read_retrieval()
        want = [(key, 0, b"val-" + key) for key in request if int(key.rsplit(b":", 1)[1]) % 2 == 0]
        self.assertEqual(items, want)
        got = mc.get_many(keys)
        self.assertEqual(len(got), 500)

    def test_gets_multi_server_returns_cas_per_item(self):
        mc = self.client()
        keys = [self.k(i) for i in range(40)]
        mc.set_many({key: key for key in keys}, noreply=False)
        c = self.raw()
        c.send(b"gets " + b" ".join(keys) + b"\r\n")
        items = c.read_retrieval()
        self.assertEqual([i[0] for i in items], keys)
        self.assertTrue(all(len(i) == 4 for i in items))

    def test_values_binary_and_containing_end_marker(self):
        c = self.raw()
        values = [b"\r\nEND\r\n", b"VALUE x 0 1\r\nEND\r\n", bytes(range(256)), b"", b"\0" * 10]
        keys = [self.k(i) for i in range(len(values))]
        for key, v in zip(keys, values):
            c.send(b"set " + key + b" 0 0 " + str(len(v)).encode() + b"\r\n" + v + b"\r\n")
            self.assertEqual(c.read_line(), b"STORED\r\n")
        c.send(b"get " + b" ".join(keys) + b"\r\n")
        self.assertEqual(c.read_retrieval(), [(k, 0, v) for k, v in zip(keys, values)])

    def test_one_mib_values_and_oversize_refused(self):
        mc = self.client()
        big = os.urandom(1024 * 1024)
        self.assertTrue(mc.set(self.k("big"), big, noreply=False))
        self.assertEqual(mc.get(self.k("big")), big)
        c = self.raw()
        too_big = b"x" * (1024 * 1024 + 1)
        c.send(b"set " + self.k("huge") + b" 0 0 " + str(len(too_big)).encode() + b"\r\n")
        # The error comes as soon as the command line is read; the data block is swallowed.
        self.assertEqual(c.read_line(), b"SERVER_ERROR object too large for cache\r\n")
        c.send(too_big + b"\r\n")
        self.assert_alive(c)
        self.assertIsNone(mc.get(self.k("huge")))

    def test_noreply_never_produces_or_shifts_replies(self):
        c = self.raw()
        a, n = self.k("a"), self.k("n")
        c.send(b"set " + a + b" 0 0 1 noreply\r\nx\r\n"
               b"incr " + a + b" 1 noreply\r\n"          # backend answers CLIENT_ERROR: dropped
               b"add " + a + b" 0 0 1 noreply\r\ny\r\n"  # backend answers NOT_STORED: dropped
               b"set " + n + b" 0 0 1 noreply\r\n1\r\n"
               b"incr " + n + b" 4 noreply\r\n"
               b"delete " + self.k("zz") + b" noreply\r\n"
               b"touch " + n + b" 10 noreply\r\n"
               b"verbosity 1 noreply\r\n"
               b"get " + a + b" " + n + b"\r\n")
        self.assertEqual(c.read_retrieval(), [(a, 0, b"x"), (n, 0, b"5")])
        c.send(b"version\r\n")
        self.assertTrue(c.read_line().startswith(b"VERSION "))

    def test_local_commands(self):
        c = self.raw()
        c.send(b"version\r\nverbosity 1\r\n")
        self.assertRegex(c.read_line(), rb"^VERSION \S+")
        self.assertEqual(c.read_line(), b"OK\r\n")
        c.send(b"quit\r\n")
        self.assertTrue(c.is_closed())

    def test_pipelined_requests_over_servers_keep_order(self):
        c = self.raw()
        keys = [self.k(i) for i in range(500)]
        req = b"".join(b"set " + key + b" 0 0 " + str(len(key)).encode() + b"\r\n" + key +
                       b"\r\nget " + key + b"\r\nincr " + key + b" 1\r\n" for key in keys)
        c.send(req)
        for key in keys:
            self.assertEqual(c.read_line(), b"STORED\r\n")
            self.assertEqual(c.read_retrieval(), [(key, 0, key)])
            self.assertEqual(c.read_line(),
                             b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n")

    def test_request_split_at_every_byte(self):
        c = self.raw()
        key = self.k("split")
        req = b"set " + key + b" 1 0 9\r\nab\r\nEND\r\n\r\nget " + key + b"\r\n"
        for i in range(len(req)):
            c.send(req[i:i + 1])
            time.sleep(0.001)
        self.assertEqual(c.read_line(), b"STORED\r\n")
        self.assertEqual(c.read_retrieval(), [(key, 1, b"ab\r\nEND\r\n")])

    def test_500_concurrent_clients(self):
        socks = []
        try:
            for i in range(500):
                s = socket.create_connection((HOST, self.port), timeout=20)
                socks.append(s)
            for i, s in enumerate(socks):
                key = self.k(i)
                s.sendall(b"set " + key + b" 0 0 4\r\n" + b"%04d" % i + b"\r\nget " + key + b"\r\n")
            for i, s in enumerate(socks):
                key = self.k(i)
                want = b"STORED\r\nVALUE " + key + b" 0 4\r\n" + b"%04d" % i + b"\r\nEND\r\n"
                got = b""
                while len(got) < len(want):
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    got += chunk
                self.assertEqual(got, want)
        finally:
            for s in socks:
                s.close()

    def test_threads_hammering_the_same_keys(self):
        errors = []

        def work(t):
            try:
                mc = self.client()
                for i in range(200):
                    key = self.k(f"{t}-{i % 20}")
                    mc.set(key, str(i).encode(), noreply=False)
                    if mc.get(key) != str(i).encode():
                        errors.append((t, i))
            except Exception as e:  # noqa: BLE001 - report any failure
                errors.append(repr(e))

        threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(errors, [])

    def test_unix_socket_listener(self):
        mc = Client(self.sock_path, connect_timeout=5, timeout=10)
        self.assertTrue(mc.set(self.k("u"), b"unix", noreply=False))
        self.assertEqual(self.client().get(self.k("u")), b"unix")

    def test_libmemcached_tools(self):
        server = f"--servers={HOST}:{self.port}"
        path = os.path.join(self.procs.tmp.name, self.prefix.decode().replace(":", "_"))
        with open(path, "wb") as f:
            f.write(b"libmemcached through dproxy\n" * 100)
        name = os.path.basename(path)
        run = lambda *a: subprocess.run(a, capture_output=True, timeout=30)
        self.assertEqual(run("memccp", server, path).returncode, 0)
        got = run("memccat", server, name)
        self.assertEqual(got.returncode, 0, got.stderr)
        # memccat ends its output with one extra newline of its own.
        self.assertEqual(got.stdout, b"libmemcached through dproxy\n" * 100 + b"\n")
        self.assertEqual(run("memcexist", server, name).returncode, 0)
        self.assertEqual(run("memcrm", server, name).returncode, 0)
        self.assertNotEqual(run("memcexist", server, name).returncode, 0)
        # A bounded load from memcslap: 4 concurrent connections, 2000 operations.
        slap = run("memcslap", server, "--concurrency=4", "--execute-number=500")
        self.assertEqual(slap.returncode, 0, slap.stderr)

    # --- bad input: exact error, connection stays usable --------------------------------

    def check_error(self, request, want, then_data=b""):
        c = self.raw()
        c.send(request)
        self.assertEqual(c.read_line(), want, request[:80])
        if then_data:
            c.send(then_data)
        self.assert_alive(c)

    def test_key_too_long(self):
        # memcached's text; the data block of a storage command is swallowed (memcached would
        # run it as a command: dproxy never does).
        key = b"k" * 251
        self.check_error(b"get " + key + b"\r\n", b"CLIENT_ERROR bad command line format\r\n")
        self.check_error(b"set " + key + b" 0 0 3\r\nabc\r\n",
                         b"CLIENT_ERROR bad command line format\r\n")
        self.assertTrue(self.client().set(b"k" * 250, b"ok", noreply=False))

    def test_key_with_control_character(self):
        # As memcached: only ' ' separates tokens, other control bytes belong to the key.
        key = self.k(b"a\x01b\x7f")
        c = self.raw()
        c.send(b"set " + key + b" 0 0 1\r\nx\r\nget " + key + b"\r\n")
        self.assertEqual(c.read_line(), b"STORED\r\n")
        self.assertEqual(c.read_retrieval(), [(key, 0, b"x")])

    def test_unknown_and_unsupported_commands(self):
        self.check_error(b"bogus foo\r\n", b"ERROR\r\n")
        self.check_error(b"\r\n", b"ERROR\r\n")
        self.check_error(b"get\r\n", b"ERROR\r\n")
        self.check_error(b"stats nonsense\r\n", b"ERROR\r\n")
        self.check_error(b"slabs automove 1\r\n",
                         b"CLIENT_ERROR command 'slabs' is not supported by dproxy\r\n")

    def test_bad_command_lines(self):
        self.check_error(b"set foo 0 0\r\n", b"ERROR\r\n")
        self.check_error(b"set foo x 0 1\r\n", b"CLIENT_ERROR bad command line format\r\n")
        self.check_error(b"incr foo abc\r\n", b"CLIENT_ERROR invalid numeric delta argument\r\n")
        self.check_error(b"touch foo\r\n", b"ERROR\r\n")
        self.check_error(b"touch foo x\r\n", b"CLIENT_ERROR invalid exptime argument\r\n")
        self.check_error(b"delete foo 1\r\n",
                         b"CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n")

    def test_bad_data_chunk_closes_after_error(self):
        c = self.raw()
        c.send(b"set " + self.k("x") + b" 0 0 3\r\nabcdef\r\n")
        self.assertEqual(c.read_line(), b"CLIENT_ERROR bad data chunk\r\n")
        self.assertTrue(c.is_closed())
        self.assertIsNone(self.client().get(self.k("x")))

    def test_replies_before_a_fatal_error_are_delivered(self):
        c = self.raw()
        key = self.k("before")
        c.send(b"set " + key + b" 0 0 1\r\nv\r\nget " + key + b"\r\nset x 0 0 1\r\nvvv\r\n")
        self.assertEqual(c.read_line(), b"STORED\r\n")
        self.assertEqual(c.read_retrieval(), [(key, 0, b"v")])
        self.assertEqual(c.read_line(), b"CLIENT_ERROR bad data chunk\r\n")
        self.assertTrue(c.is_closed())

    # --- backend failures ----------------------------------------------------------------

    def test_dead_backend_fails_only_its_requests(self):
        c = self.raw(self.down_port)
        dead = f"{HOST}:{self.dead_port}".encode()
        live_key = dead_key = None
        for i in range(100):
            key = self.k(i)
            c.send(b"set " + key + b" 0 0 1\r\nv\r\n")
            line = c.read_line()
            if line == b"STORED\r\n":
                live_key = live_key or key
            else:
                self.assertTrue(line.startswith(b"SERVER_ERROR backend " + dead + b" "), line)
                dead_key = dead_key or key
        self.assertIsNotNone(live_key)
        self.assertIsNotNone(dead_key)
        # A multi-get touching the dead server reports that server; the connection survives.
        c.send(b"get " + live_key + b" " + dead_key + b"\r\n")
        line = c.read_retrieval()
        self.assertIsInstance(line, bytes)
        self.assertTrue(line.startswith(b"SERVER_ERROR backend " + dead), line)
        c.send(b"get " + live_key + b"\r\n")
        self.assertEqual(c.read_retrieval(), [(live_key, 0, b"v")])

    def test_flush_all_reaches_every_backend(self):
        # Uses its own servers: flush_all hides everything written in the same second.
        procs = Processes()
        self.addCleanup(procs.close)
        backends = [procs.memcached() for _ in range(3)]
        port = free_port()
        proxy = Dproxy(procs, ARGS.dproxy, {"f": {
            "protocol": "memcached", "listen": f"{HOST}:{port}",
            "servers": [f"{HOST}:{b.port}" for b in backends]}})
        c = RawClient(port)
        self.addCleanup(c.close)
        keys = [b"fk%d" % i for i in range(50)]
        for key in keys:
            c.send(b"set " + key + b" 0 0 1\r\nv\r\n")
            self.assertEqual(c.read_line(), b"STORED\r\n")
        self.assertEqual(sum(1 for key in keys for b in backends if backend_get(b.port, key)), 50)
        c.send(b"flush_all\r\n")
        self.assertEqual(c.read_line(), b"OK\r\n")
        self.assertEqual(sum(1 for key in keys for b in backends if backend_get(b.port, key)), 0)
        c.send(b"flush_all noreply\r\nversion\r\n")
        self.assertTrue(c.read_line().startswith(b"VERSION"))
        # With one server gone the reply names it instead of OK.
        procs.kill(backends[2])
        c.send(b"flush_all\r\n")
        line = c.read_line()
        self.assertTrue(line.startswith(b"SERVER_ERROR backend %s:%d " % (HOST.encode(), backends[2].port)), line)
        self.assertEqual(proxy.stop(), 0)

    def test_frozen_backend_times_out_then_recovers(self):
        procs = Processes()
        self.addCleanup(procs.close)
        backend = procs.memcached()
        port = free_port()
        Dproxy(procs, ARGS.dproxy, {"t": {
            "protocol": "memcached", "listen": f"{HOST}:{port}", "timeout_ms": 300,
            "server_failure_limit": 1000000,
            "servers": [f"{HOST}:{backend.port}"]}}, threads=1)
        c = RawClient(port)
        self.addCleanup(c.close)
        c.send(b"set a 0 0 1\r\n1\r\n")
        self.assertEqual(c.read_line(), b"STORED\r\n")
        # Every thread stopped before the get is sent: a bare SIGSTOP stops the threads one
        # after another, and memcached could still answer.
        harness.freeze(backend)
        try:
            c.send(b"get a\r\n")
            self.assertEqual(c.read_line(),
                             b"SERVER_ERROR backend %s:%d timed out\r\n" % (HOST.encode(), backend.port))
        finally:
            os.kill(backend.pid, signal.SIGCONT)
        # The late reply to the timed-out get is discarded; FIFO matching stays right.
        c.send(b"set b 0 0 1\r\n2\r\nget a b\r\n")
        self.assertEqual(c.read_line(), b"STORED\r\n")
        self.assertEqual(c.read_retrieval(), [(b"a", 0, b"1"), (b"b", 0, b"2")])

    def test_backend_restart_is_reconnected(self):
        procs = Processes()
        self.addCleanup(procs.close)
        backend = procs.memcached()
        port = free_port()
        Dproxy(procs, ARGS.dproxy, {"r": {
            "protocol": "memcached", "listen": f"{HOST}:{port}",
            "servers": [f"{HOST}:{backend.port}"]}}, threads=1)
        c = RawClient(port)
        self.addCleanup(c.close)
        c.send(b"set a 0 0 1\r\n1\r\n")
        self.assertEqual(c.read_line(), b"STORED\r\n")
        procs.kill(backend)
        c.send(b"get a\r\n")
        self.assertTrue(c.read_retrieval().startswith(b"SERVER_ERROR backend "))
        procs.memcached(port=backend.port)
        deadline = time.monotonic() + 10
        while True:
            c.send(b"set a 0 0 1\r\n2\r\n")
            line = c.read_line()
            if line == b"STORED\r\n" or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.assertEqual(line, b"STORED\r\n")


if __name__ == "__main__":
    import warnings
    warnings.simplefilter("ignore", ResourceWarning)
    ARGS = harness.parse_args()
    unittest.main(verbosity=2)
