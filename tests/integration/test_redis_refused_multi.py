"""Redis: a transaction dproxy refuses is refused whole.

dproxy runs MULTI/EXEC in sharded and redis_cluster pools (test_redis_transactions.py) but
refuses it in replicated and fanout pools (a transaction needs one server, those pools write to
several). When it refuses MULTI, every command the client queues after it, up to the matching
EXEC or DISCARD, must be refused too (Redis's own behaviour for an aborted transaction: EXEC
answers -EXECABORT and nothing is applied). This file checks, on the backends themselves, that
nothing of such a transaction is written: pipelined in one write, sent command by command,
after a refused WATCH, and through redis-py's default pipeline() (a MULTI/EXEC transaction).
"""
import unittest

import harness
from harness import HOST, Dproxy, Processes, RespClient, RespError, free_port, resp_command

ARGS = None

MULTI_REFUSED = (b"ERR dproxy: MULTI is not supported (transactions need one server, and "
                 b"replicated and fanout pools write to several)")
EXECABORT = b"EXECABORT Transaction discarded because of previous errors."


def not_queued(name):
    return (f"ERR dproxy: {name} not queued: this transaction's MULTI was refused (transactions "
            f"need one server, and replicated and fanout pools write to several), so EXEC will "
            f"discard it").encode()


class RefusedMultiTest(harness.PoolsTestMixin, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.procs = Processes()
        cls.servers = [cls.procs.redis() for _ in range(4)]
        ports = [s.port for s in cls.servers]
        cls.pools = {
            "replicated": {"protocol": "redis", "listen": f"{HOST}:{free_port()}",
                           "policy": "replicated", "failover_on_miss": True,
                           "children": [f"{HOST}:{ports[0]}", f"{HOST}:{ports[1]}"]},
            "fanout": {"protocol": "redis", "listen": f"{HOST}:{free_port()}",
                       "policy": "fanout", "reply": "first",
                       "children": [f"{HOST}:{ports[2]}", f"{HOST}:{ports[3]}"]},
        }
        cls.backend_ports = {"replicated": ports[:2], "fanout": ports[2:]}
        cls.proxy = Dproxy(cls.procs, ARGS.dproxy, cls.pools)

    def on_backends(self, pool, key):
        """The value of `key` on every backend of `pool` that holds it (asked directly)."""
        found = []
        for p in self.backend_ports[pool]:
            c = RespClient(p)
            try:
                c.send(resp_command("READONLY"))  # harmless outside a cluster's replica
                c.read_reply()
                v = c.call("GET", key)
                if isinstance(v, RespError) and v.startswith(b"MOVED"):
                    continue
                if v is not None:
                    found.append(v)
            finally:
                c.close()
        return found

    def seed(self, pool, key, value):
        c = self.raw(pool)
        self.assertEqual(c.call("SET", key, value), b"OK")

    def each_pool(self):
        for pool in self.pools:
            with self.subTest(pool=pool):
                yield pool

    def test_pipelined_transaction_writes_nothing(self):
        for pool in self.each_pool():
            new, old, counter = (self.prefix + pool + s for s in ("{t}new", "{t}old", "{t}n"))
            self.seed(pool, old, "keep")
            c = self.raw(pool)
            # One write: the refused MULTI and everything after it arrive in one read.
            c.send(resp_command("MULTI") + resp_command("SET", new, "v") +
                   resp_command("INCR", counter) + resp_command("DEL", old) +
                   resp_command("MSET", new, "a", old, "b") + resp_command("EXEC") +
                   resp_command("GET", old))
            self.assertEqual(c.read_reply(), RespError(MULTI_REFUSED))
            for name in ("SET", "INCR", "DEL", "MSET"):
                self.assertEqual(c.read_reply(), RespError(not_queued(name)))
            self.assertEqual(c.read_reply(), RespError(EXECABORT))
            # After EXEC the connection is back to normal.
            self.assertEqual(c.read_reply(), b"keep")
            self.assertEqual(self.on_backends(pool, new), [])
            self.assertEqual(self.on_backends(pool, counter), [])
            self.assertTrue(self.on_backends(pool, old))
            self.assertTrue(all(v == b"keep" for v in self.on_backends(pool, old)))
            self.assertEqual(c.call("SET", new, "after"), b"OK")
            self.assertIn(b"after", self.on_backends(pool, new))

    def test_command_by_command_and_discard(self):
        for pool in self.each_pool():
            key = self.prefix + pool + "k"
            c = self.raw(pool)
            self.assertEqual(c.call("MULTI"), RespError(MULTI_REFUSED))
            self.assertEqual(c.call("SET", key, "v"), RespError(not_queued("SET")))
            self.assertEqual(c.call("MULTI"), RespError(b"ERR MULTI calls can not be nested"))
            self.assertEqual(c.call("WATCH", key),
                             RespError(b"ERR WATCH inside MULTI is not allowed"))
            self.assertEqual(c.call("GET", key), RespError(not_queued("GET")))
            self.assertEqual(c.call("DISCARD"), b"OK")
            self.assertEqual(c.call("GET", key), None)
            self.assertEqual(self.on_backends(pool, key), [])
            # As Redis: EXEC and DISCARD outside a transaction.
            self.assertEqual(c.call("EXEC"), RespError(b"ERR EXEC without MULTI"))
            self.assertEqual(c.call("DISCARD"), RespError(b"ERR DISCARD without MULTI"))

    def test_refused_watch_then_transaction(self):
        for pool in self.each_pool():
            key = self.prefix + pool + "w"
            c = self.raw(pool)
            c.send(resp_command("WATCH", key) + resp_command("GET", key) +
                   resp_command("MULTI") + resp_command("SET", key, "v") + resp_command("EXEC"))
            self.assertTrue(c.read_reply().startswith(b"ERR dproxy: WATCH is not supported"))
            self.assertIsNone(c.read_reply())
            self.assertEqual(c.read_reply(), RespError(MULTI_REFUSED))
            self.assertEqual(c.read_reply(), RespError(not_queued("SET")))
            self.assertEqual(c.read_reply(), RespError(EXECABORT))
            self.assertEqual(self.on_backends(pool, key), [])

    def test_redis_py_default_pipeline(self):
        import redis

        for pool in self.each_pool():
            key = self.prefix + pool + "{p}"
            r = redis.Redis(host=HOST, port=self.port(pool), socket_timeout=10)
            self.addCleanup(r.close)
            pipe = r.pipeline()  # transaction=True: MULTI ... EXEC
            pipe.set(key + "a", "1")
            pipe.incr(key + "b")
            with self.assertRaises(redis.exceptions.ResponseError) as err:
                pipe.execute()
            self.assertIn("MULTI is not supported", str(err.exception))
            self.assertEqual(self.on_backends(pool, key + "a"), [])
            self.assertEqual(self.on_backends(pool, key + "b"), [])
            # The same client is usable afterwards, and a non-transactional pipeline works.
            pipe = r.pipeline(transaction=False)
            pipe.set(key + "a", "1")
            pipe.get(key + "a")
            self.assertEqual(pipe.execute(), [True, b"1"])


if __name__ == "__main__":
    ARGS = harness.parse_args()
    unittest.main()
