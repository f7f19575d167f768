"""Third-party Redis clients through dproxy: redis-benchmark and redis-cli (built on hiredis),
including redis-cli --pipe mass insertion.

Starts three real redis-servers on free loopback ports and dproxy in front of them.
"""
import os
import re
import subprocess
import unittest
import warnings

import harness
from harness import (HOST, Dproxy, Processes, RedisTestMixin, free_port, redis_direct,
                     redis_key_on, resp_command)

ARGS = None
PASSWORD = "cli-pw"
# Printed by redis-benchmark because dproxy refuses CONFIG GET (it then uses its defaults).
BENIGN_STDERR = {"WARNING: Could not fetch server CONFIG"}


class RedisClientsTest(RedisTestMixin, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.procs = Processes()
        cls.backends = [cls.procs.redis() for _ in range(3)]
        cls.ports = [b.port for b in cls.backends]
        cls.port = free_port()
        cls.auth_port = free_port()
        servers = [f"{HOST}:{p} r{i}" for i, p in enumerate(cls.ports)]
        pools = {
            "main": {"protocol": "redis", "listen": f"{HOST}:{cls.port}", "hash_tag": "{}",
                     "timeout_ms": 5000, "servers": servers},
            "auth": {"protocol": "redis", "listen": f"{HOST}:{cls.auth_port}",
                     "client_password": PASSWORD, "servers": servers},
        }
        cls.proxy = Dproxy(cls.procs, ARGS.dproxy, pools)

    @classmethod
    def tearDownClass(cls):
        rc = cls.proxy.stop()
        cls.procs.close()
        assert rc == 0, f"dproxy exited with {rc}"

    def cli(self, *args, port=None, stdin=None, timeout=60):
        """Runs redis-cli against dproxy; returns (returncode, stdout, stderr) as text."""
        p = subprocess.run(["redis-cli", "-h", HOST, "-p", str(port or self.port), *args],
                           input=stdin, capture_output=True, timeout=timeout)
        return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")

    def benchmark(self, *args, timeout=120):
        p = subprocess.run(["redis-benchmark", "-h", HOST, "-p", str(self.port), "-q", *args],
                           capture_output=True, timeout=timeout)
        # -q prints progress lines ended by "\r" and one result line per test ended by "\n".
        lines = [line.split("\r")[-1].strip() for line in p.stdout.decode().split("\n")]
        results = [line for line in lines if line]
        stderr = [line for line in p.stderr.decode().splitlines() if line.strip()]
        return p.returncode, results, stderr

    def assert_benchmark_clean(self, rc, results, stderr, tests):
        self.assertEqual(rc, 0, (results, stderr))
        self.assertEqual([s for s in stderr if s not in BENIGN_STDERR], [], stderr)
        for line in results + stderr:
            self.assertNotRegex(line, r"(?i)\berr|error|unexpected|closed", line)
        self.assertEqual(len(results), len(tests), results)
        for line, test in zip(results, tests):
            self.assertRegex(line, r"^" + re.escape(test) + r": [0-9.]+ requests per second")

    # --- redis-benchmark -------------------------------------------------------------------

    def test_redis_benchmark_get_set_mset(self):
        # redis-benchmark has no "mget" test; -t mget would be silently ignored, so MSET (10
        # keys, split over the servers) is run here and MGET as a custom command below.
        rc, results, stderr = self.benchmark("-t", "get,set,mset", "-n", "100000", "-c", "20",
                                             "-P", "8", "-r", "100000")
        self.assert_benchmark_clean(rc, results, stderr, ["SET", "GET", "MSET (10 keys)"])
        # The random keys landed on every backend, each value as redis-benchmark wrote it (one
        # 3-byte payload, -d 3, for every key).
        payloads = set()
        for port in self.ports:
            d = redis_direct(port)
            self.addCleanup(d.close)
            self.assertGreater(d.dbsize(), 1000, port)
            cursor, keys = d.scan(0, match="key:*", count=200)
            self.assertTrue(keys)
            values = d.mget(keys)
            payloads.update(values)
            self.assertEqual(self.client().mget(keys), values)
        self.assertEqual(len(payloads), 1, payloads)
        self.assertEqual(len(payloads.pop()), 3)

    def test_redis_benchmark_custom_mget(self):
        rc, results, stderr = self.benchmark(
            "-n", "20000", "-c", "20", "-P", "4", "-r", "100000",
            "MGET", *["key:__rand_int__"] * 5)
        self.assert_benchmark_clean(rc, results, stderr, ["MGET" + " key:__rand_int__" * 5])

    # --- redis-cli (hiredis) ---------------------------------------------------------------

    def test_redis_cli_commands(self):
        a, b, n = self.k("a"), self.k("b"), self.k("n")
        self.assertEqual(self.cli("PING"), (0, "PONG\n", ""))
        self.assertEqual(self.cli("SET", a, "hello world"), (0, "OK\n", ""))
        self.assertEqual(self.cli("GET", a), (0, "hello world\n", ""))
        self.assertEqual(self.cli("SET", b, "2"), (0, "OK\n", ""))
        self.assertEqual(self.cli("MGET", a, self.k("missing"), b),
                         (0, "hello world\n\n2\n", ""))
        self.assertEqual(self.cli("EXISTS", a, b, a, self.k("missing")), (0, "3\n", ""))
        self.assertEqual(self.cli("-r", "5", "INCR", n), (0, "1\n2\n3\n4\n5\n", ""))
        self.assertEqual(self.cli("RPUSH", self.k("l"), "x", "y"), (0, "2\n", ""))
        self.assertEqual(self.cli("LRANGE", self.k("l"), "0", "-1"), (0, "x\ny\n", ""))
        self.assertEqual(self.cli("--no-raw", "LRANGE", self.k("l"), "0", "-1"),
                         (0, '1) "x"\n2) "y"\n', ""))
        self.assertEqual(self.cli("--no-raw", "GET", self.k("missing")), (0, "(nil)\n", ""))
        rc, out, err = self.cli("BLPOP", a, "0")
        # BLPOP runs (test_redis_blocking.py): `a` holds a string.
        self.assertEqual(out.strip(),
                         "WRONGTYPE Operation against a key holding the wrong kind of value")
        rc, out, err = self.cli("--no-raw", "NOSUCH", "x")
        self.assertEqual(out.strip(),
                         "(error) ERR unknown command 'NOSUCH', with args beginning with: 'x'")
        rc, out, err = self.cli("INFO")
        self.assertEqual(rc, 0)
        self.assertIn("# dproxy", out)
        self.assertEqual(self.cli("DEL", a, b, n), (0, "3\n", ""))

    def test_redis_cli_commands_from_stdin(self):
        a = self.k("stdin")
        script = f"SET {a} 10\nINCRBY {a} 5\nGET {a}\nECHO done\n".encode()
        self.assertEqual(self.cli(stdin=script), (0, "OK\n15\n15\ndone\n", ""))

    def test_redis_cli_with_password(self):
        key = self.k("auth")
        rc, out, err = self.cli("GET", key, port=self.auth_port)
        self.assertEqual(out.strip(), "NOAUTH Authentication required.")
        self.assertEqual(self.cli("-a", PASSWORD, "--no-auth-warning", "SET", key, "v",
                                  port=self.auth_port), (0, "OK\n", ""))
        self.assertEqual(self.cli("--user", "default", "--pass", PASSWORD, "--no-auth-warning",
                                  "GET", key, port=self.auth_port), (0, "v\n", ""))
        rc, out, err = self.cli("-a", "wrong", "--no-auth-warning", "GET", key,
                                port=self.auth_port)
        self.assertIn("WRONGPASS", out + err)

    def test_redis_cli_pipe_mass_insert(self):
        keys = [self.k(f"{i}:{os.urandom(3).hex()}") for i in range(1000)]
        data = b"".join(resp_command("SET", k, f"value-{i}") for i, k in enumerate(keys))
        rc, out, err = self.cli("--pipe", stdin=data)
        self.assertEqual(rc, 0, err)
        self.assertIn("All data transferred", out)
        self.assertIn("errors: 0, replies: 1000", out)
        values = self.client().mget(keys)
        self.assertEqual(values, [f"value-{i}".encode() for i in range(1000)])
        found = redis_key_on(self.ports, keys)
        self.assertTrue(all(len(v) == 1 for v in found.values()))
        self.assertEqual(len({v[0] for v in found.values()}), 3)
        # Errors in the stream (BLPOP on a string key) are counted, the rest goes through.
        data = b"".join(resp_command("BLPOP", k, "0") if i % 100 == 0 else
                        resp_command("DEL", k) for i, k in enumerate(keys))
        rc, out, err = self.cli("--pipe", stdin=data)
        self.assertIn("errors: 10, replies: 1000", out)
        self.assertEqual(self.client().exists(*keys), 10)


if __name__ == "__main__":
    ARGS = harness.parse_args()
    warnings.simplefilter("ignore", ResourceWarning)
    unittest.main(verbosity=2)
