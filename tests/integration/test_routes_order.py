"""Replicated pools with failover_on_miss (issue 23), memcached and Redis, every read mode:

- a read never reflects a write the same client sent after it (the pipelined "get k" then
  "set k" stream, k missing: the get must miss), also when the read fails over on a timeout;
- a multi-key read (memcached get / gets, Redis MGET) fails over only the keys a child misses
  and answers exactly what key-by-key reads answer;
- both while another connection writes (its writes are not held by this client's reads);
- fanout pools (reply first / majority) keep the first property without holding anything.

Every backend is a real memcached / redis-server on a free loopback port.
"""
import threading
import time
import unittest

import harness
from harness import HOST, Dproxy, Processes, RawClient, RespClient, free_port, resp_command

ARGS = None
MODES = ("first", "round_robin", "hash")
ROUNDS = 200


def addr(port):
    return f"{HOST}:{port}"


def pool(protocol, port, children, **extra):
    p = {"protocol": protocol, "listen": addr(port), "policy": "replicated", "hash": "md5",
         "timeout_ms": 2000, "connect_timeout_ms": 500, "server_failure_limit": 1000000,
         "failover_on_miss": True, "children": children}
    p.update(extra)
    return p


def fanout(protocol, port, children, reply):
    return {"protocol": protocol, "listen": addr(port), "policy": "fanout", "reply": reply,
            "timeout_ms": 2000, "server_failure_limit": 1000000, "children": children}


def mc_line(port, request):
    c = RawClient(port)
    try:
        c.send(request)
        return c.read_line()
    finally:
        c.close()


def mc_set_req(key, value):
    return b"set %s 0 0 %d\r\n%s\r\n" % (key, len(value), value)


def mc_values(items):
    """A get reply as {key: value} (an error line is returned as is)."""
    if isinstance(items, bytes):
        return items
    return {k: v for k, _, v, *_ in items}


class Writer:
    """Another client: pipelines sets and deletes of its own keys through dproxy on its own
    connection until stopped; counts the replies it checked."""

    def __init__(self, port, redis, prefix):
        self.port, self.redis, self.prefix = port, redis, prefix
        self.done = 0
        self.error = None
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        try:
            c = (RespClient if self.redis else RawClient)(self.port)
            try:
                i = 0
                while not self.stop_flag.is_set() and i < 1_000_000:
                    key = self.prefix + b"%d" % (i % 50)
                    if self.redis:
                        c.send(resp_command("SET", key, b"w%d" % i) + resp_command("DEL", key))
                        assert c.read_reply() == b"OK"
                        assert c.read_reply() == 1
                    else:
                        c.send(mc_set_req(key, b"w%d" % i) + b"delete " + key + b"\r\n")
                        assert c.read_line() == b"STORED\r\n"
                        assert c.read_line() == b"DELETED\r\n"
                    self.done += 1
                    i += 1
            finally:
                c.close()
        except Exception as e:  # reported by stop()
            self.error = e

    def stop(self):
        self.stop_flag.set()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "the concurrent writer hung"
        assert self.error is None, f"the concurrent writer failed: {self.error!r}"
        return self.done


class OrderBase:
    """The checks, run for each protocol by the TestCase classes below."""

    REDIS = False

    @classmethod
    def setUpClass(cls):
        cls.procs = Processes()
        make = cls.procs.redis if cls.REDIS else cls.procs.memcached
        cls.b = [make() for _ in range(2)]
        children = [addr(b.port) for b in cls.b]
        proto = "redis" if cls.REDIS else "memcached"
        cls.ports = {m: free_port() for m in MODES}
        pools = {m: pool(proto, cls.ports[m], children, read=m) for m in MODES}
        cls.slow_port = free_port()
        pools["slow"] = pool(proto, cls.slow_port, children, timeout_ms=300)
        # Child 0 has no server listening: reads fail over on a connection error ("dead"), or
        # skip child 0 once it is marked down ("down": ejected after one failure).
        dead = addr(free_port())
        cls.dead_ports = {cause: free_port() for cause in ("dead", "down")}
        pools["dead"] = pool(proto, cls.dead_ports["dead"], [dead, children[1]])
        pools["down"] = pool(proto, cls.dead_ports["down"], [dead, children[1]],
                             server_failure_limit=1, server_retry_timeout_ms=60000)
        cls.fan_ports = {r: free_port() for r in ("first", "majority")}
        for r, p in cls.fan_ports.items():
            pools["fan_" + r] = fanout(proto, p, children, r)
        cls.proxy = Dproxy(cls.procs, ARGS.dproxy, pools)

    @classmethod
    def tearDownClass(cls):
        rc = cls.proxy.stop()
        cls.proxy.log.close()
        for p in list(cls.procs.procs):
            cls.procs.kill(p)
        cls.procs.close()
        assert rc == 0, f"dproxy exited with {rc}"

    def setUp(self):
        self.prefix = f"{self._testMethodName}:{time.monotonic_ns()}:".encode()

    def k(self, name):
        return self.prefix + str(name).encode()

    def client(self, port):
        c = (RespClient if self.REDIS else RawClient)(port)
        self.addCleanup(c.close)
        return c

    # --- protocol-specific pieces ---

    def read_then_write(self, c, key):
        """Sends "read key" then "write key = x" in one write; returns what the read saw."""
        if self.REDIS:
            c.send(resp_command("GET", key) + resp_command("SET", key, "x"))
            seen = c.read_reply()
            self.assertEqual(c.read_reply(), b"OK")
            return seen
        c.send(b"get " + key + b"\r\n" + mc_set_req(key, b"x"))
        seen = mc_values(c.read_retrieval())
        self.assertEqual(c.read_line(), b"STORED\r\n")
        return seen.get(key) if isinstance(seen, dict) else seen

    def multi_get(self, c, keys):
        """{key: value} of one multi-key read (absent keys are missing from the dict)."""
        if self.REDIS:
            c.send(resp_command("MGET", *keys))
            values = c.read_reply()
            self.assertIsInstance(values, list, values)
            return {k: v for k, v in zip(keys, values) if v is not None}
        c.send(b"get " + b" ".join(keys) + b"\r\n")
        return mc_values(c.read_retrieval())

    def single_gets(self, c, keys):
        """{key: value} from one single-key read per key (GET / get)."""
        out = {}
        for key in keys:
            if self.REDIS:
                c.send(resp_command("GET", key))
                value = c.read_reply()
                if value is not None:
                    out[key] = value
            else:
                out.update(self.multi_get(c, [key]))
        return out

    def direct_set(self, i, key, value):
        c = (RespClient if self.REDIS else RawClient)(self.b[i].port)
        try:
            if self.REDIS:
                self.assertEqual(c.call("SET", key, value), b"OK")
            else:
                c.send(mc_set_req(key, value))
                self.assertEqual(c.read_line(), b"STORED\r\n")
        finally:
            c.close()

    def empty_replica(self, i):
        """Child i loses its data, as after a restart with no persistence."""
        c = (RespClient if self.REDIS else RawClient)(self.b[i].port)
        try:
            if self.REDIS:
                self.assertEqual(c.call("FLUSHALL"), b"OK")
            else:
                c.send(b"flush_all\r\n")
                self.assertEqual(c.read_line(), b"OK\r\n")
        finally:
            c.close()

    # --- the checks ---

    def check_read_never_sees_later_write(self, port, rounds=ROUNDS):
        c = self.client(port)
        wrong = []
        for i in range(rounds):
            key = self.k(f"{port}:{i}")
            seen = self.read_then_write(c, key)
            if seen is not None:
                wrong.append((key, seen))
        self.assertEqual(wrong, [], f"{len(wrong)}/{rounds} reads saw the write sent after them")

    def check_multi_key_equals_key_by_key(self, port, keys, expected):
        c = self.client(port)
        # Several rotations of the key list: round_robin and hash start on either child.
        for r in range(8):
            order = keys[r:] + keys[:r]
            self.assertEqual(self.multi_get(c, order), expected, f"rotation {r}")
        self.assertEqual(self.single_gets(c, keys), expected)

    def replica_restarted_empty(self):
        """Keys on both children, then child 0 emptied and partly refilled (same values, as a
        replica refills): 0-9 on child 1 only, 10-14 on both, 15-19 nowhere."""
        keys = [self.k(f"m{i}") for i in range(20)]
        for i, key in enumerate(keys[:15]):
            self.direct_set(1, key, b"v%d" % i)
        self.empty_replica(0)
        for i, key in enumerate(keys[10:15], start=10):
            self.direct_set(0, key, b"v%d" % i)
        expected = {key: b"v%d" % i for i, key in enumerate(keys[:15])}
        return keys, expected

    def test_read_then_write_in_every_read_mode(self):
        for mode in MODES:
            with self.subTest(mode=mode):
                self.check_read_never_sees_later_write(self.ports[mode])

    def test_read_then_write_when_the_read_fails_over_on_a_timeout(self):
        # Child 0 frozen: the get times out there (300 ms) and fails over to child 1; the set,
        # sent after it, must not reach child 1 first.
        harness.freeze(self.b[0])
        try:
            c = self.client(self.slow_port)
            for i in range(3):
                key = self.k(f"slow{i}")
                if self.REDIS:
                    c.send(resp_command("GET", key) + resp_command("SET", key, "x"))
                    seen = c.read_reply()
                    c.read_reply()  # the set: child 0's timeout error (write_ack all)
                else:
                    c.send(b"get " + key + b"\r\n" + mc_set_req(key, b"x"))
                    seen = mc_values(c.read_retrieval())
                    seen = seen.get(key) if isinstance(seen, dict) else seen
                    c.read_line()
                self.assertIsNone(seen, f"round {i}: the get saw the later set")
        finally:
            harness.resume(self.b[0])

    def test_read_then_write_when_the_first_child_fails_or_is_down(self):
        for cause, port in self.dead_ports.items():
            with self.subTest(cause=cause):
                c = self.client(port)
                for i in range(50):
                    key = self.k(f"{cause}{i}")
                    if self.REDIS:
                        c.send(resp_command("GET", key) + resp_command("SET", key, "x"))
                        seen = c.read_reply()
                        c.read_reply()  # the set: child 0's error (write_ack all)
                    else:
                        c.send(b"get " + key + b"\r\n" + mc_set_req(key, b"x"))
                        seen = mc_values(c.read_retrieval())
                        seen = seen.get(key) if isinstance(seen, dict) else seen
                        c.read_line()
                    self.assertIsNone(seen, f"round {i}: the get saw the later set")

    def test_multi_key_read_fails_over_missing_keys_only(self):
        keys, expected = self.replica_restarted_empty()
        for mode in MODES:
            with self.subTest(mode=mode):
                self.check_multi_key_equals_key_by_key(self.ports[mode], keys, expected)

    def test_both_properties_under_a_concurrent_writer(self):
        # Another connection keeps writing (its own keys): this client's guarantees hold, and
        # the other client's writes are not held by this client's reads (it keeps going).
        keys, expected = self.replica_restarted_empty()
        writer = Writer(self.ports["first"], self.REDIS, self.k("w"))
        try:
            for mode in MODES:
                with self.subTest(mode=mode):
                    before = writer.done
                    self.check_read_never_sees_later_write(self.ports[mode], rounds=100)
                    self.check_multi_key_equals_key_by_key(self.ports[mode], keys, expected)
                    self.assertTrue(harness.wait_for(lambda: writer.done > before, 10),
                                    "the other connection's writes made no progress")
        finally:
            done = writer.stop()
        self.assertGreater(done, 0)

    def test_fanout_read_never_sees_later_write(self):
        # Fanout sends the read to every child before the write: no holding is needed.
        for reply, port in self.fan_ports.items():
            with self.subTest(reply=reply):
                self.check_read_never_sees_later_write(port, rounds=100)


class MemcachedOrderTest(OrderBase, unittest.TestCase):
    REDIS = False

    def test_gets_multi_key_fails_over_missing_keys(self):
        keys, expected = self.replica_restarted_empty()
        c = self.client(self.ports["first"])
        c.send(b"gets " + b" ".join(keys) + b"\r\n")
        items = c.read_retrieval()
        self.assertIsInstance(items, list, items)
        self.assertEqual([it[0] for it in items], [k for k in keys if k in expected])
        self.assertEqual({it[0]: it[2] for it in items}, expected)
        self.assertTrue(all(len(it) == 4 for it in items), items)  # each with its cas value


class RedisOrderTest(OrderBase, unittest.TestCase):
    REDIS = True

    def test_mget_keeps_key_order_and_nils(self):
        keys, expected = self.replica_restarted_empty()
        c = self.client(self.ports["first"])
        c.send(resp_command("MGET", *keys))
        self.assertEqual(c.read_reply(), [expected.get(k) for k in keys])
        # One key: its miss is a nil element, and it fails over as GET does.
        for key in (keys[0], keys[12], keys[19]):
            c.send(resp_command("MGET", key))
            self.assertEqual(c.read_reply(), [expected.get(key)], key)


if __name__ == "__main__":
    ARGS = harness.parse_args()
    unittest.main(verbosity=2)
