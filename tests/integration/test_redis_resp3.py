"""RESP3 through dproxy (issue 17 item 7): HELLO 3 switches a session to RESP3, its requests go
to backend connections that said HELLO 3 too, and everything dproxy composes is RESP3.

Checked byte for byte against real redis-servers (differential): the same bytes to dproxy with
one server and to a server of its own; merged replies over 3 servers (MGET, DEL, EXISTS ...)
against what one server gives for the same keys; COMMAND INFO / DOCS of every command against
the server's. Also: HELLO 3's map (the fields dproxy fills), HELLO with AUTH and SETNAME, HELLO 2
and RESET back to RESP2, -NOPROTO; pub/sub pushes ('>') arriving between replies, never inside
one, while the subscribed RESP3 client runs other commands; a redis_cluster pool; a replicated
pool with per-key failover (misses are RESP3 nulls); BLPOP and
MULTI/EXEC (with WATCH) in a RESP3 session; redis-cli -3 (Debian's redis-tools 7.0) as a RESP3
client. Debian's redis-py 4.3 has no protocol=3, so raw frames are used otherwise.
"""
import os
import subprocess
import threading
import time
import unittest

import harness
from harness import HOST, Dproxy, Processes, RawClient, RespError, free_port, resp_command

ARGS = None


class Resp3Client(RawClient):
    """A raw socket client reading RESP2 and RESP3 frames: exact bytes, or parsed values
    (map -> dict, set -> ("set", [...]), push -> ("push", [...]), null -> None, boolean -> bool,
    double -> float, verbatim -> ("verbatim", fmt, text), error -> RespError)."""

    def call(self, *args):
        self.send(resp_command(*args))
        return self.read_reply()

    def read_raw_reply(self):
        line = self.read_line()
        kind, rest = line[:1], line[1:-2]
        if kind in (b"$", b"!", b"=") and int(rest) >= 0:
            return line + self.read_exact(int(rest) + 2)
        if kind in (b"*", b"~", b">") and int(rest) > 0:
            return line + b"".join(self.read_raw_reply() for _ in range(int(rest)))
        if kind == b"%" and int(rest) > 0:
            return line + b"".join(self.read_raw_reply() for _ in range(2 * int(rest)))
        if kind == b"|":
            pairs = b"".join(self.read_raw_reply() for _ in range(2 * int(rest)))
            return line + pairs + self.read_raw_reply()
        return line

    def read_reply(self):
        return parse(self.read_raw_reply())


def parse(raw):
    value, rest = _parse(raw)
    assert rest == b"", (raw, rest)
    return value


def _parse(b):
    eol = b.index(b"\r\n")
    kind, line, rest = b[:1], b[1:eol], b[eol + 2:]
    if kind == b"+":
        return line, rest
    if kind == b"-":
        return RespError(line), rest
    if kind == b":":
        return int(line), rest
    if kind == b"_":
        return None, rest
    if kind == b"#":
        return line == b"t", rest
    if kind == b",":
        return float(line), rest
    if kind == b"(":
        return int(line), rest
    if kind in (b"$", b"!", b"="):
        n = int(line)
        if n < 0:
            return None, rest
        data, rest = rest[:n], rest[n + 2:]
        if kind == b"!":
            return RespError(data), rest
        if kind == b"=":
            return ("verbatim", data[:3], data[4:]), rest
        return data, rest
    if kind in (b"*", b"~", b">", b"%"):
        n = int(line)
        if n < 0:
            return None, rest
        count = 2 * n if kind == b"%" else n
        items = []
        for _ in range(count):
            v, rest = _parse(rest)
            items.append(v)
        if kind == b"%":
            return dict(zip(items[::2], items[1::2])), rest
        if kind == b"~":
            return ("set", items), rest
        if kind == b">":
            return ("push", items), rest
        return items, rest
    raise AssertionError(f"not a RESP3 frame: {b[:50]!r}")


class Resp3Test(harness.PoolsTestMixin, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.procs = Processes()
        cls.servers = [cls.procs.redis() for _ in range(5)]
        cls.cluster = cls.procs.redis_cluster(masters=3, replicas=0)
        ports = [s.port for s in cls.servers]
        cls.ports = ports[:3]
        cls.single_port = ports[3]
        cls.direct_port = ports[4]  # the differential tests' own server
        cls.pools = {
            "ketama": {"protocol": "redis", "listen": f"{HOST}:{free_port()}", "hash": "md5",
                       "hash_tag": "{}", "servers": [f"{HOST}:{p}" for p in ports[:3]]},
            "single": {"protocol": "redis", "listen": f"{HOST}:{free_port()}",
                       "servers": [f"{HOST}:{ports[3]}"]},
            "cluster": {"protocol": "redis", "listen": f"{HOST}:{free_port()}",
                        "policy": "redis_cluster",
                        "servers": [f"{HOST}:{n.port}" for n in cls.cluster.nodes]},
        }
        cls.proxy = Dproxy(cls.procs, ARGS.dproxy, cls.pools)

    def raw3(self, pool=None, port=None, hello=True):
        c = Resp3Client(port or self.port(pool))
        self.addCleanup(c.close)
        if hello:
            reply = c.call("HELLO", "3")
            self.assertEqual(reply[b"proto"], 3, reply)
        return c

    def direct3(self):
        return self.raw3(port=self.direct_port)

    def k(self, name):
        return self.prefix + str(name)

    def same_bytes(self, proxied, direct, script):
        """Sends each command to both; the raw replies must be identical."""
        for cmd in script:
            proxied.send(resp_command(*cmd))
            direct.send(resp_command(*cmd))
            self.assertEqual(proxied.read_raw_reply(), direct.read_raw_reply(), cmd)

    # --- HELLO ---------------------------------------------------------------------------------

    def test_hello_3_map_and_fields(self):
        for pool in ("single", "ketama", "cluster"):
            c = self.raw3(pool, hello=False)
            c.send(resp_command("HELLO", "3"))
            raw = c.read_raw_reply()
            self.assertTrue(raw.startswith(b"%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n"), raw)
            hello = parse(raw)
            # The fields dproxy fills (README, RESP3): Redis's seven, with the pool's lowest
            # backend version and dproxy's own client id.
            self.assertEqual(list(hello), [b"server", b"version", b"proto", b"id", b"mode",
                                           b"role", b"modules"])
            self.assertEqual(hello[b"server"], b"redis")
            self.assertEqual(hello[b"version"], harness.redis_direct(self.direct_port).info(
                "server")["redis_version"].encode())
            self.assertEqual(hello[b"proto"], 3)
            self.assertEqual(hello[b"id"], c.call("CLIENT", "ID"))
            self.assertEqual(hello[b"mode"], b"standalone")
            self.assertEqual(hello[b"role"], b"master")
            self.assertEqual(hello[b"modules"], [])
            # HELLO without a version: the current protocol's shape.
            self.assertEqual(c.call("HELLO")[b"proto"], 3)

    def test_hello_matches_redis_byte_for_byte_but_the_id(self):
        proxied, direct = self.raw3("single", hello=False), self.direct3()
        direct.call("HELLO", "2")
        for cmd in [("HELLO", "3"), ("HELLO", "3", "AUTH", "default", "pw", "SETNAME", "n1"),
                    ("CLIENT", "GETNAME"), ("HELLO", "2"), ("GET", self.k("missing")),
                    ("HELLO", "3", "SETNAME", "n2"), ("GET", self.k("missing")),
                    ("HELLO", "4"), ("HELLO", "3", "SETNAME", "a b"), ("HELLO", "abc"),
                    ("HELLO", "3", "AUTH", "default"), ("CLIENT", "GETNAME")]:
            proxied.send(resp_command(*cmd))
            direct.send(resp_command(*cmd))
            got, want = proxied.read_raw_reply(), direct.read_raw_reply()
            if cmd[0] == "HELLO" and not want.startswith(b"-"):
                g, w = parse(got), parse(want)
                g = dict(g) if isinstance(g, dict) else dict(zip(g[::2], g[1::2]))
                w = dict(w) if isinstance(w, dict) else dict(zip(w[::2], w[1::2]))
                self.assertEqual(got[:1], want[:1], cmd)
                g.pop(b"id"), w.pop(b"id")
                self.assertEqual(g, w, cmd)
            else:
                self.assertEqual(got, want, cmd)
        self.assertEqual(proxied.call("HELLO", "4"),
                         RespError(b"NOPROTO unsupported protocol version"))

    def test_hello_auth_with_a_client_password(self):
        server, proxy, port = self.one_server_proxy(ARGS.dproxy, client_password="s3cret")
        c = Resp3Client(port)
        self.addCleanup(c.close)
        self.assertEqual(c.call("GET", "x"), RespError(b"NOAUTH Authentication required."))
        self.assertEqual(c.call("HELLO", "3", "AUTH", "default", "wrong"), RespError(
            b"WRONGPASS invalid username-password pair or user is disabled."))
        c.send(resp_command("GET", "x"))
        self.assertEqual(c.read_raw_reply(), b"-NOAUTH Authentication required.\r\n")
        hello = c.call("HELLO", "3", "AUTH", "default", "s3cret", "SETNAME", "worker-1")
        self.assertEqual(hello[b"proto"], 3)
        c.send(resp_command("CLIENT", "GETNAME") + resp_command("GET", "nope"))
        self.assertEqual(c.read_raw_reply(), b"$8\r\nworker-1\r\n")
        self.assertEqual(c.read_raw_reply(), b"_\r\n")
        # RESET: RESP2, no name, not authenticated.
        self.assertEqual(c.call("RESET"), b"RESET")
        self.assertEqual(c.call("GET", "x"), RespError(b"NOAUTH Authentication required."))
        self.assertEqual(c.call("AUTH", "s3cret"), b"OK")
        c.send(resp_command("GET", "nope") + resp_command("CLIENT", "GETNAME"))
        self.assertEqual(c.read_raw_reply(), b"$-1\r\n")
        self.assertEqual(c.read_raw_reply(), b"$-1\r\n")

    def test_reset_and_hello_2_return_to_resp2(self):
        for pool in ("single", "ketama", "cluster"):
            c = self.raw3(pool)
            key = self.k("h")
            c.call("HSET", key, "f", "v")
            c.send(resp_command("HGETALL", key) + resp_command("GET", self.k("none")))
            self.assertEqual(c.read_raw_reply(), b"%1\r\n$1\r\nf\r\n$1\r\nv\r\n")
            self.assertEqual(c.read_raw_reply(), b"_\r\n")
            self.assertEqual(c.call("RESET"), b"RESET")
            c.send(resp_command("HGETALL", key) + resp_command("GET", self.k("none")))
            self.assertEqual(c.read_raw_reply(), b"*2\r\n$1\r\nf\r\n$1\r\nv\r\n")
            self.assertEqual(c.read_raw_reply(), b"$-1\r\n")
            c.call("HELLO", "3")
            c.send(resp_command("HGETALL", key))
            self.assertEqual(c.read_raw_reply(), b"%1\r\n$1\r\nf\r\n$1\r\nv\r\n")
            c.send(resp_command("HELLO", "2"))
            self.assertTrue(c.read_raw_reply().startswith(b"*14\r\n"))
            c.send(resp_command("HGETALL", key) + resp_command("DEL", key))
            self.assertEqual(c.read_raw_reply(), b"*2\r\n$1\r\nf\r\n$1\r\nv\r\n")
            self.assertEqual(c.read_raw_reply(), b":1\r\n")

    # --- differential: one server ----------------------------------------------------------------

    def resp3_script(self):
        k = self.k
        return [
            ("SET", k("s"), "v"), ("GET", k("s")), ("GET", k("missing")),
            ("MGET", k("s"), k("missing")), ("HSET", k("h"), "a", "1", "b", "2"),
            ("HGETALL", k("h")), ("HGETALL", k("missing")), ("SADD", k("set"), "x"),
            ("SMEMBERS", k("set")), ("ZADD", k("z"), "1.5", "m", "2", "n"),
            ("ZSCORE", k("z"), "m"), ("ZRANGE", k("z"), "0", "-1", "WITHSCORES"),
            ("ZPOPMIN", k("z")), ("INCRBYFLOAT", k("f"), "1.25"), ("LPOP", k("missing")),
            ("RPUSH", k("l"), "a", "b"), ("LRANGE", k("l"), "0", "-1"), ("LPOS", k("l"), "zz"),
            ("XADD", k("x"), "1-1", "f", "v"), ("XRANGE", k("x"), "-", "+"),
            ("XINFO", "STREAM", k("x")),
            ("EVAL", "redis.setresp(3); return redis.call('HGETALL', KEYS[1])", "1", k("h")),
            ("EVAL", "redis.setresp(3); return {double=3.5}", "1", k("h")),
            ("EVAL", "redis.setresp(3); return true", "1", k("h")),
            ("EVAL", "return redis.error_reply('MY custom')", "1", k("h")),
            ("SET", k("s"), "v", "GET"), ("OBJECT", "ENCODING", k("missing")),
            ("GET", k("h")), ("NOSUCH", "a"), ("GET",), ("EXISTS", k("s"), k("missing")),
            ("TTL", k("s")), ("TYPE", k("h")), ("PING",), ("PING", "x"), ("ECHO", "e"),
            ("CLIENT", "GETNAME"), ("COMMAND", "INFO", "get", "client|kill", "nosuch"),
            ("COMMAND", "DOCS", "get", "set", "client|kill"), ("COMMAND", "COUNT"),
            ("COMMAND", "GETKEYS", "mset", "a", "1", "b", "2"),
            ("DEL", k("s"), k("h"), k("set"), k("z"), k("f"), k("l"), k("x"), k("missing")),
        ]

    def test_one_server_pool_is_byte_for_byte_redis(self):
        self.same_bytes(self.raw3("single"), self.direct3(), self.resp3_script())

    def test_command_info_and_docs_of_every_command_match_redis(self):
        proxied, direct = self.raw3("single"), self.direct3()
        info = {e[0]: e for e in direct.call("COMMAND", "INFO")}
        names = sorted(n.decode() for n in info)
        # Containers list their subcommands in hash order (dproxy: name order): each
        # subcommand is compared on its own instead.
        plain = [n for n in names if info[n.encode()][9] == ("set", [])]
        subs = [s[0].decode() for n in names if info[n.encode()][9] != ("set", [])
                for s in info[n.encode()][9]]
        for batch in (plain, subs):
            for cmd in (("COMMAND", "INFO", *batch), ("COMMAND", "DOCS", *batch)):
                proxied.send(resp_command(*cmd))
                direct.send(resp_command(*cmd))
                got, want = proxied.read_raw_reply(), direct.read_raw_reply()
                if got != want:
                    g, w = parse(got), parse(want)
                    if isinstance(g, dict):
                        bad = [n for n in w if g.get(n) != w[n]]
                    else:
                        bad = [x[0] for x, y in zip(g, w) if x != y]
                    self.fail(f"{cmd[:2]}: {len(bad)} entries differ, first {bad[:3]}")
        # Containers: the same entries, subcommands in any order.
        containers = [n for n in names if info[n.encode()][9] != ("set", [])]
        got = proxied.call("COMMAND", "INFO", *containers)
        want = direct.call("COMMAND", "INFO", *containers)
        for g, w in zip(got, want):
            self.assertEqual(g[:9], w[:9])
            self.assertEqual(sorted(map(repr, g[9])), sorted(map(repr, w[9])))
        # COMMAND (every entry) is an array of entries; DOCS of all a map.
        proxied.send(resp_command("COMMAND"))
        self.assertEqual(len(parse(proxied.read_raw_reply())), len(names))
        docs = proxied.call("COMMAND", "DOCS")
        self.assertIsInstance(docs, dict)
        self.assertEqual(len(docs), len(names))

    def test_composed_replies_are_resp3(self):
        for pool in ("single", "ketama", "cluster"):
            c = self.raw3(pool)
            c.send(resp_command("INFO"))
            raw = c.read_raw_reply()
            self.assertTrue(raw.startswith(b"="), raw[:40])
            kind, fmt, text = parse(raw)
            self.assertEqual(fmt, b"txt")
            self.assertIn(b"redis_version:", text)
            self.assertIn(b"# dproxy", text)
            _, fmt, text = c.call("INFO", "server")
            self.assertTrue(text.startswith(b"# Server\r\nredis_version:"))
            _, fmt, text = c.call("CLIENT", "INFO")
            self.assertIn(b" resp=3 ", text)
            c.send(resp_command("CLIENT", "GETNAME") + resp_command("COMMAND", "INFO", "nosuch"))
            self.assertEqual(c.read_raw_reply(), b"_\r\n")
            self.assertEqual(c.read_raw_reply(), b"*1\r\n_\r\n")
            c.send(resp_command("NOSUCH") + resp_command("GET"))
            self.assertEqual(c.read_raw_reply(),
                             b"-ERR unknown command 'NOSUCH', with args beginning with: \r\n")
            self.assertEqual(c.read_raw_reply(),
                             b"-ERR wrong number of arguments for 'get' command\r\n")

    # --- merges over three servers ------------------------------------------------------------

    def test_merged_replies_match_one_server(self):
        proxied, direct = self.raw3("ketama"), self.direct3()
        # Keys chosen so that the MSET's first three sit on three different servers (ketama
        # over random ports puts any 8 given keys on two servers only about one run in nine).
        cands = [self.k(i) for i in range(40)]
        self.assertEqual(proxied.call("MSET", *[x for key in cands for x in (key, "p")]), b"OK")
        placed = harness.redis_key_on(self.ports, cands)
        self.assertEqual(proxied.call("DEL", *cands), len(cands))
        first = {}
        for key in cands:
            first.setdefault(placed[key][0], key)
        self.assertEqual(len(first), 3, placed)
        keys = list(first.values()) + [key for key in cands if key not in first.values()][:9]
        script = [("MSET", *[x for key in keys[:8] for x in (key, "v" + key[-1])]),
                  ("MGET", *keys), ("EXISTS", *keys), ("TOUCH", *keys), ("MGET", keys[11]),
                  ("DEL", *keys[:4]), ("MGET", *keys), ("UNLINK", *keys),
                  ("MGET", *keys), ("EXISTS", *keys),
                  ("PUBSUB", "NUMSUB", self.k("c1"), self.k("c2")), ("PUBSUB", "NUMPAT"),
                  ("SCRIPT", "EXISTS", "0" * 40), ("SCRIPT", "LOAD", "return 1")]
        # The keys are spread over the three servers, so MGET / DEL / EXISTS were merged.
        self.same_bytes(proxied, direct, script[:1])
        where = harness.redis_key_on(self.ports, keys[:8])
        self.same_bytes(proxied, direct, script[1:])
        self.assertEqual(len({ps[0] for ps in where.values()}), 3)

    def test_broadcast_merges(self):
        c = self.raw3("ketama")
        keys = [self.k(i) for i in range(20)]
        c.call("MSET", *[x for key in keys for x in (key, "v")])
        c.send(resp_command("DBSIZE"))
        raw = c.read_raw_reply()
        self.assertTrue(raw.startswith(b":"), raw)
        self.assertGreaterEqual(int(raw[1:-2]), 20)
        got = c.call("KEYS", self.prefix + "*")
        self.assertEqual(sorted(got), sorted(key.encode() for key in keys))
        # SCAN walks the servers; its reply keeps RESP3's shape (a cursor bulk, an array).
        seen, cursor = set(), b"0"
        while True:
            c.send(resp_command("SCAN", cursor, "MATCH", self.prefix + "*", "COUNT", "100"))
            raw = c.read_raw_reply()
            self.assertTrue(raw.startswith(b"*2\r\n$"), raw[:20])
            cursor, page = parse(raw)
            seen.update(page)
            if cursor == b"0":
                break
        self.assertEqual(seen, {key.encode() for key in keys})
        c.send(resp_command("RANDOMKEY"))
        self.assertTrue(c.read_raw_reply().startswith(b"$"))
        self.assertEqual(c.call("DEL", *keys), 20)

    # --- pub/sub -----------------------------------------------------------------------------------

    def test_subscribe_confirmations_match_redis(self):
        ch = self.prefix
        proxied, direct = self.raw3("single"), self.direct3()
        script = [("SUBSCRIBE", ch + "a"), ("PSUBSCRIBE", ch + "p*"), ("PING",), ("GET", ch + "k"),
                  ("SET", ch + "k", "1"), ("GET", ch + "k"), ("UNSUBSCRIBE", ch + "a"),
                  ("PUNSUBSCRIBE", ch + "p*"), ("UNSUBSCRIBE",), ("DEL", ch + "k")]
        self.same_bytes(proxied, direct, script)

    def test_pushes_arrive_between_replies(self):
        for pool in ("ketama", "single", "cluster"):
            with self.subTest(pool=pool):
                self.pushes_between_replies(pool)

    def pushes_between_replies(self, pool):
        ch = self.prefix + pool + "{t}"
        sub = self.raw3(pool)
        sub.send(resp_command("SUBSCRIBE", ch))
        self.assertEqual(sub.read_raw_reply(), b">3\r\n$9\r\nsubscribe\r\n$%d\r\n%s\r\n:1\r\n"
                         % (len(ch), ch.encode()))
        if pool != "cluster":
            sub.send(resp_command("PSUBSCRIBE", ch[:-3] + "*"))
            self.assertEqual(parse(sub.read_raw_reply()),
                             ("push", [b"psubscribe", (ch[:-3] + "*").encode(), 2]))
        n = 300
        value = "x" * 3000  # large enough that frames span reads

        def publish():
            pub = Resp3Client(self.port(pool))
            try:
                for i in range(n):
                    pub.send(resp_command("PUBLISH", ch, f"{i}:{value}"))
                    pub.read_raw_reply()
            finally:
                pub.close()

        t = threading.Thread(target=publish)
        t.start()
        # Meanwhile the subscribed RESP3 client runs commands; every frame read is whole (the
        # reader would fail on a frame cut by another), replies in order, messages in order.
        key = ch + ":k"
        expected_replies, messages, replies = [], [], []
        for i in range(200):
            sub.send(resp_command("SET", key, str(i)) + resp_command("GET", key))
            expected_replies += [b"OK", str(i).encode()]
        while len(replies) < len(expected_replies) or len(messages) < n * (
                1 if pool == "cluster" else 2):
            raw = sub.read_raw_reply()
            v = parse(raw)
            if isinstance(v, tuple) and v[0] == "push":
                self.assertIn(v[1][0], (b"message", b"pmessage"), raw[:60])
                messages.append(v[1])
            else:
                replies.append(v)
        t.join()
        self.assertEqual(replies, expected_replies)
        plain = [m[2] for m in messages if m[0] == b"message"]
        self.assertEqual([int(p.split(b":")[0]) for p in plain], list(range(n)))
        if pool != "cluster":
            pattern = [m[3] for m in messages if m[0] == b"pmessage"]
            self.assertEqual([int(p.split(b":")[0]) for p in pattern], list(range(n)))
        sub.send(resp_command("UNSUBSCRIBE") + resp_command("PUNSUBSCRIBE") +
                 resp_command("DEL", key))
        self.assertEqual(parse(sub.read_raw_reply())[1][:2], [b"unsubscribe", ch.encode()])
        self.assertEqual(parse(sub.read_raw_reply())[1][0], b"punsubscribe")
        self.assertEqual(sub.read_raw_reply(), b":1\r\n")

    # --- redis_cluster -----------------------------------------------------------------------------

    def test_cluster_pool_in_resp3(self):
        c = self.raw3("cluster")
        keys = [self.k(i) for i in range(30)]
        self.assertEqual(c.call("MSET", *[x for key in keys for x in (key, key)]), b"OK")
        c.send(resp_command("MGET", *keys, self.k("none")))
        raw = c.read_raw_reply()
        self.assertTrue(raw.endswith(b"_\r\n"), raw[-20:])
        self.assertEqual(parse(raw), [key.encode() for key in keys] + [None])
        c.call("HSET", self.k("h"), "f", "1")
        c.send(resp_command("HGETALL", self.k("h")) + resp_command("ZSCORE", self.k("z"), "m"))
        self.assertEqual(c.read_raw_reply(), b"%1\r\n$1\r\nf\r\n$1\r\n1\r\n")
        self.assertEqual(c.read_raw_reply(), b"_\r\n")
        self.assertEqual(c.call("EXISTS", *keys), 30)
        self.assertEqual(c.call("DEL", *keys, self.k("h")), 31)
        self.assertEqual(c.call("MSET", self.k("a"), "1", self.k("b"), "2"), b"OK")
        # Cross-slot errors are Redis Cluster's own.
        self.assertEqual(c.call("RENAME", self.k("a"), self.k("b")), RespError(
            b"CROSSSLOT Keys in request don't hash to the same slot"))
        c.call("DEL", self.k("a"), self.k("b"))

    def test_cluster_redirects_are_followed_in_resp3(self):
        # A fresh dproxy knows no slot map at first: requests go to a seed node and the others
        # answer -MOVED (a simple error in RESP3 too), which dproxy follows.
        procs = Processes()
        self.addCleanup(procs.close)
        pools = {"c": {"protocol": "redis", "listen": f"{HOST}:{free_port()}",
                       "policy": "redis_cluster", "cluster_refresh_ms": 60000,
                       "servers": [f"{HOST}:{self.cluster.nodes[0].port}"]}}
        proxy = Dproxy(procs, ARGS.dproxy, pools, threads=1)
        c = Resp3Client(int(pools["c"]["listen"].rsplit(":", 1)[1]))
        self.addCleanup(c.close)
        c.send(resp_command("HELLO", "3") + b"".join(
            resp_command("SET", self.k(i), str(i)) for i in range(50)))
        parse(c.read_raw_reply())
        for _ in range(50):
            self.assertEqual(c.read_raw_reply(), b"+OK\r\n")
        c.send(b"".join(resp_command("GET", self.k(i)) for i in range(50)))
        for i in range(50):
            self.assertEqual(c.read_reply(), str(i).encode())
        self.assertEqual(c.call("DEL", *[self.k(i) for i in range(50)]), 50)
        c.close()
        self.assertEqual(proxy.stop(), 0)

    # --- blocking commands and transactions --------------------------------------------------------

    def test_blocking_commands_in_resp3(self):
        for pool in ("ketama", "single", "cluster"):
            c = self.raw3(pool)
            key = self.k(pool + "q")
            c.send(resp_command("BLPOP", key, "0.1"))
            self.assertEqual(c.read_raw_reply(), b"_\r\n")  # RESP3's null on timeout

            def push():
                time.sleep(0.2)
                p = Resp3Client(self.port(pool))
                p.call("RPUSH", key, "job")
                p.close()

            t = threading.Thread(target=push)
            t.start()
            c.send(resp_command("BLPOP", key, "5"))
            self.assertEqual(c.read_raw_reply(), b"*2\r\n$%d\r\n%s\r\n$3\r\njob\r\n"
                             % (len(key), key.encode()))
            t.join()
            c.call("HSET", self.k(pool + "h"), "f", "v")
            c.send(resp_command("HGETALL", self.k(pool + "h")))
            self.assertEqual(c.read_raw_reply(), b"%1\r\n$1\r\nf\r\n$1\r\nv\r\n")
            c.call("DEL", self.k(pool + "h"))

    def test_multi_exec_in_resp3_matches_redis(self):
        k = self.k("{tx}")
        script = [("MULTI",), ("HSET", k + "h", "f", "v"), ("HGETALL", k + "h"),
                  ("GET", k + "none"), ("ZADD", k + "z", "2.5", "m"), ("ZSCORE", k + "z", "m"),
                  ("EXEC",), ("WATCH", k + "h"), ("MULTI",), ("GET", k + "none"), ("EXEC",),
                  ("DEL", k + "h", k + "z")]
        for pool in ("single", "ketama", "cluster"):
            with self.subTest(pool=pool):
                self.same_bytes(self.raw3(pool), self.direct3(), script)
        # A WATCH broken by another client: EXEC answers RESP3's null.
        for pool in ("single", "ketama", "cluster"):
            c = self.raw3(pool)
            c.call("WATCH", k + "w")
            other = Resp3Client(self.port(pool))
            other.call("SET", k + "w", "changed")
            other.close()
            c.call("MULTI")
            c.call("GET", k + "w")
            c.send(resp_command("EXEC"))
            self.assertEqual(c.read_raw_reply(), b"_\r\n")
            c.call("DEL", k + "w")

    def test_watch_held_across_hello_3(self):
        k = self.k("{wh}")
        for pool in ("single", "ketama", "cluster"):
            c = self.raw3(pool, hello=False)
            c.call("HSET", k + "h", "f", "v")
            self.assertEqual(c.call("WATCH", k + "h"), b"OK")
            self.assertEqual(c.call("HELLO", "3")[b"proto"], 3)
            c.call("MULTI")
            c.call("HGETALL", k + "h")
            c.send(resp_command("EXEC"))
            self.assertEqual(c.read_raw_reply(), b"*1\r\n%1\r\n$1\r\nf\r\n$1\r\nv\r\n")
            # And back: the WATCH still holds after HELLO 2 (a change makes EXEC nil).
            self.assertEqual(c.call("WATCH", k + "h"), b"OK")
            c.send(resp_command("HELLO", "2"))
            c.read_raw_reply()
            other = Resp3Client(self.port(pool))
            other.call("HSET", k + "h", "f", "changed")
            other.close()
            c.call("MULTI")
            c.call("HGETALL", k + "h")
            c.send(resp_command("EXEC"))
            self.assertEqual(c.read_raw_reply(), b"*-1\r\n")
            c.call("DEL", k + "h")

    def test_replicated_pool_in_resp3(self):
        # Writes reach both children; a read missing on the first fails over (failover_on_miss),
        # per key for MGET: the merged misses are RESP3's null.
        procs = Processes()
        self.addCleanup(procs.close)
        a, b = procs.redis(), procs.redis()
        pools = {"rep": {"protocol": "redis", "listen": f"{HOST}:{free_port()}",
                         "policy": "replicated", "failover_on_miss": True, "children": [
                             {"policy": "ketama", "servers": [f"{HOST}:{a.port}:1 a"]},
                             {"policy": "ketama", "servers": [f"{HOST}:{b.port}:1 b"]}]}}
        proxy = Dproxy(procs, ARGS.dproxy, pools)
        c = Resp3Client(int(pools["rep"]["listen"].rsplit(":", 1)[1]))
        self.addCleanup(c.close)
        self.assertEqual(c.call("HELLO", "3")[b"proto"], 3)
        c.call("HSET", "h", "f", "v")
        c.call("SET", "k", "1")
        harness.redis_direct(b.port).set("only-b", "2")
        c.send(resp_command("HGETALL", "h") + resp_command("GET", "none") +
               resp_command("MGET", "k", "only-b", "none") + resp_command("GET", "only-b"))
        self.assertEqual(c.read_raw_reply(), b"%1\r\n$1\r\nf\r\n$1\r\nv\r\n")
        self.assertEqual(c.read_raw_reply(), b"_\r\n")
        self.assertEqual(c.read_raw_reply(), b"*3\r\n$1\r\n1\r\n$1\r\n2\r\n_\r\n")
        self.assertEqual(c.read_raw_reply(), b"$1\r\n2\r\n")
        c.close()
        self.assertEqual(proxy.stop(), 0)

    def test_redis_cli_resp3(self):
        # Debian's redis-cli 7.0 speaks RESP3 with -3: its output through dproxy is the same as
        # straight from a server.
        key = self.k("cli")

        def cli(port, *args):
            out = subprocess.run(["redis-cli", "-3", "-h", HOST, "-p", str(port), *args],
                                 capture_output=True, text=True, timeout=10)
            return out.stdout

        for port in (self.port("ketama"), self.direct_port):
            cli(port, "HSET", key, "a", "1", "b", "2")
            cli(port, "ZADD", key + "z", "1.5", "m")
        for args in [("HGETALL", key), ("ZRANGE", key + "z", "0", "-1", "WITHSCORES"),
                     ("GET", key + "none"), ("MGET", key + "none", key + "none2"),
                     ("ZSCORE", key + "z", "m"), ("CLIENT", "GETNAME")]:
            self.assertEqual(cli(self.port("ketama"), *args), cli(self.direct_port, *args), args)
        for port in (self.port("ketama"), self.direct_port):
            cli(port, "DEL", key, key + "z")


if __name__ == "__main__":
    ARGS = harness.parse_args()
    unittest.main()
