"""TLS on both sides (issue 20), with certificates made by the test with the openssl CLI.

Client side ("tls"): redis-cli --tls, redis-py ssl=True and pymemcache with a TLS context (ASCII)
plus a binary memcached request over TLS; client-certificate verification on (an untrusted and an
expired client certificate refused, with a log line naming the peer) and off; a plaintext client
on a TLS listener closed at once; certificate rotation by SIGHUP while a client keeps its
connection, and a reload with a mismatched key or a missing file rejected (the running
certificates stay).

Backend side ("server_tls"): Debian's redis-server with tls-port (and a client certificate when the
server asks for one), memcached -Z; an untrusted and an expired server certificate refused (the
request fails naming the backend and the reason), verify off, server_name; health probes over TLS
(a server marked down comes back only through a TLS probe); a 3-node redis_cluster over TLS (the
nodes found through CLUSTER SLOTS are reached over TLS too).

Stats: tls_* and server_tls_* figures in the stats JSON and /metrics.
"""
import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import time
import unittest

import harness
from harness import HOST, Dproxy, Processes, free_cluster_port, free_port, wait_for, wait_port

ARGS = None

CA_CNF = """[ca]
default_ca = d
[d]
dir = {dir}
database = {dir}/index.txt
new_certs_dir = {dir}
serial = {dir}/serial
default_md = sha256
policy = p
copy_extensions = copy
unique_subject = no
[p]
commonName = supplied
"""


def run(*argv):
    subprocess.run(argv, check=True, capture_output=True, timeout=60)


class Certs:
    """Two CAs (trusted, untrusted) and certificates signed by them, in `dir`."""

    def __init__(self, dir):
        self.dir = dir
        self.serial = 1
        for ca in ("ca", "evil"):
            run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
                "-keyout", self.path(ca + ".key"), "-out", self.path(ca + ".pem"),
                "-subj", f"/CN=dproxy test {ca}")

    def path(self, name):
        return os.path.join(self.dir, name)

    def make(self, name, ca="ca", san="IP:127.0.0.1,DNS:localhost", expired=False):
        """Signs a new key's certificate `name`.pem (key `name`.key) with CA `ca`; an expired one
        is valid only in January 2020. Returns (cert path, key path)."""
        cert, key, csr = self.path(name + ".pem"), self.path(name + ".key"), self.path(name + ".csr")
        run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
            "-subj", f"/CN={name}", "-addext", f"subjectAltName={san}")
        if expired:
            cadir = self.path("cadb-" + name)
            os.makedirs(cadir)
            open(os.path.join(cadir, "index.txt"), "w").close()
            with open(os.path.join(cadir, "serial"), "w") as f:
                f.write(f"{self.serial:02x}\n")
            with open(os.path.join(cadir, "ca.cnf"), "w") as f:
                f.write(CA_CNF.format(dir=cadir))
            run("openssl", "ca", "-batch", "-config", os.path.join(cadir, "ca.cnf"),
                "-cert", self.path(ca + ".pem"), "-keyfile", self.path(ca + ".key"),
                "-in", csr, "-out", cert, "-notext",
                "-startdate", "20200101000000Z", "-enddate", "20200201000000Z")
        else:
            run("openssl", "x509", "-req", "-in", csr, "-CA", self.path(ca + ".pem"),
                "-CAkey", self.path(ca + ".key"), "-set_serial", str(self.serial), "-days", "30",
                "-copy_extensions", "copy", "-out", cert)
        self.serial += 1
        return cert, key


def redis_tls(procs, certs, cert, key, auth_clients="optional", extra=()):
    """A redis-server serving TLS only (tls-port) with certificate `cert`."""
    port = free_port()
    p = procs.spawn(["redis-server", "--bind", HOST, "--port", "0", "--tls-port", str(port),
                     "--tls-cert-file", cert, "--tls-key-file", key,
                     "--tls-ca-cert-file", certs.path("ca.pem"),
                     "--tls-auth-clients", auth_clients, "--save", "", "--appendonly", "no",
                     "--dir", procs.tmp.name, "--dbfilename", f"dump-{port}.rdb", *extra])
    wait_port(port, p)
    p.port = port
    return p


def memcached_tls(procs, cert, key, port=None):
    port = port or free_port()
    p = procs.spawn(["memcached", "-u", pwd.getpwuid(os.getuid()).pw_name, "-l", HOST,
                     "-p", str(port), "-U", "0", "-m", "64", "-t", "1", "-Z",
                     "-o", f"ssl_chain_cert={cert},ssl_key={key}"])
    wait_port(port, p)
    p.port = port
    return p


def client_context(certs, cert=None, key=None):
    ctx = ssl.create_default_context(cafile=certs.path("ca.pem"))
    ctx.check_hostname = False
    if cert:
        ctx.load_cert_chain(cert, key)
    return ctx


def tls_socket(port, ctx, timeout=5.0):
    raw = socket.create_connection((HOST, port), timeout=timeout)
    return ctx.wrap_socket(raw)


def tls_call(sock, data, lines=1):
    """Sends `data` and reads `lines` CRLF-terminated lines."""
    sock.sendall(data)
    out = b""
    while out.count(b"\r\n") < lines:
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError(f"closed after {out!r}")
        out += chunk
    return out


def metrics(proxy):
    data = harness.exchange(proxy.stats_port, b"GET /metrics HTTP/1.0\r\n\r\n")
    return data.split(b"\r\n\r\n", 1)[1].decode()


class ClientSideTest(unittest.TestCase):
    """Clients speak TLS to dproxy; the backends are plaintext."""

    @classmethod
    def setUpClass(cls):
        cls.procs = Processes()
        cls.certs = Certs(cls.procs.tmp.name)
        c = cls.certs
        cls.proxy_cert = c.make("proxy")
        cls.client_cert = c.make("client")
        cls.untrusted_client = c.make("intruder", ca="evil")
        cls.expired_client = c.make("oldclient", expired=True)
        cls.redis = cls.procs.redis()
        cls.memcached = cls.procs.memcached()
        cls.rd_port, cls.mc_port, cls.verify_port = free_port(), free_port(), free_port()
        tls = {"cert": cls.proxy_cert[0], "key": cls.proxy_cert[1]}
        cls.proxy = Dproxy(cls.procs, ARGS.dproxy, {
            "rd": {"protocol": "redis", "listen": f"{HOST}:{cls.rd_port}",
                   "servers": [f"{HOST}:{cls.redis.port}:1"], "tls": tls},
            "mc": {"protocol": "memcached", "listen": f"{HOST}:{cls.mc_port}",
                   "servers": [f"{HOST}:{cls.memcached.port}:1"], "tls": tls},
            "verified": {"protocol": "redis", "listen": f"{HOST}:{cls.verify_port}",
                         "servers": [f"{HOST}:{cls.redis.port}:1"],
                         "tls": dict(tls, ca=c.path("ca.pem"), verify_client=True,
                                     min_version="1.2")},
        })

    @classmethod
    def tearDownClass(cls):
        cls.procs.close()

    def test_redis_py(self):
        import redis
        r = redis.Redis(host=HOST, port=self.rd_port, ssl=True,
                        ssl_ca_certs=self.certs.path("ca.pem"), ssl_cert_reqs="required")
        r.set("tls:py", "value")
        self.assertEqual(r.get("tls:py"), b"value")
        self.assertEqual(r.mget(["tls:py", "tls:none"]), [b"value", None])
        r.close()

    def test_redis_cli(self):
        out = subprocess.run(["redis-cli", "--tls", "--cacert", self.certs.path("ca.pem"),
                              "-h", HOST, "-p", str(self.rd_port), "SET", "tls:cli", "x"],
                             capture_output=True, text=True, timeout=10)
        self.assertEqual(out.stdout.strip(), "OK", out.stderr)
        out = subprocess.run(["redis-cli", "--tls", "--cacert", self.certs.path("ca.pem"),
                              "-h", HOST, "-p", str(self.rd_port), "GET", "tls:cli"],
                             capture_output=True, text=True, timeout=10)
        self.assertEqual(out.stdout.strip(), "x", out.stderr)

    def test_pymemcache(self):
        from pymemcache.client.base import Client
        mc = Client((HOST, self.mc_port), tls_context=client_context(self.certs), timeout=5)
        mc.set("tls:mc", b"hello")
        self.assertEqual(mc.get("tls:mc"), b"hello")
        self.assertEqual(mc.get_many(["tls:mc", "tls:missing"]), {"tls:mc": b"hello"})
        mc.close()

    def test_memcached_binary_over_tls(self):
        s = tls_socket(self.mc_port, client_context(self.certs))
        key = b"tls:bin"
        # Binary SET (extras: flags, expiry), then GET.
        value = b"binval"
        body = bytes(8) + key + value
        s.sendall(bytes([0x80, 0x01]) + len(key).to_bytes(2, "big") + bytes([8, 0, 0, 0]) +
                  len(body).to_bytes(4, "big") + bytes(12) + body)
        head = s.recv(24)
        self.assertEqual(head[:2], bytes([0x81, 0x01]))
        self.assertEqual(head[6:8], b"\0\0")
        s.sendall(bytes([0x80, 0x00]) + len(key).to_bytes(2, "big") + bytes(4) +
                  len(key).to_bytes(4, "big") + bytes(12) + key)
        reply = b""
        while len(reply) < 24 or len(reply) < 24 + int.from_bytes(reply[8:12], "big"):
            reply += s.recv(4096)
        self.assertEqual(reply[6:8], b"\0\0")
        self.assertTrue(reply.endswith(value), reply)
        s.close()

    def test_plaintext_client_closed_at_once(self):
        for port, request in ((self.rd_port, b"PING\r\n"), (self.mc_port, b"get foo\r\n")):
            s = socket.create_connection((HOST, port), timeout=5)
            local = s.getsockname()[1]
            start = time.monotonic()
            s.sendall(request)
            try:
                data = s.recv(100)
            except ConnectionResetError:
                data = b""
            elapsed = time.monotonic() - start
            s.close()
            self.assertEqual(data, b"")  # closed, no plaintext answer
            self.assertLess(elapsed, 1.0)
            self.assertTrue(wait_for(
                lambda: f"client {HOST}:{local}: TLS handshake failed" in self.proxy.log_text(), 5))
        lines = [line for line in self.proxy.log_text().splitlines()
                 if "TLS handshake failed" in line and "plaintext" in line]
        self.assertGreaterEqual(len(lines), 2, self.proxy.log_text()[-2000:])
        print("\n" + lines[0])

    def test_connection_limit_closes_without_plaintext(self):
        """Over client_connections, a TLS listener closes the connection: no plaintext error
        that a TLS client would read as a bad record (a plain listener sends one)."""
        port = free_port()
        tls = {"cert": self.proxy_cert[0], "key": self.proxy_cert[1]}
        proxy = Dproxy(self.procs, ARGS.dproxy, {
            "one": {"protocol": "redis", "listen": f"{HOST}:{port}", "client_connections": 1,
                    "servers": [f"{HOST}:{self.redis.port}:1"], "tls": tls}})

        def connect_first():
            # The harness's own port probe may still hold the one place for a moment (its
            # session ends when dproxy sees it close): retry until the place is free.
            try:
                s = tls_socket(port, client_context(self.certs))
                s.sendall(b"PING\r\n")
                if s.recv(100) == b"+PONG\r\n":
                    return s
                s.close()
            except (ssl.SSLError, OSError):
                pass
            return None

        first = wait_for(connect_first, 10, interval=0.1)
        self.assertIsNotNone(first)
        s = socket.create_connection((HOST, port), timeout=5)
        try:
            data = s.recv(100)
        except ConnectionResetError:
            data = b""
        s.close()
        self.assertEqual(data, b"")
        with self.assertRaises((ssl.SSLError, OSError)):
            tls_socket(port, client_context(self.certs)).recv(100)
        self.assertIn("TLS listener: closed without a reply", proxy.log_text())
        first.close()
        self.assertEqual(proxy.stop(), 0)

    def test_client_certificate_verification(self):
        # Accepted: a certificate of the trusted CA.
        s = tls_socket(self.verify_port, client_context(self.certs, *self.client_cert))
        self.assertEqual(tls_call(s, b"PING\r\n"), b"+PONG\r\n")
        s.close()
        # Refused: no certificate, one of an untrusted CA, an expired one.
        for cert in (None, self.untrusted_client, self.expired_client):
            before = self.proxy.log_text().count("TLS handshake failed")
            ctx = client_context(self.certs, *(cert or ()))
            raw = socket.create_connection((HOST, self.verify_port), timeout=5)
            with self.assertRaises((ssl.SSLError, OSError, EOFError)):
                s = ctx.wrap_socket(raw)
                # TLS 1.3: the client learns of the refusal at its first read.
                tls_call(s, b"PING\r\n")
            raw.close()
            self.assertTrue(wait_for(
                lambda: self.proxy.log_text().count("TLS handshake failed") > before, 5))
        log = self.proxy.log_text()
        self.assertIn("certificate has expired", log)
        self.assertIn("unable to get local issuer certificate", log)
        # Verification off (the other pools): no certificate needed.
        s = tls_socket(self.rd_port, client_context(self.certs))
        self.assertEqual(tls_call(s, b"PING\r\n"), b"+PONG\r\n")
        s.close()

    def test_stats(self):
        s = tls_socket(self.rd_port, client_context(self.certs))
        self.assertEqual(tls_call(s, b"PING\r\n"), b"+PONG\r\n")
        stats = self.proxy.stats()
        self.assertGreaterEqual(stats["rd"]["tls_handshakes"], 1)
        self.assertGreaterEqual(stats["rd"]["tls_connections"], 1)
        self.assertIn("tls_handshake_failures", stats["rd"])
        self.assertNotIn("server_tls_handshakes", stats["rd"])
        text = metrics(self.proxy)
        self.assertIn('dproxy_tls_handshakes_total{pool="rd"}', text)
        self.assertIn('dproxy_tls_connections{pool="rd"}', text)
        self.assertIn('dproxy_tls_handshake_failures_total{pool="rd"}', text)
        s.close()

    def test_memory_of_tls_connections(self):
        # OpenSSL's heap is its own memory component: each open TLS connection keeps its record
        # buffers (about 34 KB), and they go back when the connection closes.
        def tls_bytes():
            return self.proxy.stats()["memory_tls_bytes"]

        before = tls_bytes()
        self.assertGreater(before, 0)  # the contexts' certificates and keys
        n = 20
        socks = [tls_socket(self.rd_port, client_context(self.certs)) for _ in range(n)]
        for s in socks:
            self.assertEqual(tls_call(s, b"PING\r\n"), b"+PONG\r\n")
        held = tls_bytes()
        self.assertGreater(held - before, n * 16384, (before, held))
        self.assertIn('dproxy_memory_bytes{component="tls"}', metrics(self.proxy))
        for s in socks:
            s.close()
        self.assertTrue(wait_for(lambda: tls_bytes() < before + n * 4096, 10),
                        (before, held, tls_bytes()))


class RotationTest(unittest.TestCase):
    """Certificates reloaded by SIGHUP while clients keep their connections."""

    def setUp(self):
        self.procs = Processes()
        self.certs = Certs(self.procs.tmp.name)
        self.one = self.certs.make("proxy-one")
        self.two = self.certs.make("proxy-two")
        self.backend_client = self.certs.make("dproxy-client")
        self.cert = self.certs.path("live.pem")
        self.key = self.certs.path("live.key")
        shutil.copy(self.one[0], self.cert)
        shutil.copy(self.one[1], self.key)
        self.redis = redis_tls(self.procs, self.certs, *self.certs.make("backend"),
                               auth_clients="yes")
        self.bcert = self.certs.path("backend-client.pem")
        self.bkey = self.certs.path("backend-client.key")
        shutil.copy(self.backend_client[0], self.bcert)
        shutil.copy(self.backend_client[1], self.bkey)
        self.port = free_port()
        self.proxy = Dproxy(self.procs, ARGS.dproxy, {
            "rd": {"protocol": "redis", "listen": f"{HOST}:{self.port}",
                   "servers": [f"{HOST}:{self.redis.port}:1"],
                   "tls": {"cert": self.cert, "key": self.key},
                   "server_tls": {"ca": self.certs.path("ca.pem"), "cert": self.bcert,
                                  "key": self.bkey}},
        })

    def tearDown(self):
        self.procs.close()

    def peer_cn(self):
        s = tls_socket(self.port, client_context(self.certs))
        cn = dict(x[0] for x in s.getpeercert()["subject"])["commonName"]
        self.assertEqual(tls_call(s, b"PING\r\n"), b"+PONG\r\n")
        s.close()
        return cn

    def sighup(self, expect):
        before = self.proxy.log_text().count(expect)
        os.kill(self.proxy.proc.pid, signal.SIGHUP)
        self.assertTrue(wait_for(lambda: self.proxy.log_text().count(expect) > before, 10),
                        self.proxy.log_text()[-2000:])

    def test_rotation(self):
        self.assertEqual(self.peer_cn(), "proxy-one")
        kept = tls_socket(self.port, client_context(self.certs))
        self.assertEqual(tls_call(kept, b"SET k v1\r\n"), b"+OK\r\n")
        shutil.copy(self.two[0], self.cert)
        shutil.copy(self.two[1], self.key)
        self.sighup("TLS certificates loaded again")
        self.assertEqual(self.peer_cn(), "proxy-two")
        # The established connection goes on (client side and its backend connection).
        self.assertEqual(tls_call(kept, b"GET k\r\n", lines=2), b"$2\r\nv1\r\n")
        # A mismatched key: the reload is rejected and the running certificates stay.
        shutil.copy(self.one[1], self.key)
        self.sighup("reload rejected")
        self.assertIn("does not match the certificate", self.proxy.log_text())
        self.assertEqual(self.peer_cn(), "proxy-two")
        # An unreadable backend certificate: rejected too.
        shutil.copy(self.two[1], self.key)
        os.unlink(self.bcert)
        self.sighup("reload rejected")
        self.assertIn("server_tls.cert", self.proxy.log_text())
        self.assertEqual(self.peer_cn(), "proxy-two")
        self.assertEqual(tls_call(kept, b"PING\r\n"), b"+PONG\r\n")
        kept.close()
        stats = self.proxy.stats()["rd"]
        self.assertGreaterEqual(stats["server_tls_handshakes"], 1)
        self.assertGreaterEqual(stats["tls_handshakes"], 4)


class BackendSideTest(unittest.TestCase):
    """dproxy speaks TLS to the servers; the clients are plaintext."""

    @classmethod
    def setUpClass(cls):
        cls.procs = Processes()
        cls.certs = Certs(cls.procs.tmp.name)
        c = cls.certs
        cls.good = redis_tls(cls.procs, c, *c.make("redis-good"))
        cls.untrusted = redis_tls(cls.procs, c, *c.make("redis-evil", ca="evil"))
        cls.expired = redis_tls(cls.procs, c, *c.make("redis-old", expired=True))
        cls.named = redis_tls(cls.procs, c, *c.make("redis-named", san="DNS:cache.internal"))
        cls.needs_cert = redis_tls(cls.procs, c, *c.make("redis-mtls"), auth_clients="yes")
        cls.mc = memcached_tls(cls.procs, *c.make("memcached"))
        cls.client = c.make("dproxy-client")
        ca = c.path("ca.pem")
        cls.ports = {name: free_port() for name in
                     ("good", "untrusted", "expired", "noverify", "named", "wrongname", "mtls",
                      "mc")}

        def pool(name, server, **server_tls):
            return {"protocol": "redis", "listen": f"{HOST}:{cls.ports[name]}",
                    "timeout_ms": 3000, "servers": [f"{HOST}:{server.port}:1"],
                    "server_tls": dict({"ca": ca}, **server_tls)}

        cls.proxy = Dproxy(cls.procs, ARGS.dproxy, {
            "good": pool("good", cls.good, verify=True),
            "untrusted": pool("untrusted", cls.untrusted),
            "expired": pool("expired", cls.expired),
            "noverify": pool("noverify", cls.untrusted, verify=False),
            "named": pool("named", cls.named, server_name="cache.internal"),
            "wrongname": pool("wrongname", cls.named),
            "mtls": pool("mtls", cls.needs_cert, cert=cls.client[0], key=cls.client[1]),
            "mc": {"protocol": "memcached", "listen": f"{HOST}:{cls.ports['mc']}",
                   "servers": [f"{HOST}:{cls.mc.port}:1"], "server_tls": {"ca": ca}},
        })

    @classmethod
    def tearDownClass(cls):
        cls.procs.close()

    def call(self, name, *args):
        import redis
        r = redis.Redis(host=HOST, port=self.ports[name], socket_timeout=10)
        try:
            return r.execute_command(*args)
        finally:
            r.close()

    def test_redis_backend(self):
        self.assertTrue(self.call("good", "SET", "k", "v"))
        self.assertEqual(self.call("good", "GET", "k"), b"v")
        stats = self.proxy.stats()["good"]
        self.assertGreaterEqual(stats["server_tls_handshakes"], 1)
        self.assertGreaterEqual(stats["server_tls_connections"], 1)
        self.assertIn(f'dproxy_server_tls_handshakes_total{{pool="good"}}', metrics(self.proxy))

    def test_dedicated_connections(self):
        """Blocking commands, transactions and pub/sub use connections of their own: TLS too."""
        import redis
        r = redis.Redis(host=HOST, port=self.ports["good"], socket_timeout=10)
        self.assertIsNone(r.blpop(["tls:empty"], timeout=0.2))
        r.rpush("tls:list", "x")
        self.assertEqual(r.blpop(["tls:list"], timeout=1), (b"tls:list", b"x"))
        pipe = r.pipeline(transaction=True)
        pipe.set("tls:tx", "1").incr("tls:tx")
        self.assertEqual(pipe.execute(), [True, 2])
        p = r.pubsub()
        p.subscribe("tls:chan")
        self.assertEqual(p.get_message(timeout=5)["type"], "subscribe")
        self.assertEqual(self.call("good", "PUBLISH", "tls:chan", "hi"), 1)
        msg = p.get_message(timeout=5)
        self.assertEqual((msg["type"], msg["data"]), ("message", b"hi"))
        p.close()
        r.close()

    def test_refused_certificates(self):
        import redis
        for name, reason in (("untrusted", "certificate verify failed"),
                             ("expired", "certificate has expired"),
                             ("wrongname", "certificate verify failed")):
            with self.assertRaises(redis.ResponseError) as e:
                self.call(name, "GET", "k")
            text = str(e.exception)
            self.assertIn("TLS handshake failed", text)
            self.assertIn(reason, text)
            self.assertGreaterEqual(self.proxy.stats()[name]["server_tls_handshake_failures"], 1)

    def test_verify_off_and_server_name(self):
        self.assertTrue(self.call("noverify", "SET", "k", "v"))
        self.assertTrue(self.call("named", "SET", "k", "v"))

    def test_client_certificate_to_backend(self):
        self.assertTrue(self.call("mtls", "SET", "k", "v"))
        self.assertEqual(self.call("mtls", "GET", "k"), b"v")

    def test_memcached_backend(self):
        from pymemcache.client.base import Client
        mc = Client((HOST, self.ports["mc"]), timeout=5)
        mc.set("tls:k", b"over tls")
        self.assertEqual(mc.get("tls:k"), b"over tls")
        mc.close()
        self.assertGreaterEqual(self.proxy.stats()["mc"]["server_tls_handshakes"], 1)


class BothSidesAndProbesTest(unittest.TestCase):
    """TLS on both sides of a memcached pool, and health probes over TLS."""

    def test_memcached_both_sides_and_probe(self):
        procs = Processes()
        try:
            certs = Certs(procs.tmp.name)
            mc_cert = certs.make("memcached")
            mc = memcached_tls(procs, *mc_cert)
            proxy_cert = certs.make("proxy")
            port = free_port()
            proxy = Dproxy(procs, ARGS.dproxy, {
                "mc": {"protocol": "memcached", "listen": f"{HOST}:{port}",
                       "server_failure_limit": 1, "server_retry_timeout_ms": 200,
                       "auto_eject_hosts": True, "timeout_ms": 2000,
                       "servers": [f"{HOST}:{mc.port}:1"],
                       "tls": {"cert": proxy_cert[0], "key": proxy_cert[1]},
                       "server_tls": {"ca": certs.path("ca.pem")}},
            })
            from pymemcache.client.base import Client
            client = Client((HOST, port), tls_context=client_context(certs), timeout=5)
            client.set("both", b"sides")
            self.assertEqual(client.get("both"), b"sides")
            # The server goes away: marked down at the next request.
            mc_port = mc.port
            procs.kill(mc)
            self.assertTrue(wait_for(lambda: self._fails(client), 10))
            self.assertTrue(wait_for(lambda: "is down" in self._get_error(client), 10))
            # Back (TLS only): only a probe over TLS can mark it up again.
            memcached_tls(procs, *mc_cert, port=mc_port)
            self.assertTrue(wait_for(lambda: self._get_error(client) == "", 10),
                            proxy.log_text()[-2000:])
            client.close()
        finally:
            procs.close()

    def test_probe_handshakes_counted(self):
        # A backend whose certificate dproxy does not trust: the data connection's handshake
        # fails, the server is marked down, and from then on only the health probes handshake
        # (every 200 ms): their failures are counted too, with no client request.
        procs = Processes()
        try:
            certs = Certs(procs.tmp.name)
            mc = memcached_tls(procs, *certs.make("memcached", ca="evil"))
            port = free_port()
            proxy = Dproxy(procs, ARGS.dproxy, {
                "mc": {"protocol": "memcached", "listen": f"{HOST}:{port}",
                       "server_failure_limit": 1, "server_retry_timeout_ms": 200,
                       "auto_eject_hosts": True, "servers": [f"{HOST}:{mc.port}:1"],
                       "server_tls": {"ca": certs.path("ca.pem")}},
            })
            c = harness.RawClient(port)
            c.send(b"get k\r\n")
            self.assertIn(b"SERVER_ERROR", c.read_line())
            c.close()
            failures = lambda: proxy.stats()["mc"]["server_tls_handshake_failures"]  # noqa: E731
            first = failures()
            self.assertGreaterEqual(first, 1)
            self.assertTrue(wait_for(lambda: failures() >= first + 3, 10), (first, failures()))
            self.assertEqual(proxy.stats()["mc"]["server_tls_handshakes"], 0)
        finally:
            procs.close()

    @staticmethod
    def _get_error(client):
        try:
            client.get("probe")
            return ""
        except Exception as e:  # pymemcache raises MemcacheServerError on SERVER_ERROR
            return str(e)

    def _fails(self, client):
        return self._get_error(client) != ""


class ClusterTest(unittest.TestCase):
    """A 3-node Redis Cluster serving TLS only (tls-cluster yes): the seeds and the nodes found
    through CLUSTER SLOTS are reached over TLS."""

    def test_cluster_over_tls(self):
        procs = Processes()
        try:
            certs = Certs(procs.tmp.name)
            cert, key = certs.make("node")
            ca = certs.path("ca.pem")
            tls_cli = ["redis-cli", "--tls", "--cacert", ca]
            nodes = []
            for _ in range(3):
                port = free_cluster_port()
                conf = os.path.join(procs.tmp.name, f"nodes-{port}.conf")
                p = procs.spawn(["redis-server", "--bind", HOST, "--port", "0",
                                 "--tls-port", str(port), "--tls-cluster", "yes",
                                 "--tls-cert-file", cert, "--tls-key-file", key,
                                 "--tls-ca-cert-file", ca, "--tls-auth-clients", "optional",
                                 "--cluster-enabled", "yes", "--cluster-config-file", conf,
                                 "--cluster-node-timeout", "2000", "--save", "",
                                 "--appendonly", "no", "--dir", procs.tmp.name,
                                 "--dbfilename", f"dump-{port}.rdb"])
                wait_port(port, p)
                p.port = port
                nodes.append(p)
            out = subprocess.run(tls_cli + ["--cluster", "create",
                                            *[f"{HOST}:{n.port}" for n in nodes],
                                            "--cluster-replicas", "0", "--cluster-yes"],
                                 capture_output=True, text=True, timeout=60)
            self.assertEqual(out.returncode, 0, out.stdout + out.stderr)

            def converged():
                for n in nodes:
                    r = subprocess.run(tls_cli + ["-h", HOST, "-p", str(n.port), "CLUSTER",
                                                  "INFO"], capture_output=True, text=True,
                                       timeout=10)
                    if "cluster_state:ok" not in r.stdout:
                        return False
                return True

            self.assertTrue(wait_for(converged, 60, interval=0.2))
            port = free_port()
            # One seed only: the other two masters are found through CLUSTER SLOTS.
            proxy = Dproxy(procs, ARGS.dproxy, {
                "cl": {"protocol": "redis", "listen": f"{HOST}:{port}", "policy": "redis_cluster",
                       "servers": [f"{HOST}:{nodes[0].port}:1"], "cluster_refresh_ms": 100,
                       "server_tls": {"ca": ca}},
            })
            import redis
            r = redis.Redis(host=HOST, port=port, socket_timeout=10)
            keys = [f"key:{i}" for i in range(200)]
            for k in keys:
                self.assertTrue(r.set(k, k))
            self.assertEqual(r.mget(keys), [k.encode() for k in keys])
            # Every master holds some of the keys (each reached over TLS).
            for n in nodes:
                got = subprocess.run(tls_cli + ["-h", HOST, "-p", str(n.port), "DBSIZE"],
                                     capture_output=True, text=True, timeout=10)
                self.assertGreater(int(got.stdout.strip()), 0)
            r.close()
            stats = proxy.stats()["cl"]
            self.assertGreaterEqual(stats["server_tls_handshakes"], 3)
            self.assertEqual(stats["server_tls_handshake_failures"], 0)
            # The slot map queries (every 100 ms here) handshake too, and are counted.
            before = stats["server_tls_handshakes"]
            self.assertTrue(wait_for(
                lambda: proxy.stats()["cl"]["server_tls_handshakes"] >= before + 3, 10))
        finally:
            procs.close()


if __name__ == "__main__":
    ARGS = harness.parse_args()
    unittest.main()
