"""memcached authentication through dproxy, both sides.

Client side: a pool with credentials ("sasl") serves ASCII clients with memcached's ASCII
authentication (memcached -Y): each single-request exchange is compared byte for byte with a real
memcached -Y holding the same credentials, and nothing an unauthenticated client sends reaches a
backend. php-memcached (binary + SASL, and ASCII) runs against it.

Backend side: "server_user" / "server_password" make dproxy authenticate to memcached -Y backends
on every new connection (data connections and health probes); a wrong password fails requests
with an error naming the backend and the reason.
"""
import json
import os
import pwd
import shutil
import socket
import subprocess
import time
import unittest

import harness
from harness import HOST, Dproxy, Processes, RawClient, backend_get, free_port, wait_port

ARGS = None


def memcached_auth(procs, authfile):
    port = free_port()
    p = procs.spawn(["memcached", "-u", pwd.getpwuid(os.getuid()).pw_name, "-l", HOST,
                     "-p", str(port), "-U", "0", "-m", "64", "-t", "1", "-Y", authfile])
    wait_port(port, p)
    p.port = port
    return p


def exchange(port, data, settle=0.3):
    """Sends `data` on a new connection; returns every byte answered until a quiet pause (or
    the close, marked b"<eof>")."""
    s = socket.create_connection((HOST, port), timeout=5)
    try:
        s.sendall(data)
        out = b""
        deadline = time.monotonic() + 5
        s.settimeout(settle)
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                if out:
                    break
                continue
            if not chunk:
                return out + b"<eof>"
            out += chunk
        return out
    finally:
        s.close()


missing = harness.missing


class ClientAsciiAuthTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.procs = Processes()
        authfile = os.path.join(cls.procs.tmp.name, "auth")
        with open(authfile, "w") as f:
            f.write("app:s3cret\n")
        cls.reference = memcached_auth(cls.procs, authfile)
        cls.backends = [cls.procs.memcached() for _ in range(2)]
        cls.port = free_port()
        cls.proxy = Dproxy(cls.procs, ARGS.dproxy, {
            "mc": {"protocol": "memcached", "listen": f"{HOST}:{cls.port}", "policy": "ketama",
                   "max_value_bytes": 1000,
                   "sasl": {"app": "s3cret", "bob": "pa ss"},
                   "servers": [f"{HOST}:{b.port}:1" for b in cls.backends]},
        })

    @classmethod
    def tearDownClass(cls):
        rc = cls.proxy.stop()
        cls.procs.close()
        assert rc == 0

    def test_differential(self):
        # One request per connection: memcached -Y answers each like this (pipelined after a
        # refusal it loses replies; dproxy answers every request, see test_pipelined).
        cases = [
            b"get a\r\n",
            b"version\r\n",
            b"quit\r\n",
            b"mn\r\n",
            b"bogus\r\n",
            b"set x 0\r\n",
            b"add x 0 0 10\r\napp s3cret\r\n",
            b"set x 0 0 10\r\napp s3cret\r\n",
            b"set x 0 0 10 noreply\r\napp s3cret\r\n",
            b"set x 0 0 8\r\napp nope\r\n",
            b"set x 0 0 11\r\nnobody pass\r\n",
            b"set x 0 0 6\r\nappnop\r\n",
            b"set x 0 0 6\r\nappnopXX",
        ]
        for data in cases:
            with self.subTest(data=data):
                want = exchange(self.reference.port, data)
                self.assertTrue(want, data)
                got = exchange(self.port, data)
                if data.endswith(b"XX"):  # framing lost: dproxy closes, memcached -Y waits
                    got = got.removesuffix(b"<eof>")
                self.assertEqual(got, want)

    def test_pipelined(self):
        k = b"auth:%d" % time.monotonic_ns()
        got = exchange(self.port, b"get " + k + b"\r\nset x 0 0 8\r\napp nope\r\n"
                       b"set x 0 0 9\r\nbob pa ss\r\n"
                       b"set " + k + b" 0 0 1\r\nv\r\nget " + k + b"\r\n")
        self.assertEqual(got, b"CLIENT_ERROR unauthenticated\r\n"
                         b"CLIENT_ERROR authentication failure\r\n"
                         b"STORED\r\nSTORED\r\nVALUE " + k + b" 0 1\r\nv\r\nEND\r\n")

    def test_nothing_reaches_a_backend(self):
        k = b"auth-kept:%d" % time.monotonic_ns()
        for b in self.backends:  # the key's old value, wherever it maps
            c = RawClient(b.port)
            c.send(b"set " + k + b" 0 0 3\r\nold\r\n")
            self.assertEqual(c.read_line(), b"STORED\r\n")
            c.close()
        got = exchange(self.port, b"delete " + k + b"\r\n"
                       b"set " + k + b" 0 0 1\r\nv\r\n"
                       b"set " + k + b" 0 0 2000\r\n" + b"y" * 2000 + b"\r\n"
                       b"incr " + k + b" 1\r\nflush_all\r\n")
        self.assertEqual(got, b"CLIENT_ERROR unauthenticated\r\n"
                         b"CLIENT_ERROR bad authentication token format\r\n" +
                         b"CLIENT_ERROR unauthenticated\r\n" * 3, got)
        for b in self.backends:
            self.assertEqual(backend_get(b.port, k), b"old")

    def test_php_memcached(self):
        if shutil.which("php") is None:
            missing("php-cli")
        if subprocess.run(["php", "-r", "exit(class_exists('Memcached') ? 0 : 1);"]).returncode:
            missing("php-memcached")
        script = r'''<?php
$port = (int)$argv[1];
$k = "php:" . getmypid() . ":" . microtime(true);
$ok = new Memcached();
$ok->setOption(Memcached::OPT_BINARY_PROTOCOL, true);
$ok->addServer("127.0.0.1", $port);
$ok->setSaslAuthData("app", "s3cret");
if (!$ok->set($k, "v1")) { fwrite(STDERR, "set: " . $ok->getResultMessage() . "\n"); exit(1); }
if ($ok->get($k) !== "v1") { fwrite(STDERR, "get\n"); exit(1); }
$keys = [];
for ($i = 0; $i < 20; $i++) { $keys[] = "$k:$i"; $ok->set("$k:$i", "val$i"); }
$m = $ok->getMulti($keys);
if (count($m) != 20 || $m["$k:7"] !== "val7") { fwrite(STDERR, "getMulti\n"); exit(1); }
if ($ok->increment("$k:n", 1, 5) !== 5 || $ok->increment("$k:n", 2) !== 7) {
  fwrite(STDERR, "increment\n"); exit(1);
}
$bad = new Memcached();
$bad->setOption(Memcached::OPT_BINARY_PROTOCOL, true);
$bad->addServer("127.0.0.1", $port);
$bad->setSaslAuthData("app", "nope");
if ($bad->get($k) !== false || $bad->getResultCode() == Memcached::RES_SUCCESS) {
  fwrite(STDERR, "a wrong password was accepted\n"); exit(1);
}
echo "php ok\n";
'''
        path = os.path.join(self.procs.tmp.name, "sasl.php")
        with open(path, "w") as f:
            f.write(script)
        r = subprocess.run(["php", path, str(self.port)], capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("php ok", r.stdout)


class BackendAuthTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.procs = Processes()
        authfile = os.path.join(cls.procs.tmp.name, "auth")
        with open(authfile, "w") as f:
            f.write("dp:backend-secret\n")
        cls.backends = [memcached_auth(cls.procs, authfile) for _ in range(2)]
        cls.port = free_port()
        cls.bad_port = free_port()
        servers = [f"{HOST}:{b.port}:1" for b in cls.backends]
        cls.proxy = Dproxy(cls.procs, ARGS.dproxy, {
            "mc": {"protocol": "memcached", "listen": f"{HOST}:{cls.port}", "policy": "ketama",
                   "server_user": "dp", "server_password": "backend-secret",
                   "servers": servers},
            "bad": {"protocol": "memcached", "listen": f"{HOST}:{cls.bad_port}",
                    "policy": "ketama", "server_user": "dp", "server_password": "wrong",
                    "server_failure_limit": 1000, "servers": servers},
        })

    @classmethod
    def tearDownClass(cls):
        rc = cls.proxy.stop()
        cls.procs.close()
        assert rc == 0

    def test_requests_pass(self):
        k = b"bauth:%d" % time.monotonic_ns()
        keys = [k + b":%d" % i for i in range(20)]
        c = RawClient(self.port)
        for kk in keys:
            c.send(b"set " + kk + b" 0 0 2\r\nvv\r\n")
        for kk in keys:
            self.assertEqual(c.read_line(), b"STORED\r\n")
        c.send(b"get " + b" ".join(keys) + b"\r\n")
        self.assertEqual(sorted(x[0] for x in c.read_retrieval()), sorted(keys))
        # A binary client too (translated to meta on the authenticated connections).
        c2 = socket.create_connection((HOST, self.port), timeout=5)
        c2.sendall(bytes([0x80, 0x00]) + len(keys[0]).to_bytes(2, "big") + bytes(4) +
                   len(keys[0]).to_bytes(4, "big") + (9).to_bytes(4, "big") + bytes(8) + keys[0])
        head = c2.recv(24)
        self.assertEqual(head[:2], bytes([0x81, 0x00]))
        self.assertEqual(head[6:8], b"\0\0")
        c2.close()
        c.close()

    def test_wrong_password(self):
        got = exchange(self.bad_port, b"get somekey\r\n")
        self.assertTrue(got.startswith(b"SERVER_ERROR "), got)
        self.assertIn(b"authentication failure", got)

    def test_config_needs_user(self):
        path = os.path.join(self.procs.tmp.name, "bad.json")
        with open(path, "w") as f:
            json.dump({"pools": {"p": {"protocol": "memcached", "listen": f"{HOST}:{free_port()}",
                             "server_password": "x", "servers": [f"{HOST}:1:1"]}}}, f)
        r = harness.run_dproxy(ARGS.dproxy, ["--config", path, "--test-config"])
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("server_user", r.stderr)


if __name__ == "__main__":
    ARGS = harness.parse_args()
    unittest.main()
