"""Redis blocking commands and WATCH on dedicated backend connections (issue 17).

BLPOP and friends wait on a backend connection of the client's own, to the keys' server, for as
long as the command's own timeout says (the pool's timeout_ms does not cut them short); a
worker looping on BLPOP reuses one connection instead of connecting per call; a client that
goes away while blocked releases (closes) that connection, so the server forgets the block.
WATCH pins such a connection until EXEC/DISCARD/UNWATCH and the transaction runs on it, so a
watched key changed by another client makes EXEC answer nil, as Redis does. Checked on the
backends themselves (INFO clients / stats).
"""
import socket
import threading
import time
import unittest

import harness
from harness import (HOST, Dproxy, Processes, RespClient, RespError, _cluster_cmd, free_port,
                     resp_command)

ARGS = None


def info_clients(port):
    c = RespClient(port)
    try:
        text = c.call("INFO", "clients").decode()
        stats = c.call("INFO", "stats").decode()
    finally:
        c.close()
    fields = {}
    for line in (text + stats).splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            fields[k] = v.strip()
    return fields


def wait_for(pred, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


class BlockingTest(harness.PoolsTestMixin, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.procs = Processes()
        cls.servers = [cls.procs.redis() for _ in range(3)]
        cls.cluster = cls.procs.redis_cluster(masters=3, replicas=0)
        cls.ports = [s.port for s in cls.servers]
        cls.pools = {
            "ketama": {"protocol": "redis", "listen": f"{HOST}:{free_port()}", "hash": "md5",
                       "hash_tag": "{}", "timeout_ms": 300,
                       "servers": [f"{HOST}:{p}" for p in cls.ports]},
            "cluster": {"protocol": "redis", "listen": f"{HOST}:{free_port()}",
                        "policy": "redis_cluster", "timeout_ms": 300,
                        "servers": [f"{HOST}:{n.port}" for n in cls.cluster.nodes]},
        }
        cls.proxy = Dproxy(cls.procs, ARGS.dproxy, cls.pools)

    def client(self, pool, **kw):
        import redis

        r = redis.Redis(host=HOST, port=self.port(pool), socket_timeout=30, **kw)
        self.addCleanup(r.close)
        return r

    def server_of(self, key):
        for p in self.ports:
            c = RespClient(p)
            try:
                if c.call("EXISTS", key) == 1:
                    return p
            finally:
                c.close()
        return None

    def blocked_clients(self):
        return sum(int(info_clients(p)["blocked_clients"]) for p in self.ports)

    # --- blocking commands ----------------------------------------------------------------

    def test_job_queue_exactly_once_with_few_connections(self):
        for pool in ("ketama", "cluster"):
            with self.subTest(pool=pool):
                queue = "{" + self.prefix + pool + "}jobs"
                consumer, producer = self.client(pool), self.client(pool)
                producer.set("{" + self.prefix + pool + "}probe", "x")
                ports = (self.ports if pool == "ketama" else
                         [n.port for n in self.cluster.nodes])
                before = {p: int(info_clients(p)["total_connections_received"]) for p in ports}
                got = []

                def consume():
                    while len(got) < 1000:
                        item = consumer.blpop([queue], timeout=10)
                        if item is None:
                            return
                        got.append(int(item[1]))

                t = threading.Thread(target=consume)
                t.start()
                for i in range(1000):
                    producer.rpush(queue, i)
                    if i % 100 == 0:
                        time.sleep(0.02)  # let the consumer catch up and block again
                t.join(60)
                self.assertFalse(t.is_alive())
                self.assertEqual(got, list(range(1000)))
                after = {p: int(info_clients(p)["total_connections_received"]) for p in ports}
                new = sum(after[p] - before[p] for p in ports)
                # 1,000 BLPOPs over a reused dedicated connection: a handful of new backend
                # connections (the dedicated one, INFO's own), not one per call.
                self.assertLess(new, 20, (before, after))

    def test_own_timeout_not_the_pools(self):
        for pool in ("ketama", "cluster"):
            with self.subTest(pool=pool):
                r = self.client(pool)
                start = time.monotonic()
                # timeout_ms is 300: the server's 1 s timeout decides, not dproxy's.
                self.assertIsNone(r.blpop(["{" + self.prefix + pool + "}empty"], timeout=1))
                self.assertGreaterEqual(time.monotonic() - start, 0.9)
                self.assertIsNone(r.bzpopmin(["{" + self.prefix + pool + "}z"], timeout=0.5))

    def test_pipelined_requests_around_a_block_keep_their_order(self):
        c = self.raw("ketama")
        key = "{" + self.prefix + "}l"
        c.send(resp_command("SET", key + "s", "1") + resp_command("BLPOP", key, "0.5") +
               resp_command("GET", key + "s") + resp_command("BRPOP", key, key + "2", "0.3"))
        self.assertEqual(c.read_reply(), b"OK")
        self.assertIsNone(c.read_reply())
        self.assertEqual(c.read_reply(), b"1")
        self.assertIsNone(c.read_reply())
        other = self.raw("ketama")
        c.send(resp_command("BLMOVE", key, key + "dst", "LEFT", "RIGHT", "5"))
        time.sleep(0.2)
        self.assertEqual(other.call("LPUSH", key, "job"), 1)
        self.assertEqual(c.read_reply(), b"job")
        self.assertEqual(other.call("LRANGE", key + "dst", "0", "-1"), [b"job"])

    def test_cluster_slot_moved_under_a_block(self):
        # A BLPOP waits in a cluster pool while its key's slot moves to another master: the old
        # master unblocks it with -MOVED, and dproxy sends it again to the new master (the client
        # never sees the redirection), where the next push wakes it.
        key = "{" + self.prefix + "moving}q"
        slot, src, dst = self.cluster.key_slot_and_masters(key)
        c = self.raw("cluster")
        c.send(resp_command("BLPOP", key, "20"))
        self.assertTrue(wait_for(lambda: int(info_clients(src)["blocked_clients"]) >= 1, 10))
        try:
            self.cluster.move_slot(slot, dst)
            # Re-sent to the new master: blocked there now.
            self.assertTrue(wait_for(
                lambda: int(info_clients(dst)["blocked_clients"]) >= 1, 10))
            other = self.raw("cluster")
            self.assertEqual(other.call("RPUSH", key, "job"), 1)
            self.assertEqual(c.read_reply(), [key.encode(), b"job"])
            self.assertGreaterEqual(self.proxy.stats()["cluster"]["cluster_moved"], 1)
        finally:
            # The slot goes home, so the other tests see the map they started with.
            self.cluster.move_slot(slot, src)

    def test_cluster_watch_after_the_slot_moved(self):
        # The slot moved before dproxy's map knew: WATCH (on a dedicated connection to the old
        # master) is answered -MOVED; dproxy follows it, the WATCH and the transaction run on
        # the new master, and a change by another client still aborts the EXEC.
        key = "{" + self.prefix + "watched}k"
        slot, src, dst = self.cluster.key_slot_and_masters(key)
        try:
            self.cluster.move_slot(slot, dst)
            c = self.raw("cluster")
            self.assertEqual(c.call("WATCH", key), b"OK")
            self.assertEqual(c.call("MULTI"), b"OK")
            self.assertEqual(c.call("SET", key, "1"), b"QUEUED")
            self.assertEqual(c.call("EXEC"), [b"OK"])
            self.assertEqual(_cluster_cmd(dst, "GET", key), b"1")
            self.assertEqual(c.call("WATCH", key), b"OK")
            self.assertEqual(self.raw("cluster").call("SET", key, "2"), b"OK")
            self.assertEqual(c.call("MULTI"), b"OK")
            self.assertEqual(c.call("SET", key, "3"), b"QUEUED")
            self.assertIsNone(c.call("EXEC"))  # the other client's change aborts it
            self.assertEqual(_cluster_cmd(dst, "GET", key), b"2")
        finally:
            _cluster_cmd(dst, "DEL", key)
            self.cluster.move_slot(slot, src)

    def test_cluster_transaction_after_the_slot_moved(self):
        # MULTI ... EXEC without WATCH after a slot move dproxy has not seen: the node refuses
        # the queued commands with MOVED; dproxy sends the transaction again to the node named,
        # so the client gets its results, not EXECABORT.
        key = "{" + self.prefix + "tx}k"
        slot, src, dst = self.cluster.key_slot_and_masters(key)
        try:
            self.cluster.move_slot(slot, dst)
            c = self.raw("cluster")
            self.assertEqual(c.call("MULTI"), b"OK")
            self.assertEqual(c.call("SET", key, "1"), b"QUEUED")
            self.assertEqual(c.call("INCR", key), b"QUEUED")
            self.assertEqual(c.call("EXEC"), [b"OK", 2])
            self.assertEqual(_cluster_cmd(dst, "GET", key), b"2")
        finally:
            _cluster_cmd(dst, "DEL", key)
            self.cluster.move_slot(slot, src)

    def test_xread_and_xreadgroup_with_block(self):
        for pool in ("ketama", "cluster"):
            with self.subTest(pool=pool):
                s = "{" + self.prefix + pool + "}stream"
                c, other = self.raw(pool), self.raw(pool)
                # Woken by another client's XADD, on the stream's server.
                c.send(resp_command("XREAD", "BLOCK", "5000", "STREAMS", s, "$"))
                time.sleep(0.2)
                entry = other.call("XADD", s, "*", "f", "v1")
                got = c.read_reply()
                self.assertEqual(got[0][0], s.encode(), got)
                self.assertEqual(got[0][1], [[entry, [b"f", b"v1"]]])
                # Its own timeout, not the pool's 300 ms: nil after 0.6 s.
                start = time.monotonic()
                self.assertIsNone(c.call("XREAD", "block", "600", "STREAMS", s, "$"))
                self.assertGreaterEqual(time.monotonic() - start, 0.55)
                # XREADGROUP: a consumer group member blocked, then fed.
                self.assertEqual(other.call("XGROUP", "CREATE", s, "g", "$"), b"OK")
                c.send(resp_command("XREADGROUP", "GROUP", "g", "c1", "COUNT", "1", "BLOCK", "0",
                                    "STREAMS", s, ">"))
                time.sleep(0.2)
                entry = other.call("XADD", s, "*", "f", "v2")
                self.assertEqual(c.read_reply(), [[s.encode(), [[entry, [b"f", b"v2"]]]]])
                self.assertEqual(other.call("XPENDING", s, "g")[0], 1)
                # Inside MULTI it is queued and does not block, as in Redis.
                c.send(resp_command("MULTI") +
                       resp_command("XREAD", "BLOCK", "0", "STREAMS", s, "$") +
                       resp_command("EXEC"))
                self.assertEqual([c.read_reply() for _ in range(3)], [b"OK", b"QUEUED", [None]])
                # Streams on two servers (slots): CROSSSLOT; the connection goes on.
                far = self.prefix + pool + "x0"
                if pool == "ketama":
                    for i in range(200):
                        far = f"{self.prefix}x{i}"
                        other.call("SET", far, "x")
                        if self.server_of(far) != self.server_of(s):
                            break
                err = c.call("XREAD", "BLOCK", "0", "STREAMS", s, far, "$", "$")
                self.assertIsInstance(err, RespError)
                self.assertTrue(err.startswith(b"CROSSSLOT"), err)
                self.assertEqual(c.call("PING"), b"PONG")

    def test_keys_on_two_servers_get_crossslot(self):
        c = self.raw("ketama")
        a = self.prefix + "a"
        b = None
        c.call("SET", a, "x")
        for i in range(200):
            cand = f"{self.prefix}b{i}"
            c.call("SET", cand, "x")
            if self.server_of(cand) != self.server_of(a):
                b = cand
                break
        self.assertIsNotNone(b)
        err = c.call("BLPOP", a, b, "0")
        self.assertIsInstance(err, RespError)
        self.assertTrue(err.startswith(b"CROSSSLOT dproxy: the keys of BLPOP map to different "
                                       b"servers"), err)
        cc = self.raw("cluster")
        self.assertEqual(cc.call("BLPOP", "a", "b", "0"),
                         RespError(b"CROSSSLOT Keys in request don't hash to the same slot"))
        self.assertEqual(c.call("PING"), b"PONG")

    def test_client_gone_while_blocked_releases_the_connection(self):
        key = "{" + self.prefix + "}gone"
        base = self.blocked_clients()
        socks = []
        for _ in range(5):
            s = socket.create_connection((HOST, self.port("ketama")))
            s.sendall(resp_command("BLPOP", key, "0"))
            socks.append(s)
        self.assertTrue(wait_for(lambda: self.blocked_clients() == base + 5),
                        self.blocked_clients())
        for s in socks:
            s.close()
        # The backend connections are closed: the server has no blocked client left, and a
        # push is not eaten by a vanished client.
        self.assertTrue(wait_for(lambda: self.blocked_clients() == base), self.blocked_clients())
        r = self.client("ketama")
        r.rpush(key, "kept")
        self.assertEqual(r.lrange(key, 0, -1), [b"kept"])

    def test_backend_killed_during_a_block_answers_an_error(self):
        server, proxy, port = self.one_server_proxy(ARGS.dproxy)
        c = RespClient(port)
        self.addCleanup(c.close)
        c.send(resp_command("BLPOP", "q", "0"))
        self.assertTrue(wait_for(lambda: info_clients(server.port)["blocked_clients"] == "1"))
        server.procs.kill(server)
        err = c.read_reply()
        self.assertIsInstance(err, RespError)
        self.assertTrue(err.startswith(b"ERR dproxy: backend"), err)
        self.assertEqual(c.call("PING"), b"PONG")
        self.assertEqual(proxy.stop(), 0)

    def test_limit_and_stats(self):
        server, proxy, port = self.one_server_proxy(ARGS.dproxy, max_dedicated_connections=2)

        def pool_stats():
            return proxy.stats()["one"]

        blocked = []
        for i in range(2):
            c = RespClient(port)
            self.addCleanup(c.close)
            c.send(resp_command("BLPOP", f"q{i}", "0"))
            blocked.append(c)
        self.assertTrue(wait_for(lambda: info_clients(server.port)["blocked_clients"] == "2"))
        third = RespClient(port)
        self.addCleanup(third.close)
        err = third.call("BLPOP", "q9", "0")
        self.assertIsInstance(err, RespError)
        self.assertTrue(err.startswith(b"ERR dproxy: too many dedicated backend connections"),
                        err)
        self.assertTrue(third.call("SUBSCRIBE", "ch").startswith(
            b"ERR dproxy: too many dedicated backend connections"))
        self.assertEqual(third.call("PING"), b"PONG")  # not in subscribed mode
        st = pool_stats()
        self.assertEqual((st["dedicated_connections"], st["dedicated_opened"]), (2, 2), st)
        # A push releases one: it goes back to the idle ones and serves the next BLPOP.
        self.assertEqual(third.call("RPUSH", "q0", "job"), 1)
        self.assertEqual(blocked[0].read_reply(), [b"q0", b"job"])
        self.assertEqual(third.call("BLPOP", "q9", "0.1"), None)
        st = pool_stats()
        self.assertEqual((st["dedicated_connections"], st["dedicated_opened"]), (1, 2), st)
        for c in blocked:
            c.close()
        self.assertTrue(wait_for(lambda: pool_stats()["dedicated_connections"] == 0))
        self.assertTrue(wait_for(lambda: info_clients(server.port)["blocked_clients"] == "0"))
        metrics = harness.exchange(proxy.stats_port, b"GET /metrics HTTP/1.0\r\n\r\n")
        self.assertIn(b'dproxy_dedicated_connections{pool="one"} 0', metrics)
        self.assertIn(b'dproxy_dedicated_connections_total{pool="one"} 2', metrics)
        self.assertEqual(proxy.stop(), 0)

    def test_backend_killed_under_a_transaction_and_a_watch(self):
        server, proxy, port = self.one_server_proxy(ARGS.dproxy)
        c, w = RespClient(port), RespClient(port)
        self.addCleanup(c.close)
        self.addCleanup(w.close)
        self.assertEqual(w.call("WATCH", "k"), b"OK")  # a dedicated connection, then the kill
        self.assertEqual(c.call("MULTI"), b"OK")
        self.assertEqual(c.call("SET", "k", "1"), b"QUEUED")
        server.procs.kill(server)
        err = c.call("EXEC")
        self.assertIsInstance(err, RespError)
        self.assertTrue(err.startswith(b"ERR dproxy: backend"), err)
        self.assertEqual(w.call("MULTI"), b"OK")
        self.assertEqual(w.call("SET", "k", "2"), b"QUEUED")
        err = w.call("EXEC")
        self.assertIsInstance(err, RespError)
        self.assertTrue(err.startswith(b"ERR dproxy: backend"), err)
        # Both sessions still answer, and nothing dedicated is left held.
        self.assertEqual(c.call("PING"), b"PONG")
        self.assertEqual(w.call("PING"), b"PONG")
        self.assertTrue(wait_for(lambda: proxy.stats()["one"]["dedicated_connections"] == 0))
        self.assertEqual(proxy.stop(), 0)

    # --- WATCH ----------------------------------------------------------------------------

    def test_watch_sees_a_concurrent_change(self):
        for pool in ("ketama", "cluster"):
            with self.subTest(pool=pool):
                key = "{" + self.prefix + pool + "}w"
                c, other = self.raw(pool), self.raw(pool)
                self.assertEqual(c.call("SET", key, "1"), b"OK")
                self.assertEqual(c.call("WATCH", key), b"OK")
                self.assertEqual(c.call("GET", key), b"1")
                self.assertEqual(other.call("SET", key, "changed"), b"OK")
                self.assertEqual(c.call("MULTI"), b"OK")
                self.assertEqual(c.call("SET", key, "mine"), b"QUEUED")
                c.send(resp_command("EXEC"))
                self.assertEqual(c.read_raw_reply(), b"*-1\r\n")  # aborted: key changed
                self.assertEqual(other.call("GET", key), b"changed")
                # Without a change in between, the same sequence commits.
                self.assertEqual(c.call("WATCH", key), b"OK")
                self.assertEqual(c.call("MULTI"), b"OK")
                self.assertEqual(c.call("SET", key, "mine"), b"QUEUED")
                self.assertEqual(c.call("EXEC"), [b"OK"])
                self.assertEqual(other.call("GET", key), b"mine")
                # UNWATCH and DISCARD end a WATCH.
                self.assertEqual(c.call("WATCH", key), b"OK")
                self.assertEqual(c.call("UNWATCH"), b"OK")
                self.assertEqual(other.call("SET", key, "x"), b"OK")
                self.assertEqual(c.call("MULTI"), b"OK")
                self.assertEqual(c.call("GET", key), b"QUEUED")
                self.assertEqual(c.call("EXEC"), [b"x"])
                self.assertEqual(c.call("WATCH", key), b"OK")
                self.assertEqual(c.call("MULTI"), b"OK")
                self.assertEqual(c.call("DISCARD"), b"OK")
                self.assertEqual(other.call("SET", key, "y"), b"OK")
                self.assertEqual(c.call("MULTI"), b"OK")
                self.assertEqual(c.call("GET", key), b"QUEUED")
                self.assertEqual(c.call("EXEC"), [b"y"])

    def test_redis_py_transaction_with_watch_retries(self):
        import redis

        key = "{" + self.prefix + "}counter"
        r = self.client("ketama")
        other = self.client("ketama")
        r.set(key, 0)
        attempts = []

        def incr(pipe):
            value = int(pipe.get(key))
            attempts.append(value)
            if len(attempts) == 1:
                other.incr(key, 10)  # someone else changes it: this attempt must retry
            pipe.multi()
            pipe.set(key, value + 1)

        r.transaction(incr, key)
        self.assertEqual(len(attempts), 2)
        self.assertEqual(int(r.get(key)), 11)  # 0, +10 by the other client, +1
        # A WATCH of a key on another server than the transaction's keys: refused.
        c = self.raw("ketama")
        self.assertEqual(c.call("WATCH", key), b"OK")
        other_key = None
        for i in range(200):
            cand = f"{self.prefix}o{i}"
            c.call("SET", cand, "1")
            if self.server_of(cand) != self.server_of(key):
                other_key = cand
                break
        self.assertIsNotNone(other_key)
        err = c.call("WATCH", other_key)
        self.assertIsInstance(err, RespError)
        self.assertTrue(err.startswith(b"CROSSSLOT"), err)
        self.assertEqual(c.call("MULTI"), b"OK")
        err = c.call("SET", other_key, "2")
        self.assertTrue(err.startswith(b"CROSSSLOT"), err)
        self.assertEqual(c.call("EXEC"), RespError(
            b"EXECABORT Transaction discarded because of previous errors."))
        with self.assertRaises(redis.exceptions.ResponseError):
            r.execute_command("WATCH", key, other_key)


if __name__ == "__main__":
    ARGS = harness.parse_args()
    unittest.main()
