"""memcached's meta protocol (mg ms md ma mn me) through dproxy, byte for byte as memcached 1.6.

Differential: the same request streams (hits, misses, quiet requests ended by mn, base64 keys,
opaque, returned keys, flags v f t s c h l, N vivify, modes, invalid flags and tokens, classic
and meta commands mixed) are sent to one real memcached and to dproxy over three memcached
servers (ketama); the replies must be identical once what legitimately differs is masked: cas
values (each server counts its own; a cas set with E is kept), last-access and TTL seconds
(a second may tick between the two runs). Then: base64 keys live where their ASCII keys live
(checked on the backends), a quiet pipeline spread over every server, the documented
difference (an ms refused before its data block swallows the block), and replicated / fanout
pools (writes to every child, reads that fail over, C refused as cas is).
"""
import base64
import re
import select
import socket
import time
import unittest

import harness
from harness import HOST, Dproxy, Processes, RawClient, free_port

ARGS = None
LONG = b"K" * 251  # one byte over memcached's key limit
BIG = 9000000  # over the test memcached's item size (-I 8m) and dproxy's max_value_bytes (1 MiB)


def b64(key):
    return base64.b64encode(key)


# Requests; {k} is replaced by a key unique to the test run and the case, {b} by its base64.
CASES = [
    # hits and misses, the flags that return item data
    b"mg {k} v\r\n",
    b"mg {k}\r\n",
    b"ms {k} 2\r\nhi\r\nmg {k} v\r\nmg {k}\r\n",
    b"ms {k} 5 F77 T0\r\nhello\r\nmg {k} v f t s k O123 h\r\nmg {k} h l f v\r\n",
    b"ms {k} 2 T100\r\nhi\r\nmg {k} t v c\r\nmg {k} s c k\r\n",
    b"mg {k} k O99 v\r\nmg {k} k O1 q\r\nmn\r\n",
    # quiet mode and mn
    b"mg {k} v q\r\nmn\r\n",
    b"ms {k} 2 q\r\nhi\r\nmg {k} v q k\r\nmg {k}x v q k\r\nmn\r\n",
    b"ms {k} 2 q ME\r\nhi\r\nmd {k} q\r\nmd {k} q\r\nmg {k} v q\r\nmn\r\n",
    b"ma {k} q\r\nma {k} q N0 J4\r\nma {k} q v\r\nma {k} v\r\nmn\r\n",
    b"mn\r\nmn foo\r\n",
    # base64 keys: stored under the decoded key, which an ASCII request reaches too
    b"ms {b} 2 b\r\nhi\r\nmg {b} b v k\r\nmg {k} v k\r\nmd {b} b\r\nmg {k} v\r\n",
    b"ms {k} 2\r\nhi\r\nmg {b} b k v q\r\nmn\r\n",
    b"mg {b} b v k O5\r\n",
    b"mg Zm9 b v\r\nmg Zm9v= b v\r\nmg @@@@ b v\r\nms Zg 2 b\r\nhi\r\n",
    # vivify, recache, stale
    b"mg {k} N30 v c t\r\nmg {k} N30 v t\r\nms {k} 2\r\nhi\r\nmg {k} v\r\n",
    b"ms {k} 2 T100\r\nhi\r\nmg {k} R200 v\r\nmg {k} R200 v\r\n",
    b"ms {k} 2\r\nhi\r\nmd {k} I T30\r\nmg {k} v c\r\nmg {k} v\r\n",
    # ms modes, compare cas (C); E (explicit cas) is refused by 1.6.18 as an invalid flag
    b"ms {k} 1 ME\r\na\r\nms {k} 1 ME\r\nb\r\nms {k} 1 MA\r\nc\r\nms {k} 1 MP\r\nd\r\nmg {k} v\r\n",
    b"ms {k} 1 MR\r\na\r\nms {k} 1 MA\r\na\r\nms {k} 1 MS\r\ns\r\nms {k} 1 MX\r\nx\r\nmg {k} v\r\n",
    b"ms {k} 1 E987654321\r\na\r\nmg {k} c v\r\nms {k} 1 C1\r\nb\r\n"
    b"ms {k} 1 C987654321 E987654322 c\r\nc\r\nmg {k} v c\r\n",
    b"ms {k} 1 C5\r\nx\r\nmd {k} C5\r\n",
    # md, ma
    b"md {k}\r\nms {k} 1\r\nv\r\nmd {k} k O7\r\nmd {k}\r\n",
    b"ma {k}\r\nma {k} N0 J10 v\r\nma {k} v D5\r\nma {k} MD D100 v\r\nma {k} MI v t\r\n",
    b"ms {k} 1\r\nz\r\nma {k}\r\nma {k} N0 J5 T0 v q\r\nmn\r\n",
    # me (debug): routed by its key
    b"me {k}\r\nms {k} 2\r\nhi\r\nme {k}\r\n",
    b"me {k} q\r\n",
    # invalid flags and tokens: memcached's own errors
    b"mg {k} zz\r\nmg {k} v v\r\nmg {k} ,\r\n",
    b"ms {k} 2 zz\r\nhi\r\nms {k} 2 T1 T2\r\nhi\r\nms {k} 2 +3\r\nhi\r\nmg {k} v\r\n",
    b"md {k} bar\r\nma {k} D\r\nma {k} Dx\r\nma {k} J-1\r\nmd {k} b\r\n",
    b"mg {k} O" + b"o" * 33 + b"\r\n",
    b"mg {k} " + b" ".join(b"O%d" % i for i in range(18)) + b"\r\n",
    b"mg {k} " + b" ".join(b"O%d" % i for i in range(17)) + b"\r\n",
    b"ms {k} 2 " + b" ".join(b"O%d" % i for i in range(16)) + b"\r\nhi\r\n",
    b"mg\r\nmd\r\nma\r\nms\r\nme\r\nmg \r\n",
    b"ms {k}\r\nms {k} x\r\nms {k} -1\r\nms {k} 2x\r\n",
    b"ms {k} +2\r\nhi\r\nms {k} -0\r\n\r\nmg {k} v s\r\n",
    b"mg " + LONG + b" v\r\nmd " + LONG + b"\r\nma " + LONG + b"\r\nme " + LONG + b"\r\n",
    b"mg {k} v\x00 zz\r\nmg {k}\tv v\r\n",
    # classic and meta mixed on one connection
    b"set {k} 3 0 2\r\nhi\r\nmg {k} v f\r\nms {k} 3 F7\r\nabc\r\nget {k}\r\nmd {k} q\r\n"
    b"get {k}\r\nmn\r\n",
    b"set {k}a 0 0 1\r\na\r\nmg {k}a v q k\r\nget {k}a {k}b\r\nmg {k}b v q k\r\ndelete {k}a\r\n"
    b"mn\r\nincr {k}n 1\r\nma {k}n N0 J1\r\nincr {k}n 1\r\n",
    # too large: refused, and the old value goes (as memcached does)
    b"ms {k} 2\r\nhi\r\nms {k} %d\r\n" % BIG + b"x" * BIG + b"\r\nmg {k} v\r\n",
    b"ms {b} 2 b\r\nhi\r\nms {b} %d b q\r\n" % BIG + b"x" * BIG + b"\r\nmg {k} v\r\n",
]

META_LINE = re.compile(rb"(?m)^(VA|HD|EN|NF|NS|EX|ME) [^\r\n]*")
# memcached's own cas counters (small on a fresh server) differ per server; one set with E
# (987654321 and up) is the client's and must match.
CAS = re.compile(rb"(?<= )c\d{1,8}(?=[ \r]|$)")
SECONDS = re.compile(rb"(?<= )([lt])(?!-1)\d+")
DEBUG = re.compile(rb"\b(cas|la|exp)=-?\d+")
VALUE_CAS = re.compile(rb"(?m)^(VALUE \S+ \d+ \d+) \d+")
VERSION_LINE = re.compile(rb"VERSION [^\r\n]*")


def mask_line(m):
    line = m.group(0)
    line = CAS.sub(b"c#", line)
    line = SECONDS.sub(rb"\1#", line)
    return DEBUG.sub(rb"\1=#", line)


def normalise(reply):
    reply = META_LINE.sub(mask_line, reply)
    reply = VALUE_CAS.sub(rb"\1 #", reply)
    return VERSION_LINE.sub(b"VERSION x", reply)


def exchange(port, data, idle=0.15, timeout=30.0):
    """Sends data then `version`; returns every byte received until the version reply (and a
    short idle), or until the connection closes ("<closed>")."""
    s = socket.create_connection((HOST, port), timeout=timeout)
    try:
        s.sendall(data + b"version\r\n")
        got = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            wait = idle if re.search(rb"(^|\n)VERSION [^\r\n]*\r\n$", got) \
                else deadline - time.monotonic()
            ready, _, _ = select.select([s], [], [], max(wait, 0))
            if not ready:
                if wait == idle:
                    return got
                break
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return got + b"<closed>"
            got += chunk
        return got + b"<timeout>"
    finally:
        s.close()


def backend_mg(port, key):
    """Asks one memcached directly for `key` (any bytes: sent base64); the value or None."""
    c = RawClient(port)
    try:
        c.send(b"mg " + b64(key) + b" b v\r\n")
        line = c.read_line()
        if line.startswith(b"EN"):
            return None
        size = int(line.split()[1])
        return c.read_exact(size + 2)[:-2]
    finally:
        c.close()


class MemcachedMetaTest(unittest.TestCase):
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

    def key(self, i, tag=b""):
        return b"meta:%d:%s%d" % (self.run_id, tag, i)

    def fill(self, case, key):
        return case.replace(b"{k}", key).replace(b"{b}", b64(key))

    def both(self, data):
        ref = normalise(exchange(self.reference.port, data))
        got = normalise(exchange(self.port, data))
        return ref, got

    def test_replies_are_memcached_s(self):
        for i, case in enumerate(CASES):
            data = self.fill(case, self.key(i))
            with self.subTest(i=i, case=data[:100]):
                ref, got = self.both(data)
                self.assertTrue(ref.endswith(b"VERSION x\r\n"), ref[-300:])
                self.assertEqual(got, ref)

    def test_pipelined_in_one_write(self):
        data = b"".join(self.fill(case, self.key(i, b"p")) for i, case in enumerate(CASES))
        ref, got = self.both(data)
        self.assertTrue(ref.endswith(b"VERSION x\r\n"), ref[-300:])
        self.assertEqual(got, ref)

    def test_quiet_pipeline_over_every_server(self):
        # Half the keys hit (on every server), half miss; quiet gets answer the hits only, and
        # everything before mn comes before MN, in request order, with classic requests kept
        # in their place.
        keys = [self.key(i, b"q") for i in range(60)]
        setup = b"".join(b"ms %s 3 q T0\r\nv%02d\r\n" % (k, i) for i, k in enumerate(keys)
                         if i % 2 == 0)
        gets = b"".join(b"mg %s v k q O%d\r\n" % (k, i) + (b"get %s\r\n" % k if i % 10 == 0
                                                           else b"")
                        for i, k in enumerate(keys))
        data = setup + b"mn\r\n" + gets + b"mn\r\n"
        ref, got = self.both(data)
        self.assertEqual(got, ref)
        self.assertTrue(got.startswith(b"MN\r\n"), got[:100])
        self.assertEqual(got.count(b"VA 3 k"), 30)
        self.assertTrue(got.endswith(b"MN\r\nVERSION x\r\n"))
        homes = {[b.port for b in self.backends if backend_mg(b.port, k) is not None][0]
                 for k in keys[::2]}
        self.assertEqual(len(homes), 3, "the keys should spread over every server")

    def test_base64_placement_equals_ascii(self):
        for i in range(30):
            k = self.key(i, b"place")
            c = RawClient(self.port)
            c.send(b"set " + k + b" 0 0 5\r\nascii\r\n")
            self.assertEqual(c.read_line(), b"STORED\r\n")
            ascii_home = [b.port for b in self.backends if backend_mg(b.port, k) is not None]
            self.assertEqual(len(ascii_home), 1)
            c.send(b"md " + k + b"\r\nms " + b64(k) + b" 6 b\r\nbase64\r\n")
            self.assertEqual(c.read_line(), b"HD\r\n")
            self.assertEqual(c.read_line(), b"HD\r\n")
            c.close()
            b64_home = [b.port for b in self.backends if backend_mg(b.port, k) == b"base64"]
            self.assertEqual(b64_home, ascii_home, k)
        # Keys ASCII cannot carry: each lives on one server, and reads back through dproxy.
        for i in range(20):
            k = b"meta\x00\x01 \r\n%d:%d" % (self.run_id, i)
            c = RawClient(self.port)
            c.send(b"ms " + b64(k) + b" 3 b\r\nbin\r\nmg " + b64(k) + b" b v k\r\n")
            self.assertEqual(c.read_line(), b"HD\r\n")
            self.assertEqual(c.read_line(), b"VA 3 k" + b64(k) + b" b\r\n")
            self.assertEqual(c.read_exact(5), b"bin\r\n")
            c.close()
            self.assertEqual(sum(backend_mg(b.port, k) == b"bin" for b in self.backends), 1)

    def test_ms_refused_before_its_data_swallows_it(self):
        # A documented difference: memcached refuses these lines, then reads the data block as
        # a command (a second reply, ERROR); dproxy swallows the block when the data length is
        # valid, as it does for a classic set with an over-long key.
        for line in (b"ms " + LONG + b" 2\r\n",
                     b"ms k 2 " + b" ".join(b"O%d" % i for i in range(17)) + b"\r\n"):
            with self.subTest(line=line[:40]):
                ref, got = self.both(line + b"hi\r\n")
                self.assertTrue(ref.endswith(b"\r\nERROR\r\nVERSION x\r\n"), ref)
                self.assertEqual(ref.replace(b"\r\nERROR\r\nVERSION", b"\r\nVERSION"), got)

    def test_stats_count_meta_commands(self):
        exchange(self.port, b"mg x v\r\nms x 1\r\nv\r\nmd x q\r\nmn\r\n")
        c = RawClient(self.port)
        c.send(b"stats\r\n")
        text = b""
        while not text.endswith(b"END\r\n"):
            text += c.read_line()
        c.close()
        for name in (b"mg", b"ms", b"md", b"mn"):
            self.assertIn(b"STAT cmd_" + name + b" ", text)


class MetaRoutesTest(unittest.TestCase):
    """Replicated and fanout pools: ms / md / ma go to every child (as set / delete / incr), mg
    and me are reads that fail over (mg with T or N writes), and C (compare cas) is refused as
    cas is."""

    CAS_ERROR = (b"CLIENT_ERROR cas is not supported in a replicated or fanout pool (cas values "
                 b"differ between servers)\r\n")

    @classmethod
    def setUpClass(cls):
        cls.procs = Processes()
        cls.m = [cls.procs.memcached() for _ in range(2)]
        children = [f"{HOST}:{b.port}" for b in cls.m]
        cls.rep_port, cls.fom_port, cls.fan_port = free_port(), free_port(), free_port()

        def pool(port, policy, **extra):
            p = {"protocol": "memcached", "listen": f"{HOST}:{port}", "policy": policy,
                 "hash": "md5", "timeout_ms": 2000, "server_failure_limit": 1000000,
                 "children": children}
            p.update(extra)
            return p
        cls.proxy = Dproxy(cls.procs, ARGS.dproxy, {
            "rep": pool(cls.rep_port, "replicated"),
            "fom": pool(cls.fom_port, "replicated", failover_on_miss=True),
            "fan": pool(cls.fan_port, "fanout"),
        })

    @classmethod
    def tearDownClass(cls):
        rc = cls.proxy.stop()
        log = cls.proxy.log_text()
        cls.procs.close()
        assert rc == 0, f"dproxy exited with {rc}: {log[-2000:]}"

    def setUp(self):
        self.prefix = b"%s:%d:" % (self._testMethodName.encode(), time.monotonic_ns())

    def everywhere(self, key):
        return [backend_mg(b.port, key) for b in self.m]

    def test_writes_reach_every_child(self):
        for port in (self.rep_port, self.fan_port):
            k = self.prefix + b"%d" % port
            got = exchange(port, b"ms %s 2 q\r\nhi\r\nmn\r\nmg %s v\r\n" % (k, k))
            self.assertEqual(got.split(b"VERSION")[0], b"MN\r\nVA 2\r\nhi\r\n")
            self.assertEqual(self.everywhere(k), [b"hi", b"hi"])
            got = exchange(port, b"ma %sn N0 J7 v\r\nma %sn v\r\n" % (k, k))
            self.assertEqual(got.split(b"VERSION")[0], b"VA 1\r\n7\r\nVA 1\r\n8\r\n")
            self.assertEqual(self.everywhere(k + b"n"), [b"8", b"8"])
            got = exchange(port, b"md %s q\r\nmd %s q\r\nmn\r\n" % (k, k))
            self.assertEqual(got.split(b"VERSION")[0], b"NF\r\nMN\r\n")
            self.assertEqual(self.everywhere(k), [None, None])

    def test_compare_cas_is_refused(self):
        for port in (self.rep_port, self.fan_port):
            k = self.prefix + b"%d" % port
            got = exchange(port, b"ms %s 1 C5\r\nx\r\nmd %s C5 q\r\nma %s C1\r\nmn\r\n" % (k, k, k))
            self.assertEqual(got.split(b"VERSION")[0], self.CAS_ERROR * 3 + b"MN\r\n")
            # Returning a cas (mg c) is fine: one replica's.
            got = exchange(port, b"ms %s 1\r\nx\r\nmg %s c v\r\n" % (k, k))
            self.assertRegex(got.split(b"VERSION")[0], rb"^HD\r\nVA 1 c\d+\r\nx\r\n$")

    def test_reads_fail_over_on_miss(self):
        k = self.prefix + b"r"
        c = RawClient(self.m[1].port)
        c.send(b"ms %s 2 b\r\nhi\r\n" % b64(k))
        self.assertEqual(c.read_line(), b"HD\r\n")
        c.close()
        # Only the second child has it: failover_on_miss finds it, quiet or not.
        got = exchange(self.fom_port, b"mg %s v\r\nmg %s v q k\r\nmg %s b v\r\nmg %sx v q\r\nmn\r\n"
                       % (k, k, b64(k), k))
        self.assertEqual(got.split(b"VERSION")[0],
                         b"VA 2\r\nhi\r\nVA 2 k%s b\r\nhi\r\nVA 2\r\nhi\r\nMN\r\n" % b64(k))
        # A mg that touches (T) writes: both children, the first child's miss.
        got = exchange(self.rep_port, b"mg %s v T30\r\n" % k)
        self.assertEqual(got.split(b"VERSION")[0], b"EN\r\n")


if __name__ == "__main__":
    ARGS = harness.parse_args()
    unittest.main()
