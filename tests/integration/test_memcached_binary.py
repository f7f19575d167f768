"""memcached binary protocol through dproxy answers as memcached 1.6 does.

Differential: the same binary request streams (every opcode, quiet and not, hits and misses,
cas mismatches, incr on a missing key with an initial value, non-numeric incr, a value too
large, a key too long, unknown opcodes, bad magic, quiet multi-gets over keys on three servers
ending in noop) are sent on fresh connections to one real memcached and to dproxy over three
memcached servers (ketama); the responses must be identical, opaque included. Only two things
are normalised: cas values (each server counts its own) are compared as zero / non-zero, and
the version text. Then: cas round trips, placement (a key set through binary lives on the same
backend as the same key set through ASCII), stat, and a replicated pool (a binary set reaches
every child; a get fails over when a child is down).
"""
import struct
import time
import unittest

import harness
import mc_binary as mb
from harness import HOST, Dproxy, Processes, RawClient, backend_get, free_port
from mc_binary import arith, req, store, touch

ARGS = None


def normalise(packets):
    out = []
    for p in packets:
        if isinstance(p, tuple):
            op, status, opaque, cas, extras, key, value = p
            if op == mb.OP["version"] and status == 0:
                value = b"<version>"
            out.append((op, status, opaque, "cas" if cas else 0, extras, key, value))
        else:
            out.append(p)
    return out


class MemcachedBinaryTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.procs = Processes()
        cls.reference = cls.procs.memcached()
        cls.backends = [cls.procs.memcached() for _ in range(3)]
        cls.port = free_port()
        cls.proxy = Dproxy(cls.procs, ARGS.dproxy, {
            "mc": {"protocol": "memcached", "listen": f"{HOST}:{cls.port}",
                   "policy": "ketama", "hash": "md5",
                   "servers": [f"{HOST}:{b.port}:1" for b in cls.backends]},
        })

    @classmethod
    def tearDownClass(cls):
        rc = cls.proxy.stop()
        log = cls.proxy.log_text()
        cls.procs.close()
        assert rc == 0, f"dproxy exited with {rc}: {log[-2000:]}"

    def setUp(self):
        self.run_id = time.monotonic_ns()

    def k(self, i=0):
        return b"bin:%d:%d" % (self.run_id, i)

    def both(self, data, mark=True):
        ref = normalise(mb.exchange(self.reference.port, data, mark=mark))
        got = normalise(mb.exchange(self.port, data, mark=mark))
        self.assertEqual(got, ref, f"request stream {data[:300]!r}")
        return got

    # --- differential ----------------------------------------------------------------------

    def test_get_family(self):
        k = self.k()
        got = self.both(
            req("get", k, opaque=1) + req("getk", k, opaque=2) + req("getq", k, opaque=3) +
            req("getkq", k, opaque=4) + store("set", k, b"value", flags=0xdeadbeef, opaque=5) +
            req("get", k, opaque=6) + req("getk", k, opaque=7) + req("getq", k, opaque=8) +
            req("getkq", k, opaque=9))
        # Misses of getq / getkq are silent; their hits answer.
        self.assertEqual([p[2] for p in got], [1, 2, 5, 6, 7, 8, 9, mb.MARK])
        self.assertEqual(got[3][4], struct.pack(">I", 0xdeadbeef))

    def test_store_family(self):
        k = self.k()
        self.both(
            store("add", k, b"a", opaque=1) + store("add", k, b"b", opaque=2) +
            store("replace", k, b"c", flags=3, opaque=3) + store("replace", self.k(1), b"d",
                                                                opaque=4) +
            store("setq", k, b"e", opaque=5) + store("addq", k, b"f", opaque=6) +
            store("replaceq", self.k(2), b"g", opaque=7) + store("replaceq", k, b"h", opaque=8) +
            req("get", k, opaque=9) +
            req("append", self.k(3), value=b"x", opaque=10) +
            req("append", k, value=b"-app", opaque=11) +
            req("prepend", k, value=b"pre-", opaque=12) +
            req("appendq", k, value=b"!", opaque=13) +
            req("prependq", self.k(4), value=b"!", opaque=14) +
            req("getk", k, opaque=15) +
            store("set", self.k(5), b"", opaque=16) + req("get", self.k(5), opaque=17))

    def test_cas_mismatch(self):
        k = self.k()
        self.both(
            store("set", k, b"v", opaque=1, cas=12345678) +  # missing key: not found
            store("set", k, b"v", opaque=2) +
            store("set", k, b"w", opaque=3, cas=12345678) +  # wrong cas: exists
            store("add", k, b"w", opaque=4, cas=12345678) +
            req("append", k, value=b"w", opaque=5, cas=12345678) +
            req("delete", k, opaque=6, cas=12345678) +
            arith("incr", k, 1, opaque=7, cas=12345678) +
            req("get", k, opaque=8))

    def test_delete(self):
        k = self.k()
        self.both(
            req("delete", k, opaque=1) + req("deleteq", k, opaque=2) +
            store("set", k, b"v", opaque=3) + req("deleteq", k, opaque=4) +
            req("get", k, opaque=5) + store("set", k, b"v", opaque=6) +
            req("delete", k, opaque=7) + req("delete", k, opaque=8))

    def test_incr_decr(self):
        k = self.k()
        self.both(
            arith("incr", k, 5, initial=100, opaque=1) +  # missing: created with the initial
            arith("incr", k, 5, initial=100, opaque=2) +
            arith("decr", k, 500, opaque=3) +  # not below 0
            arith("incrq", k, 7, opaque=4) + arith("decrq", k, 2, opaque=5) +
            req("get", k, opaque=6) +
            arith("incr", self.k(1), 1, initial=3, exptime=0xffffffff, opaque=7) +  # no create
            arith("decrq", self.k(1), 1, exptime=0xffffffff, opaque=8) +
            store("set", self.k(2), b"abc", opaque=9) +
            arith("incr", self.k(2), 1, opaque=10) +  # non-numeric
            store("set", self.k(3), b"18446744073709551615", opaque=11) +
            arith("incr", self.k(3), 2, opaque=12) +  # wraps
            arith("decr", self.k(4), 1, initial=9, exptime=100, opaque=13) +
            req("getk", self.k(4), opaque=14))

    def test_touch_gat(self):
        k = self.k()
        self.both(
            touch("touch", k, 100, opaque=1) + touch("gat", k, 100, opaque=2) +
            touch("gatq", k, 100, opaque=3) + touch("gatk", k, 100, opaque=4) +
            touch("gatkq", k, 100, opaque=5) +
            store("set", k, b"val", flags=9, opaque=6) +
            touch("touch", k, 100, opaque=7) + touch("gat", k, 100, opaque=8) +
            touch("gatq", k, 100, opaque=9) + touch("gatk", k, 100, opaque=10) +
            touch("gatkq", k, 100, opaque=11) + touch("gat", k, 0, opaque=12))

    def test_keys_with_spaces_and_control_bytes(self):
        keys = [self.k() + b" with space", self.k() + b"\r\nnl", self.k() + b"\x00\x01\x7f",
                self.k() + "ключ".encode()]
        data = b""
        for i, k in enumerate(keys):
            data += store("set", k, b"v%d" % i, opaque=i) + req("getk", k, opaque=100 + i)
            data += arith("incr", k + b"n", 1, initial=i, opaque=200 + i)
            data += req("delete", k, opaque=300 + i) + req("getk", k, opaque=400 + i)
        self.both(data)

    def test_long_key_needing_base64(self):
        # Up to 186 bytes a key ASCII cannot carry goes base64-encoded (meta takes 250
        # characters); a longer one is refused by dproxy (a documented limit), nothing shifts.
        ok = self.k() + b" " + b"x" * (186 - len(self.k()) - 1)
        self.both(store("set", ok, b"v", opaque=1) + req("getk", ok, opaque=2))
        long = ok + b"y"
        got = mb.exchange(self.port, store("set", long, b"v", opaque=3) +
                          req("getk", long, opaque=4) + req("getk", ok, opaque=5))
        self.assertEqual([p[1:3] for p in got[:3]], [(0x0004, 3), (0x0004, 4), (0, 5)])
        self.assertIn(b"at most 186 bytes", got[0][6])
        self.assertEqual(got[2][6], b"v")
        self.assertNotIn("unexpected", self.proxy.log_text())

    def test_noop_version_unknown(self):
        self.both(req("noop", opaque=1) + req("version", opaque=2) +
                  req(0x1b, value=b"\0\0\0\1", opaque=3) +  # verbosity: unknown to 1.6
                  req(0x50, value=b"body bytes", opaque=4) + req(0xff, opaque=5) +
                  req(0x21, b"PLAIN", value=b"\0u\0p", opaque=6) +  # no SASL: unknown
                  req("noop", opaque=7))

    def test_unknown_opcode_with_extras_does_not_shift(self):
        # memcached skips the body length again after the extras and key it already read (the
        # next request is lost); dproxy skips exactly the packet. A documented difference.
        got = mb.exchange(self.port, req(0x1b, extras=b"\0\0\0\1", opaque=3) +
                          req(0x30, b"key", b"ext", b"value", opaque=4) + req("noop", opaque=5))
        self.assertEqual([(p[0], p[1], p[2], p[6]) for p in got],
                         [(0x1b, 0x81, 3, b"Unknown command"), (0x30, 0x81, 4, b"Unknown command"),
                          (0x0a, 0, 5, b""), (0x0a, 0, mb.MARK, b"")])

    def test_value_too_large(self):
        k = self.k()
        big = b"x" * (9 << 20)  # over the reference's -I 8m and dproxy's max_value_bytes
        got = self.both(store("set", k, b"old", opaque=1) + store("set", k, big, opaque=2) +
                        req("get", k, opaque=3) + store("set", k, b"old", opaque=4) +
                        store("addq", self.k(1), big, opaque=5) +
                        req("append", k, value=big, opaque=6) + req("get", k, opaque=7))
        self.assertEqual(got[1][1], 0x0003)  # too large
        self.assertEqual(got[2][1], 0x0001)  # and the old value is gone (a set only)

    def test_quiet_multiget_over_three_servers(self):
        keys = [self.k(i) for i in range(40)]
        data = b"".join(store("setq", k, b"value-%d" % i, flags=i, opaque=i)
                        for i, k in enumerate(keys) if i % 3)
        data += b"".join(req("getkq", k, opaque=1000 + i) for i, k in enumerate(keys))
        data += b"".join(req("getq", k, opaque=2000 + i) for i, k in enumerate(keys))
        got = self.both(data)
        self.assertEqual(len(got), 2 * len([k for i, k in enumerate(keys) if i % 3]) + 1)
        # The keys really are spread over the three servers.
        spread = set()
        for k in keys[1:]:
            for b in self.backends:
                if backend_get(b.port, k) is not None:
                    spread.add(b.port)
        self.assertEqual(len(spread), 3)

    def test_flush(self):
        k = self.k()
        self.both(store("set", k, b"v", opaque=1) + req("flushq", opaque=2) +
                  req("get", k, opaque=3) + store("set", k, b"v", opaque=4) +
                  req("flush", opaque=5) + req("get", k, opaque=6) +
                  req("flush", extras=struct.pack(">I", 0), opaque=7))

    def test_closing(self):
        k = self.k()
        # quit answers then closes; quitq closes silently; nothing after them is read.
        self.both(req("get", k, opaque=1) + req("quit", opaque=2) + req("get", k, opaque=3))
        self.both(req("get", k, opaque=1) + req("quitq", opaque=2) + req("get", k, opaque=3))
        # A bad magic byte mid-stream closes the connection.
        self.both(req("get", k, opaque=1) + req("get", k, opaque=2, magic=0x81))
        self.both(req("get", k, opaque=1) + b"get foo\r\n")
        # A key too long, a header an opcode refuses: invalid arguments, then closed.
        self.both(req("get", b"K" * 251, opaque=1) + req("noop", opaque=2))
        self.both(req("get", k, extras=b"\0\0\0\0", opaque=1) + req("noop", opaque=2))
        self.both(req("set", k, value=b"no extras", opaque=1))
        self.both(req("incr", k, extras=b"\0" * 8, opaque=1))
        self.both(req("noop", value=b"x", opaque=1))
        # Key and extras longer than the body: unknown command, then closed.
        self.both(struct.pack(">BBHBBHIIQ", 0x80, 0, 10, 0, 0, 0, 4, 7, 0) + b"abcd")
        self.both(req("stat", k, extras=b"\0\0\0\0", opaque=1))

    def test_stat_unknown_group(self):
        self.both(req("stat", b"nonsense", opaque=1))

    # --- dproxy only -----------------------------------------------------------------------

    def test_cas_round_trip(self):
        k = self.k()
        got = mb.exchange(self.port, store("set", k, b"v1", opaque=1) + req("get", k, opaque=2))
        set_cas, get_cas = got[0][3], got[1][3]
        self.assertNotEqual(set_cas, 0)
        self.assertEqual(set_cas, get_cas)
        got = mb.exchange(self.port, store("set", k, b"v2", opaque=3, cas=get_cas) +
                          store("set", k, b"v3", opaque=4, cas=get_cas) +
                          arith("incr", k + b"n", 1, initial=1, opaque=5) + req("get", k, opaque=6))
        self.assertEqual([p[1] for p in got[:4]], [0, 0x0002, 0, 0])
        self.assertEqual(got[3][6], b"v2")
        self.assertEqual(got[3][3], got[0][3])
        incr_cas = got[2][3]
        got = mb.exchange(self.port, arith("incr", k + b"n", 1, opaque=7, cas=incr_cas) +
                          req("delete", k, opaque=8, cas=got[0][3]))
        self.assertEqual([p[1] for p in got[:2]], [0, 0])
        self.assertEqual(got[0][6], struct.pack(">Q", 2))

    def test_placement_equals_ascii(self):
        for i in range(30):
            k = self.k(i)
            c = RawClient(self.port)
            c.send(b"set " + k + b" 0 0 1\r\nv\r\n")
            self.assertEqual(c.read_line(), b"STORED\r\n")
            c.close()
            ascii_home = [b.port for b in self.backends if backend_get(b.port, k) is not None]
            self.assertEqual(len(ascii_home), 1)
            got = mb.exchange(self.port, req("delete", k, opaque=1) +
                              store("set", k, b"binary", opaque=2))
            self.assertEqual([p[1] for p in got[:2]], [0, 0])
            binary_home = [b.port for b in self.backends
                           if backend_get(b.port, k) == b"binary"]
            self.assertEqual(binary_home, ascii_home, k)

    def test_stat(self):
        got = mb.exchange(self.port, req("stat", opaque=5))
        self.assertTrue(all(p[0] == mb.OP["stat"] and p[2] == 5 for p in got[:-1]))
        names = {p[5] for p in got[:-2]}
        self.assertIn(b"curr_connections", names)
        self.assertEqual(got[-2][5:], (b"", b""))  # the terminator
        got = mb.exchange(self.port, req("stat", b"settings", opaque=6))
        self.assertIn(b"maxbytes", {p[5] for p in got[:-2]})
        self.assertEqual(got[-2][:2], (mb.OP["stat"], 0))
        got = mb.exchange(self.port, req("stat", b"reset", opaque=7))
        self.assertEqual(normalise(got[:1]), [(mb.OP["stat"], 0, 7, 0, b"", b"", b"")])

    def test_long_pipeline_of_getk(self):
        # Thousands of getk with long keys written in small pieces: the echoed keys (kept by
        # the front end until each reply leaves) stay right while the pipeline never drains.
        keys = [self.k(i) + b"-" + b"k" * 200 for i in range(3000)]
        c = RawClient(self.port)
        c.send(b"".join(store("setq", k, b"v", opaque=i) for i, k in enumerate(keys[::7])))
        data = b"".join(req("getk", k, opaque=i) for i, k in enumerate(keys))
        for at in range(0, len(data), 4096):
            c.send(data[at:at + 4096])
        want = 0
        got = b""
        while want < len(keys):
            got += c.sock.recv(1 << 20)
            packets = mb.parse(got)
            complete = [p for p in packets if isinstance(p, tuple)]
            for p in complete[want:]:
                self.assertEqual((p[2], p[5]), (want, keys[want]))
                self.assertEqual(p[1], 0 if want % 7 == 0 else 1)
                want += 1
        c.close()

    def test_pipelined_split_reads(self):
        # Byte at a time: the front end frames packets however they arrive.
        k = self.k()
        data = store("set", k, b"v" * 100, opaque=1) + req("getk", k, opaque=2) + \
            req("noop", opaque=mb.MARK)
        c = RawClient(self.port)
        for i in range(len(data)):
            c.send(data[i:i + 1])
        got = mb.parse(c.read_exact(24 * 3 + 4 + len(k) + 100))
        c.close()
        self.assertEqual([p[2] for p in got], [1, 2, mb.MARK])
        self.assertEqual(got[1][5:], (k, b"v" * 100))


class ReplicatedBinaryTest(unittest.TestCase):
    def test_replicated(self):
        procs = Processes()
        try:
            children = [procs.memcached() for _ in range(2)]
            port = free_port()
            proxy = Dproxy(procs, ARGS.dproxy, {
                "mc": {"protocol": "memcached", "listen": f"{HOST}:{port}",
                       "policy": "replicated", "hash": "md5", "timeout_ms": 2000,
                       "connect_timeout_ms": 500, "server_failure_limit": 1000000,
                       "children": [f"{HOST}:{c.port}" for c in children]},
            })
            k = b"rep:%d" % time.monotonic_ns()
            got = mb.exchange(port, store("set", k, b"both", opaque=1) +
                              store("add", k, b"x", opaque=2) + req("get", k, opaque=3) +
                              store("set", k + b"c", b"v", opaque=4, cas=99))
            self.assertEqual([p[1] for p in got[:4]], [0, 0x0002, 0, 0x0004])
            self.assertEqual(got[2][6], b"both")
            for c in children:
                self.assertEqual(backend_get(c.port, k), b"both")
            # The first child goes down: the read fails over to the second.
            procs.kill(children[0])
            got = mb.exchange(port, req("getk", k, opaque=5))
            self.assertEqual(got[0][1:2] + got[0][5:], (0, k, b"both"))
            proxy.stop()
        finally:
            procs.close()


class PoliciesBinaryTest(unittest.TestCase):
    def test_fanout_modula_random(self):
        procs = Processes()
        try:
            m = [procs.memcached() for _ in range(2)]
            fan, mod, rnd = free_port(), free_port(), free_port()
            Dproxy(procs, ARGS.dproxy, {
                "fan": {"protocol": "memcached", "listen": f"{HOST}:{fan}", "policy": "fanout",
                        "reply": "all", "children": [f"{HOST}:{b.port}" for b in m]},
                "mod": {"protocol": "memcached", "listen": f"{HOST}:{mod}", "policy": "modula",
                        "servers": [f"{HOST}:{b.port}:1" for b in m]},
                "rnd": {"protocol": "memcached", "listen": f"{HOST}:{rnd}", "policy": "random",
                        "servers": [f"{HOST}:{m[0].port}:1"]},
            })
            k = b"pol:%d" % time.monotonic_ns()
            # Fanout: the write reaches every child; the worst reply wins (an add that exists
            # on one child).
            got = mb.exchange(fan, store("set", k, b"fan", opaque=1) +
                              arith("incr", k + b"n", 2, initial=5, opaque=2))
            self.assertEqual([p[1] for p in got[:2]], [0, 0])
            self.assertEqual([backend_get(b.port, k) for b in m], [b"fan", b"fan"])
            self.assertEqual([backend_get(b.port, k + b"n") for b in m], [b"5", b"5"])
            direct = RawClient(m[0].port)
            direct.send(b"set " + k + b"a 0 0 1\r\nx\r\n")
            self.assertEqual(direct.read_line(), b"STORED\r\n")
            direct.close()
            got = mb.exchange(fan, store("add", k + b"a", b"y", opaque=3))
            self.assertEqual(got[0][1:3], (0x0002, 3))
            for port, tag in ((mod, b"mod"), (rnd, b"rnd")):
                got = mb.exchange(port, store("set", k + tag, tag, opaque=4) +
                                  req("getk", k + tag, opaque=5))
                self.assertEqual([p[1] for p in got[:2]], [0, 0])
                self.assertEqual(got[1][5:], (k + tag, tag))
        finally:
            procs.close()


class SaslBinaryTest(unittest.TestCase):
    """A pool with "sasl" credentials: SASL PLAIN over the binary protocol, as memcached -S
    answers it (proto_bin.c): before authenticating, anything but the SASL opcodes and version
    gets "Auth failure." and the connection closes; a wrong password gets "Auth failure." and
    the connection stays. ASCII clients of the pool use memcached's ASCII authentication."""

    @classmethod
    def setUpClass(cls):
        cls.procs = Processes()
        cls.backends = [cls.procs.memcached() for _ in range(2)]
        cls.port = free_port()
        cls.proxy = Dproxy(cls.procs, ARGS.dproxy, {
            "mc": {"protocol": "memcached", "listen": f"{HOST}:{cls.port}",
                   "policy": "ketama", "hash": "md5",
                   "sasl": {"alice": "secret", "bob": "pa ss\u00e9"},
                   "servers": [f"{HOST}:{b.port}:1" for b in cls.backends]},
        })

    @classmethod
    def tearDownClass(cls):
        rc = cls.proxy.stop()
        cls.procs.close()
        assert rc == 0

    def auth(self, user, password, authzid=b""):
        return req(0x21, b"PLAIN",
                   value=authzid + b"\0" + user + b"\0" + password, opaque=7)

    def test_unauthenticated(self):
        k = b"sasl:%d" % time.monotonic_ns()
        got = mb.exchange(self.port, req("version", opaque=1) + req("get", k, opaque=2) +
                          req("noop", opaque=3))
        self.assertEqual(got[0][:2], (mb.OP["version"], 0))
        self.assertEqual(got[1][:3] + got[1][6:], (0, 0x20, 2, b"Auth failure."))
        self.assertEqual(got[2:], ["<closed>"])
        # An ASCII client authenticates as memcached -Y asks (test_memcached_auth.py).
        c = RawClient(self.port)
        c.send(b"get foo\r\n")
        self.assertEqual(c.read_line(), b"CLIENT_ERROR unauthenticated\r\n")
        c.close()

    def test_mechanisms_and_failures(self):
        got = mb.exchange(self.port, req(0x20, opaque=1) +
                          self.auth(b"alice", b"wrong") + self.auth(b"nobody", b"secret") +
                          self.auth(b"alice", b"secret", authzid=b"bob") +
                          req(0x21, b"CRAM-MD5", value=b"x", opaque=8) +
                          req(0x22, b"PLAIN", value=b"x", opaque=9) +
                          req("get", b"k", opaque=10))
        self.assertEqual(got[0][:3] + got[0][6:], (0x20, 0, 1, b"PLAIN"))
        for p in got[1:6]:
            self.assertEqual(p[1], 0x20, p)
            self.assertEqual(p[6], b"Auth failure.")
        self.assertEqual(got[6][:3], (0, 0x20, 10))
        self.assertEqual(got[7:], ["<closed>"])

    def test_authenticated(self):
        k = b"sasl:%d" % time.monotonic_ns()
        for user, password in ((b"alice", b"secret"), (b"bob", "pa ss\u00e9".encode())):
            got = mb.exchange(self.port, self.auth(user, password) +
                              store("set", k, b"v", opaque=2) + req("getk", k, opaque=3))
            self.assertEqual(got[0][:3] + got[0][6:], (0x21, 0, 7, b"Authenticated"))
            self.assertEqual([p[1] for p in got[1:3]], [0, 0])
            self.assertEqual(got[2][6], b"v")


if __name__ == "__main__":
    ARGS = harness.parse_args()
    unittest.main()
