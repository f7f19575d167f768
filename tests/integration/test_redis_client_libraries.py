"""Redis client libraries of three more languages through dproxy, each in its own default
patterns (issue 17): Ruby's redis-rb (ruby-redis), Node's node-redis 4 (node-redis) and PHP's
phpredis (php-redis), as Debian packages them.

Each script (tests/integration/clients/redis_client.*) connects in database 1 (db: / database: /
select), then: SET/GET, MULTI/EXEC, a pipeline, WATCH with a transaction, BLPOP that waits for a
push from another connection, SUBSCRIBE with a PUBLISH from another connection, and INFO's
redis_version. A script exits non-zero naming the first reply that differs from Redis's. The same
scripts pass against one redis-server directly (checked here too, as the reference). The keys
are then found on the backends themselves, in database 1 only.
"""
import os
import shutil
import subprocess
import unittest

import harness
from harness import HOST, Dproxy, Processes, RespClient, free_port

ARGS = None
CLIENTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "clients")


def command(lang):
    """The command line that runs the script of `lang`, or a missing() skip / CI failure."""
    if lang == "ruby":
        if shutil.which("ruby") is None:
            harness.missing("ruby")
        if subprocess.run(["ruby", "-e", "require 'redis'"], capture_output=True).returncode:
            harness.missing("ruby-redis")
        return ["ruby", os.path.join(CLIENTS, "redis_client.rb")]
    if lang == "node":
        node = shutil.which("node")
        if node is None:
            harness.missing("nodejs")
        if not os.path.isdir("/usr/share/nodejs/redis"):
            harness.missing("node-redis")
        return [node, os.path.join(CLIENTS, "redis_client.js")]
    if shutil.which("php") is None:
        harness.missing("php-cli")
    if subprocess.run(["php", "-r", "exit(class_exists('Redis') ? 0 : 1);"]).returncode:
        harness.missing("php-redis")
    return ["php", os.path.join(CLIENTS, "redis_client.php")]


class ClientLibrariesTest(harness.PoolsTestMixin, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.procs = Processes()
        cls.servers = [cls.procs.redis() for _ in range(3)]
        cls.pools = {
            "ketama": {"protocol": "redis", "listen": f"{HOST}:{free_port()}", "hash": "md5",
                       "hash_tag": "{}", "servers": [f"{HOST}:{s.port}" for s in cls.servers]},
        }
        cls.proxy = Dproxy(cls.procs, ARGS.dproxy, cls.pools)

    def run_script(self, lang, port, prefix):
        env = dict(os.environ, NODE_PATH="/usr/share/nodejs")
        r = subprocess.run([*command(lang), str(port), prefix], capture_output=True, text=True,
                           timeout=60, env=env)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn(f"{lang} ok", r.stdout)

    def check(self, lang):
        # The reference: the script's expectations hold against one redis-server directly.
        self.run_script(lang, self.servers[0].port, self.prefix + "direct")
        self.run_script(lang, self.port("ketama"), self.prefix)
        key = "{" + self.prefix + "}a"
        where = []
        for s in self.servers:
            for db in (0, 1):
                c = RespClient(s.port)
                try:
                    self.assertEqual(c.call("SELECT", str(db)), b"OK")
                    if c.call("EXISTS", key) == 1:
                        where.append((s.port, db))
                finally:
                    c.close()
        self.assertEqual(len(where), 1, where)
        self.assertEqual(where[0][1], 1)  # database 1, as the client asked

    def test_ruby_redis(self):
        self.check("ruby")

    def test_node_redis(self):
        self.check("node")

    def test_php_redis(self):
        self.check("php")


if __name__ == "__main__":
    ARGS = harness.parse_args()
    unittest.main()
