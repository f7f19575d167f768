"""Redis through dproxy's composable routes: replicated and fanout pools, write_ack / reply
modes and the reply ranking, read failover, EVAL rejection, nested shard sets, and the
broadcast commands (FLUSHALL FLUSHDB DBSIZE KEYS SCAN RANDOMKEY SCRIPT LOAD/EXISTS/FLUSH) of a
sharded pool.

Every backend is a real redis-server on a free loopback port; each check looks at the backends
directly (not only through dproxy).
"""
import hashlib
import time
import unittest
import warnings

import harness
from harness import HOST, Dproxy, Processes, RespClient, RespError, free_port, redis_direct

ARGS = None

EVAL_ERROR = ("ERR dproxy: {} is not supported in a replicated pool (its writes would reach one "
              "replica only; read-only scripts can use EVAL_RO / EVALSHA_RO / FCALL_RO)")
GET_SCRIPT = "return redis.call('GET', KEYS[1])"
SET_SCRIPT = "return redis.call('SET', KEYS[1], ARGV[1])"


# --- helpers (kept here: harness.py is shared) ------------------------------------------------


def addr(port):
    return f"{HOST}:{port}"


def wait_for(predicate, timeout, interval=0.02):
    """Polls `predicate` until it returns a true value (returned) or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def dead_error_prefix(port):
    """The start of every error dproxy sends for the failing backend on `port`."""
    return f"ERR dproxy: backend {HOST}:{port} ".encode()


def close_all(procs, *proxies):
    """Stops the dproxy instances (SIGTERM: their exit codes are returned), then SIGKILLs the
    backends and cleans up."""
    rcs = [p.stop() for p in proxies]
    for p in proxies:
        p.log.close()
    for p in list(procs.procs):
        procs.kill(p)
    procs.close()
    return rcs


def replicated_pool(port, children, **extra):
    pool = {"protocol": "redis", "listen": addr(port), "policy": "replicated",
            "hash": "md5", "timeout_ms": 2000, "connect_timeout_ms": 500,
            "server_failure_limit": 1000000, "children": children}
    pool.update(extra)
    return pool


def shard_set(ports, names):
    return {"policy": "ketama", "servers": [f"{HOST}:{p}:1 {n}" for p, n in zip(ports, names)]}


class RoutesBase(unittest.TestCase):
    def setUp(self):
        self.prefix = f"{self._testMethodName}:{time.monotonic_ns()}:"

    def k(self, name):
        return self.prefix + str(name)

    def raw(self, port):
        c = RespClient(port)
        self.addCleanup(c.close)
        return c

    def call(self, port, *args):
        """One command on a new connection; the parsed reply."""
        return self.raw(port).call(*args)

    def direct(self, port):
        r = redis_direct(port)
        self.addCleanup(r.close)
        return r

    def hits(self, port):
        return int(self.direct(port).info("stats")["keyspace_hits"])


# --- replicated: writes, reads, read modes, scripts -----------------------------------------


class ReplicatedTest(RoutesBase):
    @classmethod
    def setUpClass(cls):
        cls.procs = Processes()
        cls.r = [cls.procs.redis() for _ in range(2)]
        children = [addr(b.port) for b in cls.r]
        cls.port, cls.fom_port, cls.rr_port, cls.hash_port, cls.fan_port = (
            free_port() for _ in range(5))
        pools = {
            "rep": replicated_pool(cls.port, children),
            "fom": replicated_pool(cls.fom_port, children, failover_on_miss=True),
            "rr": replicated_pool(cls.rr_port, children, read="round_robin"),
            "hash": replicated_pool(cls.hash_port, children, read="hash"),
            "fan": {"protocol": "redis", "listen": addr(cls.fan_port), "policy": "fanout",
                    "server_failure_limit": 1000000, "children": children},
        }
        cls.proxy = Dproxy(cls.procs, ARGS.dproxy, pools)

    @classmethod
    def tearDownClass(cls):
        rcs = close_all(cls.procs, cls.proxy)
        assert rcs == [0], f"dproxy exited with {rcs}"

    def on_every_replica(self, key):
        return [self.direct(b.port).get(key) for b in self.r]

    def test_set_reaches_every_replica(self):
        c = self.raw(self.port)
        keys = [self.k(i) for i in range(20)]
        for i, key in enumerate(keys):
            self.assertEqual(c.call("SET", key, f"v{i}"), b"OK")
        for i, key in enumerate(keys):
            self.assertEqual(self.on_every_replica(key), [f"v{i}".encode()] * 2, key)

    def test_del_reaches_every_replica(self):
        key = self.k("d")
        for b in self.r:
            self.direct(b.port).set(key, "x")
        self.assertEqual(self.call(self.port, "DEL", key), 1)
        self.assertEqual(self.on_every_replica(key), [None, None])
        self.assertEqual(self.call(self.port, "DEL", key), 0)

    def test_incr_append_reach_every_replica(self):
        c = self.raw(self.port)
        key, text = self.k("n"), self.k("s")
        self.assertEqual(c.call("SET", key, "10"), b"OK")
        self.assertEqual(c.call("INCR", key), 11)
        self.assertEqual(c.call("INCRBY", key, 4), 15)
        self.assertEqual(c.call("DECR", key), 14)
        self.assertEqual(self.on_every_replica(key), [b"14", b"14"])
        self.assertEqual(c.call("APPEND", text, "ab"), 2)
        self.assertEqual(c.call("APPEND", text, "cd"), 4)
        self.assertEqual(self.on_every_replica(text), [b"abcd", b"abcd"])
        # Other types: a hash and a list.
        h, lst = self.k("h"), self.k("l")
        self.assertEqual(c.call("HSET", h, "f", "v"), 1)
        self.assertEqual(c.call("RPUSH", lst, "a", "b"), 2)
        for b in self.r:
            self.assertEqual(self.direct(b.port).hgetall(h), {b"f": b"v"})
            self.assertEqual(self.direct(b.port).lrange(lst, 0, -1), [b"a", b"b"])

    def test_incr_with_write_ack_all_answers_first_childs_value(self):
        key = self.k("n")
        self.direct(self.r[0].port).set(key, 100)
        self.direct(self.r[1].port).set(key, 7)
        self.assertEqual(self.call(self.port, "INCR", key), 101)
        self.assertEqual(self.on_every_replica(key), [b"101", b"8"])

    def test_reads_go_to_first_child_by_default(self):
        key = self.k("first")
        self.direct(self.r[0].port).set(key, "from-0")
        self.direct(self.r[1].port).set(key, "from-1")
        before = [self.hits(b.port) for b in self.r]
        c = self.raw(self.port)
        for _ in range(6):
            self.assertEqual(c.call("GET", key), b"from-0")
        after = [self.hits(b.port) for b in self.r]
        self.assertEqual([a - b for a, b in zip(after, before)], [6, 0])
        self.assertEqual(c.call("STRLEN", key), 6)
        self.assertEqual(c.call("MGET", key, self.k("none")), [b"from-0", None])

    def test_miss_without_failover_on_miss(self):
        key = self.k("m")
        self.assertEqual(self.call(self.port, "SET", key, "both"), b"OK")
        self.assertEqual(self.direct(self.r[0].port).delete(key), 1)
        self.assertIsNone(self.call(self.port, "GET", key))
        self.assertEqual(self.direct(self.r[1].port).get(key), b"both")

    def test_failover_on_miss(self):
        key = self.k("m")
        self.assertEqual(self.call(self.fom_port, "SET", key, "both"), b"OK")
        self.assertEqual(self.direct(self.r[0].port).delete(key), 1)
        self.assertEqual(self.call(self.fom_port, "GET", key), b"both")
        self.assertIsNone(self.call(self.fom_port, "GET", self.k("nowhere")))
        key2 = self.k("m2")
        self.direct(self.r[0].port).set(key2, "zero")
        self.direct(self.r[1].port).set(key2, "one")
        before = self.hits(self.r[1].port)
        self.assertEqual(self.call(self.fom_port, "GET", key2), b"zero")
        self.assertEqual(self.hits(self.r[1].port), before)

    def test_read_round_robin_spreads_reads(self):
        key = self.k("rr")
        self.assertEqual(self.call(self.rr_port, "SET", key, "v"), b"OK")
        before = [self.hits(b.port) for b in self.r]
        c = self.raw(self.rr_port)
        for _ in range(10):
            self.assertEqual(c.call("GET", key), b"v")
        after = [self.hits(b.port) for b in self.r]
        self.assertEqual([a - b for a, b in zip(after, before)], [5, 5])
        key2 = self.k("rr2")
        self.direct(self.r[0].port).set(key2, "A")
        self.direct(self.r[1].port).set(key2, "B")
        seen = [c.call("GET", key2) for _ in range(6)]
        self.assertEqual(sorted(seen), [b"A"] * 3 + [b"B"] * 3)
        self.assertTrue(all(seen[i] != seen[i + 1] for i in range(5)), seen)

    def test_read_hash_is_stable_per_key(self):
        picks = {}
        for i in range(24):
            key = self.k(i)
            self.direct(self.r[0].port).set(key, "A")
            self.direct(self.r[1].port).set(key, "B")
            seen = {self.call(self.hash_port, "GET", key) for _ in range(3)}
            self.assertEqual(len(seen), 1, (key, seen))
            picks[key] = seen.pop()
        self.assertEqual(set(picks.values()), {b"A", b"B"}, picks)
        key = next(k for k, v in picks.items() if v == b"B")
        before = [self.hits(b.port) for b in self.r]
        c = self.raw(self.hash_port)
        for _ in range(4):
            self.assertEqual(c.call("GET", key), b"B")
        after = [self.hits(b.port) for b in self.r]
        self.assertEqual([a - b for a, b in zip(after, before)], [0, 4])

    def test_set_nx_ranking_nil_wins_over_ok(self):
        # The key exists on replica 1 only: child 0 answers +OK, child 1 nil.
        key = self.k("nx1")
        self.direct(self.r[1].port).set(key, "old")
        self.assertIsNone(self.call(self.port, "SET", key, "new", "NX"))
        self.assertEqual(self.on_every_replica(key), [b"new", b"old"])
        key = self.k("nx0")
        self.direct(self.r[0].port).set(key, "old")
        c = self.raw(self.port)
        c.send(harness.resp_command("SET", key, "new", "NX"))
        self.assertEqual(c.read_raw_reply(), b"$-1\r\n")
        self.assertEqual(self.on_every_replica(key), [b"old", b"new"])

    def test_error_reply_ranks_below_success(self):
        # INCR of a non-number on replica 1 only: the server's error wins over a number.
        key = self.k("e")
        self.direct(self.r[0].port).set(key, "1")
        self.direct(self.r[1].port).set(key, "abc")
        reply = self.call(self.port, "INCR", key)
        self.assertIsInstance(reply, RespError)
        self.assertEqual(reply, b"ERR value is not an integer or out of range")
        self.assertEqual(self.on_every_replica(key), [b"2", b"abc"])

    # EVAL / EVALSHA / FCALL are rejected: their writes would reach one replica only.

    # Regression (fixed): RoutedExecution::dispatch_redis (src/core/session/routed_execution.cpp) rejects a non-write command
    # only when the command table sets kCmdMayReplicate, but redis-server 7.0.15's COMMAND INFO
    # does not report may_replicate, so scripts/gen_redis_commands.py never sets it (0 uses in
    # command_table_data.inc): EVAL is treated as a read and runs on the first replica only
    # (a SET inside the script lands on replica 0, replica 1 never sees it).
    def test_eval_with_key_rejected(self):
        key = self.k("ev")
        c = self.raw(self.port)
        self.assertEqual(c.call("EVAL", SET_SCRIPT, 1, key, "x"),
                         RespError(EVAL_ERROR.format("EVAL").encode()))
        self.assertEqual(self.on_every_replica(key), [None, None])
        self.assertEqual(c.call("EVAL", GET_SCRIPT, 1, key),
                         RespError(EVAL_ERROR.format("EVAL").encode()))
        c.call("PING")

    # Regression (fixed): as for EVAL (kCmdMayReplicate is never set by the generated command table).
    def test_evalsha_with_key_rejected(self):
        key = self.k("ev")
        sha = self.call(self.port, "SCRIPT", "LOAD", SET_SCRIPT)
        self.assertEqual(self.call(self.port, "EVALSHA", sha, 1, key, "x"),
                         RespError(EVAL_ERROR.format("EVALSHA").encode()))
        self.assertEqual(self.on_every_replica(key), [None, None])

    # Regression (fixed): as for EVAL (kCmdMayReplicate is never set by the generated command table).
    def test_fcall_with_key_rejected(self):
        key = self.k("fc")
        self.assertEqual(self.call(self.port, "FCALL", "nosuchfunction", 1, key),
                         RespError(EVAL_ERROR.format("FCALL").encode()))

    def test_blocking_commands_refused_with_the_reason(self):
        # A pop must happen on one server; replicated and fanout pools write to several.
        reason = (b"blocking commands would stall other clients' requests on the shared "
                  b"backend connection")
        for port in (self.port, self.fan_port):
            c = self.raw(port)
            for cmd in (("BLPOP", self.k("l"), "0"), ("WAIT", "0", "0")):
                self.assertEqual(c.call(*cmd), RespError(
                    b"ERR dproxy: " + cmd[0].encode() + b" is not supported (" + reason + b")"))
            self.assertEqual(c.call("XREAD", "BLOCK", "0", "STREAMS", self.k("s"), "$"),
                             RespError(b"ERR dproxy: XREAD with BLOCK is not supported (" +
                                       reason + b")"))
            self.assertEqual(c.call("PING"), b"PONG")

    def test_eval_ro_and_evalsha_ro_allowed(self):
        key = self.k("ro")
        c = self.raw(self.port)
        self.assertEqual(c.call("SET", key, "val"), b"OK")
        self.assertEqual(c.call("EVAL_RO", GET_SCRIPT, 1, key), b"val")
        sha = c.call("SCRIPT", "LOAD", GET_SCRIPT)
        self.assertEqual(sha, hashlib.sha1(GET_SCRIPT.encode()).hexdigest().encode())
        for b in self.r:  # SCRIPT LOAD reached both replicas
            self.assertEqual(self.direct(b.port).script_exists(sha.decode()), [True])
        self.assertEqual(c.call("EVALSHA_RO", sha, 1, key), b"val")
        # EVAL_RO fails over like any read.
        key2 = self.k("ro2")
        self.direct(self.r[1].port).set(key2, "one")
        self.assertIsNone(c.call("EVAL_RO", GET_SCRIPT, 1, key2))
        self.assertEqual(self.call(self.fom_port, "EVAL_RO", GET_SCRIPT, 1, key2), b"one")

    def test_flushall_reaches_every_replica(self):
        keys = [self.k(i) for i in range(4)]
        for b in self.r:
            for key in keys:
                self.direct(b.port).set(key, "x")
        self.assertEqual(self.call(self.port, "FLUSHALL"), b"OK")
        for b in self.r:
            self.assertEqual(self.direct(b.port).dbsize(), 0)

    def test_dbsize_in_replicated_pool_counts_one_copy(self):
        self.direct(self.r[0].port).flushall()
        self.direct(self.r[1].port).flushall()
        c = self.raw(self.port)
        for i in range(7):
            self.assertEqual(c.call("SET", self.k(i), "x"), b"OK")
        self.direct(self.r[1].port).set(self.k("extra"), "x")
        self.assertEqual(c.call("DBSIZE"), 7)  # the first child's servers

    def test_pipelined_large_values_in_order(self):
        value = b"L" * 200000
        keys = [self.k(i) for i in range(80)]
        c = self.raw(self.rr_port)
        c.send(b"".join(harness.resp_command("SET", key, value + key.encode()) for key in keys))
        self.assertEqual([c.read_reply() for _ in keys], [b"OK"] * len(keys))
        c.send(b"".join(harness.resp_command("GET", key) for key in keys) * 2)
        for key in keys * 2:
            self.assertEqual(c.read_reply(), value + key.encode())
        for key in keys[:5]:
            self.assertEqual(self.on_every_replica(key), [value + key.encode()] * 2)

    def test_inline_commands_reach_every_replica(self):
        key = self.k("inline")
        c = self.raw(self.port)
        c.send(b"SET " + key.encode() + b" typed\r\n")
        self.assertEqual(c.read_reply(), b"OK")
        c.send(b"INCR " + key.encode() + b"n\r\n")
        self.assertEqual(c.read_reply(), 1)
        self.assertEqual(self.on_every_replica(key), [b"typed", b"typed"])
        self.assertEqual(self.on_every_replica(key + "n"), [b"1", b"1"])

    def test_fanout_set_reaches_every_child(self):
        key = self.k("f")
        c = self.raw(self.fan_port)
        self.assertEqual(c.call("SET", key, "fan"), b"OK")
        self.assertEqual(self.on_every_replica(key), [b"fan", b"fan"])
        self.assertEqual(c.call("INCR", self.k("n")), 1)
        self.assertEqual(self.on_every_replica(self.k("n")), [b"1", b"1"])
        self.assertEqual(c.call("EVAL", SET_SCRIPT, 1, key, "ev"), b"OK")
        self.assertEqual(self.on_every_replica(key), [b"ev", b"ev"])


class ReplicatedFailoverTest(RoutesBase):
    """kill -9 of the first child's server: reads fail over, the client sees no error."""

    def setUp(self):
        super().setUp()
        self.procs = Processes()
        self.proxy = None
        self.addCleanup(lambda: close_all(self.procs, *([self.proxy] if self.proxy else [])))
        self.r = [self.procs.redis() for _ in range(2)]

    def start(self, **extra):
        self.port = free_port()
        pool = replicated_pool(self.port, [addr(b.port) for b in self.r], **extra)
        self.proxy = Dproxy(self.procs, ARGS.dproxy, {"rep": pool})

    def check_failover(self):
        keys = [self.k(i) for i in range(10)]
        c = self.raw(self.port)
        for key in keys:
            self.assertEqual(c.call("SET", key, key), b"OK")
        self.assertEqual(c.call("GET", keys[0]), keys[0].encode())
        self.procs.kill(self.r[0])  # SIGKILL
        for key in keys:
            self.assertEqual(c.call("GET", key), key.encode())
            self.assertEqual(self.call(self.port, "GET", key), key.encode())
        self.assertEqual(c.call("MGET", keys[0], keys[1]), [keys[0].encode(), keys[1].encode()])
        c.send(b"".join(harness.resp_command("GET", key) for key in keys))
        for key in keys:
            self.assertEqual(c.read_reply(), key.encode())
        self.assertIsNone(self.proxy.proc.poll())
        return keys

    def test_read_failover_when_first_child_killed(self):
        self.start()
        self.check_failover()

    def test_read_failover_once_first_child_marked_down(self):
        self.start(server_failure_limit=2, server_retry_timeout_ms=60000)
        keys = self.check_failover()
        self.assertTrue(wait_for(lambda: "marked DOWN" in self.proxy.log_text(), 5))
        # Reads skip the down server at once.
        for key in keys:
            self.assertEqual(self.call(self.port, "GET", key), key.encode())

    def test_read_failover_with_failover_on_miss_and_round_robin(self):
        self.start(read="round_robin", failover_on_miss=True)
        self.check_failover()


# --- write_ack with replicas down ------------------------------------------------------------


class WriteAckTest(RoutesBase):
    @classmethod
    def setUpClass(cls):
        cls.procs = Processes()
        cls.r = [cls.procs.redis() for _ in range(2)]
        cls.dead = [free_port() for _ in range(2)]
        live0, live1 = (addr(b.port) for b in cls.r)
        dead1, dead2 = (addr(p) for p in cls.dead)
        cls.ports, pools = {}, {}
        for name, ack, children in (
                ("all1", "all", [live0, live1, dead1]),
                ("majority1", "majority", [live0, live1, dead1]),
                ("one1", "one", [live0, live1, dead1]),
                ("all2", "all", [live0, dead1, dead2]),
                ("majority2", "majority", [live0, dead1, dead2]),
                ("one2", "one", [live0, dead1, dead2]),
                ("deadfirst_one", "one", [dead1, live0, live1])):
            cls.ports[name] = free_port()
            pools[name] = replicated_pool(cls.ports[name], children, write_ack=ack)
        cls.proxy = Dproxy(cls.procs, ARGS.dproxy, pools)

    @classmethod
    def tearDownClass(cls):
        rcs = close_all(cls.procs, cls.proxy)
        assert rcs == [0], f"dproxy exited with {rcs}"

    def live_values(self, key, n=2):
        return [self.direct(b.port).get(key) for b in self.r[:n]]

    def assert_dead_error(self, reply, port):
        self.assertIsInstance(reply, RespError)
        self.assertTrue(reply.startswith(dead_error_prefix(port)), reply)

    def test_all_with_one_down_is_the_dead_backends_error(self):
        key = self.k("x")
        self.assert_dead_error(self.call(self.ports["all1"], "SET", key, "v"), self.dead[0])
        self.assertEqual(self.live_values(key), [b"v", b"v"])
        self.assert_dead_error(self.call(self.ports["all1"], "INCR", self.k("n")), self.dead[0])
        self.assert_dead_error(self.call(self.ports["all1"], "DEL", key), self.dead[0])
        self.assertEqual(self.live_values(key), [None, None])

    def test_majority_with_one_down_succeeds(self):
        key = self.k("x")
        self.assertEqual(self.call(self.ports["majority1"], "SET", key, "v"), b"OK")
        self.assertEqual(self.live_values(key), [b"v", b"v"])
        self.assertEqual(self.call(self.ports["majority1"], "INCR", self.k("n")), 1)

    def test_one_with_one_down_succeeds(self):
        key = self.k("x")
        self.assertEqual(self.call(self.ports["one1"], "SET", key, "v"), b"OK")
        self.assertTrue(wait_for(lambda: self.live_values(key) == [b"v", b"v"], 5))
        self.assertEqual(self.call(self.ports["deadfirst_one"], "SET", key, "w"), b"OK")
        self.assertTrue(wait_for(lambda: self.live_values(key) == [b"w", b"w"], 5))
        self.assertEqual(self.call(self.ports["deadfirst_one"], "GET", key), b"w")

    def test_two_down(self):
        key = self.k("x")
        self.assert_dead_error(self.call(self.ports["all2"], "SET", key, "v"), self.dead[0])
        self.assert_dead_error(self.call(self.ports["majority2"], "SET", key, "v"),
                               self.dead[0])
        self.assertEqual(self.direct(self.r[0].port).get(key), b"v")
        self.assertEqual(self.call(self.ports["one2"], "SET", key, "w"), b"OK")
        self.assertTrue(wait_for(lambda: self.direct(self.r[0].port).get(key) == b"w",
                                         5))


# --- fanout ----------------------------------------------------------------------------------


class FanoutTest(RoutesBase):
    @classmethod
    def setUpClass(cls):
        cls.procs = Processes()
        cls.r = [cls.procs.redis() for _ in range(3)]
        cls.dead = free_port()
        live = [addr(b.port) for b in cls.r]
        cls.ports, pools = {}, {}
        for name, reply, children in (
                ("all", "all", live),
                ("all_dead", "all", [live[0], live[1], addr(cls.dead)]),
                ("first_dead", "first", [addr(cls.dead), live[0], live[1]]),
                ("majority_dead", "majority", [live[0], addr(cls.dead), live[1]])):
            cls.ports[name] = free_port()
            pools[name] = {"protocol": "redis", "listen": addr(cls.ports[name]),
                           "policy": "fanout", "reply": reply, "timeout_ms": 2000,
                           "connect_timeout_ms": 500, "server_failure_limit": 1000000,
                           "children": children}
        cls.proxy = Dproxy(cls.procs, ARGS.dproxy, pools)

    @classmethod
    def tearDownClass(cls):
        rcs = close_all(cls.procs, cls.proxy)
        assert rcs == [0], f"dproxy exited with {rcs}"

    def values(self, key, n=3):
        return [self.direct(b.port).get(key) for b in self.r[:n]]

    def test_every_request_reaches_every_child(self):
        c = self.raw(self.ports["all"])
        keys = [self.k(i) for i in range(10)]
        for key in keys:
            self.assertEqual(c.call("SET", key, "f"), b"OK")
        for key in keys:
            self.assertEqual(self.values(key), [b"f"] * 3)
        before = [self.hits(b.port) for b in self.r]
        self.assertEqual(c.call("GET", keys[0]), b"f")
        after = [self.hits(b.port) for b in self.r]
        self.assertEqual([a - b for a, b in zip(after, before)], [1, 1, 1])
        self.assertEqual(c.call("DEL", keys[1]), 1)
        self.assertEqual(self.values(keys[1]), [None] * 3)

    def test_reply_all_with_one_dead_is_an_error(self):
        key = self.k("x")
        reply = self.call(self.ports["all_dead"], "SET", key, "v")
        self.assertIsInstance(reply, RespError)
        self.assertTrue(reply.startswith(dead_error_prefix(self.dead)), reply)
        self.assertEqual(self.values(key, 2), [b"v", b"v"])

    def test_reply_first_with_one_dead_succeeds(self):
        key = self.k("x")
        self.assertEqual(self.call(self.ports["first_dead"], "SET", key, "v"), b"OK")
        self.assertTrue(wait_for(lambda: self.values(key, 2) == [b"v", b"v"], 5))
        self.assertEqual(self.call(self.ports["first_dead"], "GET", key), b"v")

    def test_reply_majority_with_one_dead_succeeds(self):
        key = self.k("x")
        self.assertEqual(self.call(self.ports["majority_dead"], "SET", key, "v"), b"OK")
        self.assertEqual(self.values(key, 2), [b"v", b"v"])
        self.assertEqual(self.call(self.ports["majority_dead"], "GET", key), b"v")


# --- nested: replicated over two ketama shard sets ------------------------------------------


class NestedTest(RoutesBase):
    def setUp(self):
        super().setUp()
        self.procs = Processes()
        self.proxies = []
        self.addCleanup(lambda: close_all(self.procs, *self.proxies))
        self.a = [self.procs.redis() for _ in range(2)]
        self.b = [self.procs.redis() for _ in range(2)]
        self.port, self.plain_a, self.plain_b = (free_port() for _ in range(3))
        set_a = shard_set([m.port for m in self.a], ["east-a", "east-b"])
        set_b = shard_set([m.port for m in self.b], ["west-a", "west-b"])
        base = {"protocol": "redis", "hash": "md5", "timeout_ms": 2000,
                "server_failure_limit": 1000000}
        pools = {
            "nested": dict(base, listen=addr(self.port), policy="replicated",
                           children=[set_a, set_b]),
            "plain_a": dict(base, listen=addr(self.plain_a), policy="ketama",
                            servers=set_a["servers"]),
            "plain_b": dict(base, listen=addr(self.plain_b), policy="ketama",
                            servers=set_b["servers"]),
        }
        self.proxies.append(Dproxy(self.procs, ARGS.dproxy, pools))

    def holders(self, backends, keys):
        return harness.redis_key_on([b.port for b in backends], keys)

    def write_keys(self, n):
        keys = [self.k(i) for i in range(n)]
        c = self.raw(self.port)
        for key in keys:
            self.assertEqual(c.call("SET", key, key), b"OK")
        return keys

    def test_each_key_on_one_server_per_set_at_ketama_placement(self):
        keys = self.write_keys(60)
        in_a, in_b = self.holders(self.a, keys), self.holders(self.b, keys)
        pa, pb = self.raw(self.plain_a), self.raw(self.plain_b)
        for key in keys:
            self.assertEqual(len(in_a[key]), 1, (key, in_a[key]))
            self.assertEqual(len(in_b[key]), 1, (key, in_b[key]))
            self.assertEqual(pa.call("GET", key), key.encode())
            self.assertEqual(pb.call("GET", key), key.encode())
        self.assertEqual(len({v[0] for v in in_a.values()}), 2)
        self.assertEqual(len({v[0] for v in in_b.values()}), 2)
        # Cross-key requests must stay on one server per child.
        k0 = next(k for k in keys if in_a[k] == [self.a[0].port])
        k1 = next(k for k in keys if in_a[k] == [self.a[1].port])
        self.assertEqual(
            self.call(self.port, "MGET", k0, k1),
            RespError(b"CROSSSLOT dproxy: the keys of this request map to different servers "
                      b"of child 0 of this replicated/fanout pool; keep them together with a "
                      b"hash tag, e.g. {user1}.a and {user1}.b"))

    def test_broadcast_reads_use_the_first_child_writes_reach_every_server(self):
        keys = self.write_keys(300)
        c = self.raw(self.port)
        # One copy of the data: the first child's two servers.
        self.assertEqual(c.call("DBSIZE"), 300)
        self.assertEqual(sorted(k.decode() for k in c.call("KEYS", self.prefix + "*")),
                         sorted(keys))
        cursor, seen = b"0", []
        for _ in range(1000):
            cursor, page = c.call("SCAN", cursor, "MATCH", self.prefix + "*", "COUNT", 10)
            seen.extend(k.decode() for k in page)
            if cursor == b"0":
                break
        self.assertEqual(cursor, b"0")
        self.assertEqual(len(seen), len(set(seen)))
        self.assertEqual(sorted(seen), sorted(keys))
        self.assertIn(c.call("RANDOMKEY").decode(), keys)
        # Writes: every server of both sets.
        sha = c.call("SCRIPT", "LOAD", GET_SCRIPT)
        for b in self.a + self.b:
            self.assertEqual(self.direct(b.port).script_exists(sha.decode()), [True])
        self.assertEqual(c.call("EVALSHA_RO", sha, 1, keys[0]), keys[0].encode())
        self.assertEqual(c.call("SCRIPT", "EXISTS", sha), [1])
        self.assertEqual(c.call("FLUSHALL"), b"OK")
        for b in self.a + self.b:
            self.assertEqual(self.direct(b.port).dbsize(), 0)
        self.assertEqual(c.call("DBSIZE"), 0)

    def test_read_fails_over_from_set_a_to_set_b(self):
        keys = self.write_keys(40)
        in_a = self.holders(self.a, keys)
        on_a0 = [k for k in keys if in_a[k] == [self.a[0].port]]
        self.assertTrue(0 < len(on_a0) < len(keys), len(on_a0))
        self.procs.kill(self.a[0])
        c = self.raw(self.port)
        for key in keys:
            self.assertEqual(c.call("GET", key), key.encode(), key)
            self.assertEqual(self.call(self.port, "GET", key), key.encode(), key)
        self.assertIsNone(self.proxies[0].proc.poll())


# --- broadcast commands in a sharded pool ----------------------------------------------------


class BroadcastTest(RoutesBase):
    @classmethod
    def setUpClass(cls):
        cls.procs = Processes()
        cls.r = [cls.procs.redis() for _ in range(3)]
        cls.ports = [b.port for b in cls.r]
        cls.port = free_port()
        pools = {"shard": {"protocol": "redis", "listen": addr(cls.port), "policy": "ketama",
                           "hash": "md5", "timeout_ms": 5000,
                           "servers": [f"{addr(p)}:1 s{i}" for i, p in enumerate(cls.ports)]}}
        cls.proxy = Dproxy(cls.procs, ARGS.dproxy, pools)

    @classmethod
    def tearDownClass(cls):
        rcs = close_all(cls.procs, cls.proxy)
        assert rcs == [0], f"dproxy exited with {rcs}"

    def setUp(self):
        super().setUp()
        for p in self.ports:
            self.direct(p).flushall()
            self.direct(p).script_flush()

    def fill(self, n, prefix=None):
        """`n` keys written through dproxy (pipelined); returns them (str)."""
        prefix = prefix or self.prefix
        keys = [f"{prefix}{i}" for i in range(n)]
        import redis
        r = redis.Redis(host=HOST, port=self.port, socket_timeout=30)
        self.addCleanup(r.close)
        for start in range(0, n, 500):
            pipe = r.pipeline(transaction=False)
            for key in keys[start:start + 500]:
                pipe.set(key, "v")
            self.assertTrue(all(pipe.execute()))
        return keys

    def backend_dbsizes(self):
        return [self.direct(p).dbsize() for p in self.ports]

    def test_flushall_and_flushdb_reach_every_server(self):
        for cmd in ("FLUSHALL", "FLUSHDB"):
            self.fill(60)
            self.assertTrue(all(n > 0 for n in self.backend_dbsizes()), self.backend_dbsizes())
            self.assertEqual(self.call(self.port, cmd), b"OK", cmd)
            self.assertEqual(self.backend_dbsizes(), [0, 0, 0], cmd)
        self.fill(30)
        self.assertEqual(self.call(self.port, "FLUSHALL", "ASYNC"), b"OK")
        self.assertTrue(wait_for(lambda: self.backend_dbsizes() == [0, 0, 0], 5))

    def test_dbsize_is_the_sum(self):
        self.fill(100)
        self.direct(self.ports[2]).set("only-on-2", "x")
        sizes = self.backend_dbsizes()
        self.assertEqual(sum(sizes), 101)
        self.assertEqual(self.call(self.port, "DBSIZE"), sum(sizes))

    def test_keys_is_the_union(self):
        keys = self.fill(90)
        self.fill(10, prefix="other:")
        got = self.call(self.port, "KEYS", self.prefix + "*")
        self.assertEqual(len(got), len(keys))  # no duplicates
        self.assertEqual(sorted(k.decode() for k in got), sorted(keys))
        self.assertEqual(len(self.call(self.port, "KEYS", "*")), 100)
        self.assertEqual(self.call(self.port, "KEYS", "nomatch*"), [])

    def scan_all(self, *extra, limit=20000):
        c = self.raw(self.port)
        cursor, seen, calls = b"0", [], 0
        while True:
            reply = c.call("SCAN", cursor, *extra)
            self.assertIsInstance(reply, list, reply)
            cursor, page = reply
            seen.extend(k.decode() for k in page)
            calls += 1
            if cursor == b"0":
                return seen, calls
            self.assertLess(calls, limit)

    def test_scan_walks_every_key_exactly_once(self):
        keys = self.fill(3000)
        others = self.fill(300, prefix="other:")
        self.assertTrue(all(n > 500 for n in self.backend_dbsizes()), self.backend_dbsizes())
        seen, calls = self.scan_all("MATCH", self.prefix + "*", "COUNT", 10)
        self.assertEqual(len(seen), len(set(seen)), "a key was returned twice")
        self.assertEqual(sorted(seen), sorted(keys))
        self.assertGreater(calls, 3)
        seen, _ = self.scan_all("COUNT", 1000)
        self.assertEqual(len(seen), len(set(seen)))
        self.assertEqual(sorted(seen), sorted(keys + others))

    def test_scan_walks_servers_one_by_one(self):
        # One key per server: the cursor moves from server 0 to 1 to 2 and then ends at 0.
        keys = self.fill(30)
        per_server = harness.redis_key_on(self.ports, keys)
        c = self.raw(self.port)
        cursor, pages = b"0", []
        for _ in range(100):
            cursor, page = c.call("SCAN", cursor, "COUNT", 1000)
            pages.append(sorted(k.decode() for k in page))
            if cursor == b"0":
                break
        self.assertEqual(cursor, b"0")
        expected = [sorted(k for k in keys if per_server[k] == [p]) for p in self.ports]
        self.assertEqual(pages, expected)
        # An empty pool also ends at once (after walking each server).
        for p in self.ports:
            self.direct(p).flushall()
        seen, calls = self.scan_all()
        self.assertEqual((seen, calls), ([], 3))

    def test_scan_invalid_cursor(self):
        c = self.raw(self.port)
        for cursor in ("abc", "1x", "0x10", " 1", str(2 ** 64 * 3 + 5), "9" * 60):
            self.assertEqual(c.call("SCAN", cursor), RespError(b"ERR invalid cursor"), cursor)
        self.assertEqual(c.call("PING"), b"PONG")

    def test_randomkey_returns_an_existing_key(self):
        keys = set(self.fill(60))
        c = self.raw(self.port)
        got = [c.call("RANDOMKEY") for _ in range(9)]
        for k in got:
            self.assertIn(k.decode(), keys)
        # Rotating over the servers: three in a row come from three servers.
        where = harness.redis_key_on(self.ports, [k.decode() for k in got[:3]])
        self.assertEqual(len({w[0] for w in where.values()}), 3, where)
        for p in self.ports:
            self.direct(p).flushall()
        self.assertIsNone(c.call("RANDOMKEY"))

    # Regression (fixed): RANDOMKEY is forwarded to one server (rotating per connection); an empty server
    # answers nil, so a non-empty database (DBSIZE > 0) gets nil, which in Redis means "the
    # database is empty". Expected: nil only when every server is empty (e.g. try the next
    # server on nil). src/core/client_session_redis.cpp, redis_broadcast (name == "randomkey").
    def test_randomkey_is_nil_only_when_every_server_is_empty(self):
        key = self.fill(1)[0]
        self.assertEqual(self.call(self.port, "DBSIZE"), 1)
        c = self.raw(self.port)
        self.assertEqual([c.call("RANDOMKEY") for _ in range(6)], [key.encode()] * 6)

    def test_script_load_then_evalsha_on_every_server(self):
        sha = self.call(self.port, "SCRIPT", "LOAD", GET_SCRIPT)
        self.assertEqual(sha, hashlib.sha1(GET_SCRIPT.encode()).hexdigest().encode())
        for p in self.ports:
            self.assertEqual(self.direct(p).script_exists(sha.decode()), [True])
        keys = self.fill(30)
        per_server = harness.redis_key_on(self.ports, keys)
        c = self.raw(self.port)
        for p in self.ports:
            key = next(k for k in keys if per_server[k] == [p])
            self.assertEqual(c.call("EVALSHA", sha, 1, key), b"v")
            self.assertEqual(c.call("EVALSHA_RO", sha, 1, key), b"v")

    def test_script_exists_and_flush(self):
        c = self.raw(self.port)
        sha = c.call("SCRIPT", "LOAD", GET_SCRIPT)
        bogus = "0" * 40
        self.assertEqual(c.call("SCRIPT", "EXISTS", sha, bogus), [1, 0])
        # Loaded on one server only: not usable everywhere, so 0.
        only_one = self.direct(self.ports[1]).script_load("return 42")
        self.assertEqual(c.call("SCRIPT", "EXISTS", only_one, sha), [0, 1])
        self.assertEqual(c.call("SCRIPT", "FLUSH"), b"OK")
        for p in self.ports:
            self.assertEqual(self.direct(p).script_exists(sha.decode(), only_one), [False, False])
        self.assertEqual(c.call("SCRIPT", "EXISTS", sha), [0])
        key = self.fill(1)[0]
        reply = c.call("EVALSHA", sha, 1, key)
        self.assertIsInstance(reply, RespError)
        self.assertTrue(reply.startswith(b"NOSCRIPT"), reply)


if __name__ == "__main__":
    ARGS = harness.parse_args()
    warnings.simplefilter("ignore", ResourceWarning)
    unittest.main(verbosity=2)
