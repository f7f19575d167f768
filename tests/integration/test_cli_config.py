"""Command line and config validation: exit codes and the exact one-line error messages.

dproxy exits 0 for --help / --version / a valid --test-config, 1 for a config it cannot use
(one stderr line: "dproxy: config error: FILE: JSON.PATH: problem") or a listen address it cannot
bind, and 2 for a bad command line.
"""
import json
import os
import signal
import socket
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from pymemcache.client.base import Client  # noqa: E402

ARGS = harness.parse_args()
HOST = harness.HOST

HASH_NAMES = ["one_at_a_time", "md5", "crc16", "crc32", "crc32a", "fnv1_64", "fnv1a_64",
              "fnv1_32", "fnv1a_32", "hsieh", "murmur", "jenkins"]


def pool(**overrides):
    """A valid memcached pool, with keys replaced (value None removes the key)."""
    p = {"protocol": "memcached", "listen": "127.0.0.1:22121",
         "servers": ["127.0.0.1:11211", "127.0.0.1:11212", "127.0.0.1:11213"]}
    for k, v in overrides.items():
        if v is None:
            p.pop(k, None)
        else:
            p[k] = v
    return p


def doc(**pools):
    return json.dumps({"pools": pools})


class CliTestBase(unittest.TestCase):
    def setUp(self):
        self.procs = harness.Processes()
        self.addCleanup(self.procs.close)
        self.n = 0

    def write(self, text, name=None):
        self.n += 1
        path = os.path.join(self.procs.tmp.name, name or f"config-{self.n}.json")
        with open(path, "w") as f:
            f.write(text)
        return path

    def run_dproxy(self, *args, **kw):
        return harness.run_dproxy(ARGS.dproxy, list(args), **kw)

    def assert_one_line_error(self, r, expected_line, code=1):
        """r failed with `code`, printed nothing on stdout and exactly `expected_line` on stderr."""
        self.assertEqual(r.returncode, code, f"stdout={r.stdout!r} stderr={r.stderr!r}")
        self.assertEqual(r.stdout, "")
        lines = r.stderr.splitlines()
        self.assertEqual(len(lines), 1, f"expected one stderr line, got {r.stderr!r}")
        self.assertEqual(lines[0], expected_line)

    def config_error(self, text, expected):
        """Checks that --test-config rejects `text` with "<path>: <expected>"."""
        path = self.write(text)
        r = self.run_dproxy("--test-config", "--config", path)
        self.assert_one_line_error(r, f"dproxy: config error: {path}: {expected}")
        # Without --test-config the same config fails the same way before anything starts.
        r2 = self.run_dproxy("--config", path)
        self.assert_one_line_error(r2, f"dproxy: config error: {path}: {expected}")


def lines_of(r):
    return r.stderr.splitlines()


class CommandLineTest(CliTestBase):
    def test_version(self):
        r = self.run_dproxy("--version")
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout, r"^dproxy \d+\.\d+\.\d+\S*\n$")
        self.assertEqual(r.stderr, "")
        self.assertEqual(self.run_dproxy("-V").stdout, r.stdout)

    def test_help(self):
        r = self.run_dproxy("--help")
        self.assertEqual(r.returncode, 0)
        self.assertEqual(r.stderr, "")
        self.assertTrue(r.stdout.startswith("Usage: dproxy --config FILE"), r.stdout)
        for option in ("--config", "--test-config", "--threads", "--log-level", "--version",
                       "--help"):
            self.assertIn(option, r.stdout)
        self.assertEqual(self.run_dproxy("-h").stdout, r.stdout)

    def test_unknown_option_exits_2(self):
        r = self.run_dproxy("--bogus")
        self.assertEqual(r.returncode, 2)
        self.assertEqual(r.stdout, "")
        self.assertEqual(r.stderr, "dproxy: unknown option '--bogus'\nTry 'dproxy --help'.\n")

    def test_bad_option_values_exit_2(self):
        path = self.write(doc(cache=pool()))
        cases = [
            (["--config"], "dproxy: --config needs a file name"),
            ([], "dproxy: missing --config FILE"),
            (["--config", path, "--threads", "0"],
             "dproxy: --threads needs a number from 1 to 256, got '0'"),
            (["--config", path, "--threads", "4x"],
             "dproxy: --threads needs a number from 1 to 256, got '4x'"),
            (["--config", path, "--log-level", "loud"],
             "dproxy: --log-level needs one of error, warn, info, debug, got 'loud'"),
        ]
        for argv, first_line in cases:
            with self.subTest(argv=argv):
                r = self.run_dproxy(*argv)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertEqual(r.stderr, first_line + "\nTry 'dproxy --help'.\n")


class TestConfigTest(CliTestBase):
    def test_valid_config_summary(self):
        text = json.dumps({"pools": {
            "cache": {"protocol": "memcached", "listen": "127.0.0.1:22121", "policy": "modula",
                      "hash": "md5", "hash_tag": "{}", "timeout_ms": 250,
                      "servers": ["127.0.0.1:11211:2 alpha",
                                  {"address": "127.0.0.1:11212", "weight": 3, "name": "beta"}]},
            "sessions": {"protocol": "memcached", "listen": "/tmp/dproxy-sessions.sock",
                         "servers": ["127.0.0.1:11311", "/var/run/memcached.sock:4"]},
        }})
        path = self.write(text)
        for flag in ("--test-config", "-t"):
            r = self.run_dproxy(flag, "--config", path)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stderr, "")
            lines = r.stdout.splitlines()
            self.assertEqual(lines[0], f"{path}: OK")
            pools = [ln for ln in lines if ln.startswith("pool ")]
            self.assertEqual(len(pools), 2, r.stdout)
            cache = next(ln for ln in pools if ln.startswith("pool cache:"))
            sessions = next(ln for ln in pools if ln.startswith("pool sessions:"))
            for part in ("protocol=memcached", "listen=127.0.0.1:22121", "policy=modula",
                         "hash=md5", "hash_tag={}", "timeout_ms=250", "servers=2"):
                self.assertIn(part, cache)
            # Defaults.
            for part in ("listen=/tmp/dproxy-sessions.sock", "policy=ketama", "hash=fnv1a_64",
                         "timeout_ms=1000", "server_connections=1", "servers=2"):
                self.assertIn(part, sessions)
            self.assertNotIn("hash_tag", sessions)
            self.assertIn("  127.0.0.1:11211 weight=2 name=alpha", lines)
            self.assertIn("  127.0.0.1:11212 weight=3 name=beta", lines)
            self.assertIn("  127.0.0.1:11311 weight=1", lines)
            self.assertIn("  /var/run/memcached.sock weight=4", lines)
            self.assertIn("stats: listen=127.0.0.1:22222 (default)", lines)


class ConfigErrorTest(CliTestBase):
    def test_missing_file(self):
        path = os.path.join(self.procs.tmp.name, "nope.json")
        r = self.run_dproxy("--test-config", "--config", path)
        self.assert_one_line_error(
            r, f"dproxy: config error: {path}: cannot read config file: No such file or directory")

    def test_unreadable_file(self):
        path = self.write(doc(cache=pool()))
        os.chmod(path, 0)
        preexec = None
        if os.geteuid() == 0:
            # root reads anything: drop to nobody for the child (the temp dir must be searchable).
            os.chmod(self.procs.tmp.name, 0o755)

            def preexec():
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
        r = self.run_dproxy("--test-config", "--config", path, preexec_fn=preexec)
        self.assert_one_line_error(
            r, f"dproxy: config error: {path}: cannot read config file: Permission denied")

    def test_directory_as_config(self):
        path = os.path.join(self.procs.tmp.name, "dir.json")
        os.mkdir(path)
        r = self.run_dproxy("--test-config", "--config", path)
        self.assert_one_line_error(
            r, f"dproxy: config error: {path}: cannot read config file: Is a directory")

    def test_invalid_json(self):
        # The text after "invalid JSON: " is nlohmann::json's; check only that it locates the error.
        path = self.write('{"pools": {"cache": {"protocol": "memcached",}}}')
        for argv in (["--test-config", "--config", path], ["--config", path]):
            r = self.run_dproxy(*argv)
            self.assertEqual(r.returncode, 1)
            self.assertEqual(r.stdout, "")
            lines = lines_of(r)
            self.assertEqual(len(lines), 1, r.stderr)
            self.assertTrue(lines[0].startswith(f"dproxy: config error: {path}: invalid JSON: "),
                            lines[0])
            self.assertIn("line 1, column 46", lines[0])

    def test_invalid_json_classes(self):
        for text in ("", "{", '{"pools": {}} trailing', "{'pools': {}}", "[1, 2"):
            with self.subTest(text=text):
                path = self.write(text)
                r = self.run_dproxy("--test-config", "--config", path)
                self.assertEqual(r.returncode, 1)
                lines = lines_of(r)
                self.assertEqual(len(lines), 1, r.stderr)
                prefix = f"dproxy: config error: {path}: invalid JSON: "
                self.assertTrue(lines[0].startswith(prefix), lines[0])
                self.assertIn("line 1, column", lines[0])

    def test_top_level(self):
        self.config_error("[]", "(top level): expected an object, got array")
        self.config_error("{}", '(top level): missing required key "pools"')
        self.config_error(json.dumps({"pools": {"cache": pool()}, "pool": {}}),
                          'pool: unknown top-level key (did you mean "pools"?)')
        self.config_error(json.dumps({"pools": {}}), "pools: no pools defined")
        self.config_error(json.dumps({"pools": []}),
                          "pools: expected an object keyed by pool name, got array")
        self.config_error(json.dumps({"pools": {"cache": "x"}}),
                          "pools.cache: expected an object, got string")

    def test_pool_missing_keys(self):
        self.config_error(doc(cache=pool(protocol=None)),
                          'pools.cache: missing required key "protocol"')
        self.config_error(doc(cache=pool(listen=None)),
                          'pools.cache: missing required key "listen"')
        self.config_error(doc(cache=pool(servers=None)),
                          'pools.cache: missing required key "servers"')
        self.config_error(doc(cache=pool(servers=[])),
                          "pools.cache.servers: a pool needs at least one server")
        self.config_error(doc(cache=pool(servers="127.0.0.1:11211")),
                          "pools.cache.servers: expected an array, got string")

    def test_unknown_pool_key(self):
        self.config_error(doc(cache=pool(hahs="md5")),
                          'pools.cache.hahs: unknown key (did you mean "hash"?)')
        self.config_error(doc(cache=pool(colour="red")),
                          "pools.cache.colour: unknown key (expected protocol, listen, policy, "
                          "hash, hash_tag, timeout_ms, connect_timeout_ms, server_failure_limit, "
                          "server_retry_timeout_ms, auto_eject_hosts, client_connections, "
                          "server_connections, server_connections_per_process, backlog, "
                          "preconnect, tcp_keepalive, max_value_bytes, sasl, servers, "
                          "client_password, server_password, server_user, db, max_dedicated_connections, "
                          "children, write_ack, read, "
                          "failover_on_miss, reply, cluster_refresh_ms, read_from, tls, server_tls)")

    def test_nutcracker_key_names_get_a_hint(self):
        for key, value, hint in (
                ("distribution", "modula", 'use "policy"'),
                ("timeout", 400, 'use "timeout_ms"'),
                ("redis", True, 'use "protocol": "redis"'),
                ("redis_auth", "pw", 'use "client_password"'),
                ("redis_db", 1, 'use "db"'),
                ("server_retry_timeout", 100, 'use "server_retry_timeout_ms"'),
                ("tcpkeepalive", True, 'use "tcp_keepalive"')):
            with self.subTest(key=key):
                path = self.write(doc(cache=pool(**{key: value})))
                r = self.run_dproxy("--test-config", "--config", path)
                self.assertEqual(r.returncode, 1)
                self.assertIn(f'pools.cache.{key}: unknown key: "{key}" is nutcracker\'s name; '
                              + hint, r.stderr)
        self.config_error(doc(cache=pool(timeout_msec=5)),
                          'pools.cache.timeout_msec: unknown key (did you mean "timeout_ms"?)')

    def test_bad_protocol(self):
        self.config_error(doc(cache=pool(protocol="memcache")),
                          'pools.cache.protocol: "memcache" is not a protocol '
                          '(expected "memcached" or "redis")')
        self.config_error(doc(cache=pool(protocol=1)),
                          "pools.cache.protocol: expected a string, got number")

    def test_bad_policy(self):
        self.config_error(doc(cache=pool(policy="ketamma")),
                          'pools.cache.policy: "ketamma" is not a policy '
                          '(expected ketama, modula, random, replicated, fanout, redis_cluster)')

    def test_bad_hash_lists_valid_names(self):
        self.config_error(doc(cache=pool(hash="sha1")),
                          'pools.cache.hash: "sha1" is not a hash (expected one of '
                          + ", ".join(HASH_NAMES) + ")")

    def test_every_hash_name_accepted(self):
        for h in HASH_NAMES:
            with self.subTest(hash=h):
                path = self.write(doc(cache=pool(hash=h)))
                r = self.run_dproxy("--test-config", "--config", path)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertIn(f" hash={h} ", r.stdout)

    def test_hash_tag_not_two_chars(self):
        for tag in ("{", "{}}", ""):
            with self.subTest(tag=tag):
                self.config_error(doc(cache=pool(hash_tag=tag)),
                                  f'pools.cache.hash_tag: "{tag}" must be exactly two characters, '
                                  'e.g. "{}"')

    def test_bad_server_string(self):
        servers = ["127.0.0.1:11211", "127.0.0.1:11212", "10.0.0.1:abc"]
        self.config_error(doc(cache=pool(servers=servers)),
                          'pools.cache.servers[2]: "10.0.0.1:abc" is not host:port[:weight] [name]')
        for bad in ("10.0.0.1", "10.0.0.1:0", "10.0.0.1:70000", "10.0.0.1:1:x", "10.0.0.1:1:2:3",
                    ":11211", "10.0.0.1:1 two names", "10.0.0.1:1 "):
            with self.subTest(server=bad):
                self.config_error(doc(cache=pool(servers=[bad])),
                                  f"pools.cache.servers[0]: {json.dumps(bad)} is not "
                                  "host:port[:weight] [name]")
        self.config_error(doc(cache=pool(servers=[7])),
                          "pools.cache.servers[0]: expected a server string or object, got number")

    def test_server_object_errors(self):
        self.config_error(doc(cache=pool(servers=[{"address": "127.0.0.1:11211", "wieght": 2}])),
                          "pools.cache.servers[0].wieght: unknown key "
                          "(expected address, weight, name)")
        self.config_error(doc(cache=pool(servers=[{"weight": 2}])),
                          'pools.cache.servers[0]: missing required key "address"')
        self.config_error(doc(cache=pool(servers=[{"address": "127.0.0.1:11211:2"}])),
                          'pools.cache.servers[0].address: "127.0.0.1:11211:2" is not host:port '
                          "or a socket path (weight and name have keys of their own)")
        self.config_error(doc(cache=pool(servers=[{"address": "127.0.0.1:11211", "weight": -1}])),
                          "pools.cache.servers[0].weight: expected a non-negative integer, got -1")
        self.config_error(doc(cache=pool(servers=[{"address": "127.0.0.1:11211", "name": "a b"}])),
                          'pools.cache.servers[0].name: "a b" must be non-empty and contain no '
                          "whitespace")

    def test_duplicate_server(self):
        self.config_error(doc(cache=pool(servers=["127.0.0.1:11211:1 a", "127.0.0.1:11212:1 b",
                                                  "127.0.0.1:11211:5 c"])),
                          'pools.cache.servers[2]: duplicate server address "127.0.0.1:11211"')
        self.config_error(doc(cache=pool(servers=["127.0.0.1:11211 a",
                                                  {"address": "127.0.0.1:11212", "name": "a"}])),
                          'pools.cache.servers[1]: duplicate server name "a"')

    def test_all_weights_zero(self):
        self.config_error(doc(cache=pool(servers=["127.0.0.1:11211:0", "127.0.0.1:11212:0"])),
                          "pools.cache.servers: every server has weight 0: no key could be placed")

    def test_duplicate_listen(self):
        self.config_error(doc(a=pool(), b=pool(servers=["127.0.0.1:11311"])),
                          'pools.b.listen: "127.0.0.1:22121" is already used by another pool')

    def test_bad_listen(self):
        for bad in ("127.0.0.1", "127.0.0.1:0", "127.0.0.1:65536", ":22121", "sock.path"):
            with self.subTest(listen=bad):
                self.config_error(doc(cache=pool(listen=bad)),
                                  f"pools.cache.listen: {json.dumps(bad)} is not ip:port, [ipv6]:port or an "
                                  "absolute unix socket path")

    def test_timeout_ms(self):
        self.config_error(doc(cache=pool(timeout_ms=-5)),
                          "pools.cache.timeout_ms: expected a non-negative integer, got -5")
        self.config_error(doc(cache=pool(timeout_ms="100")),
                          "pools.cache.timeout_ms: expected a non-negative integer, got string")
        self.config_error(doc(cache=pool(timeout_ms=1.5)),
                          "pools.cache.timeout_ms: expected a non-negative integer, got 1.5")
        self.config_error(doc(cache=pool(timeout_ms=3600001)),
                          "pools.cache.timeout_ms: 3600001 is out of range [0, 3600000]")

    def test_redis_only_keys_on_a_memcached_pool(self):
        self.config_error(doc(cache=pool(db=2)), "pools.cache.db: only a redis pool takes this key")


class ListenTest(CliTestBase):
    def test_bind_failure_names_address(self):
        holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(holder.close)
        holder.bind((HOST, 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        path = self.write(doc(cache=pool(listen=f"{HOST}:{port}", servers=["127.0.0.1:11211"])))
        r = self.run_dproxy("--config", path, "--threads", "1")
        self.assert_one_line_error(r, "dproxy: pools.cache.listen: cannot listen on "
                                      f"{HOST}:{port}: Address already in use")

    def test_listen_not_an_ip_address(self):
        # Caught by validation, so --test-config already refuses what could never start.
        path = self.write(doc(cache=pool(listen="localhost:22121")))
        for argv in (["--config", path, "--threads", "1"], ["--test-config", "--config", path]):
            r = self.run_dproxy(*argv)
            self.assert_one_line_error(
                r, f"dproxy: config error: {path}: pools.cache.listen: "
                   '"localhost" is not an IP address (listen takes a numeric address)')

    def test_duplicate_json_keys_are_errors(self):
        text = ('{"pools": {"cache": {"protocol": "memcached", "listen": "127.0.0.1:22199", '
                '"listen": "127.0.0.1:22198", "servers": ["127.0.0.1:1"]}}}')
        r = self.run_dproxy("--test-config", "--config", self.write(text))
        self.assertEqual(r.returncode, 1)
        self.assertIn('pools.cache: duplicate key "listen"', r.stderr)
        text = ('{"pools": {"cache": {"protocol": "memcached", "listen": "127.0.0.1:22199", '
                '"servers": ["127.0.0.1:1"]}, "cache": {"protocol": "memcached", '
                '"listen": "127.0.0.1:22198", "servers": ["127.0.0.1:1"]}}}')
        r = self.run_dproxy("--test-config", "--config", self.write(text))
        self.assertEqual(r.returncode, 1)
        self.assertIn('pools: duplicate key "cache"', r.stderr)

    def test_pools_listed_in_file_order(self):
        text = ('{"pools": {"zeta": {"protocol": "memcached", "listen": "127.0.0.1:22199", '
                '"servers": ["127.0.0.1:1"]}, "alpha": {"protocol": "memcached", '
                '"listen": "[::1]:22198", "servers": ["127.0.0.1:1"]}}}')
        r = self.run_dproxy("--test-config", "--config", self.write(text))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertLess(r.stdout.index("pool zeta"), r.stdout.index("pool alpha"))
        self.assertIn("listen=[::1]:22198", r.stdout)

    def start_unix(self, sock_path, mc_port):
        dp = harness.Dproxy(self.procs, ARGS.dproxy, {"cache": {
            "protocol": "memcached", "listen": sock_path,
            "servers": [f"127.0.0.1:{mc_port}"]}}, threads=1)
        self.addCleanup(dp.log.close)
        harness.wait_unix_socket(sock_path, dp.proc)
        return dp

    def test_unix_socket_listen(self):
        mc = self.procs.memcached()
        sock_path = os.path.join(self.procs.tmp.name, "dproxy.sock")
        dp = self.start_unix(sock_path, mc.port)
        c = Client(sock_path, default_noreply=False, timeout=10)
        self.assertTrue(c.set("unix-key", b"over a unix socket"))
        self.assertEqual(c.get("unix-key"), b"over a unix socket")
        self.assertEqual(c.get_many(["unix-key", "absent"]), {"unix-key": b"over a unix socket"})
        c.close()
        self.assertEqual(harness.backend_get(mc.port, b"unix-key"), b"over a unix socket")
        # A clean shutdown removes the socket file.
        self.assertEqual(dp.stop(), 0)
        self.assertFalse(os.path.exists(sock_path))

    def test_unix_socket_stale_file_replaced(self):
        mc = self.procs.memcached()
        sock_path = os.path.join(self.procs.tmp.name, "stale.sock")
        dp = self.start_unix(sock_path, mc.port)
        self.procs.kill(dp.proc, signal.SIGKILL)  # leaves the socket file behind
        self.assertTrue(os.path.exists(sock_path))
        dp2 = self.start_unix(sock_path, mc.port)
        c = Client(sock_path, default_noreply=False, timeout=10)
        self.assertTrue(c.set("k", b"v"))
        self.assertEqual(c.get("k"), b"v")
        c.close()
        self.assertEqual(dp2.stop(), 0)

    def test_unix_socket_path_not_a_socket_is_kept(self):
        # dproxy only ever removes a stale *socket*; a regular file at the path is an error.
        sock_path = os.path.join(self.procs.tmp.name, "regular-file")
        with open(sock_path, "w") as f:
            f.write("precious")
        path = self.write(doc(cache=pool(listen=sock_path, servers=["127.0.0.1:11211"])))
        r = self.run_dproxy("--config", path, "--threads", "1")
        self.assert_one_line_error(r, f"dproxy: pools.cache.listen: cannot listen on {sock_path}: "
                                      "Address already in use")
        with open(sock_path) as f:
            self.assertEqual(f.read(), "precious")


if __name__ == "__main__":
    unittest.main(verbosity=2)
