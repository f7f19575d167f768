"""memcached: what dproxy refuses leaves no trace a client could misread.

1. A request carrying noreply gets no reply, whatever is wrong with it: every malformed,
   refused or failed noreply form is sent, followed by a probe, and the probe's reply must be
   the next bytes. Where memcached itself stays silent the same bytes are also sent to a real
   memcached, which must answer the same (so the expectation is memcached's, not ours).
2. A `set` refused for its size removes the key's old value (memcached unlinks it too), in the
   reply and the noreply form, in a sharded and a replicated pool; other storage commands keep
   it, as in memcached.
"""
import os
import time
import unittest

import harness
from harness import HOST, Dproxy, Processes, RawClient, backend_get, free_port

ARGS = None
MAX_VALUE = 4096  # dproxy's max_value_bytes here: small, so refusals are cheap to send

# (request, also silent in memcached 1.6). Each request carries noreply and must get no reply.
NOREPLY_FORMS = [
    (b"delete {k} 10 noreply\r\n", True),            # a delay other than 0
    (b"delete {k} 0 noreply\r\n", True),             # valid: the reply is dropped
    (b"incr {k} abc noreply\r\n", True),             # bad delta
    (b"incr {k} noreply\r\n", True),                 # no delta ("noreply" taken as one)
    (b"decr {k} -1 noreply\r\n", True),
    (b"incr {k} 1 noreply\r\n", True),               # NOT_FOUND from the backend, dropped
    (b"touch {k} abc noreply\r\n", True),            # bad exptime
    (b"touch {k} noreply\r\n", True),                # no exptime
    (b"verbosity x noreply\r\n", True),
    (b"verbosity noreply\r\n", True),
    (b"flush_all x noreply\r\n", True),
    (b"set {k} 0 0 noreply\r\n", True),              # no length
    (b"set {k} 0 x 1 noreply\r\n", True),            # bad exptime, line only
    (b"set {k} 0 0 5000 noreply\r\n" + b"v" * 5000 + b"\r\n", False),  # over max_value_bytes
    (b"append {k} 0 0 5000 noreply\r\n" + b"v" * 5000 + b"\r\n", False),
    (b"add {k} 0 0 1 noreply\r\nv\r\n", True),       # valid; NOT_STORED or STORED dropped
    (b"replace {missing} 0 0 1 noreply\r\nv\r\n", True),
    (b"cas {k} 0 0 1 99 noreply\r\nv\r\n", True),    # EXISTS / NOT_FOUND dropped
    (b"cas {k} 0 0 1 x noreply\r\n", True),          # bad cas unique, line only
    (b"set " + b"L" * 251 + b" 0 0 1 noreply\r\nv\r\n", False),  # key too long, block skipped
    (b"delete {k} 0 0 noreply\r\n", False),          # too many tokens (memcached: ERROR)
    (b"incr {k} 1 2 noreply\r\n", False),
    (b"touch {k} 1 2 noreply\r\n", False),
    (b"verbosity 1 2 noreply\r\n", False),
    (b"flush_all 1 2 noreply\r\n", False),
    (b"set {k} 0 0 1 2 3 noreply\r\n", False),
]


class RefusalsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.procs = Processes()
        cls.backends = [cls.procs.memcached() for _ in range(4)]
        cls.reference = cls.procs.memcached()  # a plain memcached, for the differential checks
        cls.dead_port = free_port()
        b = [x.port for x in cls.backends]
        base = {"protocol": "memcached", "hash": "md5", "max_value_bytes": MAX_VALUE,
                "timeout_ms": 2000}
        cls.pools = {
            "sharded": dict(base, listen=f"{HOST}:{free_port()}",
                            servers=[f"{HOST}:{b[0]}", f"{HOST}:{b[1]}"]),
            "replicated": dict(base, listen=f"{HOST}:{free_port()}", policy="replicated",
                               failover_on_miss=True,
                               children=[f"{HOST}:{b[2]}", f"{HOST}:{b[3]}"]),
            "down": dict(base, listen=f"{HOST}:{free_port()}", connect_timeout_ms=200,
                         server_failure_limit=1, server_retry_timeout_ms=600000,
                         servers=[f"{HOST}:{cls.dead_port}"]),
        }
        cls.pool_backends = {"sharded": b[:2], "replicated": b[2:]}
        cls.proxy = Dproxy(cls.procs, ARGS.dproxy, cls.pools)

    @classmethod
    def tearDownClass(cls):
        rc = cls.proxy.stop()
        log = cls.proxy.log_text()
        cls.procs.close()
        assert rc == 0, f"dproxy exited with {rc}: {log[-2000:]}"

    def setUp(self):
        self.prefix = f"{self._testMethodName}:{time.monotonic_ns()}:".encode()

    def port(self, pool):
        return int(self.pools[pool]["listen"].rsplit(":", 1)[1])

    def raw(self, port):
        c = RawClient(port)
        self.addCleanup(c.close)
        return c

    def probe(self, c, key):
        """Sends a set and a get of a fresh key: their replies must be the next bytes read."""
        value = os.urandom(4).hex().encode()
        c.send(b"set " + key + b" 0 0 8\r\n" + value + b"\r\nget " + key + b"\r\n")
        self.assertEqual(c.read_line(), b"STORED\r\n")
        self.assertEqual(c.read_retrieval(), [(key, 0, value)])

    def forms(self, n):
        k = self.prefix + b"k%d" % n
        for i, (form, memcached_silent) in enumerate(NOREPLY_FORMS):
            yield (i, form.replace(b"{k}", k).replace(b"{missing}", self.prefix + b"missing"),
                   memcached_silent)

    def test_noreply_forms_get_no_reply(self):
        for pool in ("sharded", "replicated", "down"):
            with self.subTest(pool=pool):
                c = self.raw(self.port(pool))
                probe_pool = self.raw(self.port("sharded")) if pool == "down" else c
                for i, form, _ in self.forms(0):
                    c.send(form)
                    if pool == "down":
                        # Every request fails at once (server down); none may be answered:
                        # the version after them must be the next reply.
                        c.send(b"version\r\n")
                        line = c.read_line()
                        self.assertTrue(line.startswith(b"VERSION "), (form[:60], line))
                    else:
                        self.probe(probe_pool, self.prefix + b"probe%d" % i)

    def test_noreply_forms_pipelined_in_one_write(self):
        c = self.raw(self.port("sharded"))
        c.send(b"".join(form for _, form, _ in self.forms(1)) + b"version\r\n")
        line = c.read_line()
        self.assertTrue(line.startswith(b"VERSION "), line)

    def test_memcached_is_silent_for_the_same_forms(self):
        # The reference: where memcached stays silent, its next reply is the probe's.
        for i, form, memcached_silent in self.forms(2):
            if not memcached_silent:
                continue
            c = self.raw(self.reference.port)
            c.send(form)
            self.probe(c, self.prefix + b"ref%d" % i)

    def test_oversize_set_removes_the_old_value(self):
        for pool in ("sharded", "replicated"):
            for noreply in (False, True):
                with self.subTest(pool=pool, noreply=noreply):
                    key = self.prefix + (b"%s-%d" % (pool.encode(), noreply))
                    c = self.raw(self.port(pool))
                    c.send(b"set " + key + b" 0 0 3\r\nold\r\n")
                    self.assertEqual(c.read_line(), b"STORED\r\n")
                    big = b"x" * (MAX_VALUE + 1)
                    c.send(b"set " + key + b" 0 0 %d%s\r\n" % (len(big),
                                                               b" noreply" if noreply else b"") +
                           big + b"\r\nget " + key + b"\r\n")
                    if not noreply:
                        self.assertEqual(c.read_line(),
                                         b"SERVER_ERROR object too large for cache\r\n")
                    # The get pipelined right after the refusal already misses.
                    self.assertEqual(c.read_retrieval(), [])
                    for port in self.pool_backends[pool]:
                        self.assertIsNone(backend_get(port, key))

    def test_other_refused_stores_keep_the_old_value_as_memcached_does(self):
        # memcached unlinks the old item only for `set`: append/prepend/add/replace/cas keep it.
        big = b"x" * (1024 * 1024 * 9)  # over the reference memcached's -I 8m as well
        for name in (b"append", b"replace"):
            with self.subTest(command=name):
                key = self.prefix + name
                ref = self.raw(self.reference.port)
                ref.send(b"set " + key + b" 0 0 3\r\nold\r\n")
                self.assertEqual(ref.read_line(), b"STORED\r\n")
                ref.send(name + b" " + key + b" 0 0 %d\r\n" % len(big) + big + b"\r\n")
                self.assertEqual(ref.read_line(), b"SERVER_ERROR object too large for cache\r\n")
                self.assertEqual(backend_get(self.reference.port, key), b"old")
                c = self.raw(self.port("sharded"))
                c.send(b"set " + key + b" 0 0 3\r\nold\r\n")
                self.assertEqual(c.read_line(), b"STORED\r\n")
                c.send(name + b" " + key + b" 0 0 %d\r\n" % (MAX_VALUE + 1) +
                       b"x" * (MAX_VALUE + 1) + b"\r\nget " + key + b"\r\n")
                self.assertEqual(c.read_line(), b"SERVER_ERROR object too large for cache\r\n")
                self.assertEqual(c.read_retrieval(), [(key, 0, b"old")])

    def test_memcached_removes_the_old_value_on_an_oversize_set(self):
        # The behaviour dproxy follows, checked on the real thing.
        key = self.prefix + b"ref"
        ref = self.raw(self.reference.port)
        ref.send(b"set " + key + b" 0 0 3\r\nold\r\n")
        self.assertEqual(ref.read_line(), b"STORED\r\n")
        big = b"x" * (1024 * 1024 * 9)
        ref.send(b"set " + key + b" 0 0 %d\r\n" % len(big) + big + b"\r\n")
        self.assertEqual(ref.read_line(), b"SERVER_ERROR object too large for cache\r\n")
        self.assertIsNone(backend_get(self.reference.port, key))


if __name__ == "__main__":
    ARGS = harness.parse_args()
    unittest.main()
