"""dproxy in multi-proxy topologies, memcached and Redis:

- a chain: client -> dproxy -> dproxy -> dproxy -> backends (each dproxy's pool has the next
  dproxy as its single server; the last one shards over 3 memcached / 3 redis-servers). The
  chain passes basic protocol tests and places every key where a single dproxy does.
- fan-out-and-in: 3 dproxy processes in front of one shared set of backends; clients spread over
  them see each other's writes, and every instance places every key on the same backend.
"""
import threading
import time
import unittest
import warnings

import harness
from harness import (HOST, Dproxy, Processes, RawClient, RespClient, backend_get, free_port,
                     redis_direct)

ARGS = None


def addr(port):
    return f"{HOST}:{port}"


def close_all(procs, *proxies):
    """Stops the dproxy instances (SIGTERM; exit codes returned), then SIGKILLs the backends."""
    rcs = [p.stop() for p in proxies]
    for p in proxies:
        p.log.close()
    for p in list(procs.procs):
        procs.kill(p)
    procs.close()
    return rcs


class Topologies(unittest.TestCase):
    """Shared by both topologies: 3 memcached and 3 redis-servers, and
    - `single`: one dproxy with the sharded pools ("mc", "rd") over them (the reference);
    - `chain`: three dproxy processes, the first two forwarding to the next, the last sharded;
    - `fan`: three more dproxy processes with the same sharded pools as `single`."""

    @classmethod
    def setUpClass(cls):
        cls.procs = Processes()
        cls.mc = [cls.procs.memcached() for _ in range(3)]
        cls.rd = [cls.procs.redis() for _ in range(3)]
        cls.proxies = []

        def sharded(mc_port, rd_port):
            return {
                "mc": {"protocol": "memcached", "listen": addr(mc_port), "policy": "ketama",
                       "hash": "md5", "timeout_ms": 5000,
                       "servers": [f"{addr(b.port)}:1 m{i}" for i, b in enumerate(cls.mc)]},
                "rd": {"protocol": "redis", "listen": addr(rd_port), "policy": "ketama",
                       "hash": "md5", "timeout_ms": 5000,
                       "servers": [f"{addr(b.port)}:1 r{i}" for i, b in enumerate(cls.rd)]},
            }

        def forwarding(mc_port, rd_port, next_mc, next_rd):
            return {
                "mc": {"protocol": "memcached", "listen": addr(mc_port), "timeout_ms": 5000,
                       "servers": [addr(next_mc)]},
                "rd": {"protocol": "redis", "listen": addr(rd_port), "timeout_ms": 5000,
                       "servers": [addr(next_rd)]},
            }

        def start(pools):
            proxy = Dproxy(cls.procs, ARGS.dproxy, pools)
            cls.proxies.append(proxy)
            return proxy

        cls.single_mc, cls.single_rd = free_port(), free_port()
        start(sharded(cls.single_mc, cls.single_rd))
        # The chain, started from its end.
        chain = [(free_port(), free_port()) for _ in range(3)]
        start(sharded(*chain[2]))
        start(forwarding(*chain[1], *chain[2]))
        start(forwarding(*chain[0], *chain[1]))
        cls.chain_mc, cls.chain_rd = chain[0]
        cls.chain_ports = chain
        # Fan-out-and-in: three instances of the same config.
        cls.fan = [(free_port(), free_port()) for _ in range(3)]
        for mc_port, rd_port in cls.fan:
            start(sharded(mc_port, rd_port))

    @classmethod
    def tearDownClass(cls):
        rcs = close_all(cls.procs, *cls.proxies)
        assert rcs == [0] * len(rcs), f"dproxy exit codes {rcs}"

    def setUp(self):
        self.prefix = f"{self._testMethodName}:{time.monotonic_ns()}:"

    def k(self, name):
        return self.prefix + str(name)

    def kb(self, name):
        return self.k(name).encode()

    def mc_raw(self, port):
        c = RawClient(port)
        self.addCleanup(c.close)
        return c

    def rd_raw(self, port):
        c = RespClient(port)
        self.addCleanup(c.close)
        return c

    def mc_holders(self, key):
        return [b.port for b in self.mc if backend_get(b.port, key) is not None]

    def rd_holders(self, keys):
        return harness.redis_key_on([b.port for b in self.rd], keys)

    # --- memcached protocol checks, run against one listen port --------------------------

    def memcached_basics(self, port):
        c = self.mc_raw(port)
        keys = [self.kb(i) for i in range(30)]
        for key in keys:
            c.send(b"set %s 5 0 %d\r\n%s\r\n" % (key, len(key), key))
            self.assertEqual(c.read_line(), b"STORED\r\n")
        # A multi-get spanning every backend (and a missing key), in request order.
        self.assertEqual({self.mc_holders(key)[0] for key in keys}, {b.port for b in self.mc})
        c.send(b"get " + b" ".join(keys + [self.kb("missing")]) + b"\r\n")
        self.assertEqual(c.read_retrieval(), [(key, 5, key) for key in keys])
        # gets + cas (the last dproxy shards; cas works end to end).
        c.send(b"gets " + keys[0] + b"\r\n")
        (item,) = c.read_retrieval()
        c.send(b"cas %s 0 0 3 %d\r\nnew\r\n" % (keys[0], item[3]))
        self.assertEqual(c.read_line(), b"STORED\r\n")
        c.send(b"cas %s 0 0 3 %d\r\nold\r\n" % (keys[0], item[3]))
        self.assertEqual(c.read_line(), b"EXISTS\r\n")
        # counters
        n = self.kb("n")
        c.send(b"set " + n + b" 0 0 2\r\n40\r\nincr " + n + b" 2\r\ndecr " + n + b" 10\r\n")
        self.assertEqual([c.read_line() for _ in range(3)], [b"STORED\r\n", b"42\r\n", b"32\r\n"])
        c.send(b"incr " + self.kb("nonexistent") + b" 1\r\n")
        self.assertEqual(c.read_line(), b"NOT_FOUND\r\n")
        # add / append / delete / noreply
        c.send(b"add %s 0 0 1\r\nx\r\n" % keys[1])
        self.assertEqual(c.read_line(), b"NOT_STORED\r\n")
        c.send(b"append %s 0 0 1\r\n!\r\n" % keys[1])
        self.assertEqual(c.read_line(), b"STORED\r\n")
        c.send(b"delete " + keys[2] + b"\r\ndelete " + keys[2] + b"\r\n")
        self.assertEqual([c.read_line(), c.read_line()], [b"DELETED\r\n", b"NOT_FOUND\r\n"])
        c.send(b"set %s 0 0 2 noreply\r\nnr\r\nget %s %s\r\n" % (keys[3], keys[1], keys[3]))
        self.assertEqual(c.read_retrieval(), [(keys[1], 5, keys[1] + b"!"), (keys[3], 0, b"nr")])
        # A large value.
        big = b"B" * 300000
        c.send(b"set %s 0 0 %d\r\n%s\r\n" % (keys[4], len(big), big))
        self.assertEqual(c.read_line(), b"STORED\r\n")
        c.send(b"get " + keys[4] + b"\r\n")
        self.assertEqual(c.read_retrieval(), [(keys[4], 0, big)])
        # The key states on the backends.
        self.assertEqual(self.mc_holders(keys[2]), [])
        return keys

    def redis_basics(self, port):
        c = self.rd_raw(port)
        keys = [self.k(i) for i in range(30)]
        for key in keys:
            self.assertEqual(c.call("SET", key, key), b"OK")
        where = self.rd_holders(keys)
        self.assertEqual({w[0] for w in where.values()}, {b.port for b in self.rd})
        self.assertEqual(c.call("MGET", *keys, self.k("missing")),
                         [key.encode() for key in keys] + [None])
        self.assertEqual(c.call("GET", keys[0]), keys[0].encode())
        n = self.k("n")
        self.assertEqual(c.call("INCR", n), 1)
        self.assertEqual(c.call("INCRBY", n, 41), 42)
        self.assertEqual(c.call("MSET", self.k("a"), "1", self.k("b"), "2", self.k("c"), "3"),
                         b"OK")
        self.assertEqual(c.call("EXISTS", self.k("a"), self.k("b"), self.k("zz")), 2)
        self.assertEqual(c.call("DEL", keys[0], keys[1], keys[2], self.k("zz")), 3)
        self.assertEqual(c.call("MGET", keys[0], keys[3]), [None, keys[3].encode()])
        self.assertEqual(c.call("HSET", self.k("h"), "f", "v"), 1)
        self.assertEqual(c.call("HGET", self.k("h"), "f"), b"v")
        big = b"R" * 300000
        self.assertEqual(c.call("SET", keys[4], big), b"OK")
        self.assertEqual(c.call("GET", keys[4]), big)
        self.assertEqual(c.call("PING"), b"PONG")
        err = c.call("INCR", keys[5])
        self.assertIsInstance(err, harness.RespError)
        self.assertEqual(err, b"ERR value is not an integer or out of range")
        # Pipelined.
        c.send(b"".join(harness.resp_command("GET", key) for key in keys[3:]))
        self.assertEqual([c.read_reply() for _ in keys[3:]],
                         [keys[3].encode(), big] + [key.encode() for key in keys[5:]])
        self.assertEqual(self.rd_holders([keys[0]])[keys[0]], [])
        return keys

    # --- the chain --------------------------------------------------------------------------

    def test_chain_memcached_basics(self):
        self.memcached_basics(self.chain_mc)

    def test_chain_redis_basics(self):
        self.redis_basics(self.chain_rd)

    def test_chain_memcached_placement_matches_single_dproxy(self):
        keys = [self.kb(i) for i in range(200)]
        chain, single = self.mc_raw(self.chain_mc), self.mc_raw(self.single_mc)
        chain.send(b"".join(b"set %s 0 0 5\r\nchain\r\n" % key for key in keys))
        for key in keys:
            self.assertEqual(chain.read_line(), b"STORED\r\n")
        for key in keys:
            # Exactly one backend holds it, and the single dproxy reads it from there.
            self.assertEqual(len(self.mc_holders(key)), 1, key)
            single.send(b"get " + key + b"\r\n")
            self.assertEqual(single.read_retrieval(), [(key, 0, b"chain")])
        # And the other way round, with a multi-get through the chain.
        keys2 = [self.kb(f"s{i}") for i in range(100)]
        single.send(b"".join(b"set %s 0 0 6\r\nsingle\r\n" % key for key in keys2))
        for key in keys2:
            self.assertEqual(single.read_line(), b"STORED\r\n")
        chain.send(b"get " + b" ".join(keys2) + b"\r\n")
        self.assertEqual(chain.read_retrieval(), [(key, 0, b"single") for key in keys2])

    def test_chain_redis_placement_matches_single_dproxy(self):
        keys = [self.k(i) for i in range(200)]
        chain, single = self.rd_raw(self.chain_rd), self.rd_raw(self.single_rd)
        chain.send(b"".join(harness.resp_command("SET", key, "chain") for key in keys))
        self.assertEqual([chain.read_reply() for _ in keys], [b"OK"] * len(keys))
        where = self.rd_holders(keys)
        for key in keys:
            self.assertEqual(len(where[key]), 1, key)
        self.assertEqual(single.call("MGET", *keys), [b"chain"] * len(keys))
        keys2 = [self.k(f"s{i}") for i in range(100)]
        self.assertEqual(single.call("MSET", *[x for key in keys2 for x in (key, "single")]),
                         b"OK")
        self.assertEqual(chain.call("MGET", *keys2), [b"single"] * len(keys2))
        # Every level of the chain agrees.
        for mc_port, rd_port in self.chain_ports:
            self.assertEqual(self.rd_raw(rd_port).call("MGET", *keys[:50]), [b"chain"] * 50)

    def test_chain_redis_broadcast_commands(self):
        keys = [self.k(i) for i in range(600)]
        chain = self.rd_raw(self.chain_rd)
        self.assertEqual(chain.call("MSET", *[x for key in keys for x in (key, "v")]), b"OK")
        # SCAN through the chain walks the last dproxy's servers: every key exactly once.
        cursor, seen = b"0", []
        for _ in range(5000):
            cursor, page = chain.call("SCAN", cursor, "MATCH", self.prefix + "*", "COUNT", 10)
            seen.extend(k.decode() for k in page)
            if cursor == b"0":
                break
        self.assertEqual(cursor, b"0")
        self.assertEqual(len(seen), len(set(seen)))
        self.assertEqual(sorted(seen), sorted(keys))
        self.assertEqual(sorted(k.decode() for k in chain.call("KEYS", self.prefix + "*")),
                         sorted(keys))
        self.assertEqual(chain.call("DBSIZE"),
                         sum(redis_direct(b.port).dbsize() for b in self.rd))
        for _ in range(3):  # an existing key, from whichever backend
            key = chain.call("RANDOMKEY").decode()
            self.assertEqual(len(self.rd_holders([key])[key]), 1, key)
        # SCRIPT LOAD through the chain reaches every backend: EVALSHA works for every key.
        script = "return redis.call('GET', KEYS[1]) .. '!'"
        sha = chain.call("SCRIPT", "LOAD", script)
        for b in self.rd:
            self.assertEqual(redis_direct(b.port).script_exists(sha.decode()), [True])
        where = self.rd_holders(keys)
        for b in self.rd:
            key = next(k for k in keys if where[k] == [b.port])
            self.assertEqual(chain.call("EVALSHA", sha, 1, key), b"v!")
        self.assertEqual(chain.call("SCRIPT", "EXISTS", sha), [1])

    # --- fan-out-and-in -------------------------------------------------------------------

    def test_fan_in_memcached_basics_through_every_instance(self):
        for i, (mc_port, _) in enumerate(self.fan):
            with self.subTest(instance=i):
                self.prefix = f"{self._testMethodName}:{i}:{time.monotonic_ns()}:"
                self.memcached_basics(mc_port)

    def test_fan_in_redis_basics_through_every_instance(self):
        for i, (_, rd_port) in enumerate(self.fan):
            with self.subTest(instance=i):
                self.prefix = f"{self._testMethodName}:{i}:{time.monotonic_ns()}:"
                self.redis_basics(rd_port)

    def test_fan_in_memcached_clients_see_each_others_writes(self):
        clients = [self.mc_raw(mc_port) for mc_port, _ in self.fan]
        written = {}
        for i, c in enumerate(clients):
            keys = [self.kb(f"{i}:{j}") for j in range(40)]
            c.send(b"".join(b"set %s 0 0 1\r\n%d\r\n" % (key, i) for key in keys))
            for key in keys:
                self.assertEqual(c.read_line(), b"STORED\r\n")
                written[key] = b"%d" % i
        all_keys = sorted(written)
        for c in clients:  # every instance reads every instance's writes
            c.send(b"get " + b" ".join(all_keys) + b"\r\n")
            self.assertEqual(c.read_retrieval(), [(key, 0, written[key]) for key in all_keys])
        # The same key written through each instance in turn stays on one backend.
        key = self.kb("shared")
        homes = set()
        for i, c in enumerate(clients):
            c.send(b"set %s 0 0 1\r\n%d\r\n" % (key, i))
            self.assertEqual(c.read_line(), b"STORED\r\n")
            holders = self.mc_holders(key)
            self.assertEqual(len(holders), 1)
            homes.update(holders)
            self.assertEqual(backend_get(holders[0], key), b"%d" % i)
        self.assertEqual(len(homes), 1)
        # Placement identical through every instance: each key is on one backend, and a
        # delete through another instance removes it.
        for n, key in enumerate(all_keys[:30]):
            self.assertEqual(len(self.mc_holders(key)), 1)
            c = clients[(n + 1) % 3]
            c.send(b"delete " + key + b"\r\n")
            self.assertEqual(c.read_line(), b"DELETED\r\n")
            self.assertEqual(self.mc_holders(key), [])

    def test_fan_in_redis_clients_see_each_others_writes(self):
        clients = [self.rd_raw(rd_port) for _, rd_port in self.fan]
        written = {}
        for i, c in enumerate(clients):
            keys = [self.k(f"{i}:{j}") for j in range(40)]
            self.assertEqual(c.call("MSET", *[x for key in keys for x in (key, str(i))]), b"OK")
            written.update({key: str(i).encode() for key in keys})
        all_keys = sorted(written)
        for c in clients:
            self.assertEqual(c.call("MGET", *all_keys), [written[key] for key in all_keys])
        where = self.rd_holders(all_keys)
        for key in all_keys:
            self.assertEqual(len(where[key]), 1, key)
        # Deletes through another instance remove the key from its one backend.
        for n, key in enumerate(all_keys[:30]):
            self.assertEqual(clients[(n + 1) % 3].call("DEL", key), 1)
        where = self.rd_holders(all_keys[:30])
        self.assertTrue(all(v == [] for v in where.values()), where)

    def test_fan_in_concurrent_counters(self):
        mc_key, rd_key = self.kb("ctr"), self.k("ctr")
        first = self.mc_raw(self.fan[0][0])
        first.send(b"set " + mc_key + b" 0 0 1\r\n0\r\n")
        self.assertEqual(first.read_line(), b"STORED\r\n")
        errors = []

        def work(mc_port, rd_port):
            try:
                m, r = RawClient(mc_port), RespClient(rd_port)
                try:
                    for _ in range(100):
                        m.send(b"incr " + mc_key + b" 1\r\n")
                        int(m.read_line())
                        assert isinstance(r.call("INCR", rd_key), int)
                finally:
                    m.close()
                    r.close()
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(repr(e))

        threads = [threading.Thread(target=work, args=ports) for ports in self.fan for _ in
                   range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        self.assertEqual(errors, [])
        self.assertFalse(any(t.is_alive() for t in threads))
        for mc_port, rd_port in self.fan:
            c = self.mc_raw(mc_port)
            c.send(b"get " + mc_key + b"\r\n")
            self.assertEqual(c.read_retrieval(), [(mc_key, 0, b"600")])
            self.assertEqual(self.rd_raw(rd_port).call("GET", rd_key), b"600")
        self.assertEqual(len(self.mc_holders(mc_key)), 1)
        self.assertEqual(len(self.rd_holders([rd_key])[rd_key]), 1)
        # The single reference dproxy agrees too.
        self.assertEqual(self.rd_raw(self.single_rd).call("GET", rd_key), b"600")
        self.assertTrue(all(redis_direct(b.port).ping() for b in self.rd))


if __name__ == "__main__":
    ARGS = harness.parse_args()
    warnings.simplefilter("ignore", ResourceWarning)
    unittest.main(verbosity=2)
