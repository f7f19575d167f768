"""nutcracker's command line on dproxy, --test-config's checks against the machine, IPv6,
nutcracker's pool keys at run time (preconnect, tcp keepalive, no timeout) and the health
endpoints of the stats listener. Real memcached processes on loopback.
"""
import json
import os
import pwd
import signal
import socket
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

ARGS = harness.parse_args()
HOST = harness.HOST


def http_get(port, path):
    """(status code, body) of GET `path` on the stats listener."""
    raw = harness.exchange(port, f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode()


def memcached_stat(port, name):
    c = harness.RawClient(port)
    try:
        c.send(b"stats\r\n")
        text = c.read_until(b"END\r\n").decode()
    finally:
        c.close()
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] == name:
            return int(parts[2])
    raise AssertionError(f"no stat {name}")


class CliTest(unittest.TestCase):
    def setUp(self):
        self.procs = harness.Processes()
        self.addCleanup(self.procs.close)
        self.n = 0

    def write(self, text, suffix=".json"):
        self.n += 1
        path = os.path.join(self.procs.tmp.name, f"c{self.n}{suffix}")
        with open(path, "w") as f:
            f.write(text if isinstance(text, str) else json.dumps(text))
        return path

    def run_dproxy(self, *args):
        return harness.run_dproxy(ARGS.dproxy, list(args))

    def simple(self, **extra):
        pool = {"protocol": "memcached", "listen": f"{HOST}:{harness.free_port()}",
                "servers": [f"{HOST}:11211"]}
        pool.update(extra)
        return self.write({"pools": {"cache": pool}})

    def test_nutcracker_option_forms(self):
        path = self.simple()
        port = harness.free_port()
        for argv in (["-c", path, "-t", "-s", str(port), "-a", "127.0.0.2"],
                     [f"--conf-file={path}", "--test-conf", f"--stats-port={port}",
                      "--stats-addr=127.0.0.2"],
                     ["--config", path, "--test-config", "--stats-port", str(port),
                      "--stats-addr", "127.0.0.2", "-v", "7"],
                     [f"-c{path}", "-t", f"-s{port}", "-a127.0.0.2", "--verbose=2"]):
            with self.subTest(argv=argv):
                r = self.run_dproxy(*argv)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertIn(f"stats: listen=127.0.0.2:{port}\n", r.stdout)
        r = self.run_dproxy("-c", path, "-t", "-m", "16384", "--stats-interval=30000")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("note: --mbuf-size has no effect", r.stderr)
        self.assertIn("note: --stats-interval has no effect", r.stderr)

    def test_bad_nutcracker_options(self):
        path = self.simple()
        for argv, message in (
                (["-c", path, "-v", "12"], "-v needs a level from 0 to 11, got '12'"),
                (["-c", path, "--verbose=x"], "--verbose needs a level from 0 to 11, got 'x'"),
                (["-c", path, "-s", "0"], "-s needs a port from 1 to 65535, got '0'"),
                (["-c", path, "-a", "localhost"], "-a needs an IP address, got 'localhost'"),
                (["-c", path, "--daemonize=yes"], "--daemonize takes no value"),
                (["-c", path, "-x"], "unknown option '-x'"),
                (["-c", path, "-dt"], "unknown option '-dt'"),
                (["-p"], "-p needs a file name")):
            with self.subTest(argv=argv):
                r = self.run_dproxy(*argv)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertEqual(r.stderr, f"dproxy: {message}\nTry 'dproxy --help'.\n")

    def test_help_version_describe_stats(self):
        r = self.run_dproxy("-h")
        self.assertEqual(r.returncode, 0)
        self.assertLess(r.stdout.index("Options"), r.stdout.index("Signals:"))
        self.assertGreater(r.stdout.index("Signals:"), r.stdout.index("--help"))
        for opt in ("--conf-file", "--test-conf", "--daemonize", "--pid-file", "--output",
                    "--verbose", "--stats-port", "--stats-addr", "--stats-interval",
                    "--describe-stats", "--mbuf-size", "--print-config"):
            self.assertIn(opt, r.stdout)
        self.assertRegex(self.run_dproxy("-V").stdout, r"^dproxy \d+\.\d+\.\d+\n$")
        d = self.run_dproxy("--describe-stats")
        self.assertEqual(d.returncode, 0)
        self.assertIn("pool stats:", d.stdout)
        self.assertIn("server_ejected_at", d.stdout)

    def test_test_config_resolves_hosts_and_binds_listeners(self):
        r = self.run_dproxy("-t", "-c", self.simple(servers=["no-such-host.invalid:11211"]))
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn('pools.cache.servers[0]: cannot resolve "no-such-host.invalid"', r.stderr)
        # 192.0.2.1 (TEST-NET-1) is not an address of this machine: it cannot be bound.
        r = self.run_dproxy("-t", "-c", self.simple(listen="192.0.2.1:22121"))
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("pools.cache.listen: cannot listen on 192.0.2.1:22121", r.stderr)
        not_a_dir = os.path.join(self.procs.tmp.name, "file")
        open(not_a_dir, "w").close()
        r = self.run_dproxy("-t", "-c", self.simple(listen=f"{not_a_dir}/x.sock 0666"))
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn(f"pools.cache.listen: cannot listen on {not_a_dir}/x.sock: {not_a_dir} is "
                      "not a directory", r.stderr)
        # A socket directory that is created at start (systemd's RuntimeDirectory): a warning.
        r = self.run_dproxy("-t", "-c", self.simple(listen="/nonexistent-dir/x.sock 0666"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("warning: ", r.stderr)
        self.assertIn("directory /nonexistent-dir: No such file or directory", r.stderr)
        with socket.socket() as busy:
            busy.bind((HOST, 0))
            busy.listen()
            port = busy.getsockname()[1]
            r = self.run_dproxy("-t", "-c", self.simple(listen=f"{HOST}:{port}"))
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn(f"warning: ", r.stderr)
            self.assertIn(f"cannot listen on {HOST}:{port} now: Address already in use", r.stderr)

    def test_daemon_reports_start_failure_and_pid_file(self):
        with socket.socket() as busy:
            busy.bind((HOST, 0))
            busy.listen()
            port = busy.getsockname()[1]
            pid_file = os.path.join(self.procs.tmp.name, "d.pid")
            r = harness.run_dproxy(ARGS.dproxy, ["-d", "-p", pid_file, "-c",
                                                 self.simple(listen=f"{HOST}:{port}")],
                                   timeout=20)
            self.assertEqual(r.returncode, 1)
            self.assertIn(f"pools.cache.listen: cannot listen on {HOST}:{port}", r.stderr)
            self.assertEqual(r.stderr.count("cannot listen"), 1, r.stderr)
            self.assertFalse(os.path.exists(pid_file))
        # Without -d: the pid file names this process and goes at exit.
        mc = self.procs.memcached()
        port = harness.free_port()
        pid_file = os.path.join(self.procs.tmp.name, "f.pid")
        p = self.procs.spawn([ARGS.dproxy, "-c", self.simple(listen=f"{HOST}:{port}",
                                                            servers=[f"{HOST}:{mc.port}"]),
                              "-p", pid_file, "-s", str(harness.free_port())])
        harness.wait_port(port, p)
        self.assertTrue(harness.wait_for(lambda: os.path.exists(pid_file), 5))
        self.assertEqual(open(pid_file).read(), f"{p.pid}\n")
        self.procs.kill(p, signal.SIGTERM)
        self.assertEqual(p.returncode, 0)
        self.assertFalse(os.path.exists(pid_file))


class RuntimeTest(unittest.TestCase):
    def setUp(self):
        self.procs = harness.Processes()
        self.addCleanup(self.procs.close)

    def test_ipv6_listener_and_server(self):
        mc_port = harness.free_port()
        mc = self.procs.spawn(["memcached", "-u", pwd.getpwuid(os.getuid()).pw_name,
                               "-l", "::1", "-p", str(mc_port), "-U", "0", "-t", "1"])
        self.assertTrue(self.wait_v6(mc_port, mc))
        listen_port = harness.free_port()
        path = os.path.join(self.procs.tmp.name, "six.json")
        with open(path, "w") as f:
            json.dump({"pools": {"six": {"protocol": "memcached", "listen": f"[::1]:{listen_port}",
                                         "servers": [f"[::1]:{mc_port}:1 six-a"]}}}, f)
        dp = self.procs.spawn([ARGS.dproxy, "-c", path, "-s", str(harness.free_port())])
        self.assertTrue(self.wait_v6(listen_port, dp))
        with socket.create_connection(("::1", listen_port), timeout=5) as s:
            s.sendall(b"set k 0 0 2\r\nv6\r\nget k\r\n")
            data = b""
            while not data.endswith(b"END\r\n"):
                chunk = s.recv(4096)
                self.assertTrue(chunk, data)
                data += chunk
        self.assertEqual(data, b"STORED\r\nVALUE k 0 2\r\nv6\r\nEND\r\n")
        with socket.create_connection(("::1", mc_port), timeout=5) as s:
            s.sendall(b"get k\r\n")
            self.assertIn(b"v6", s.recv(4096), "the value is on the IPv6 backend")

    def wait_v6(self, port, proc):
        def up():
            if proc.poll() is not None:
                raise RuntimeError("exited early")
            try:
                socket.create_connection(("::1", port), timeout=0.5).close()
                return True
            except OSError:
                return False
        return harness.wait_for(up, 10)

    @unittest.skipUnless(os.geteuid() == 0, "needs root for a private /etc/hosts (unshare -m)")
    def test_host_name_is_resolved_again(self):
        user = pwd.getpwuid(os.getuid()).pw_name
        port = harness.free_port()
        old, new = (self.procs.spawn(["memcached", "-u", user, "-l", ip, "-p", str(port),
                                      "-U", "0", "-t", "1"]) for ip in ("127.0.0.3", "127.0.0.2"))
        for ip, proc in (("127.0.0.3", old), ("127.0.0.2", new)):
            self.assertTrue(harness.wait_for(lambda: self.connectable(ip, port, proc), 10))
        # dproxy alone sees this file as /etc/hosts (a private mount namespace).
        hosts = os.path.join(self.procs.tmp.name, "hosts")
        with open(hosts, "w") as f:
            f.write("127.0.0.3 nc-moving-host\n")
        listen = harness.free_port()
        cfg = os.path.join(self.procs.tmp.name, "moving.json")
        with open(cfg, "w") as f:
            json.dump({"resolve_interval_ms": 100, "pools": {"m": {
                "protocol": "memcached", "listen": f"{HOST}:{listen}",
                "servers": [f"nc-moving-host:{port}:1 moving"]}}}, f)
        log_path = cfg + ".log"
        log = open(log_path, "w")
        self.addCleanup(log.close)
        # unshare execs the shell, which execs dproxy: the PID is dproxy's.
        dp = self.procs.spawn(["unshare", "-m", "sh", "-c",
                               'mount --bind "$0" /etc/hosts && exec "$@"', hosts,
                               ARGS.dproxy, "-c", cfg, "-s", str(harness.free_port()),
                               "-l", "debug"],
                              stderr=log)
        harness.wait_port(listen, dp)

        def lands_on(key, ip):
            c = harness.RawClient(listen)
            c.send(b"set " + key + b" 0 0 1\r\nx\r\n")
            self.assertEqual(c.read_line(), b"STORED\r\n")
            c.close()
            d = socket.create_connection((ip, port), timeout=5)
            d.sendall(b"get " + key + b"\r\n")
            reply = d.recv(4096)
            d.close()
            return reply.startswith(b"VALUE")

        self.assertTrue(lands_on(b"before", "127.0.0.3"))
        self.assertFalse(lands_on(b"before2", "127.0.0.2"))

        def resolved_unchanged():
            return open(log_path).read().count("re-resolve: pool m: addresses unchanged")
        # The name gains an address that the resolver lists first (127.0.0.2 sorts before
        # 127.0.0.3): the address in use stays while the name has it.
        with open(hosts, "w") as f:  # same inode: the bind mount shows the new text
            f.write("127.0.0.2 nc-moving-host\n127.0.0.3 nc-moving-host\n")
        seen = resolved_unchanged()
        self.assertTrue(harness.wait_for(lambda: resolved_unchanged() >= seen + 2, 10))
        self.assertTrue(lands_on(b"still", "127.0.0.3"))
        self.assertNotIn("now resolves to", open(log_path).read())
        with open(hosts, "w") as f:
            f.write("127.0.0.2 nc-moving-host\n")
        n = [0]

        def moved():
            n[0] += 1
            return lands_on(b"after%d" % n[0], "127.0.0.2")
        self.assertTrue(harness.wait_for(moved, 10), open(log_path).read()[-2000:])
        self.assertIn(f"server nc-moving-host:{port} now resolves to 127.0.0.2",
                      open(log_path).read())

    def connectable(self, ip, port, proc):
        if proc.poll() is not None:
            raise RuntimeError("exited early")
        try:
            socket.create_connection((ip, port), timeout=0.5).close()
            return True
        except OSError:
            return False

    def test_preconnect_and_keepalive(self):
        mc = self.procs.memcached()
        before = memcached_stat(mc.port, "curr_connections")
        dp = harness.Dproxy(self.procs, ARGS.dproxy, {"pre": {
            "protocol": "memcached", "listen": f"{HOST}:{harness.free_port()}",
            "preconnect": True, "tcp_keepalive": True, "servers": [f"{HOST}:{mc.port}"]}},
            threads=2)
        # One connection per worker thread, opened at start without any request.
        self.assertTrue(harness.wait_for(
            lambda: memcached_stat(mc.port, "curr_connections") == before + 2, 5),
            memcached_stat(mc.port, "curr_connections"))
        def backend_sockets():
            ss = subprocess.run(["ss", "-tnoH", "state", "established",
                                 f"( dport = :{mc.port} )"], capture_output=True, text=True)
            return [line for line in ss.stdout.splitlines() if line.strip()]
        # SO_KEEPALIVE is set once the connect completes: wait for both sockets to show it.
        self.assertTrue(harness.wait_for(
            lambda: [("keepalive" in line) for line in backend_sockets()] == [True, True], 5),
            backend_sockets())
        dp.stop()

    def test_timeout_zero_waits_for_a_slow_backend(self):
        mc = self.procs.memcached()
        ports = {}
        pools = {}
        for name, timeout in (("forever", 0), ("short", 300)):
            ports[name] = harness.free_port()
            pools[name] = {"protocol": "memcached", "listen": f"{HOST}:{ports[name]}",
                           "timeout_ms": timeout, "server_failure_limit": 100,
                           "servers": [f"{HOST}:{mc.port}"]}
        harness.Dproxy(self.procs, ARGS.dproxy, pools)
        clients = {name: harness.RawClient(port) for name, port in ports.items()}
        harness.freeze(mc)
        self.addCleanup(harness.resume, mc)
        start = time.monotonic()
        for c in clients.values():
            c.send(b"get k\r\n")
        self.assertIn(b"timed out", clients["short"].read_line())
        # Well past the short pool's timeout the other request still waits, then completes.
        clients["forever"].sock.settimeout(max(0.1, start + 1.5 - time.monotonic()))
        with self.assertRaises(socket.timeout):
            clients["forever"].sock.recv(1)
        harness.resume(mc)
        clients["forever"].sock.settimeout(10)
        self.assertEqual(clients["forever"].read_line(), b"END\r\n")

    def test_healthz_and_readyz(self):
        mc = self.procs.memcached()
        dead = harness.free_port()  # nothing listens here
        stats = harness.free_port()
        live_port, dead_port = harness.free_port(), harness.free_port()
        harness.Dproxy(self.procs, ARGS.dproxy, {
            "live": {"protocol": "memcached", "listen": f"{HOST}:{live_port}",
                     "servers": [f"{HOST}:{mc.port}"]},
            "gone": {"protocol": "memcached", "listen": f"{HOST}:{dead_port}",
                     "server_failure_limit": 1, "server_retry_timeout_ms": 60000,
                     "servers": [f"{HOST}:{dead}"]}}, extra_args=["-s", str(stats)])
        self.assertEqual(http_get(stats, "/healthz"), (200, "ok\n"))
        self.assertEqual(http_get(stats, "/readyz"), (200, "ready\n"))
        c = harness.RawClient(dead_port)
        c.send(b"get k\r\n")
        self.assertIn(b"SERVER_ERROR", c.read_line())
        c.close()
        self.assertTrue(harness.wait_for(lambda: http_get(stats, "/readyz")[0] == 503, 5))
        self.assertEqual(http_get(stats, "/readyz"),
                         (503, "not ready: no server up in pool gone\n"))
        self.assertEqual(http_get(stats, "/healthz"), (200, "ok\n"))


if __name__ == "__main__":
    unittest.main()
