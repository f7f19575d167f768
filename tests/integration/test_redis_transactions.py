"""Redis MULTI/EXEC/DISCARD and SELECT through dproxy (issue 17), checked on the backends.

Pools: a 3-server ketama pool, a one-server pool and a 3-master redis_cluster. A transaction is
queued by dproxy and runs on the server (cluster: slot) of its first key as one contiguous
block; a key that maps elsewhere gets CROSSSLOT at queue time and EXEC answers EXECABORT with
nothing written. Queue-time errors are Redis's own; so is everything one redis-server answers
the same way (the one-server pool is compared with a direct connection, reply for reply).
SELECT n sends the session's requests to database n on every server, other clients unaffected.
"""
import os
import threading
import unittest

import harness
from harness import HOST, Dproxy, Processes, RespClient, RespError, free_port, resp_command

ARGS = None
EXECABORT = RespError(b"EXECABORT Transaction discarded because of previous errors.")


class TransactionTest(harness.PoolsTestMixin, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.procs = Processes()
        cls.servers = [cls.procs.redis() for _ in range(4)]
        cls.cluster = cls.procs.redis_cluster(masters=3, replicas=0)
        ports = [s.port for s in cls.servers]
        cls.pools = {
            "ketama": {"protocol": "redis", "listen": f"{HOST}:{free_port()}", "hash": "md5",
                       "hash_tag": "{}",
                       "servers": [f"{HOST}:{p}" for p in ports[:3]]},
            "single": {"protocol": "redis", "listen": f"{HOST}:{free_port()}",
                       "servers": [f"{HOST}:{ports[3]}"]},
            "cluster": {"protocol": "redis", "listen": f"{HOST}:{free_port()}",
                        "policy": "redis_cluster",
                        "servers": [f"{HOST}:{n.port}" for n in cls.cluster.nodes]},
        }
        cls.backend_ports = {"ketama": ports[:3], "single": ports[3:],
                             "cluster": [n.port for n in cls.cluster.nodes]}
        cls.proxy = Dproxy(cls.procs, ARGS.dproxy, cls.pools)

    def on_backends(self, pool, key, db=0):
        """The values of `key` on the backends of `pool` that hold it (asked directly)."""
        found = []
        for p in self.backend_ports[pool]:
            c = RespClient(p)
            try:
                if db:
                    self.assertEqual(c.call("SELECT", str(db)), b"OK")
                v = c.call("GET", key)
                if isinstance(v, RespError) and v.startswith(b"MOVED"):
                    continue
                if v is not None:
                    found.append(v)
            finally:
                c.close()
        return found

    def each_pool(self):
        for pool in self.pools:
            with self.subTest(pool=pool):
                yield pool

    def two_places(self, pool):
        """Two keys that map to different servers (cluster: slots on different masters)."""
        c = self.raw(pool)
        first = self.prefix + pool + "a"
        self.assertEqual(c.call("SET", first, "x"), b"OK")
        where = self.backend_of(pool, first)
        for i in range(200):
            other = f"{self.prefix}{pool}b{i}"
            self.assertEqual(c.call("SET", other, "x"), b"OK")
            if self.backend_of(pool, other) != where:
                c.call("DEL", first, other)
                return first, other
        self.fail("no two keys on different servers")

    def backend_of(self, pool, key):
        for p in self.backend_ports[pool]:
            c = RespClient(p)
            try:
                v = c.call("EXISTS", key)
                if v == 1:
                    return p
            finally:
                c.close()
        return None

    # --- transactions -------------------------------------------------------------------

    def test_redis_py_default_pipeline_is_a_transaction(self):
        import redis

        for pool in self.each_pool():
            key = self.prefix + pool + "{p}"
            r = redis.Redis(host=HOST, port=self.port(pool), socket_timeout=10)
            self.addCleanup(r.close)
            pipe = r.pipeline()  # transaction=True: MULTI ... EXEC
            pipe.set(key + "a", "1")
            pipe.incr(key + "b")
            pipe.incr(key + "b")
            pipe.get(key + "a")
            pipe.mget(key + "a", key + "b")
            self.assertEqual(pipe.execute(), [True, 1, 2, b"1", [b"1", b"2"]])
            self.assertEqual(self.on_backends(pool, key + "a"), [b"1"])
            self.assertEqual(self.on_backends(pool, key + "b"), [b"2"])
            # An error at run time (not at queue time) is the command's own result in EXEC.
            pipe = r.pipeline()
            pipe.incr(key + "a")
            pipe.lpush(key + "a", "x")
            pipe.get(key + "a")
            results = pipe.execute(raise_on_error=False)
            self.assertEqual(results[0], 2)
            self.assertIsInstance(results[1], redis.exceptions.ResponseError)
            self.assertEqual(results[2], b"2")

    def test_transaction_replies_as_one_redis(self):
        # Every reply byte for byte as one redis-server gives them, on the one-server pool.
        key = self.prefix + "{s}"
        script = [("MULTI",), ("SET", key + "a", "1"), ("INCR", key + "a"), ("PING",),
                  ("ECHO", "hi"), ("GET", key + "a"), ("EXEC",),
                  ("EXEC",), ("DISCARD",), ("MULTI",), ("MULTI",), ("WATCH", key),
                  ("SET", key + "b", "1"), ("DISCARD",), ("GET", key + "b"),
                  ("MULTI",), ("EXEC",),
                  ("MULTI",), ("SET", key + "c"), ("SET", key + "c", "v"), ("NOSUCH", "x"),
                  ("EXEC",), ("GET", key + "c"),
                  ("MULTI",), ("GET", key + "a"), ("UNWATCH",), ("EXEC",)]
        direct = self.raw(port=self.backend_ports["single"][0])
        proxied = self.raw("single")
        for cmd in script:
            want = direct.call(*cmd)
            got = proxied.call(*cmd)
            self.assertEqual(got, want, cmd)
        # Pipelined in one write, too.
        data = b"".join(resp_command(*cmd) for cmd in script)
        k2 = key.replace("{s}", "{t}")
        data = data.replace(key.encode(), k2.encode())
        direct.send(data)
        proxied.send(data)
        for cmd in script:
            self.assertEqual(proxied.read_reply(), direct.read_reply(), cmd)

    def test_cross_server_transaction_aborts_and_writes_nothing(self):
        for pool in ("ketama", "cluster"):
            with self.subTest(pool=pool):
                a, b = self.two_places(pool)
                c = self.raw(pool)
                c.send(resp_command("MULTI") + resp_command("SET", a, "1") +
                       resp_command("SET", b, "2") + resp_command("INCR", a) +
                       resp_command("EXEC") + resp_command("GET", a))
                self.assertEqual(c.read_reply(), b"OK")
                self.assertEqual(c.read_reply(), b"QUEUED")
                err = c.read_reply()
                self.assertIsInstance(err, RespError)
                self.assertTrue(err.startswith(b"CROSSSLOT"), err)
                self.assertEqual(c.read_reply(), b"QUEUED")
                self.assertEqual(c.read_reply(), EXECABORT)
                self.assertIsNone(c.read_reply())
                self.assertEqual(self.on_backends(pool, a), [])
                self.assertEqual(self.on_backends(pool, b), [])

    def test_refused_commands_inside_multi_abort(self):
        for pool in self.each_pool():
            key = self.prefix + pool + "{r}"
            c = self.raw(pool)
            self.assertEqual(c.call("MULTI"), b"OK")
            self.assertEqual(c.call("SET", key, "1"), b"QUEUED")
            for cmd in (("KEYS", "*"), ("SELECT", "1"), ("CLIENT", "SETNAME", "x"),
                        ("SUBSCRIBE", "ch")):
                err = c.call(*cmd)
                self.assertIsInstance(err, RespError, cmd)
            self.assertEqual(c.call("EXEC"), EXECABORT)
            self.assertEqual(self.on_backends(pool, key), [])
            self.assertEqual(c.call("SET", key, "after"), b"OK")
            self.assertEqual(self.on_backends(pool, key), [b"after"])

    def test_nothing_interleaves_with_a_transaction(self):
        # Other clients hammer the same server while transactions run: each EXEC sees its own
        # writes only (INCR twice in a transaction always gives n, n+1).
        for pool in self.each_pool():
            key = self.prefix + pool + "{i}"
            stop = threading.Event()
            errors = []

            def noise():
                c = RespClient(self.port(pool))
                try:
                    while not stop.is_set():
                        c.send(resp_command("INCR", key + "n") * 20)
                        for _ in range(20):
                            c.read_reply()
                except Exception as e:  # noqa: BLE001
                    errors.append(e)
                finally:
                    c.close()

            threads = [threading.Thread(target=noise) for _ in range(2)]
            for t in threads:
                t.start()
            try:
                c = self.raw(pool)
                for _ in range(100):
                    c.send(resp_command("MULTI") + resp_command("INCR", key + "n") +
                           resp_command("INCR", key + "n") + resp_command("EXEC"))
                    self.assertEqual(c.read_reply(), b"OK")
                    self.assertEqual(c.read_reply(), b"QUEUED")
                    self.assertEqual(c.read_reply(), b"QUEUED")
                    first, second = c.read_reply()
                    self.assertEqual(second, first + 1)
            finally:
                stop.set()
                for t in threads:
                    t.join(10)
            self.assertEqual(errors, [])

    def test_replicated_pools_still_refuse_multi(self):
        # Covered in detail by test_redis_refused_multi.py; here only that the ketama pool
        # above does not share its state with another session.
        c1, c2 = self.raw("ketama"), self.raw("ketama")
        key = self.prefix + "{x}"
        self.assertEqual(c1.call("MULTI"), b"OK")
        self.assertEqual(c1.call("SET", key, "1"), b"QUEUED")
        self.assertEqual(c2.call("SET", key, "2"), b"OK")  # not inside c1's transaction
        self.assertEqual(c1.call("EXEC"), [b"OK"])
        self.assertEqual(c2.call("GET", key), b"1")

    # --- RESET and CLIENT INFO ----------------------------------------------------------------

    def test_reset_returns_to_a_new_connections_state(self):
        for pool in ("ketama", "single"):
            with self.subTest(pool=pool):
                key = "{" + self.prefix + pool + "}r"
                c = self.raw(pool)
                self.assertEqual(c.call("SET", key, "db0"), b"OK")
                self.assertEqual(c.call("CLIENT", "SETNAME", "before"), b"OK")
                self.assertEqual(c.call("SELECT", "2"), b"OK")
                info = c.call("CLIENT", "INFO")
                cid = c.call("CLIENT", "ID")
                self.assertTrue(info.startswith(f"id={cid} addr=127.0.0.1:".encode()), info)
                self.assertIn(b" name=before db=2 ", info)
                self.assertEqual(c.call("MULTI"), b"OK")
                self.assertEqual(c.call("SET", key, "never"), b"QUEUED")
                self.assertEqual(c.call("RESET"), b"RESET")
                self.assertEqual(c.call("EXEC"), RespError(b"ERR EXEC without MULTI"))
                self.assertEqual(c.call("GET", key), b"db0")  # database 0 again
                self.assertEqual(c.call("CLIENT", "GETNAME"), None)
                self.assertIn(b" db=0 ", c.call("CLIENT", "INFO"))
                self.assertEqual(c.call("SUBSCRIBE", key), [b"subscribe", key.encode(), 1])
                self.assertEqual(c.call("RESET"), b"RESET")
                self.assertEqual(c.call("GET", key), b"db0")  # not in subscribed mode
                self.assertEqual(c.call("WATCH", key), b"OK")
                self.assertEqual(c.call("RESET"), b"RESET")
                other = self.raw(pool)
                self.assertEqual(other.call("SET", key, "changed"), b"OK")
                self.assertEqual(c.call("MULTI"), b"OK")
                self.assertEqual(c.call("GET", key), b"QUEUED")
                self.assertEqual(c.call("EXEC"), [b"changed"])  # the WATCH was dropped
                self.assertEqual(c.call("CLIENT", "NO-EVICT", "on"), b"OK")

    def test_client_reply_off_on_skip_as_one_redis(self):
        key = self.prefix + "cr"
        script = [("SET", key, "1"), ("CLIENT", "REPLY", "OFF"), ("SET", key, "2"), ("GET", key),
                  ("NOSUCH",), ("CLIENT", "REPLY", "ON"), ("GET", key),
                  ("CLIENT", "REPLY", "SKIP"), ("INCR", key), ("GET", key),
                  ("CLIENT", "REPLY", "maybe"), ("CLIENT", "REPLY", "OFF"), ("RESET",), ("PING",)]
        direct, proxied = self.raw(port=self.backend_ports["single"][0]), self.raw("single")
        data = b"".join(resp_command(*cmd) for cmd in script)
        direct.send(data)
        proxied.send(data)
        # Answered: SET, ON, GET (2), GET (3), the syntax error, RESET, PING: 7 replies.
        want = [direct.read_raw_reply() for _ in range(7)]
        self.assertEqual([proxied.read_raw_reply() for _ in range(7)], want)
        self.assertEqual(want[2], b"$1\r\n2\r\n")
        # Nothing more is queued on either connection.
        self.assertEqual(proxied.call("ECHO", "end"), b"end")

    # --- a pool of one server -------------------------------------------------------------

    def test_one_server_pool_is_transparent(self):
        direct, proxied = self.raw(port=self.backend_ports["single"][0]), self.raw("single")
        lib = "#!lua name=lib" + os.urandom(3).hex() + "\nredis.register_function('f" + \
            os.urandom(3).hex() + "', function() return 7 end)"
        fname = lib.split("'")[1]
        self.assertEqual(proxied.call("FUNCTION", "LOAD", lib),
                         lib.split("\n")[0].split("name=")[1].encode())
        for cmd in [("EVAL", "return 1", "0"), ("FCALL", fname, "0"), ("SCRIPT", "KILL"),
                    ("FUNCTION", "KILL"), ("CONFIG", "GET", "maxmemory"),
                    ("OBJECT", "HELP"), ("SLOWLOG", "LEN")]:
            self.assertEqual(proxied.call(*cmd), direct.call(*cmd), cmd)
        self.assertTrue(proxied.call("SHUTDOWN").startswith(b"ERR dproxy: SHUTDOWN is not"))
        self.assertTrue(proxied.call("CLIENT", "KILL", "ID", "1").startswith(b"ERR dproxy"))

    def test_move_and_swapdb_in_sharded_pools(self):
        c = self.raw("ketama")
        key = self.prefix + "mv"
        self.assertEqual(c.call("SET", key, "v"), b"OK")
        self.assertEqual(c.call("MOVE", key, "3"), 1)
        self.assertEqual(c.call("GET", key), None)
        self.assertEqual(self.on_backends("ketama", key, db=3), [b"v"])
        self.assertEqual(c.call("SELECT", "3"), b"OK")
        self.assertEqual(c.call("GET", key), b"v")
        # SWAPDB on every server: the key's database changes with it.
        self.assertEqual(c.call("SWAPDB", "3", "4"), b"OK")
        self.assertEqual(c.call("GET", key), None)
        self.assertEqual(c.call("SELECT", "4"), b"OK")
        self.assertEqual(c.call("GET", key), b"v")
        self.assertEqual(c.call("SWAPDB", "3", "4"), b"OK")
        self.assertEqual(self.on_backends("ketama", key, db=3), [b"v"])

    # --- SELECT -------------------------------------------------------------------------

    def test_select_isolates_databases(self):
        import redis

        for pool in ("ketama", "single"):
            with self.subTest(pool=pool):
                key = "{" + self.prefix + pool + "db}"
                r0 = redis.Redis(host=HOST, port=self.port(pool), socket_timeout=10)
                r1 = redis.Redis(host=HOST, port=self.port(pool), db=1, socket_timeout=10)
                self.addCleanup(r0.close)
                self.addCleanup(r1.close)
                self.assertTrue(r1.set(key, "one"))
                self.assertTrue(r0.set(key, "zero"))
                self.assertEqual(r1.get(key), b"one")
                self.assertEqual(r0.get(key), b"zero")
                self.assertEqual(self.on_backends(pool, key, db=1), [b"one"])
                self.assertEqual(self.on_backends(pool, key, db=0), [b"zero"])
                # Multi-key commands and transactions follow the session's database.
                self.assertEqual(r1.mget(key, key + "missing"), [b"one", None])
                pipe = r1.pipeline()
                pipe.incr(key + "c")
                pipe.get(key)
                self.assertEqual(pipe.execute(), [1, b"one"])
                self.assertEqual(self.on_backends(pool, key + "c", db=1), [b"1"])
                self.assertEqual(self.on_backends(pool, key + "c", db=0), [])

    def test_select_errors_and_pipelining(self):
        c = self.raw("ketama")
        key = self.prefix + "sel"
        # Pipelined: what follows SELECT runs in the new database.
        c.send(resp_command("SELECT", "2") + resp_command("SET", key, "two") +
               resp_command("SELECT", "99999") + resp_command("GET", key) +
               resp_command("SELECT", "x") + resp_command("SELECT", "-1") +
               resp_command("SELECT", "0") + resp_command("GET", key))
        self.assertEqual(c.read_reply(), b"OK")
        self.assertEqual(c.read_reply(), b"OK")
        self.assertEqual(c.read_reply(), RespError(b"ERR DB index is out of range"))
        self.assertEqual(c.read_reply(), b"two")  # a failed SELECT keeps the database
        self.assertEqual(c.read_reply(),
                         RespError(b"ERR value is not an integer or out of range"))
        self.assertEqual(c.read_reply(), RespError(b"ERR DB index is out of range"))
        self.assertEqual(c.read_reply(), b"OK")
        self.assertIsNone(c.read_reply())
        self.assertEqual(self.on_backends("ketama", key, db=2), [b"two"])
        # redis_cluster: as Redis Cluster.
        cc = self.raw("cluster")
        self.assertEqual(cc.call("SELECT", "0"), b"OK")
        self.assertEqual(cc.call("SELECT", "1"),
                         RespError(b"ERR SELECT is not allowed in cluster mode"))


if __name__ == "__main__":
    ARGS = harness.parse_args()
    unittest.main()
