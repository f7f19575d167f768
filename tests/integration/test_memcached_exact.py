"""memcached ASCII through dproxy answers byte for byte as memcached 1.6 does.

A table of requests (hits and misses, every error form memcached's own tests exercise, tokens
memcached ignores, keys with control bytes, stats groups, HTTP request lines) is sent on fresh
connections to one real memcached and to dproxy over three memcached servers (ketama): the
replies must be identical, only the version text normalised. The same requests pipelined in
one write must also give identical streams. Then the documented differences (a TLS first
byte closes at once; `stats <group>` concatenates every server's lines under one END),
and libmemcached's memcping / memcstat / memcdump passing through dproxy.
"""
import re
import select
import socket
import subprocess
import time
import unittest

import harness
from harness import HOST, Dproxy, Processes, free_port

ARGS = None
LONG = b"K" * 251  # one byte over memcached's key limit

# Requests; {k} is replaced by a key unique to the test run and the case.
CASES = [
    # hits and misses
    b"get {k}\r\n",
    b"set {k} 0 0 1\r\nv\r\nget {k}\r\n",
    b"set {k} 5 0 3\r\nabc\r\nappend {k} 0 0 2\r\nde\r\nprepend {k} 0 0 1\r\nz\r\nget {k}\r\n",
    b"add {k} 0 0 1\r\nv\r\nadd {k} 0 0 1\r\nw\r\nget {k}\r\n",
    b"replace {k} 0 0 1\r\nv\r\nappend {k} 0 0 1\r\nv\r\n",
    b"set {k} 0 0 1\r\n5\r\nincr {k} 10\r\ndecr {k} 100\r\nincr {k} x\r\nincr {k} +2\r\n",
    b"set {k} 0 0 1\r\nz\r\nincr {k} 1\r\n",
    b"incr {k} 1\r\ndecr {k} 1\r\n",
    b"delete {k}\r\nset {k} 0 0 1\r\nv\r\ndelete {k} 0\r\nget {k}\r\n",
    b"set {k} 0 0 1\r\nv\r\ndelete {k} noreply\r\nget {k}\r\n",
    b"touch {k} 10\r\nset {k} 0 0 1\r\nv\r\ntouch {k} 10\r\ngat 10 {k}\r\n",
    b"gat 10 {k}\r\ngats 10 {k}\r\n",
    b"cas {k} 0 0 1 99\r\nv\r\nset {k} 0 0 1\r\nv\r\ncas {k} 0 0 1 0\r\nw\r\n",
    b"set {k}a 0 0 1\r\na\r\nset {k}b 1 0 2\r\nbb\r\nset {k}c 2 0 3\r\nccc\r\n"
    b"get {k}c {k}x {k}a {k}b {k}a\r\n",
    b"set {k} 0 0 1 noreply\r\nv\r\nget {k}\r\n",
    b"set {k} 0 0 0\r\n\r\nget {k}\r\n",
    # wrong token counts: ERROR
    b"set {k} 0 0\r\n",
    b"set {k} 0 0 1 noreply extra\r\nv\r\n",
    b"cas {k} 0 0 1\r\nv\r\n",
    b"cas {k} 0 0 1 \r\nv\r\n",
    b"incr {k}\r\n",
    b"decr\r\n",
    b"touch {k}\r\n",
    b"delete\r\n",
    b"delete {k} 0 noreply x\r\n",
    b"verbosity\r\n",
    b"verbosity 1 2 3\r\n",
    b"flush_all 1 2 3\r\n",
    b"get\r\n",
    b"gets\r\n",
    b"gat\r\n",
    # argument errors
    b"set {k} x 0 1\r\nv\r\n",
    b"set {k} 0 x 1\r\nv\r\n",
    b"set {k} 0 0 -1\r\n",
    b"set {k} 0 0 x\r\n",
    b"cas {k} 0 0 1 x\r\nv\r\n",
    b"incr {k} abc\r\n",
    b"incr {k} -1\r\n",
    b"touch {k} x\r\n",
    b"gat x {k}\r\n",
    b"gat 1\r\n",
    b"gats 1 \r\n",
    b"flush_all invalid\r\n",
    b"flush_all noreply 5\r\n",
    b"delete {k} noreply extra\r\n",
    b"delete {k} 1\r\n",
    b"delete {k} 0 x\r\n",
    b"delete {k} 0 0\r\n",
    b"verbosity x\r\n",
    # over-long keys (a storage line with a data block is a documented difference)
    b"get " + LONG + b"\r\n",
    b"get {k} " + LONG + b"\r\n",
    b"gets " + LONG + b"\r\n",
    b"gat 1 " + LONG + b"\r\n",
    b"delete " + LONG + b"\r\n",
    b"delete " + LONG + b" 1\r\n",
    b"incr " + LONG + b" 1\r\n",
    b"touch " + LONG + b" 1\r\n",
    b"set " + LONG + b" 0 0 x\r\n",
    # tokens memcached ignores
    b"set {k} 0 0 1 x\r\nv\r\nget {k}\r\n",
    b"set {k} +1 +0 +1\r\nv\r\nget {k}\r\n",
    b"set {k} 0 0 1\r\n1\r\nincr {k} 1 x\r\ntouch {k} 1 x\r\n",
    b"version x\r\n",
    b"verbosity 1 2\r\n",
    b"verbosity 1\r\n",
    b"verbosity 0 noreply\r\n",
    # keys: only ' ' separates tokens; a NUL ends the line
    b"get {k}\x01b\r\n",
    b"set {k}\x7fb 0 0 1\r\nx\r\nget {k}\x7fb\r\n",
    b"set {k}\tb 0 0 1\r\nx\r\nget {k}\tb {k}\r\n",
    b"set {k}\x01a 0 0 1\r\na\r\nset {k}\x7fb 0 0 1\r\nb\r\nset {k}\rc 0 0 1\r\nc\r\n"
    b"get {k}\rc {k}\x01a {k}\x7fb {k}\x1bd\r\n",
    b"set {k} 0 0 1\r\nx\r\nget {k}\x00junk\r\n",
    b"set {k}\x00 0 0 1\r\nx\r\n",
    # unknown commands, HTTP request lines
    b"bogus\r\n",
    b"\r\n",
    b"GET\r\n",
    b"get {k} HTTP/1.0\r\n",
    b"gx HTTP/1.1\r\n",
    b"x HTTP/1.1\r\n",
    b"set / HTTP/1.1\r\n",
    b"foo bar HTTP/1.1 x\r\n",
    # stats forms answered the same by one server and by many
    b"stats reset\r\n",
    b"stats reset x\r\n",
    b"stats detail on\r\nstats detail off\r\nstats detail dump\r\n",
    b"stats detail\r\n",
    b"stats detail x\r\n",
    b"stats nonsense\r\n",
    b"stats cachedump\r\n",
    # last: they flush every server
    b"flush_all 0 2\r\n",
    b"set {k} 0 0 1\r\nv\r\nflush_all\r\nget {k}\r\n",
    b"flush_all noreply\r\n",
]

# These close the connection (memcached too).
CLOSING = [
    b"quit\r\n",
    b"quit x\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /x HTTP/1.0\r\n",
    b"foo HTTP/2\r\n",
    b"vx HTTP/1.1\r\n",
]

VERSION_LINE = re.compile(rb"VERSION [^\r\n]*")


def exchange(port, data, idle=0.15, timeout=5.0):
    """Sends data then `version`; returns every byte received until the version reply (and a
    short idle), or until the connection closes ("<closed>")."""
    s = socket.create_connection((HOST, port), timeout=timeout)
    try:
        s.sendall(data + b"version\r\n")
        got = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            wait = idle if got.endswith(b"\r\n") and re.search(
                rb"(^|\n)VERSION [^\r\n]*\r\n$", got) else deadline - time.monotonic()
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


def normalise(reply):
    return VERSION_LINE.sub(b"VERSION x", reply)


class MemcachedExactTest(unittest.TestCase):
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

    def key(self, i, tag=b""):
        return b"exact:%d:%s%d" % (self.run_id, tag, i)

    def setUp(self):
        self.run_id = time.monotonic_ns()

    def both(self, data):
        ref = normalise(exchange(self.reference.port, data))
        got = normalise(exchange(self.port, data))
        return ref, got

    def test_replies_are_memcached_s(self):
        for i, case in enumerate(CASES):
            data = case.replace(b"{k}", self.key(i))
            with self.subTest(case=data[:80]):
                ref, got = self.both(data)
                self.assertTrue(ref.endswith(b"VERSION x\r\n"), ref)
                self.assertEqual(got, ref)

    def test_pipelined_in_one_write(self):
        # memcached 1.6.18 drops the pending replies of earlier requests of the same read when
        # a get's key is too long (a bug dproxy does not copy): those cases are left out here.
        data = b"".join(case.replace(b"{k}", self.key(i, b"p")) for i, case in enumerate(CASES)
                        if not (case.startswith((b"get", b"gat")) and LONG in case))
        ref, got = self.both(data)
        self.assertTrue(ref.endswith(b"VERSION x\r\n"), ref[-200:])
        self.assertEqual(got, ref)

    def test_closing_lines(self):
        for i, case in enumerate(CLOSING):
            data = case.replace(b"{k}", self.key(i, b"c"))
            with self.subTest(case=data[:80]):
                ref, got = self.both(data)
                self.assertTrue(ref.endswith(b"<closed>"), ref)
                self.assertEqual(got, ref)
        self.assertIn("closed: an HTTP request line", self.proxy.log_text())
        # A difference: memcached drops the replies still queued when it closes; dproxy
        # delivers the replies of the requests before the HTTP line, then closes.
        data = b"set %s 0 0 1\r\nv\r\nfoo HTTP/1.1\r\nget x\r\n" % self.key(0, b"c")
        self.assertEqual(exchange(self.port, data), b"STORED\r\n<closed>")

    def test_tls_first_bytes_close_at_once(self):
        # memcached answers ERROR to a ClientHello and waits; dproxy closes without a reply.
        # (A first byte 0x80 is a binary protocol client: test_memcached_binary.py.)
        hello = b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 40
        start = time.monotonic()
        self.assertEqual(exchange(self.port, hello, timeout=5.0), b"<closed>")
        self.assertLess(time.monotonic() - start, 2.0)
        log = self.proxy.log_text()
        self.assertRegex(log, r"client 127\.0\.0\.1:\d+: closed: a TLS handshake")

    def test_stats_groups_from_every_server(self):
        for group in (b"settings", b"items", b"slabs", b"sizes", b"conns"):
            with self.subTest(group=group):
                got = exchange(self.port, b"stats " + group + b"\r\n")
                ref = exchange(self.reference.port, b"stats " + group + b"\r\n")
                lines = got.split(b"\r\n")
                self.assertEqual(got.count(b"END\r\n"), 1, got[-300:])
                self.assertTrue(all(line.startswith(b"STAT ")
                                    for line in lines[:lines.index(b"END")]), got[:300])
                if group in (b"settings", b"sizes"):
                    # Every server has the same set of names: three times memcached's count.
                    self.assertEqual(got.count(b"STAT "), 3 * ref.count(b"STAT "))

    def test_libmemcached_tools_pass(self):
        server = f"--servers={HOST}:{self.port}"
        for tool in (["memcping", server], ["memcstat", server],
                     ["memcstat", server, "--args=items"], ["memcdump", server]):
            with self.subTest(tool=tool[0]):
                r = subprocess.run(tool, capture_output=True, timeout=30)
                self.assertEqual(r.returncode, 0, (r.stdout[-500:], r.stderr[-500:]))
                self.assertNotIn(b"failed", r.stderr.lower())
        r = subprocess.run(["memcstat", server], capture_output=True, timeout=30)
        # dproxy's own version stays visible in its stats.
        self.assertIn(b"proxy: dproxy", r.stdout)


if __name__ == "__main__":
    ARGS = harness.parse_args()
    unittest.main()
