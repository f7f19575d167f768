"""Redis Cluster behind dproxy (policy redis_cluster), driven by a plain, cluster-unaware client
(redis-py `redis.Redis`): every key family, MGET/MSET/DEL/EXISTS over many slots, CROSSSLOT,
broadcasts over the masters, read_from replica, a slot migration under continuous load (zero
failed requests, no key lost, MOVED and ASK counted in INFO), and a master killed (requests fail
at most for the failover window, then recover by themselves).

Starts real 6-node clusters (3 masters + 3 replicas, redis-server --cluster-enabled yes on free
loopback ports, created with redis-cli --cluster create).
"""
import json
import os
import threading
import time
import unittest
import warnings

import harness
from harness import HOST, Dproxy, Processes, RedisTestMixin, RespClient, free_port, wait_for

import redis

ARGS = None

CROSSSLOT = "CROSSSLOT Keys in request don't hash to the same slot"
# Failed requests allowed while a master fails over (README: 2, measured with one client).
MAX_FAILOVER_FAILURES = 5


def crc16(data):
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def keyslot(key):
    """Redis Cluster's slot of `key` (checked against CLUSTER KEYSLOT in test_keyslot)."""
    if isinstance(key, str):
        key = key.encode()
    start = key.find(b"{")
    if start >= 0:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            key = key[start + 1:end]
    return crc16(key) % 16384


def info_fields(r):
    """dproxy's INFO through a redis-py client, as a dict."""
    return r.execute_command("INFO")


def cluster_pool(port, seeds, **extra):
    pool = {"protocol": "redis", "listen": f"{HOST}:{port}", "policy": "redis_cluster",
            "timeout_ms": 5000, "servers": [f"{HOST}:{p}" for p in seeds]}
    pool.update(extra)
    return pool


class RedisClusterTest(RedisTestMixin, unittest.TestCase):
    maxDiff = None
    @classmethod
    def setUpClass(cls):
        cls.procs = Processes()
        try:
            cls.cluster = cls.procs.redis_cluster(masters=3, replicas=1)
            cls.ports = [n.port for n in cls.cluster.nodes]
            cls.port = free_port()
            cls.replica_port = free_port()
            seeds = cls.ports[:2]  # the rest is discovered
            cls.stats_port = free_port()
            cls.proxy = harness.DproxyTop(cls.procs, ARGS.dproxy, {
                "main": cluster_pool(cls.port, seeds),
                "replica": cluster_pool(cls.replica_port, seeds, read_from="replica")},
                top={"stats": {"listen": f"{HOST}:{cls.stats_port}"}})
        except Exception:
            cls.procs.close()
            raise

    @classmethod
    def tearDownClass(cls):
        rc = cls.proxy.stop()
        cls.procs.close()
        assert rc == 0, f"dproxy exited with {rc}"

    def owner(self, key):
        """The port of the master that holds `key`'s slot (asked from the cluster)."""
        return self.cluster.master_of(keyslot(key))[0]

    def masters(self):
        return self.cluster.masters()

    # --- routing ---------------------------------------------------------------------------

    def test_memory_counts_node_connections(self):
        # Cluster node connections live outside the pool's shared sets (made on first use):
        # their buffers must show in the memory figures once requests have used them.
        port = free_port()
        proxy = harness.Dproxy(self.procs, ARGS.dproxy, {"m": cluster_pool(port, self.ports[:2])},
                               threads=1)
        self.addCleanup(proxy.stop)
        harness.wait_port(proxy.stats_port, proxy.proc)  # may open after the pool's (ASan)
        before = proxy.stats()["memory_backend_buffer_bytes"]
        c = RespClient(port)
        self.addCleanup(c.close)
        for i in range(300):
            c.send(harness.resp_command("SET", f"memory:{i}", "v" * 100))
        for _ in range(300):
            self.assertEqual(c.read_reply(), b"OK")
        self.assertGreater(proxy.stats()["memory_backend_buffer_bytes"], before)

    def test_keyslot(self):
        c = RespClient(self.ports[0])
        self.addCleanup(c.close)
        for key in ["foo", "{user1000}.following", "foo{}{bar}", "foo{{bar}}zap", self.k("x"),
                    "123456789", ""]:
            self.assertEqual(keyslot(key), c.call("CLUSTER", "KEYSLOT", key), key)

    def test_keys_land_on_their_slot_master(self):
        r = self.client(decode=True)
        keys = [self.k(i) for i in range(60)]
        pipe = r.pipeline(transaction=False)
        for key in keys:
            pipe.set(key, "v" + key)
        self.assertEqual(pipe.execute(), [True] * len(keys))
        per_master = {}
        for key in keys:
            port = self.owner(key)
            self.assertEqual(self.direct(port).get(key), ("v" + key).encode())
            per_master[port] = per_master.get(port, 0) + 1
        self.assertEqual(len(per_master), 3, per_master)  # keys spread over every master

    def test_every_key_family(self):
        r = self.client(decode=True)
        k = self.k
        # strings, counters, expiry
        self.assertTrue(r.set(k("s"), "hello"))
        self.assertEqual(r.append(k("s"), " world"), 11)
        self.assertEqual(r.getrange(k("s"), 0, 4), "hello")
        self.assertEqual(r.incrby(k("n"), 41), 41)
        self.assertEqual(r.incrbyfloat(k("n"), 1.5), 42.5)
        self.assertTrue(r.expire(k("s"), 100))
        self.assertTrue(0 < r.ttl(k("s")) <= 100)
        self.assertEqual(r.getdel(k("n")), "42.5")
        # hashes
        self.assertEqual(r.hset(k("h"), mapping={"a": "1", "b": "2"}), 2)
        self.assertEqual(r.hgetall(k("h")), {"a": "1", "b": "2"})
        self.assertEqual(r.hincrby(k("h"), "a", 5), 6)
        # lists
        self.assertEqual(r.rpush(k("l"), "a", "b", "c"), 3)
        self.assertEqual(r.lrange(k("l"), 0, -1), ["a", "b", "c"])
        self.assertEqual(r.lpop(k("l")), "a")
        # sets
        self.assertEqual(r.sadd(k("set"), "x", "y", "z"), 3)
        self.assertEqual(r.smembers(k("set")), {"x", "y", "z"})
        self.assertTrue(r.sismember(k("set"), "y"))
        # sorted sets
        self.assertEqual(r.zadd(k("z"), {"a": 1, "b": 2, "c": 3}), 3)
        self.assertEqual(r.zrange(k("z"), 0, -1, withscores=True),
                         [("a", 1.0), ("b", 2.0), ("c", 3.0)])
        self.assertEqual(r.zincrby(k("z"), 10, "a"), 11.0)
        # hyperloglog
        self.assertEqual(r.pfadd(k("hll"), *[str(i) for i in range(100)]), 1)
        self.assertTrue(95 <= r.pfcount(k("hll")) <= 105)
        # geo
        self.assertEqual(r.geoadd(k("geo"), (13.361389, 38.115556, "Palermo")), 1)
        self.assertEqual(len(r.geopos(k("geo"), "Palermo")), 1)
        # streams
        sid = r.xadd(k("x"), {"f": "v"})
        self.assertEqual(r.xlen(k("x")), 1)
        self.assertEqual(r.xrange(k("x")), [(sid, {"f": "v"})])
        # bitmaps
        self.assertEqual(r.setbit(k("b"), 7, 1), 0)
        self.assertEqual(r.bitcount(k("b")), 1)
        # type / exists / del over the families (split by slot)
        families = ["s", "h", "l", "set", "z", "hll", "geo", "x", "b"]
        self.assertEqual(r.type(k("z")), "zset")
        self.assertEqual(r.exists(*[k(f) for f in families]), len(families))
        self.assertEqual(r.delete(*[k(f) for f in families]), len(families))
        self.assertEqual(r.exists(*[k(f) for f in families]), 0)

    def test_multi_key_over_many_slots(self):
        r = self.client()
        keys = [self.k(i).encode() for i in range(300)]
        slots = {keyslot(key) for key in keys[:50]}
        self.assertGreater(len(slots), 40)
        self.assertTrue(r.mset({key: b"v" + key for key in keys}))
        missing = [self.k(f"missing{i}").encode() for i in range(5)]
        asked = keys[:100] + missing + keys[:3]  # duplicates and misses kept in order
        self.assertEqual(r.mget(asked),
                         [b"v" + key for key in keys[:100]] + [None] * 5 +
                         [b"v" + key for key in keys[:3]])
        self.assertEqual(r.exists(*(keys[:10] + keys[:10] + missing)), 20)
        self.assertEqual(r.touch(*keys[:10]), 10)
        self.assertEqual(r.unlink(*keys[:150]), 150)
        self.assertEqual(r.delete(*(keys + missing)), 150)
        self.assertEqual(r.mget(keys[:5]), [None] * 5)

    def test_crossslot_and_hash_tags(self):
        r = self.client(decode=True)
        a, b = self.k("a"), self.k("b")
        self.assertNotEqual(keyslot(a), keyslot(b))
        r.sadd(a, "1", "2")
        r.sadd(b, "2", "3")
        with self.assertRaises(redis.ResponseError) as cm:
            r.sinter(a, b)
        self.assertEqual(str(cm.exception), CROSSSLOT)
        with self.assertRaises(redis.ResponseError) as cm:
            r.rename(a, b)
        self.assertEqual(str(cm.exception), CROSSSLOT)
        tag = "{" + self.prefix + "}"
        ta, tb = tag + "a", tag + "b"
        r.sadd(ta, "1", "2")
        r.sadd(tb, "2", "3")
        self.assertEqual(r.sinter(ta, tb), {"2"})
        self.assertEqual(r.sunionstore(tag + "u", ta, tb), 3)
        self.assertTrue(r.rename(tag + "u", tag + "u2"))
        self.assertEqual(r.eval("return redis.call('scard', KEYS[1])", 1, tag + "u2"), 3)
        self.assertTrue(r.msetnx({tag + "m1": "1", tag + "m2": "2"}))

    def test_broadcasts_reach_every_master(self):
        r = self.client(decode=True)
        keys = [self.k(i) for i in range(40)]
        r.mset({key: "x" for key in keys})
        total = sum(self.direct(p).dbsize() for p in self.masters())
        self.assertEqual(r.dbsize(), total)
        self.assertEqual(sorted(r.keys(self.prefix + "*")), sorted(keys))
        self.assertEqual(sorted(r.scan_iter(match=self.prefix + "*", count=7)), sorted(keys))
        self.assertIsNotNone(r.randomkey())
        sha = r.script_load("return KEYS[1]")
        for key in keys[:10]:  # the script is on the master of every slot
            self.assertEqual(r.evalsha(sha, 1, key), key)

    def test_local_and_no_key_commands(self):
        r = self.client()
        self.assertTrue(r.ping())
        self.assertEqual(len(r.time()), 2)
        info = info_fields(r)
        self.assertEqual(info["cluster_masters"], 3)
        self.assertEqual(info["cluster_known_nodes"], 6)
        self.assertGreaterEqual(info["cluster_slot_map_version"], 1)
        self.assertGreaterEqual(info["cluster_refreshes"], 1)
        self.assertEqual(info["cluster_read_from"], "master")

    def test_read_from_replica(self):
        w = self.client()
        r = self.client(port=self.replica_port)
        keys = [self.k(i) for i in range(30)]
        w.mset({key: "v" for key in keys})
        replicas = [p for p in self.ports if p not in self.masters()]
        self.assertEqual(len(replicas), 3)

        def replica_gets():
            total = 0
            for p in replicas:
                stats = self.direct(p).info("commandstats")
                total += stats.get("cmdstat_get", {}).get("calls", 0)
            return total

        # Replication is asynchronous: wait until the replicas have every key.
        self.assertTrue(wait_for(lambda: all(v == b"v" for v in r.mget(keys)), 20))
        before = replica_gets()
        for key in keys:
            self.assertEqual(r.get(key), b"v")
        self.assertGreaterEqual(replica_gets() - before, len(keys))
        # Writes through the replica pool still go to the masters.
        self.assertTrue(r.set(keys[0], "w"))
        self.assertEqual(w.get(keys[0]), b"w")
        self.assertEqual(info_fields(r)["cluster_read_from"], "replica")

    def test_reload_under_load(self):
        """SIGHUP with a changed cluster pool: new connections get the new runtime, requests in
        flight finish on the old one; no request fails."""
        import json
        import signal
        keys = [self.k(i) for i in range(100)]
        stop = threading.Event()
        errors, ops = [], [0]

        def load():
            c = redis.Redis(host=HOST, port=self.port, socket_timeout=30)
            try:
                n = 0
                while not stop.is_set():
                    n += 1
                    try:
                        c.mset({key: str(n) for key in keys})
                        if c.mget(keys) != [str(n).encode()] * len(keys):
                            errors.append(f"round {n}: wrong values")
                    except redis.RedisError as e:
                        errors.append(str(e))
                    ops[0] += 1
            finally:
                c.close()

        th = threading.Thread(target=load)
        th.start()
        try:
            self.assertTrue(wait_for(lambda: ops[0] > 20, 20))
            with open(self.proxy.config_path) as f:
                doc = json.load(f)
            doc["pools"]["main"]["cluster_refresh_ms"] = 2000
            with open(self.proxy.config_path + ".tmp", "w") as f:
                json.dump(doc, f)
            os.replace(self.proxy.config_path + ".tmp", self.proxy.config_path)
            os.kill(self.proxy.proc.pid, signal.SIGHUP)
            self.assertTrue(harness.wait_log(self.proxy, "reload: applied", 20))
            n = ops[0]
            self.assertTrue(wait_for(lambda: ops[0] > n + 20, 20))
        finally:
            stop.set()
            th.join(timeout=60)
        self.assertEqual(errors, [])
        info = info_fields(self.client())
        self.assertEqual(info["cluster_refresh_ms"], 2000)
        self.assertEqual(info["cluster_masters"], 3)

    # --- resharding --------------------------------------------------------------------------

    def test_slot_migration_under_load(self):
        tag = "{" + self.prefix + "mig}"
        slot = keyslot(tag + "x")
        src, _ = self.cluster.master_of(slot)
        dst = next(p for p in self.masters() if p != src)
        src_id, dst_id = self.cluster.node_id(src), self.cluster.node_id(dst)
        n_threads, per_thread = 4, 40
        seed = self.client()
        for t in range(n_threads):
            seed.mset({f"{tag}{t}:{i}": "0" for i in range(per_thread)})
        info0 = info_fields(seed)

        stop = threading.Event()
        errors, ops = [], [0] * n_threads

        def load(t):
            c = redis.Redis(host=HOST, port=self.port, socket_timeout=30)
            try:
                value = 0
                while not stop.is_set() and len(errors) < 10:
                    value += 1
                    for i in range(per_thread):
                        key = f"{tag}{t}:{i}"
                        try:
                            c.set(key, str(value))
                            got = c.get(key)
                            if got != str(value).encode():
                                errors.append(f"{key}: wrote {value}, read {got!r}")
                            if c.incr(f"{tag}ctr{t}") != value * per_thread - per_thread + i + 1:
                                errors.append(f"counter {t} off at {value}/{i}")
                        except redis.RedisError as e:
                            errors.append(f"{key}: {e}")
                        ops[t] += 3
                    # A multi-key read in the migrating slot (TRYAGAIN while its keys are split
                    # between the two nodes, retried by dproxy).
                    try:
                        got = c.mget([f"{tag}{t}:{i}" for i in range(per_thread)])
                        if got != [str(value).encode()] * per_thread:
                            errors.append(f"MGET {t}: {got}")
                    except redis.RedisError as e:
                        errors.append(f"MGET {t}: {e}")
                    ops[t] += 1
                c.set(f"{tag}{t}:final", str(value))
            finally:
                c.close()

        threads = [threading.Thread(target=load, args=(t,)) for t in range(n_threads)]
        for th in threads:
            th.start()
        try:
            self.assertTrue(wait_for(lambda: sum(ops) > 300, 20))
            direct_dst, direct_src = self.direct(dst), self.direct(src)
            self.assertEqual(direct_dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING",
                                                        src_id), b"OK")
            self.assertEqual(direct_src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING",
                                                        dst_id), b"OK")
            moved_keys, migration_start = 0, time.monotonic()
            for _ in range(200):  # bounded: a few keys at a time, while the load runs
                batch = direct_src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 10)
                if not batch:
                    break
                direct_src.execute_command("MIGRATE", HOST, dst, "", 0, 5000, "KEYS", *batch)
                moved_keys += len(batch)
                time.sleep(0.02)
            migration_time = time.monotonic() - migration_start
            self.assertGreater(moved_keys, n_threads * per_thread // 2)
            # The new owner first, then the old one, then the others (as redis-cli does).
            for p in [dst, src] + [p for p in self.masters() if p not in (src, dst)]:
                self.assertEqual(self.direct(p).execute_command("CLUSTER", "SETSLOT", slot,
                                                                "NODE", dst_id), b"OK")
            ops_at_end = sum(ops)
            self.assertTrue(wait_for(lambda: sum(ops) > ops_at_end + 300, 20))
        finally:
            stop.set()
            for th in threads:
                th.join(timeout=60)
        self.assertEqual(errors, [])
        # No key lost: every key is on the new owner with its last value.
        self.assertEqual(self.cluster.master_of(slot)[0], dst)
        for t in range(n_threads):
            final = self.direct(dst).get(f"{tag}{t}:final")
            self.assertIsNotNone(final)
            values = self.direct(dst).mget([f"{tag}{t}:{i}" for i in range(per_thread)])
            self.assertEqual(values, [final] * per_thread)
        self.assertEqual(self.direct(src).execute_command("CLUSTER", "COUNTKEYSINSLOT", slot), 0)
        info = info_fields(self.client())
        self.assertGreater(info["cluster_moved"], info0["cluster_moved"])
        self.assertGreater(info["cluster_ask"], info0["cluster_ask"])
        self.assertGreater(info["cluster_slot_map_version"], info0["cluster_slot_map_version"])
        # The same figures in the stats JSON and in /metrics.
        doc = json.loads(harness.exchange(self.stats_port))
        self.assertGreaterEqual(doc["main"]["cluster_moved"], info["cluster_moved"])
        self.assertGreaterEqual(doc["main"]["cluster_ask"], info["cluster_ask"])
        metrics = harness.exchange(self.stats_port, b"GET /metrics HTTP/1.0\r\n\r\n").decode()
        self.assertIn(f'dproxy_cluster_ask_total{{pool="main"}} ', metrics)
        self.assertIn("# TYPE dproxy_cluster_slot_map_version gauge", metrics)
        print(f"\n  migration: {moved_keys} keys in {migration_time:.2f} s, {sum(ops)} requests, "
              f"MOVED {info['cluster_moved'] - info0['cluster_moved']}, "
              f"ASK {info['cluster_ask'] - info0['cluster_ask']}, "
              f"retries {info['cluster_retries'] - info0['cluster_retries']}", flush=True)


class RedisClusterFailoverTest(RedisTestMixin, unittest.TestCase):
    """A master killed: its replica is promoted by the cluster, dproxy follows by itself."""
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.procs = Processes()
        try:
            cls.cluster = cls.procs.redis_cluster(masters=3, replicas=1)
            cls.ports = [n.port for n in cls.cluster.nodes]
            cls.port = free_port()
            cls.replica_port = free_port()
            cls.proxy = Dproxy(cls.procs, ARGS.dproxy, {
                "main": cluster_pool(cls.port, cls.ports, timeout_ms=1000),
                "replica": cluster_pool(cls.replica_port, cls.ports, timeout_ms=1000,
                                        read_from="replica")})
        except Exception:
            cls.procs.close()
            raise

    @classmethod
    def tearDownClass(cls):
        rc = cls.proxy.stop()
        cls.procs.close()
        assert rc == 0, f"dproxy exited with {rc}"

    def test_replica_killed_reads_go_to_master(self):
        r = self.client(port=self.replica_port)
        w = self.client()
        # A master that still has a replica (the master failover test may have run first).
        alive = lambda port: self.cluster.node(port).poll() is None  # noqa: E731
        first, _, master, replicas = next(e for e in self.cluster.slots()
                                          if any(alive(p) for p in e[3]))
        victim = next(p for p in replicas if alive(p))
        keys = [k for k in (self.k(i) for i in range(400))
                if self.cluster.master_of(keyslot(k))[0] == master][:20]
        self.assertTrue(keys)
        w.mset({key: "v" for key in keys})
        self.assertTrue(wait_for(lambda: all(v == b"v" for v in r.mget(keys)), 20))
        stop = threading.Event()
        failures, reads = [], [0]

        def load():
            c = redis.Redis(host=HOST, port=self.replica_port, socket_timeout=30)
            try:
                while not stop.is_set():
                    for key in keys:
                        try:
                            if c.get(key) != b"v":
                                failures.append(f"{key}: wrong value")
                        except redis.RedisError as e:
                            failures.append(str(e))
                        reads[0] += 1
            finally:
                c.close()

        th = threading.Thread(target=load)
        th.start()
        try:
            self.assertTrue(wait_for(lambda: reads[0] > 100, 20))
            self.procs.kill(self.cluster.node(victim))
            n = reads[0]
            # Reads keep working while the cluster notices (node timeout) and after.
            self.assertTrue(wait_for(lambda: reads[0] > n + 300, 30))
            self.assertTrue(wait_for(lambda: victim not in self.cluster.master_of(first)[1], 30,
                                     interval=0.1))
            n = reads[0]
            self.assertTrue(wait_for(lambda: reads[0] > n + 300, 30))
        finally:
            stop.set()
            th.join(timeout=60)
        self.assertEqual(failures, [])
        self.assertGreater(info_fields(r)["cluster_replica_fallbacks"], 0)

    def test_master_killed_replica_promoted(self):
        r = self.client()
        keys = [self.k(i) for i in range(60)]
        r.mset({key: "before" for key in keys})
        # A master whose replica is alive (whatever the other tests of this class killed).
        slots = self.cluster.slots()
        victim, replica = next((m, next(r for r in reps if self.cluster.node(r).poll() is None))
                               for _, _, m, reps in slots
                               if any(self.cluster.node(r).poll() is None for r in reps))
        victim_slots = [(a, b) for a, b, m, _ in slots if m == victim]
        victim_keys = [k for k in keys
                       if any(a <= keyslot(k) <= b for a, b in victim_slots)]
        self.assertTrue(victim_keys)
        # Let the replica catch up before the kill, so that no acknowledged write is lost.
        self.direct(victim).execute_command("WAIT", 1, 5000)

        stop = threading.Event()
        failures, successes = [], []

        def load():
            c = redis.Redis(host=HOST, port=self.port, socket_timeout=30)
            try:
                i = 0
                while not stop.is_set():
                    key = victim_keys[i % len(victim_keys)]
                    i += 1
                    try:
                        c.set(key, "after")
                        successes.append(time.monotonic())
                    except redis.RedisError as e:
                        failures.append((time.monotonic(), str(e)))
                        time.sleep(0.01)
            finally:
                c.close()

        th = threading.Thread(target=load)
        th.start()
        try:
            self.assertTrue(wait_for(lambda: len(successes) > 50, 20))
            killed_at = time.monotonic()
            self.procs.kill(self.cluster.node(victim))
            # The cluster promotes the replica; requests succeed again, by themselves.
            self.assertTrue(wait_for(
                lambda: self.cluster.master_of(victim_slots[0][0])[0] == replica, 30,
                interval=0.1), "the replica was not promoted")
            promoted_at = time.monotonic()
            n = len(successes)
            self.assertTrue(wait_for(lambda: len(successes) > n + 200, 20),
                            f"no recovery; failures: {failures[-3:]}")
        finally:
            stop.set()
            th.join(timeout=60)
        # Recovered: the first success after which nothing failed.
        last_failure = failures[-1][0] if failures else killed_at
        recovered_at = next(t for t in successes if t > last_failure)
        window = (failures[-1][0] - failures[0][0]) if failures else 0.0
        self.assertLess(window, 20.0)
        self.assertLess(recovered_at - killed_at, 20.0)
        # README: 2 failed requests (the write in flight at the kill, one that ran out of
        # retries); the margin covers a slower election. A dproxy that does not retry fails
        # every request of the ~4 s window (hundreds: the loop pauses 10 ms after a failure).
        self.assertLessEqual(len(failures), MAX_FAILOVER_FAILURES,
                             f"{len(failures)} failed requests over {window:.2f} s: "
                             f"{[f[1] for f in failures[:5]]}")
        self.assertGreater(len([t for t in successes if t > recovered_at]), 200)
        for key in victim_keys:  # every key readable on the promoted replica
            self.assertIn(r.get(key), (b"before", b"after"))
        self.assertEqual(r.get(victim_keys[0]), b"after")
        info = info_fields(r)
        print(f"\n  failover: {len(failures)} failed requests over {window:.2f} s, recovered "
              f"{recovered_at - killed_at:.2f} s after the kill (replica promoted after "
              f"{promoted_at - killed_at:.2f} s); retries "
              f"{info['cluster_retries']}, refreshes {info['cluster_refreshes']}; first "
              f"error: {failures[0][1] if failures else None}; last: "
              f"{failures[-1][1] if failures else None}", flush=True)


def parse_commands(data):
    """The RESP multibulk commands in `data` (complete ones), as lists of bytes."""
    cmds, pos = [], 0
    while pos < len(data) and data[pos:pos + 1] == b"*":
        eol = data.index(b"\r\n", pos)
        n, pos, args = int(data[pos + 1:eol]), eol + 2, []
        for _ in range(n):
            eol = data.index(b"\r\n", pos)
            size = int(data[pos + 1:eol])
            args.append(data[eol + 2:eol + 2 + size])
            pos = eol + 2 + size + 2
        cmds.append(args)
    return cmds


class RedisClusterScriptedTest(RedisTestMixin, unittest.TestCase):
    """Fake cluster nodes with scripted replies: redirection loops (and a MOVED naming ":port",
    the replying node's host), ASK, retries running out."""

    @classmethod
    def setUpClass(cls):
        cls.procs = Processes()
        cls.fakes = []
        try:
            cls.a = harness.FakeServer(lambda data: cls.node_a(data))
            cls.b = harness.FakeServer(lambda data: cls.node_b(data))
            cls.fakes = [cls.a, cls.b]
            cls.slots_reply = (b"*1\r\n*3\r\n:0\r\n:16383\r\n*3\r\n$9\r\n127.0.0.1\r\n:%d\r\n"
                               b"$1\r\na\r\n" % cls.a.port)
            cls.port = free_port()
            cls.proxy = Dproxy(cls.procs, ARGS.dproxy, {
                "main": cluster_pool(cls.port, [cls.a.port])}, threads=1)
        except Exception:
            for f in cls.fakes:
                f.close()
            cls.procs.close()
            raise

    @classmethod
    def tearDownClass(cls):
        rc = cls.proxy.stop()
        for f in cls.fakes:
            f.close()
        cls.procs.close()
        assert rc == 0, f"dproxy exited with {rc}"

    @classmethod
    def node_a(cls, data):
        out = b""
        for cmd in parse_commands(data):
            name, key = cmd[0].upper(), cmd[1] if len(cmd) > 1 else b""
            slot = keyslot(key)
            if name == b"CLUSTER":
                out += cls.slots_reply
            elif key == b"loop":
                out += b"-MOVED %d 127.0.0.1:%d\r\n" % (slot, cls.b.port)
            elif key == b"ask":
                out += b"-ASK %d 127.0.0.1:%d\r\n" % (slot, cls.b.port)
            elif key == b"busy":
                out += b"-TRYAGAIN Multiple keys request during rehashing of slot\r\n"
            elif key == b"down":
                out += b"-CLUSTERDOWN The cluster is down\r\n"
            else:
                out += b"$-1\r\n"
        return out

    @classmethod
    def node_b(cls, data):
        out = b""
        for cmd in parse_commands(data):
            name, key = cmd[0].upper(), cmd[1] if len(cmd) > 1 else b""
            if name == b"CLUSTER":
                out += cls.slots_reply
            elif name == b"ASKING":
                out += b"+OK\r\n"
            elif key == b"loop":
                out += b"-MOVED %d :%d\r\n" % (keyslot(key), cls.a.port)  # ":port": same host
            elif key == b"ask":
                out += b"$2\r\nhi\r\n"
            else:
                out += b"-ERR unexpected\r\n"
        return out

    def test_ask_sends_asking_first(self):
        c = self.raw()
        self.assertEqual(c.call("GET", "ask"), b"hi")
        self.assertIn(b"*1\r\n$6\r\nASKING\r\n*2\r\n$3\r\nGET\r\n$3\r\nask\r\n", self.b.received)
        self.assertEqual(c.call("GET", "other"), None)  # the map is unchanged: A answers
        self.assertGreaterEqual(info_fields(self.client())["cluster_ask"], 1)

    def test_redirection_loop_ends_with_an_error(self):
        c = self.raw()
        slot = keyslot("loop")
        before = self.b.received.count(b"$4\r\nloop\r\n")
        self.assertEqual(c.call("GET", "loop"),
                         harness.RespError(b"ERR dproxy: slot %d was redirected 5 times in a row "
                                           b"(last: MOVED %d :%d); the cluster's slot "
                                           b"map keeps changing" % (slot, slot, self.a.port)))
        # 5 hops A -> B -> A ..., then a backoff retry (10 retries), then the error.
        self.assertEqual(self.b.received.count(b"$4\r\nloop\r\n") - before, 3 * 11)
        self.assert_alive_nokey(c)

    def test_retries_run_out(self):
        c = self.raw()
        before = self.a.received.count(b"$4\r\nbusy\r\n")
        start = time.monotonic()
        c.send(harness.resp_command("GET", "busy") + harness.resp_command("GET", "down"))
        self.assertEqual(c.read_reply(), harness.RespError(
            b"TRYAGAIN Multiple keys request during rehashing of slot"))
        self.assertEqual(c.read_reply(), harness.RespError(b"CLUSTERDOWN The cluster is down"))
        elapsed = time.monotonic() - start
        self.assertEqual(self.a.received.count(b"$4\r\nbusy\r\n") - before, 11)  # 1 + 10 retries
        self.assertTrue(2.0 < elapsed < 15.0, elapsed)
        self.assertGreaterEqual(info_fields(self.client())["cluster_gave_up"], 2)

    def assert_alive_nokey(self, c):
        self.assertEqual(c.call("PING"), b"PONG")
        self.assertIsNone(c.call("GET", "nothing"))


if __name__ == "__main__":
    ARGS = harness.parse_args()
    warnings.simplefilter("ignore", ResourceWarning)
    unittest.main(verbosity=2)
