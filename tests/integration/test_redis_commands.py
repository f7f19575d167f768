"""Redis through dproxy: every command family (strings, hashes, lists, sets, sorted sets,
hyperloglog, geo, streams, bitmaps, expiry), the commands dproxy answers itself (PING, ECHO, QUIT,
COMMAND, INFO, CLIENT, HELLO) and scripting, each result checked.

Starts three real redis-servers on free loopback ports and dproxy in front of them. Placement,
splitting and pipelining are in test_redis_proxy.py, rejections and failures in
test_redis_errors.py, redis-cli / redis-benchmark in test_redis_clients.py.
"""
import time
import unittest
import warnings

import harness
from harness import HOST, Dproxy, Processes, RedisTestMixin, RespClient, RespError, free_port

import redis

ARGS = None


class RedisCommandsTest(RedisTestMixin, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.procs = Processes()
        cls.backends = [cls.procs.redis() for _ in range(3)]
        cls.ports = [b.port for b in cls.backends]
        cls.port = free_port()
        servers = [f"{HOST}:{p} r{i}" for i, p in enumerate(cls.ports)]
        pools = {"main": {"protocol": "redis", "listen": f"{HOST}:{cls.port}", "hash_tag": "{}",
                          "timeout_ms": 5000, "servers": servers}}
        cls.proxy = Dproxy(cls.procs, ARGS.dproxy, pools)

    @classmethod
    def tearDownClass(cls):
        rc = cls.proxy.stop()
        cls.procs.close()
        assert rc == 0, f"dproxy exited with {rc}"

    # --- command families ------------------------------------------------------------------

    def test_strings(self):
        r = self.client(decode=True)
        s, n, f = self.k("s"), self.k("n"), self.k("f")
        self.assertTrue(r.set(s, "hello"))
        self.assertEqual(r.get(s), "hello")
        self.assertIsNone(r.get(self.k("missing")))
        self.assertEqual(r.append(s, " world"), 11)
        self.assertEqual(r.strlen(s), 11)
        self.assertEqual(r.getrange(s, 0, 4), "hello")
        self.assertEqual(r.getrange(s, -5, -1), "world")
        self.assertEqual(r.setrange(s, 6, "WORLD"), 11)
        self.assertEqual(r.get(s), "hello WORLD")
        self.assertIsNone(r.set(s, "x", nx=True))
        self.assertTrue(r.set(s, "v2", xx=True))
        self.assertEqual(r.set(s, "v3", get=True), "v2")
        self.assertEqual(r.getset(s, "v4"), "v3")
        self.assertFalse(r.setnx(s, "nope"))
        self.assertTrue(r.setnx(self.k("new"), "yes"))
        self.assertEqual(r.incr(n), 1)
        self.assertEqual(r.incrby(n, 41), 42)
        self.assertEqual(r.decr(n), 41)
        self.assertEqual(r.decrby(n, 40), 1)
        self.assertEqual(r.incrbyfloat(f, 2.5), 2.5)
        self.assertEqual(r.incrbyfloat(f, -0.5), 2.0)
        with self.assertRaisesRegex(redis.ResponseError, "not an integer"):
            r.incr(s)
        self.assertTrue(r.setex(self.k("ex"), 100, "e"))
        self.assertTrue(90 <= r.ttl(self.k("ex")) <= 100)
        self.assertTrue(r.psetex(self.k("pex"), 100000, "p"))
        self.assertTrue(90000 <= r.pttl(self.k("pex")) <= 100000)
        self.assertEqual(r.getex(self.k("ex"), persist=True), "e")
        self.assertEqual(r.ttl(self.k("ex")), -1)
        self.assertEqual(r.getdel(s), "v4")
        self.assertIsNone(r.get(s))
        self.assertIsNone(r.getdel(s))
        self.assertEqual(r.execute_command("LCS", self.k("{x}a"), self.k("{x}b")), "")
        r.set("{lcs}a", "ohmytext")
        r.set("{lcs}b", "mynewtext")
        self.assertEqual(r.execute_command("LCS", "{lcs}a", "{lcs}b"), "mytext")

    def test_hashes(self):
        r = self.client(decode=True)
        h = self.k("h")
        self.assertEqual(r.hset(h, mapping={"a": "1", "b": "2", "c": "3"}), 3)
        self.assertEqual(r.hset(h, "a", "10"), 0)
        self.assertEqual(r.hget(h, "a"), "10")
        self.assertIsNone(r.hget(h, "zz"))
        self.assertEqual(r.hmget(h, ["a", "zz", "c"]), ["10", None, "3"])
        self.assertEqual(r.hgetall(h), {"a": "10", "b": "2", "c": "3"})
        self.assertEqual(r.hincrby(h, "b", 5), 7)
        self.assertEqual(r.hincrbyfloat(h, "c", 0.5), 3.5)
        self.assertTrue(r.hexists(h, "a"))
        self.assertFalse(r.hexists(h, "zz"))
        self.assertEqual(r.hlen(h), 3)
        self.assertEqual(sorted(r.hkeys(h)), ["a", "b", "c"])
        self.assertEqual(sorted(r.hvals(h)), ["10", "3.5", "7"])
        self.assertEqual(r.hstrlen(h, "a"), 2)
        self.assertFalse(r.hsetnx(h, "a", "x"))
        self.assertTrue(r.hsetnx(h, "d", "4"))
        self.assertIn(r.hrandfield(h), {"a", "b", "c", "d"})
        cursor, items = r.hscan(h, 0, count=100)
        self.assertEqual(cursor, 0)
        self.assertEqual(items, {"a": "10", "b": "7", "c": "3.5", "d": "4"})
        self.assertEqual(r.hdel(h, "a", "b", "zz"), 2)
        self.assertEqual(r.hgetall(h), {"c": "3.5", "d": "4"})
        self.assertEqual(r.type(h), "hash")

    def test_lists(self):
        r = self.client(decode=True)
        lst = self.k("l")
        self.assertEqual(r.rpush(lst, "a", "b", "c"), 3)
        self.assertEqual(r.lpush(lst, "z"), 4)
        self.assertEqual(r.lrange(lst, 0, -1), ["z", "a", "b", "c"])
        self.assertEqual(r.llen(lst), 4)
        self.assertEqual(r.lindex(lst, 1), "a")
        self.assertTrue(r.lset(lst, 1, "A"))
        self.assertEqual(r.linsert(lst, "AFTER", "A", "a2"), 5)
        self.assertEqual(r.lpos(lst, "b"), 3)
        self.assertEqual(r.rpush(lst, "b"), 6)
        self.assertEqual(r.lrem(lst, 0, "b"), 2)
        self.assertEqual(r.lrange(lst, 0, -1), ["z", "A", "a2", "c"])
        self.assertTrue(r.ltrim(lst, 1, -1))
        self.assertEqual(r.lpop(lst), "A")
        self.assertEqual(r.rpop(lst), "c")
        self.assertEqual(r.rpop(lst, 5), ["a2"])
        self.assertEqual(r.exists(lst), 0)
        self.assertIsNone(r.lpop(lst))
        # Two-key list commands with keys kept together by a hash tag.
        src, dst = self.k("{q}src"), self.k("{q}dst")
        r.rpush(src, "1", "2", "3")
        self.assertEqual(r.lmove(src, dst, "LEFT", "RIGHT"), "1")
        self.assertEqual(r.rpoplpush(src, dst), "3")
        self.assertEqual(r.lrange(dst, 0, -1), ["3", "1"])
        self.assertEqual(r.execute_command("LMPOP", 2, src, dst, "LEFT"), [src, ["2"]])

    def test_sets(self):
        r = self.client(decode=True)
        a, b, d = self.k("{s}a"), self.k("{s}b"), self.k("{s}d")
        self.assertEqual(r.sadd(a, "1", "2", "3", "3"), 3)
        self.assertEqual(r.sadd(b, "2", "3", "4"), 3)
        self.assertEqual(r.smembers(a), {"1", "2", "3"})
        self.assertTrue(r.sismember(a, "1"))
        self.assertFalse(r.sismember(a, "9"))
        self.assertEqual(r.smismember(a, ["1", "9"]), [1, 0])
        self.assertEqual(r.scard(a), 3)
        self.assertEqual(r.sinter(a, b), {"2", "3"})
        self.assertEqual(r.sunion(a, b), {"1", "2", "3", "4"})
        self.assertEqual(r.sdiff(a, b), {"1"})
        self.assertEqual(r.sinterstore(d, [a, b]), 2)
        self.assertEqual(r.smembers(d), {"2", "3"})
        self.assertEqual(r.execute_command("SINTERCARD", 2, a, b), 2)
        self.assertTrue(r.smove(a, b, "1"))
        self.assertEqual(r.srem(b, "1", "9"), 1)
        self.assertIn(r.srandmember(a), {"2", "3"})
        self.assertIn(r.spop(a), {"2", "3"})
        self.assertEqual(r.scard(a), 1)

    def test_sorted_sets(self):
        r = self.client(decode=True)
        z = self.k("{z}a")
        self.assertEqual(r.zadd(z, {"a": 1, "b": 2, "c": 3}), 3)
        self.assertEqual(r.zscore(z, "b"), 2.0)
        self.assertEqual(r.zrange(z, 0, -1, withscores=True), [("a", 1.0), ("b", 2.0), ("c", 3.0)])
        self.assertEqual(r.zrangebyscore(z, 2, "+inf"), ["b", "c"])
        self.assertEqual(r.zrevrange(z, 0, 0), ["c"])
        self.assertEqual(r.zincrby(z, 10, "a"), 11.0)
        self.assertEqual(r.zrank(z, "a"), 2)
        self.assertEqual(r.zrevrank(z, "a"), 0)
        self.assertEqual(r.zcard(z), 3)
        self.assertEqual(r.zcount(z, 0, 5), 2)
        self.assertEqual(r.zmscore(z, ["a", "nope"]), [11.0, None])
        self.assertEqual(r.zrange(z, 5, 0, byscore=True, desc=True, offset=0, num=1), ["c"])
        self.assertEqual(r.zpopmin(z), [("b", 2.0)])
        self.assertEqual(r.zrem(z, "c", "nope"), 1)
        self.assertEqual(r.zrange(z, 0, -1), ["a"])
        other, dst = self.k("{z}b"), self.k("{z}dst")
        r.zadd(other, {"a": 1, "x": 5})
        self.assertEqual(r.zunionstore(dst, [z, other]), 2)
        self.assertEqual(r.zrange(dst, 0, -1, withscores=True), [("x", 5.0), ("a", 12.0)])
        self.assertEqual(r.zinterstore(dst, [z, other]), 1)
        self.assertEqual(r.zrangestore(self.k("{z}rs"), other, 0, 0), 1)

    def test_hyperloglog(self):
        r = self.client(decode=True)
        h = self.k("{hll}1")
        self.assertEqual(r.pfadd(h, *[f"e{i}" for i in range(100)]), 1)
        self.assertEqual(r.pfadd(h, "e1"), 0)
        self.assertTrue(95 <= r.pfcount(h) <= 105, r.pfcount(h))
        h2, merged = self.k("{hll}2"), self.k("{hll}m")
        r.pfadd(h2, *[f"e{i}" for i in range(50, 150)])
        self.assertTrue(r.pfmerge(merged, h, h2))
        self.assertTrue(140 <= r.pfcount(merged) <= 160, r.pfcount(merged))

    def test_geo(self):
        r = self.client(decode=True)
        g = self.k("geo")
        self.assertEqual(r.geoadd(g, [13.361389, 38.115556, "Palermo",
                                      15.087269, 37.502669, "Catania"]), 2)
        self.assertAlmostEqual(r.geodist(g, "Palermo", "Catania", unit="km"), 166.2742, places=3)
        self.assertIsNone(r.geodist(g, "Palermo", "Nowhere"))
        self.assertEqual(r.geosearch(g, longitude=15, latitude=37, radius=200, unit="km",
                                     sort="ASC"), ["Catania", "Palermo"])
        self.assertEqual(r.geosearch(g, member="Palermo", radius=100, unit="km"), ["Palermo"])
        (lon, lat), = r.geopos(g, "Palermo")
        self.assertAlmostEqual(lon, 13.361389, places=4)
        self.assertAlmostEqual(lat, 38.115556, places=4)
        self.assertEqual(r.geohash(g, "Palermo"), ["sqc8b49rny0"])

    def test_streams(self):
        r = self.client(decode=True)
        s = self.k("stream")
        self.assertEqual(r.xadd(s, {"f": "1"}, id="1-1"), "1-1")
        self.assertEqual(r.xadd(s, {"f": "2"}, id="2-1"), "2-1")
        self.assertEqual(r.xadd(s, {"f": "3"}, id="3-1"), "3-1")
        self.assertEqual(r.xlen(s), 3)
        self.assertEqual(r.xrange(s), [("1-1", {"f": "1"}), ("2-1", {"f": "2"}),
                                       ("3-1", {"f": "3"})])
        self.assertEqual(r.xrevrange(s, count=1), [("3-1", {"f": "3"})])
        self.assertEqual(r.xread({s: "1-1"}, count=1), [[s, [("2-1", {"f": "2"})]]])
        self.assertEqual(r.xread({s: "3-1"}), [])
        self.assertTrue(r.xgroup_create(s, "g", id="0"))
        self.assertEqual(r.xreadgroup("g", "c1", {s: ">"}, count=2),
                         [[s, [("1-1", {"f": "1"}), ("2-1", {"f": "2"})]]])
        self.assertEqual(r.xack(s, "g", "1-1", "2-1"), 2)
        self.assertEqual(r.xdel(s, "1-1"), 1)
        self.assertEqual(r.xtrim(s, maxlen=1, approximate=False), 1)
        self.assertEqual(r.xrange(s), [("3-1", {"f": "3"})])
        self.assertEqual(r.xinfo_stream(s)["length"], 1)

    def test_bitmaps(self):
        r = self.client(decode=True)
        b = self.k("{bits}a")
        self.assertEqual(r.setbit(b, 7, 1), 0)
        self.assertEqual(r.setbit(b, 7, 1), 1)
        self.assertEqual(r.getbit(b, 7), 1)
        self.assertEqual(r.getbit(b, 100), 0)
        r.setbit(b, 15, 1)
        r.setbit(b, 16, 1)
        self.assertEqual(r.bitcount(b), 3)
        self.assertEqual(r.bitcount(b, 0, 0), 1)
        self.assertEqual(r.bitpos(b, 1), 7)
        self.assertEqual(r.bitpos(b, 1, 2), 16)
        self.assertEqual(r.bitpos(b, 0), 0)
        self.assertEqual(r.bitfield(b).get("u8", 0).execute(), [1])
        other, dst = self.k("{bits}b"), self.k("{bits}dst")
        r.setbit(other, 7, 1)
        self.assertEqual(r.bitop("AND", dst, b, other), 3)
        self.assertEqual(r.bitcount(dst), 1)

    def test_expiry_and_keyspace(self):
        r = self.client(decode=True)
        k = self.k("e")
        r.set(k, "v")
        self.assertEqual(r.ttl(k), -1)
        self.assertEqual(r.ttl(self.k("missing")), -2)
        self.assertTrue(r.expire(k, 100))
        self.assertTrue(90 <= r.ttl(k) <= 100)
        self.assertTrue(r.persist(k))
        self.assertEqual(r.ttl(k), -1)
        self.assertTrue(r.pexpire(k, 50000))
        self.assertTrue(40000 <= r.pttl(k) <= 50000)
        at = int(time.time()) + 1000
        self.assertTrue(r.expireat(k, at))
        self.assertEqual(r.execute_command("EXPIRETIME", k), at)
        self.assertFalse(r.expire(self.k("missing"), 10))
        self.assertTrue(r.pexpire(k, 1))
        deadline = time.monotonic() + 5
        while r.exists(k) and time.monotonic() < deadline:
            time.sleep(0.01)
        self.assertIsNone(r.get(k))
        # TYPE, OBJECT ENCODING, RENAME/COPY (same server through a hash tag), TIME.
        r.set(self.k("{ks}a"), "123")
        self.assertEqual(r.type(self.k("{ks}a")), "string")
        self.assertEqual(r.object("encoding", self.k("{ks}a")), "int")
        self.assertTrue(r.rename(self.k("{ks}a"), self.k("{ks}b")))
        self.assertTrue(r.copy(self.k("{ks}b"), self.k("{ks}c")))
        self.assertEqual(r.mget([self.k("{ks}a"), self.k("{ks}b"), self.k("{ks}c")]),
                         [None, "123", "123"])
        secs, micros = r.time()
        self.assertLess(abs(secs - time.time()), 60)

    # --- commands dproxy answers itself ----------------------------------------------------

    def test_ping_echo_quit(self):
        c = self.raw()
        self.assertEqual(c.call("PING"), b"PONG")
        c.send(harness.resp_command("PING", "hello there"))
        self.assertEqual(c.read_raw_reply(), b"$11\r\nhello there\r\n")
        c.send(harness.resp_command("ECHO", "bin\x00\r\nary"))
        self.assertEqual(c.read_raw_reply(), b"$9\r\nbin\x00\r\nary\r\n")
        key = self.k("q")
        c.send(harness.resp_command("SET", key, "1") + harness.resp_command("QUIT") +
               harness.resp_command("SET", key, "2"))
        self.assertEqual(c.read_line(), b"+OK\r\n")
        self.assertEqual(c.read_line(), b"+OK\r\n")
        self.assertTrue(c.is_closed())
        self.assertEqual(self.client().get(key), b"1")

    def test_command_count_info_getkeys_match_the_backend(self):
        c, d = self.raw(), RespClient(self.ports[0])
        self.addCleanup(d.close)
        for args in [("COMMAND", "COUNT"), ("COMMAND", "INFO", "get"),
                     ("COMMAND", "INFO", "set", "client|setname", "zunionstore", "nosuch"),
                     ("COMMAND", "DOCS", "get"),
                     ("COMMAND", "GETKEYS", "SET", "a", "b"),
                     ("COMMAND", "GETKEYS", "ZUNIONSTORE", "d", "2", "a", "b", "WEIGHTS", "1", "2"),
                     ("COMMAND", "GETKEYS", "EVAL", "return 1", "2", "k1", "k2", "arg"),
                     ("COMMAND", "GETKEYS", "XREAD", "COUNT", "2", "STREAMS", "s1", "s2", "0", "0"),
                     ("COMMAND", "GETKEYS", "SORT", "a", "BY", "w", "STORE", "dst"),
                     ("COMMAND", "GETKEYS", "MSET", "a", "1", "b", "2"),
                     ("COMMAND", "GETKEYS", "PING"),
                     ("COMMAND", "GETKEYS", "NOSUCH", "x"),
                     ("COMMAND", "GETKEYS", "GET")]:
            c.send(harness.resp_command(*args))
            d.send(harness.resp_command(*args))
            self.assertEqual(c.read_raw_reply(), d.read_raw_reply(), args)
        self.assertEqual(c.call("COMMAND", "COUNT"), d.call("COMMAND", "COUNT"))
        self.assertEqual(set(c.call("COMMAND", "LIST")), set(d.call("COMMAND", "LIST")))
        self.assertEqual(len(c.call("COMMAND")), c.call("COMMAND", "COUNT"))
        r = self.client(decode=True)
        self.assertEqual(r.command_count(), self.direct(self.ports[0]).command_count())

    def test_info_client_hello(self):
        c = self.raw()
        info = c.call("INFO")
        self.assertIn(b"# dproxy\r\n", info)
        self.assertIn(f"pool_listen:{HOST}:{self.port}\r\n".encode(), info)
        self.assertIn(b"pool_servers:3\r\n", info)
        # Health checks and client libraries (Sidekiq) read redis_version: the backends' own.
        version = self.direct(self.ports[0]).info("server")["redis_version"]
        self.assertIn(f"# Server\r\nredis_version:{version}\r\nredis_mode:standalone\r\n"
                      .encode(), info)
        fields = self.client(decode=True).info()
        self.assertEqual(fields["redis_version"], version)
        self.assertGreaterEqual(fields["connected_clients"], 2)
        server_only = c.call("INFO", "server")
        self.assertIn(b"redis_version:", server_only)
        self.assertNotIn(b"# dproxy", server_only)
        self.assertEqual(c.call("INFO", "keyspace"), b"")
        # Redis 7.2 clients send CLIENT SETINFO on connect.
        self.assertEqual(c.call("CLIENT", "SETINFO", "LIB-NAME", "redis-py"), b"OK")
        self.assertEqual(c.call("CLIENT", "SETINFO", "lib-ver", "5.0.1"), b"OK")
        self.assertEqual(c.call("CLIENT", "SETINFO", "color", "red"),
                         RespError(b"ERR Unrecognized option 'color'"))
        self.assertEqual(c.call("CLIENT", "GETNAME"), None)
        self.assertEqual(c.call("CLIENT", "SETNAME", "worker-1"), b"OK")
        self.assertEqual(c.call("CLIENT", "GETNAME"), b"worker-1")
        cid = c.call("CLIENT", "ID")
        self.assertIsInstance(cid, int)
        self.assertEqual(c.call("CLIENT", "ID"), cid)
        other = self.raw()
        self.assertNotEqual(other.call("CLIENT", "ID"), cid)
        self.assertEqual(other.call("CLIENT", "GETNAME"), None)
        self.assertEqual(c.call("CLIENT", "SETNAME", "bad name"), RespError(
            b"ERR Client names cannot contain spaces, newlines or special characters."))
        hello = c.call("HELLO", "2")
        fields = dict(zip(hello[::2], hello[1::2]))
        self.assertEqual(fields[b"server"], b"redis")  # as Redis; the version: the backends'
        self.assertEqual(fields[b"proto"], 2)
        self.assertEqual(fields[b"id"], cid)
        self.assertEqual(c.call("HELLO", "2", "SETNAME", "w2")[0], b"server")
        self.assertEqual(c.call("CLIENT", "GETNAME"), b"w2")
        self.assertEqual(c.call("SELECT", "0"), b"OK")
        r = self.client(decode=True)
        self.assertTrue(r.client_setname("py"))
        self.assertEqual(r.client_getname(), "py")
        self.assertIsInstance(r.client_id(), int)

    # --- scripting -------------------------------------------------------------------------

    def test_eval_with_keys_on_one_server(self):
        r = self.client(decode=True)
        k = self.k("ev")
        r.set(k, "scripted")
        self.assertEqual(r.eval("return redis.call('get', KEYS[1])", 1, k), "scripted")
        self.assertEqual(r.eval("return redis.call('incrby', KEYS[1], ARGV[1])", 1,
                                self.k("evn"), 5), 5)
        a, b = self.k("{ev}a"), self.k("{ev}b")
        self.assertEqual(r.eval("redis.call('set', KEYS[1], ARGV[1]); "
                                "return redis.call('copy', KEYS[1], KEYS[2])", 2, a, b, "v"), 1)
        self.assertEqual(r.get(b), "v")
        sha = "e0e1f9fabfc9d4800c877a703b823ac0578ff8db"  # sha1 of "return 1"
        self.assertEqual(r.eval("return 1", 1, k), 1)
        self.assertEqual(r.evalsha(sha, 1, k), 1)  # the same server has the script cached
        self.assertEqual(r.execute_command("EVAL_RO", "return redis.call('get', KEYS[1])",
                                           1, k), "scripted")
        x, y = self.keys_on_distinct_servers(2)
        with self.assertRaisesRegex(redis.ResponseError, "^CROSSSLOT dproxy: the keys of EVAL "):
            r.eval("return 1", 2, x, y)


if __name__ == "__main__":
    ARGS = harness.parse_args()
    warnings.simplefilter("ignore", ResourceWarning)
    unittest.main(verbosity=2)
