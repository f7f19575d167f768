"""memcached through dproxy's composable routes: replicated and fanout pools, write_ack / reply
modes and the reply ranking, read failover, cas rejection, nested shard sets, flush_all.

Every backend is a real memcached on a free loopback port; each check looks at the backends
directly (not only through dproxy).
"""
import time
import unittest
import warnings

import harness
from harness import HOST, Dproxy, Processes, RawClient, backend_get, free_port

ARGS = None

CAS_ERROR = (b"CLIENT_ERROR cas is not supported in a replicated or fanout pool (cas values "
             b"differ between servers)\r\n")


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
    return f"SERVER_ERROR backend {HOST}:{port} ".encode()


def direct_line(port, request):
    """Sends one request straight to a memcached; returns its one-line reply."""
    c = RawClient(port)
    try:
        c.send(request)
        return c.read_line()
    finally:
        c.close()


def direct_set(port, key, value):
    assert direct_line(port, b"set %s 0 0 %d\r\n%s\r\n" % (key, len(value), value)) == \
        b"STORED\r\n"


def direct_delete(port, key):
    return direct_line(port, b"delete %s\r\n" % key)


def stats(port):
    c = RawClient(port)
    try:
        c.send(b"stats\r\n")
        out = {}
        while True:
            line = c.read_line()
            if line == b"END\r\n":
                return out
            parts = line.decode().split()
            out[parts[1]] = parts[2]
    finally:
        c.close()


def get_hits(port):
    return int(stats(port)["get_hits"])


def close_all(procs, *proxies):
    """Stops the dproxy instances (SIGTERM: their exit codes are returned), then SIGKILLs the
    backends (memcached takes about a second to exit on SIGTERM) and cleans up."""
    rcs = [p.stop() for p in proxies]
    for p in proxies:
        p.log.close()
    for p in list(procs.procs):
        procs.kill(p)
    procs.close()
    return rcs


def replicated_pool(port, children, **extra):
    pool = {"protocol": "memcached", "listen": addr(port), "policy": "replicated",
            "hash": "md5", "timeout_ms": 2000, "connect_timeout_ms": 500,
            "server_failure_limit": 1000000, "children": children}
    pool.update(extra)
    return pool


class RoutesBase(unittest.TestCase):
    def setUp(self):
        self.prefix = f"{self._testMethodName}:{time.monotonic_ns()}:".encode()

    def k(self, name):
        return self.prefix + (name if isinstance(name, bytes) else str(name).encode())

    def raw(self, port):
        c = RawClient(port)
        self.addCleanup(c.close)
        return c

    def call(self, port, request):
        """One request on a new connection; the one-line reply."""
        c = self.raw(port)
        c.send(request)
        return c.read_line()

    def mc_get(self, port, key):
        c = self.raw(port)
        c.send(b"get " + key + b"\r\n")
        items = c.read_retrieval()
        if isinstance(items, bytes):
            return items  # an error line
        return items[0][2] if items else None

    @staticmethod
    def set_req(key, value, cmd=b"set"):
        return b"%s %s 0 0 %d\r\n%s\r\n" % (cmd, key, len(value), value)


# --- replicated: writes, reads, read modes --------------------------------------------------


class ReplicatedTest(RoutesBase):
    @classmethod
    def setUpClass(cls):
        cls.procs = Processes()
        cls.m = [cls.procs.memcached() for _ in range(2)]
        children = [addr(b.port) for b in cls.m]
        cls.port, cls.fom_port, cls.rr_port, cls.hash_port, cls.fan_port = (
            free_port() for _ in range(5))
        pools = {
            "rep": replicated_pool(cls.port, children),
            "fom": replicated_pool(cls.fom_port, children, failover_on_miss=True),
            "rr": replicated_pool(cls.rr_port, children, read="round_robin"),
            "hash": replicated_pool(cls.hash_port, children, read="hash"),
            "fan": {"protocol": "memcached", "listen": addr(cls.fan_port), "policy": "fanout",
                    "server_failure_limit": 1000000, "children": children},
        }
        cls.proxy = Dproxy(cls.procs, ARGS.dproxy, pools)

    @classmethod
    def tearDownClass(cls):
        rcs = close_all(cls.procs, cls.proxy)
        assert rcs == [0], f"dproxy exited with {rcs}"

    def on_every_replica(self, key):
        return [backend_get(b.port, key) for b in self.m]

    def test_set_reaches_every_replica(self):
        keys = [self.k(i) for i in range(20)]
        c = self.raw(self.port)
        for i, key in enumerate(keys):
            c.send(self.set_req(key, b"v%d" % i))
            self.assertEqual(c.read_line(), b"STORED\r\n")
        for i, key in enumerate(keys):
            self.assertEqual(self.on_every_replica(key), [b"v%d" % i] * 2, key)

    def test_delete_reaches_every_replica(self):
        key = self.k("d")
        for b in self.m:
            direct_set(b.port, key, b"x")
        self.assertEqual(self.call(self.port, b"delete " + key + b"\r\n"), b"DELETED\r\n")
        self.assertEqual(self.on_every_replica(key), [None, None])
        # Deleting again: NOT_FOUND everywhere.
        self.assertEqual(self.call(self.port, b"delete " + key + b"\r\n"), b"NOT_FOUND\r\n")

    def test_incr_decr_reach_every_replica(self):
        key = self.k("n")
        c = self.raw(self.port)
        c.send(self.set_req(key, b"10"))
        self.assertEqual(c.read_line(), b"STORED\r\n")
        c.send(b"incr " + key + b" 5\r\n")
        self.assertEqual(c.read_line(), b"15\r\n")
        c.send(b"decr " + key + b" 3\r\n")
        self.assertEqual(c.read_line(), b"12\r\n")
        self.assertEqual(self.on_every_replica(key), [b"12", b"12"])

    def test_incr_with_write_ack_all_answers_first_childs_value(self):
        key = self.k("n2")
        direct_set(self.m[0].port, key, b"100")
        direct_set(self.m[1].port, key, b"7")
        self.assertEqual(self.call(self.port, b"incr " + key + b" 1\r\n"), b"101\r\n")
        self.assertEqual(self.on_every_replica(key), [b"101", b"8"])

    def test_append_prepend_reach_every_replica(self):
        key = self.k("a")
        c = self.raw(self.port)
        c.send(self.set_req(key, b"mid"))
        self.assertEqual(c.read_line(), b"STORED\r\n")
        c.send(self.set_req(key, b">>", b"append"))
        self.assertEqual(c.read_line(), b"STORED\r\n")
        c.send(self.set_req(key, b"<<", b"prepend"))
        self.assertEqual(c.read_line(), b"STORED\r\n")
        self.assertEqual(self.on_every_replica(key), [b"<<mid>>"] * 2)

    def test_noreply_write_reaches_every_replica(self):
        key = self.k("nr")
        c = self.raw(self.port)
        c.send(b"set " + key + b" 0 0 2 noreply\r\nnr\r\n")
        c.send(b"get " + key + b"\r\n")
        # No reply for the noreply set: the first reply is the get's.
        self.assertEqual(c.read_retrieval(), [(key, 0, b"nr")])
        self.assertTrue(wait_for(lambda: self.on_every_replica(key) == [b"nr"] * 2, 5))

    def test_reads_go_to_first_child_by_default(self):
        key = self.k("first")
        direct_set(self.m[0].port, key, b"from-0")
        direct_set(self.m[1].port, key, b"from-1")
        before = [get_hits(b.port) for b in self.m]
        for _ in range(6):
            self.assertEqual(self.mc_get(self.port, key), b"from-0")
        after = [get_hits(b.port) for b in self.m]
        self.assertEqual([a - b for a, b in zip(after, before)], [6, 0])
        # gets too (its cas value is the first replica's).
        c = self.raw(self.port)
        c.send(b"gets " + key + b"\r\n")
        items = c.read_retrieval()
        self.assertEqual(items[0][:3], (key, 0, b"from-0"))

    def test_multiget_in_replicated_pool(self):
        keys = [self.k(i) for i in range(5)]
        c = self.raw(self.port)
        for key in keys:
            c.send(self.set_req(key, key))
            self.assertEqual(c.read_line(), b"STORED\r\n")
        c.send(b"get " + b" ".join(keys + [self.k("missing")]) + b"\r\n")
        self.assertEqual(c.read_retrieval(), [(key, 0, key) for key in keys])

    def test_miss_without_failover_on_miss(self):
        key = self.k("m")
        self.assertEqual(self.call(self.port, self.set_req(key, b"both")), b"STORED\r\n")
        self.assertEqual(direct_delete(self.m[0].port, key), b"DELETED\r\n")
        self.assertIsNone(self.mc_get(self.port, key))
        self.assertEqual(backend_get(self.m[1].port, key), b"both")

    def test_failover_on_miss(self):
        key = self.k("m")
        self.assertEqual(self.call(self.fom_port, self.set_req(key, b"both")), b"STORED\r\n")
        self.assertEqual(direct_delete(self.m[0].port, key), b"DELETED\r\n")
        self.assertEqual(self.mc_get(self.fom_port, key), b"both")
        # Missing everywhere: a plain miss, no error.
        self.assertIsNone(self.mc_get(self.fom_port, self.k("nowhere")))
        # Present on child 0: child 1 is not asked.
        key2 = self.k("m2")
        direct_set(self.m[0].port, key2, b"zero")
        direct_set(self.m[1].port, key2, b"one")
        before = get_hits(self.m[1].port)
        self.assertEqual(self.mc_get(self.fom_port, key2), b"zero")
        self.assertEqual(get_hits(self.m[1].port), before)

    def test_read_round_robin_spreads_reads(self):
        key = self.k("rr")
        self.assertEqual(self.call(self.rr_port, self.set_req(key, b"v")), b"STORED\r\n")
        before = [get_hits(b.port) for b in self.m]
        c = self.raw(self.rr_port)
        for _ in range(10):
            c.send(b"get " + key + b"\r\n")
            self.assertEqual(c.read_retrieval(), [(key, 0, b"v")])
        after = [get_hits(b.port) for b in self.m]
        self.assertEqual([a - b for a, b in zip(after, before)], [5, 5])
        # Per connection: alternating children (different values on each replica show it).
        key2 = self.k("rr2")
        direct_set(self.m[0].port, key2, b"A")
        direct_set(self.m[1].port, key2, b"B")
        c2 = self.raw(self.rr_port)
        seen = []
        for _ in range(6):
            c2.send(b"get " + key2 + b"\r\n")
            seen.append(c2.read_retrieval()[0][2])
        self.assertEqual(sorted(seen), [b"A"] * 3 + [b"B"] * 3)
        self.assertTrue(all(seen[i] != seen[i + 1] for i in range(5)), seen)

    def test_read_hash_is_stable_per_key(self):
        picks = {}
        for i in range(24):
            key = self.k(i)
            direct_set(self.m[0].port, key, b"A")
            direct_set(self.m[1].port, key, b"B")
            seen = set()
            for _ in range(3):  # a new connection each time: no per-connection state
                seen.add(self.mc_get(self.hash_port, key))
            self.assertEqual(len(seen), 1, (key, seen))
            picks[key] = seen.pop()
        # Both children take some keys.
        self.assertEqual(set(picks.values()), {b"A", b"B"}, picks)
        # Counted on the backends: one key read 4 times hits one backend 4 times.
        key = next(k for k, v in picks.items() if v == b"B")
        before = [get_hits(b.port) for b in self.m]
        c = self.raw(self.hash_port)
        for _ in range(4):
            c.send(b"get " + key + b"\r\n")
            self.assertEqual(c.read_retrieval(), [(key, 0, b"B")])
        after = [get_hits(b.port) for b in self.m]
        self.assertEqual([a - b for a, b in zip(after, before)], [0, 4])

    def test_add_ranking_not_stored_wins_over_stored(self):
        # The key exists on replica 1 only: child 0 answers STORED, child 1 NOT_STORED.
        key = self.k("add1")
        direct_set(self.m[1].port, key, b"old")
        self.assertEqual(self.call(self.port, self.set_req(key, b"new", b"add")),
                         b"NOT_STORED\r\n")
        self.assertEqual(self.on_every_replica(key), [b"new", b"old"])
        # The same with the key on replica 0 only.
        key = self.k("add0")
        direct_set(self.m[0].port, key, b"old")
        self.assertEqual(self.call(self.port, self.set_req(key, b"new", b"add")),
                         b"NOT_STORED\r\n")
        self.assertEqual(self.on_every_replica(key), [b"old", b"new"])
        # replace of a key on one replica only: NOT_STORED too.
        key = self.k("rep")
        direct_set(self.m[1].port, key, b"old")
        self.assertEqual(self.call(self.port, self.set_req(key, b"new", b"replace")),
                         b"NOT_STORED\r\n")
        self.assertEqual(self.on_every_replica(key), [None, b"new"])
        # delete of a key on one replica only: NOT_FOUND wins over DELETED.
        key = self.k("del")
        direct_set(self.m[0].port, key, b"x")
        self.assertEqual(self.call(self.port, b"delete " + key + b"\r\n"), b"NOT_FOUND\r\n")
        self.assertEqual(self.on_every_replica(key), [None, None])

    def test_pipelined_large_values_in_order(self):
        value = b"L" * 200000
        keys = [self.k(i) for i in range(80)]
        c = self.raw(self.rr_port)
        c.send(b"".join(self.set_req(key, value + key) for key in keys))
        for key in keys:
            self.assertEqual(c.read_line(), b"STORED\r\n")
        c.send(b"".join(b"get " + key + b"\r\n" for key in keys) * 2)
        for key in keys * 2:
            self.assertEqual(c.read_retrieval(), [(key, 0, value + key)])
        for key in keys[:5]:
            self.assertEqual(self.on_every_replica(key), [value + key] * 2)

    def test_cas_rejected_gets_allowed(self):
        for port in (self.port, self.fan_port):
            key = self.k(port)
            c = self.raw(port)
            c.send(self.set_req(key, b"v"))
            self.assertEqual(c.read_line(), b"STORED\r\n")
            c.send(b"gets " + key + b"\r\n")
            items = c.read_retrieval()
            self.assertEqual(len(items), 1)
            self.assertEqual(items[0][:3], (key, 0, b"v"))
            cas = items[0][3]
            c.send(b"cas %s 0 0 1 %d\r\nw\r\n" % (key, cas))
            self.assertEqual(c.read_line(), CAS_ERROR)
            # The noreply form is refused silently: the next reply is the get's below.
            c.send(b"cas %s 0 0 1 %d noreply\r\nw\r\n" % (key, cas))
            # Nothing changed anywhere; the connection goes on.
            self.assertEqual(self.on_every_replica(key), [b"v", b"v"])
            c.send(b"get " + key + b"\r\n")
            self.assertEqual(c.read_retrieval(), [(key, 0, b"v")])

    def test_flush_all_reaches_every_server(self):
        keys = [self.k(i) for i in range(4)]
        for b in self.m:
            for key in keys:
                direct_set(b.port, key, b"x")
        self.assertEqual(self.call(self.port, b"flush_all\r\n"), b"OK\r\n")
        for key in keys:
            self.assertEqual(self.on_every_replica(key), [None, None])


class ReplicatedFailoverTest(RoutesBase):
    """kill -9 of the first child's server: reads fail over, the client sees no error."""

    def setUp(self):
        super().setUp()
        self.procs = Processes()
        self.proxy = None
        self.addCleanup(lambda: close_all(self.procs, *([self.proxy] if self.proxy else [])))
        self.m = [self.procs.memcached() for _ in range(2)]

    def start(self, **extra):
        self.port = free_port()
        pool = replicated_pool(self.port, [addr(b.port) for b in self.m], **extra)
        self.proxy = Dproxy(self.procs, ARGS.dproxy, {"rep": pool})

    def check_failover(self):
        keys = [self.k(i) for i in range(10)]
        c = self.raw(self.port)
        for key in keys:
            c.send(self.set_req(key, key))
            self.assertEqual(c.read_line(), b"STORED\r\n")
        c.send(b"get " + keys[0] + b"\r\n")
        self.assertEqual(c.read_retrieval(), [(keys[0], 0, keys[0])])
        self.procs.kill(self.m[0])  # SIGKILL
        # The same connection and new ones: every read is answered by child 1.
        for key in keys:
            c.send(b"get " + key + b"\r\n")
            self.assertEqual(c.read_retrieval(), [(key, 0, key)])
            self.assertEqual(self.mc_get(self.port, key), key)
        # A pipelined burst too.
        c.send(b"".join(b"get " + key + b"\r\n" for key in keys))
        for key in keys:
            self.assertEqual(c.read_retrieval(), [(key, 0, key)])
        self.assertIsNone(self.proxy.proc.poll())
        return keys

    def test_read_failover_when_first_child_killed(self):
        self.start()
        self.check_failover()

    def test_read_failover_once_first_child_marked_down(self):
        # Default failure limit (2): the server is soon marked down and skipped at once.
        self.start(server_failure_limit=2, server_retry_timeout_ms=60000)
        keys = self.check_failover()
        self.assertTrue(wait_for(lambda: "marked DOWN" in self.proxy.log_text(), 5))
        # Reads skip the down server at once.
        for key in keys:
            self.assertEqual(self.mc_get(self.port, key), key)

    def test_read_failover_with_failover_on_miss_and_round_robin(self):
        self.start(read="round_robin", failover_on_miss=True)
        self.check_failover()


# --- write_ack with replicas down ------------------------------------------------------------


class WriteAckTest(RoutesBase):
    @classmethod
    def setUpClass(cls):
        cls.procs = Processes()
        cls.m = [cls.procs.memcached() for _ in range(2)]
        cls.dead = [free_port() for _ in range(2)]  # nothing listens there
        live0, live1 = (addr(b.port) for b in cls.m)
        dead1, dead2 = (addr(p) for p in cls.dead)
        cls.ports = {}
        pools = {}
        for name, ack, children in (
                ("all1", "all", [live0, live1, dead1]),
                ("majority1", "majority", [live0, live1, dead1]),
                ("one1", "one", [live0, live1, dead1]),
                ("all2", "all", [live0, dead1, dead2]),
                ("majority2", "majority", [live0, dead1, dead2]),
                ("one2", "one", [live0, dead1, dead2]),
                ("deadfirst_one", "one", [dead1, live0, live1]),
                ("deadfirst_majority", "majority", [dead1, live0, live1])):
            cls.ports[name] = free_port()
            pools[name] = replicated_pool(cls.ports[name], children, write_ack=ack)
        cls.proxy = Dproxy(cls.procs, ARGS.dproxy, pools)

    @classmethod
    def tearDownClass(cls):
        rcs = close_all(cls.procs, cls.proxy)
        assert rcs == [0], f"dproxy exited with {rcs}"

    def set_through(self, pool, key, value=b"v"):
        return self.call(self.ports[pool], self.set_req(key, value))

    def live_values(self, key, n=2):
        return [backend_get(b.port, key) for b in self.m[:n]]

    def test_all_with_one_down_is_the_dead_backends_error(self):
        key = self.k("x")
        reply = self.set_through("all1", key)
        self.assertTrue(reply.startswith(dead_error_prefix(self.dead[0])), reply)
        self.assertTrue(reply.endswith(b"\r\n"))
        # The live replicas got the write anyway.
        self.assertEqual(self.live_values(key), [b"v", b"v"])
        # delete and incr: the same.
        reply = self.call(self.ports["all1"], b"delete " + key + b"\r\n")
        self.assertTrue(reply.startswith(dead_error_prefix(self.dead[0])), reply)
        self.assertEqual(self.live_values(key), [None, None])
        # Reads are not affected (first child is live).
        direct_set(self.m[0].port, key, b"r")
        self.assertEqual(self.mc_get(self.ports["all1"], key), b"r")

    def test_majority_with_one_down_succeeds(self):
        key = self.k("x")
        self.assertEqual(self.set_through("majority1", key), b"STORED\r\n")
        self.assertEqual(self.live_values(key), [b"v", b"v"])
        self.assertEqual(self.call(self.ports["majority1"], b"delete " + key + b"\r\n"),
                         b"DELETED\r\n")
        self.assertTrue(wait_for(lambda: self.live_values(key) == [None, None], 5))

    def test_one_with_one_down_succeeds(self):
        key = self.k("x")
        self.assertEqual(self.set_through("one1", key), b"STORED\r\n")
        self.assertTrue(wait_for(lambda: self.live_values(key) == [b"v", b"v"], 5))

    def test_dead_first_child(self):
        key = self.k("x")
        self.assertEqual(self.set_through("deadfirst_one", key), b"STORED\r\n")
        self.assertEqual(self.set_through("deadfirst_majority", key, b"w"), b"STORED\r\n")
        self.assertTrue(wait_for(lambda: self.live_values(key) == [b"w", b"w"], 5))
        # A read fails over from the dead first child.
        self.assertEqual(self.mc_get(self.ports["deadfirst_one"], key), b"w")

    def test_two_down(self):
        key = self.k("x")
        # all: the worst reply, ties to the first failing child.
        reply = self.set_through("all2", key)
        self.assertTrue(reply.startswith(dead_error_prefix(self.dead[0])), reply)
        # majority: 1 of 3 acknowledgements is not a majority.
        reply = self.set_through("majority2", key)
        self.assertTrue(reply.startswith(dead_error_prefix(self.dead[0])), reply)
        self.assertEqual(backend_get(self.m[0].port, key), b"v")
        # one: the live child's acknowledgement is enough.
        self.assertEqual(self.set_through("one2", key, b"w"), b"STORED\r\n")
        self.assertTrue(wait_for(lambda: backend_get(self.m[0].port, key) == b"w", 5))

    def test_many_pipelined_writes_with_one_down(self):
        keys = [self.k(i) for i in range(50)]
        for pool, ok in (("majority1", True), ("one1", True), ("all1", False)):
            c = self.raw(self.ports[pool])
            c.send(b"".join(self.set_req(key, pool.encode()) for key in keys))
            for key in keys:
                reply = c.read_line()
                if ok:
                    self.assertEqual(reply, b"STORED\r\n", (pool, key))
                else:
                    self.assertTrue(reply.startswith(dead_error_prefix(self.dead[0])), reply)
            self.assertTrue(wait_for(
                lambda: all(self.live_values(k) == [pool.encode()] * 2 for k in keys), 5), pool)


# --- fanout ----------------------------------------------------------------------------------


class FanoutTest(RoutesBase):
    @classmethod
    def setUpClass(cls):
        cls.procs = Processes()
        cls.m = [cls.procs.memcached() for _ in range(3)]
        cls.dead = free_port()
        live = [addr(b.port) for b in cls.m]
        cls.ports = {}
        pools = {}
        for name, reply, children in (
                ("all", "all", live),
                ("all_dead", "all", [live[0], live[1], addr(cls.dead)]),
                ("first_dead", "first", [addr(cls.dead), live[0], live[1]]),
                ("majority_dead", "majority", [live[0], addr(cls.dead), live[1]])):
            cls.ports[name] = free_port()
            pools[name] = {"protocol": "memcached", "listen": addr(cls.ports[name]),
                           "policy": "fanout", "reply": reply, "timeout_ms": 2000,
                           "connect_timeout_ms": 500, "server_failure_limit": 1000000,
                           "children": children}
        cls.proxy = Dproxy(cls.procs, ARGS.dproxy, pools)

    @classmethod
    def tearDownClass(cls):
        rcs = close_all(cls.procs, cls.proxy)
        assert rcs == [0], f"dproxy exited with {rcs}"

    def values(self, key, backends=None):
        return [backend_get(b.port, key) for b in (backends or self.m)]

    def test_every_request_reaches_every_child(self):
        port = self.ports["all"]
        keys = [self.k(i) for i in range(10)]
        c = self.raw(port)
        for key in keys:
            c.send(self.set_req(key, b"f"))
            self.assertEqual(c.read_line(), b"STORED\r\n")
        for key in keys:
            self.assertEqual(self.values(key), [b"f"] * 3)
        # Reads go to every child too.
        before = [get_hits(b.port) for b in self.m]
        c.send(b"get " + keys[0] + b"\r\n")
        self.assertEqual(c.read_retrieval(), [(keys[0], 0, b"f")])
        after = [get_hits(b.port) for b in self.m]
        self.assertEqual([a - b for a, b in zip(after, before)], [1, 1, 1])
        c.send(b"incr " + keys[1] + b" 1\r\n")
        self.assertTrue(c.read_line().startswith(b"CLIENT_ERROR"))  # "f" is not a number
        c.send(b"delete " + keys[2] + b"\r\n")
        self.assertEqual(c.read_line(), b"DELETED\r\n")
        self.assertEqual(self.values(keys[2]), [None] * 3)

    def test_reply_all_with_one_dead_is_an_error(self):
        key = self.k("x")
        reply = self.call(self.ports["all_dead"], self.set_req(key, b"v"))
        self.assertTrue(reply.startswith(dead_error_prefix(self.dead)), reply)
        self.assertEqual(self.values(key, self.m[:2]), [b"v", b"v"])

    def test_reply_first_with_one_dead_succeeds(self):
        key = self.k("x")
        self.assertEqual(self.call(self.ports["first_dead"], self.set_req(key, b"v")),
                         b"STORED\r\n")
        self.assertTrue(wait_for(lambda: self.values(key, self.m[:2]) == [b"v"] * 2, 5))
        self.assertEqual(self.mc_get(self.ports["first_dead"], key), b"v")

    def test_reply_majority_with_one_dead_succeeds(self):
        key = self.k("x")
        self.assertEqual(self.call(self.ports["majority_dead"], self.set_req(key, b"v")),
                         b"STORED\r\n")
        self.assertEqual(self.values(key, self.m[:2]), [b"v", b"v"])
        self.assertEqual(self.mc_get(self.ports["majority_dead"], key), b"v")


# --- nested: replicated over two ketama shard sets ------------------------------------------


def shard_set(ports, names):
    return {"policy": "ketama", "servers": [f"{HOST}:{p}:1 {n}" for p, n in zip(ports, names)]}


class NestedTest(RoutesBase):
    @classmethod
    def setUpClass(cls):
        cls.procs = Processes()
        cls.a = [cls.procs.memcached() for _ in range(2)]
        cls.b = [cls.procs.memcached() for _ in range(2)]
        cls.port, cls.plain_a, cls.plain_b = (free_port() for _ in range(3))
        cls.mixed, cls.plain_a_murmur, cls.plain_b_modula = (free_port() for _ in range(3))
        set_a = shard_set([m.port for m in cls.a], ["east-a", "east-b"])
        set_b = shard_set([m.port for m in cls.b], ["west-a", "west-b"])
        base = {"protocol": "memcached", "hash": "md5", "timeout_ms": 2000,
                "server_failure_limit": 1000000}
        pools = {
            "nested": dict(base, listen=addr(cls.port), policy="replicated",
                           children=[set_a, set_b]),
            "plain_a": dict(base, listen=addr(cls.plain_a), policy="ketama",
                            servers=set_a["servers"]),
            "plain_b": dict(base, listen=addr(cls.plain_b), policy="ketama",
                            servers=set_b["servers"]),
            # Children with hashes and a distribution of their own; the pool's hash_tag
            # applies to the whole tree.
            "mixed": dict(base, listen=addr(cls.mixed), policy="replicated", hash_tag="{}",
                          children=[dict(set_a, hash="murmur"),
                                    dict(set_b, policy="modula", hash="fnv1a_32")]),
            "plain_a_murmur": dict(base, listen=addr(cls.plain_a_murmur), policy="ketama",
                                  hash="murmur", hash_tag="{}", servers=set_a["servers"]),
            "plain_b_modula": dict(base, listen=addr(cls.plain_b_modula), policy="modula",
                                   hash="fnv1a_32", hash_tag="{}", servers=set_b["servers"]),
        }
        cls.proxy = Dproxy(cls.procs, ARGS.dproxy, pools)

    @classmethod
    def tearDownClass(cls):
        rcs = close_all(cls.procs, cls.proxy)
        assert rcs == [0], f"dproxy exited with {rcs}"

    def holders(self, backends, key):
        return [b.port for b in backends if backend_get(b.port, key) is not None]

    def test_each_key_on_one_server_per_set_at_ketama_placement(self):
        keys = [self.k(i) for i in range(60)]
        c = self.raw(self.port)
        for key in keys:
            c.send(self.set_req(key, key))
            self.assertEqual(c.read_line(), b"STORED\r\n")
        used_a, used_b = set(), set()
        pa, pb = self.raw(self.plain_a), self.raw(self.plain_b)
        for key in keys:
            in_a, in_b = self.holders(self.a, key), self.holders(self.b, key)
            self.assertEqual(len(in_a), 1, (key, in_a))
            self.assertEqual(len(in_b), 1, (key, in_b))
            used_a.update(in_a)
            used_b.update(in_b)
            # A plain ketama pool over the same servers and names finds it: same placement.
            pa.send(b"get " + key + b"\r\n")
            self.assertEqual(pa.read_retrieval(), [(key, 0, key)])
            pb.send(b"get " + key + b"\r\n")
            self.assertEqual(pb.read_retrieval(), [(key, 0, key)])
        # Both servers of each set take keys.
        self.assertEqual(len(used_a), 2)
        self.assertEqual(len(used_b), 2)
        # Keys written through the plain pools are read through the nested pool (from set A).
        key = self.k("plain")
        self.assertEqual(self.call(self.plain_a, self.set_req(key, b"pa")), b"STORED\r\n")
        self.assertEqual(self.mc_get(self.port, key), b"pa")

    def test_child_hash_and_distribution_and_pool_hash_tag(self):
        keys = [self.k(i) for i in range(60)] + [self.k("{tag%d}.%d" % (i % 3, i))
                                                 for i in range(12)]
        c = self.raw(self.mixed)
        for key in keys:
            c.send(self.set_req(key, key))
            self.assertEqual(c.read_line(), b"STORED\r\n")
        pa, pb = self.raw(self.plain_a_murmur), self.raw(self.plain_b_modula)
        used_a, used_b = set(), set()
        for key in keys:
            in_a, in_b = self.holders(self.a, key), self.holders(self.b, key)
            self.assertEqual((len(in_a), len(in_b)), (1, 1), key)
            used_a.update(in_a)
            used_b.update(in_b)
            pa.send(b"get " + key + b"\r\n")
            self.assertEqual(pa.read_retrieval(), [(key, 0, key)], key)
            pb.send(b"get " + key + b"\r\n")
            self.assertEqual(pb.read_retrieval(), [(key, 0, key)], key)
        self.assertEqual((len(used_a), len(used_b)), (2, 2))
        # Keys with one hash tag stay together in every child: a multi-get is allowed.
        tagged = [key for key in keys if b"{tag1}" in key]
        c.send(b"get " + b" ".join(tagged) + b"\r\n")
        self.assertEqual(c.read_retrieval(), [(key, 0, key) for key in tagged])

    def test_flush_all_reaches_every_server_of_every_set(self):
        key = self.k("f")
        for b in self.a + self.b:
            direct_set(b.port, key, b"x")
        self.assertEqual(self.call(self.port, b"flush_all\r\n"), b"OK\r\n")
        for b in self.a + self.b:
            self.assertIsNone(backend_get(b.port, key))

    def test_multi_key_request_must_map_to_one_server_per_child(self):
        # Two keys on different servers of set A (child 0).
        c = self.raw(self.port)
        keys, by_server = [], {}
        for i in range(200):
            key = self.k(i)
            c.send(self.set_req(key, b"x"))
            self.assertEqual(c.read_line(), b"STORED\r\n")
            by_server.setdefault(self.holders(self.a, key)[0], key)
            if len(by_server) == 2:
                keys = list(by_server.values())
                break
        self.assertEqual(len(keys), 2)
        c.send(b"get " + b" ".join(keys) + b"\r\n")
        self.assertEqual(
            c.read_line(),
            b"CLIENT_ERROR the keys of this request map to different servers of child 0 of "
            b"this replicated/fanout pool; keep them together with a hash tag, e.g. {user1}.a "
            b"and {user1}.b\r\n")
        # The connection goes on.
        c.send(b"get " + keys[0] + b"\r\n")
        self.assertEqual(c.read_retrieval(), [(keys[0], 0, b"x")])


class NestedFailoverTest(RoutesBase):
    def test_read_fails_over_from_set_a_to_set_b(self):
        procs = Processes()
        proxies = []
        self.addCleanup(lambda: close_all(procs, *proxies))
        a = [procs.memcached() for _ in range(2)]
        b = [procs.memcached() for _ in range(2)]
        port = free_port()
        pool = replicated_pool(port, [shard_set([m.port for m in a], ["a1", "a2"]),
                                      shard_set([m.port for m in b], ["b1", "b2"])])
        proxy = Dproxy(procs, ARGS.dproxy, {"nested": pool})
        proxies.append(proxy)
        keys = [self.k(i) for i in range(40)]
        c = self.raw(port)
        for key in keys:
            c.send(self.set_req(key, key))
            self.assertEqual(c.read_line(), b"STORED\r\n")
        on_a0 = [key for key in keys if backend_get(a[0].port, key) is not None]
        self.assertTrue(0 < len(on_a0) < len(keys), len(on_a0))
        procs.kill(a[0])  # SIGKILL the set-A server of the keys in on_a0
        for key in keys:  # every key still reads: on_a0 from set B, the others from a[1]
            c.send(b"get " + key + b"\r\n")
            self.assertEqual(c.read_retrieval(), [(key, 0, key)], key)
            self.assertEqual(self.mc_get(port, key), key)
        self.assertIsNone(proxy.proc.poll())


if __name__ == "__main__":
    ARGS = harness.parse_args()
    warnings.simplefilter("ignore", ResourceWarning)
    unittest.main(verbosity=2)
