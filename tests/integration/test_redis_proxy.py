"""Redis through dproxy: placement over the servers, hash tags, CROSSSLOT, split multi-key
commands (MGET MSET DEL UNLINK EXISTS TOUCH), pipelining, 16 MiB values, inline commands,
concurrency, requests split at every byte, clients vanishing with replies pending, unix sockets.

Starts three real redis-servers on free loopback ports and dproxy in front of them. The command
families are in test_redis_commands.py, rejections and failures in test_redis_errors.py,
redis-cli / redis-benchmark in test_redis_clients.py.
"""
import os
import socket
import struct
import threading
import time
import unittest
import warnings

import harness
from harness import (HOST, Dproxy, Processes, RedisTestMixin, RespError, free_port,
                     resp_command)

import redis

ARGS = None

CROSSSLOT_SINTER = (b"CROSSSLOT dproxy: the keys of SINTER map to different servers; keep them "
                    b"together with a hash tag, e.g. {user1}.a and {user1}.b")


class RedisProxyTest(RedisTestMixin, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.procs = Processes()
        cls.sock_path = os.path.join(cls.procs.tmp.name, "dproxy-redis.sock")
        cls.backend_sock = os.path.join(cls.procs.tmp.name, "redis-backend.sock")
        cls.backends = [cls.procs.redis() for _ in range(2)]
        cls.backends.append(cls.procs.redis(extra=["--unixsocket", cls.backend_sock]))
        cls.ports = [b.port for b in cls.backends]
        cls.port = free_port()
        cls.notag_port = free_port()
        servers = [f"{HOST}:{p} r{i}" for i, p in enumerate(cls.ports)]
        pools = {
            "main": {"protocol": "redis", "listen": f"{HOST}:{cls.port}", "hash_tag": "{}",
                     "timeout_ms": 5000, "servers": servers},
            "notag": {"protocol": "redis", "listen": f"{HOST}:{cls.notag_port}",
                      "hash": "murmur", "servers": servers},
            # Clients and the backend over unix sockets.
            "unix": {"protocol": "redis", "listen": cls.sock_path,
                     "servers": [cls.backend_sock]},
        }
        cls.proxy = Dproxy(cls.procs, ARGS.dproxy, pools, threads=2)

    @classmethod
    def tearDownClass(cls):
        rc = cls.proxy.stop()
        cls.procs.close()
        assert rc == 0, f"dproxy exited with {rc}"

    # --- placement -------------------------------------------------------------------------

    def test_keys_spread_and_each_on_exactly_one_backend(self):
        r = self.client(decode=True)
        keys = [self.k(os.urandom(6).hex()) for _ in range(300)]
        pipe = r.pipeline(transaction=False)
        for key in keys:
            pipe.set(key, "v" + key)
        self.assertEqual(pipe.execute(), [True] * len(keys))
        found = self.where(keys)
        per_backend = {p: 0 for p in self.ports}
        for key in keys:
            self.assertEqual(len(found[key]), 1, f"{key} on {found[key]}")
            per_backend[found[key][0]] += 1
            self.assertEqual(self.direct(found[key][0]).get(key), ("v" + key).encode())
        self.assertTrue(all(n >= 30 for n in per_backend.values()), per_backend)

    def test_hash_tags_keep_keys_together(self):
        r = self.client(decode=True)
        tag_servers = set()
        for i in range(40):
            tag = f"user{i}:{os.urandom(4).hex()}:{self.prefix}"
            keys = [f"{{{tag}}}.a", f"{{{tag}}}.b", f"x{{{tag}}}y", tag]
            for key in keys:
                r.set(key, "1")
            found = self.where(keys)
            homes = {tuple(v) for v in found.values()}
            self.assertEqual(len(homes), 1, found)
            (home,), = homes
            tag_servers.add(home)
        self.assertEqual(len(tag_servers), 3, "tags should spread over all servers")
        # {user1}.a and {user1}.b literally.
        r.set("{user1}.a", "a")
        r.set("{user1}.b", "b")
        found = self.where(["{user1}.a", "{user1}.b"])
        self.assertEqual(len(found["{user1}.a"]), 1)
        self.assertEqual(found["{user1}.a"], found["{user1}.b"])

    def test_same_server_multi_key_command_and_crossslot(self):
        r = self.client(decode=True)
        a, b, dst = self.k("{t}a"), self.k("{t}b"), self.k("{t}dst")
        r.sadd(a, "1", "2", "3")
        r.sadd(b, "2", "3", "4")
        self.assertEqual(r.sinterstore(dst, [a, b]), 2)
        self.assertEqual(r.smembers(dst), {"2", "3"})
        # Keys on two different servers: refused with -CROSSSLOT, the connection stays usable.
        x, y = self.keys_on_distinct_servers(2)
        c = self.raw()
        c.send(harness.resp_command("SINTER", x, y))
        self.assertEqual(c.read_line(), b"-" + CROSSSLOT_SINTER + b"\r\n")
        c.send(harness.resp_command("SINTERSTORE", x, x, y))
        self.assertEqual(c.read_line(), b"-CROSSSLOT dproxy: the keys of SINTERSTORE map to "
                         b"different servers; keep them together with a hash tag, e.g. "
                         b"{user1}.a and {user1}.b\r\n")
        self.assertEqual(c.call("RENAME", x, y),
                         RespError(b"CROSSSLOT dproxy: the keys of RENAME map to different "
                                   b"servers; keep them together with a hash tag, e.g. "
                                   b"{user1}.a and {user1}.b"))
        self.assert_alive(c)
        with self.assertRaisesRegex(redis.ResponseError, "^CROSSSLOT dproxy"):
            r.sinter(x, y)
        self.assertEqual(r.ping(), True)
        # A pool without hash_tag says how to get one.
        c2 = self.raw(self.notag_port)
        for i in range(200):
            p, q = self.k(f"nt{i}a"), self.k(f"nt{i}b")
            reply = c2.call("SINTER", p, q)
            if isinstance(reply, RespError):
                self.assertEqual(reply, CROSSSLOT_SINTER + b" (set the pool's hash_tag)")
                break
        else:
            self.fail("no cross-server key pair found")
        self.assert_alive(c2)

    def test_crossslot_for_every_same_server_command(self):
        x, y = self.keys_on_distinct_servers(2)
        tx, ty = self.k("{tag}x"), self.k("{tag}y")
        c = self.raw()
        for name, args in [
            ("SINTER", lambda a, b: ("SINTER", a, b)),
            ("SUNIONSTORE", lambda a, b: ("SUNIONSTORE", a, b)),
            ("SDIFFSTORE", lambda a, b: ("SDIFFSTORE", a, a, b)),
            ("SMOVE", lambda a, b: ("SMOVE", a, b, "m")),
            ("SINTERCARD", lambda a, b: ("SINTERCARD", "2", a, b)),
            ("ZUNIONSTORE", lambda a, b: ("ZUNIONSTORE", a, "2", a, b)),
            ("ZINTERCARD", lambda a, b: ("ZINTERCARD", "2", a, b)),
            ("ZDIFF", lambda a, b: ("ZDIFF", "2", a, b)),
            ("LMOVE", lambda a, b: ("LMOVE", a, b, "LEFT", "LEFT")),
            ("RPOPLPUSH", lambda a, b: ("RPOPLPUSH", a, b)),
            ("LMPOP", lambda a, b: ("LMPOP", "2", a, b, "LEFT")),
            ("RENAME", lambda a, b: ("RENAME", a, b)),
            ("RENAMENX", lambda a, b: ("RENAMENX", a, b)),
            ("COPY", lambda a, b: ("COPY", a, b)),
            ("MSETNX", lambda a, b: ("MSETNX", a, "1", b, "2")),
            ("PFCOUNT", lambda a, b: ("PFCOUNT", a, b)),
            ("PFMERGE", lambda a, b: ("PFMERGE", a, b)),
            ("BITOP", lambda a, b: ("BITOP", "AND", a, b)),
            ("LCS", lambda a, b: ("LCS", a, b)),
            ("GEOSEARCHSTORE", lambda a, b: ("GEOSEARCHSTORE", a, b, "FROMLONLAT", "0", "0",
                                             "BYRADIUS", "1", "km")),
            ("GEORADIUS", lambda a, b: ("GEORADIUS", a, "0", "0", "1", "km", "STORE", b)),
            ("SORT", lambda a, b: ("SORT", a, "LIMIT", "0", "1", "STORE", b)),
            ("XREAD", lambda a, b: ("XREAD", "COUNT", "1", "STREAMS", a, b, "0", "0")),
            ("EVAL", lambda a, b: ("EVAL", "return 1", "2", a, b)),
            ("FCALL", lambda a, b: ("FCALL", "f", "2", a, b)),
        ]:
            self.assertEqual(c.call(*args(x, y)), RespError(
                b"CROSSSLOT dproxy: the keys of " + name.encode() + b" map to different servers; "
                b"keep them together with a hash tag, e.g. {user1}.a and {user1}.b"), name)
            reply = c.call(*args(tx, ty))  # forwarded: whatever Redis answers, not CROSSSLOT
            self.assertFalse(isinstance(reply, RespError) and reply.startswith(b"CROSSSLOT"),
                             (name, reply))
        self.assert_alive(c)

    def test_placement_matches_nutcracker_redis_pool(self):
        # Same servers (names, weights), hash, distribution and hash_tag as a twemproxy redis
        # pool: every key, hash-tag edge cases included, lands on the same server.
        servers = [f"{HOST}:{p}:1 r{i}" for i, p in enumerate(self.ports)]
        nc = harness.Nutcracker(self.procs, {"redis": True, "hash": "fnv1a_64",
                                             "distribution": "ketama", "hash_tag": "{}",
                                             "servers": servers})
        self.addCleanup(nc.stop)
        keys = [self.k(os.urandom(5).hex()) for _ in range(300)]
        keys += [self.k(f"{{tag{i}}}.a") for i in range(20)]
        keys += ["{}" + self.k(i) for i in range(10)]  # empty tag: the whole key is hashed
        keys += ["{" + self.k(i) for i in range(10)]   # no closing brace
        keys += [self.k(i) + "}{x}" for i in range(10)]
        keys += [f"{{{i}}}{{x}}" + self.k(i) for i in range(10)]
        via_nc = redis.Redis(host=HOST, port=nc.port, socket_timeout=10)
        self.addCleanup(via_nc.close)
        pipe = via_nc.pipeline(transaction=False)
        for key in keys:
            pipe.set(key, "nc")
        pipe.execute()
        nc_home = self.where(keys)
        for port in self.ports:
            self.direct(port).delete(*keys)
        self.assertTrue(self.client().mset({key: "dp" for key in keys}))
        dp_home = self.where(keys)
        for key in keys:
            self.assertEqual(len(dp_home[key]), 1, key)
            self.assertEqual(dp_home[key], nc_home[key], key)

    # --- split multi-key commands ----------------------------------------------------------

    def test_mget_across_servers_in_key_order_with_nils(self):
        r = self.client(decode=True)
        a, b, c = self.keys_on_distinct_servers(3)
        self.assertTrue(r.mset({a: "va", c: "vc"}))
        r.rpush(self.k("list"), "x")  # MGET answers nil for a key of another type
        keys = [c, b, a, self.k("nope"), a, self.k("list"), c, b]
        self.assertEqual(r.mget(keys), ["vc", None, "va", None, "va", None, "vc", None])
        self.assertEqual(r.mget([a]), ["va"])
        more = [self.k(f"m{i}") for i in range(100)]
        r.mset({key: f"v{i}" for i, key in enumerate(more) if i % 3})
        self.assertEqual(r.mget(more), [f"v{i}" if i % 3 else None for i in range(100)])
        # Exact bytes.
        raw = self.raw()
        raw.send(harness.resp_command("MGET", a, self.k("nope"), c))
        self.assertEqual(raw.read_raw_reply(), b"*3\r\n$2\r\nva\r\n$-1\r\n$2\r\nvc\r\n")

    def test_mset_places_values_on_the_right_backends(self):
        r = self.client(decode=True)
        keys = [self.k(os.urandom(4).hex()) for _ in range(60)]
        self.assertTrue(r.mset({key: "val-" + key for key in keys}))
        found = self.where(keys)
        self.assertEqual(len({p for v in found.values() for p in v}), 3)
        for key in keys:
            self.assertEqual(len(found[key]), 1, found[key])
            self.assertEqual(self.direct(found[key][0]).get(key), ("val-" + key).encode())
        # MSET of the same key twice: the last value wins, as in Redis.
        self.assertTrue(r.execute_command("MSET", keys[0], "first", keys[1], "x", keys[0], "last"))
        self.assertEqual(r.get(keys[0]), "last")

    def test_del_unlink_exists_touch_counts(self):
        r = self.client(decode=True)
        keys = [self.k(f"c{i}:{os.urandom(4).hex()}") for i in range(24)]
        r.mset({key: "1" for key in keys})
        missing = [self.k(f"missing{i}") for i in range(6)]
        self.assertEqual(len({p for v in self.where(keys).values() for p in v}), 3)
        self.assertEqual(r.exists(*keys), 24)
        self.assertEqual(r.exists(*keys, *missing), 24)
        # Duplicates count each time, as Redis does.
        self.assertEqual(r.exists(keys[0], keys[0], keys[5], missing[0], keys[5], keys[0]), 5)
        self.assertEqual(r.touch(*keys, *missing, keys[3]), 25)
        self.assertEqual(r.delete(*keys[:10], *missing), 10)
        self.assertEqual(r.delete(*keys[:10]), 0)
        self.assertEqual(r.exists(*keys), 14)
        self.assertEqual(r.unlink(*keys, keys[23]), 14)
        self.assertEqual(r.exists(*keys), 0)
        self.assertEqual(r.delete(keys[0]), 0)
        c = self.raw()
        r.set(keys[0], "x")
        self.assertEqual(c.call("DEL", keys[0], keys[0], missing[1]), 1)

    # --- pipelining, big values, inline ----------------------------------------------------

    def test_pipeline_of_10000_mixed_commands_replies_in_order(self):
        r = self.client(decode=True)
        keys = [self.k(f"p{i}:{os.urandom(4).hex()}") for i in range(500)]
        counters = [self.k(f"n{i}") for i in range(100)]
        model, expected = {}, []
        pipe = r.pipeline(transaction=False)
        for i in range(10000):
            op = i % 5
            if op == 0:
                key = keys[(i * 7) % len(keys)]
                value = f"v{i}"
                pipe.set(key, value)
                model[key] = value
                expected.append(True)
            elif op == 1:
                key = keys[(i * 13) % len(keys)]
                pipe.get(key)
                expected.append(model.get(key))
            elif op == 2:
                key = counters[i % len(counters)]
                pipe.incr(key)
                model[key] = model.get(key, 0) + 1
                expected.append(model[key])
            elif op == 3:
                some = [keys[(i * j) % len(keys)] for j in (3, 5, 11, 17)]
                pipe.mget(some)
                expected.append([model.get(key) for key in some])
            else:
                some = [keys[(i * j) % len(keys)] for j in (2, 19, 2)]
                pipe.exists(*some)
                expected.append(sum(key in model for key in some))
        start = time.monotonic()
        replies = pipe.execute()
        self.assertLess(time.monotonic() - start, 30)
        self.assertEqual(len(replies), 10000)
        for i, (got, want) in enumerate(zip(replies, expected)):
            self.assertEqual(got, want, f"reply {i}")
        self.assertEqual(len({p for v in self.where(keys).values() for p in v}), 3)

    def test_pipeline_mixing_local_forwarded_split_and_rejected_keeps_order(self):
        a, b = self.keys_on_distinct_servers(2)
        c = self.raw()
        c.send(b"".join([
            harness.resp_command("SET", a, "1"),
            harness.resp_command("PING"),
            harness.resp_command("MGET", a, b),
            harness.resp_command("BLPOP", a, "0"),
            harness.resp_command("GET", a),
            harness.resp_command("ECHO", "e"),
            harness.resp_command("EXISTS", a, b, a),
            harness.resp_command("NOSUCH"),
            harness.resp_command("INCR", b),
        ]))
        self.assertEqual(c.read_reply(), b"OK")
        self.assertEqual(c.read_reply(), b"PONG")
        self.assertEqual(c.read_reply(), [b"1", None])
        # BLPOP runs on a dedicated connection (test_redis_blocking.py); `a` holds a string.
        self.assertEqual(c.read_reply(), RespError(
            b"WRONGTYPE Operation against a key holding the wrong kind of value"))
        self.assertEqual(c.read_reply(), b"1")
        self.assertEqual(c.read_reply(), b"e")
        self.assertEqual(c.read_reply(), 2)
        self.assertEqual(c.read_reply(), RespError(
            b"ERR unknown command 'NOSUCH', with args beginning with: "))
        self.assertEqual(c.read_reply(), 1)

    def test_16_mib_values_byte_exact(self):
        r = self.client(decode=False)
        big = os.urandom(16 << 20)
        k1, k2 = self.keys_on_distinct_servers(2)
        self.assertTrue(r.set(k1, big))
        self.assertEqual(r.get(k1), big)
        self.assertEqual(r.strlen(k1), len(big))
        self.assertEqual(r.getrange(k1, len(big) - 10, -1), big[-10:])
        (home,), = self.where([k1])[k1],
        self.assertEqual(self.direct(home).strlen(k1), len(big))
        # Two big values on different servers in one MSET / MGET.
        big2 = big[::-1]
        self.assertTrue(r.mset({k1: big2, k2: big}))
        got = r.mget([k1, self.k("nope"), k2])
        self.assertEqual(got[1], None)
        self.assertTrue(got[0] == big2 and got[2] == big, "MGET of two 16 MiB values differs")
        self.assertEqual(r.delete(k1, k2), 2)

    def test_inline_commands(self):
        c = self.raw()
        key = self.k("inline")
        c.send(b"PING\r\n")
        self.assertEqual(c.read_line(), b"+PONG\r\n")
        c.send(f"SET {key} v\r\n".encode())
        self.assertEqual(c.read_line(), b"+OK\r\n")
        c.send(f"GET {key}\r\n".encode())
        self.assertEqual(c.read_raw_reply(), b"$1\r\nv\r\n")
        # Quotes and escapes as redis-cli / Redis split them; a bare "\n" ends a line too.
        c.send(f'SET {key} "hello world\\x21"\r\nget {key}\nAPPEND {key} \'!\'\r\n'.encode())
        self.assertEqual(c.read_line(), b"+OK\r\n")
        self.assertEqual(c.read_raw_reply(), b"$12\r\nhello world!\r\n")
        self.assertEqual(c.read_line(), b":13\r\n")
        # Empty lines are ignored; an inline multi-key command is split like any other.
        a, b = self.keys_on_distinct_servers(2)
        c.send(f"\r\n\r\nMSET {a} 1 {b} 2\r\nMGET {b} {a}\r\nEXISTS {a} {b} nope\r\n".encode())
        self.assertEqual(c.read_line(), b"+OK\r\n")
        self.assertEqual(c.read_raw_reply(), b"*2\r\n$1\r\n2\r\n$1\r\n1\r\n")
        self.assertEqual(c.read_line(), b":2\r\n")

    # --- robustness ------------------------------------------------------------------------

    def test_large_multi_key_commands(self):
        r = self.client(decode=True)
        keys = [self.k(f"{i}:{os.urandom(3).hex()}") for i in range(5000)]
        self.assertTrue(r.mset({key: f"v{i}" for i, key in enumerate(keys) if i % 2 == 0}))
        self.assertEqual(r.mget(keys), [f"v{i}" if i % 2 == 0 else None for i in range(5000)])
        self.assertEqual(r.exists(*keys, *keys[:100]), 2500 + 50)
        self.assertEqual(r.delete(*keys), 2500)
        self.assertEqual(r.exists(*keys), 0)

    def test_big_replies_pipelined_backpressure(self):
        # 64 replies of 1 MiB each are far over the 8 MiB of replies dproxy buffers per client:
        # it must pause reading, drain and resume without losing or reordering anything.
        r = self.client()
        a, b = self.keys_on_distinct_servers(2)
        va, vb = os.urandom(1 << 20), os.urandom(1 << 20)
        r.mset({a: va, b: vb})
        c = self.raw()
        c.send(b"".join(resp_command("GET", a if i % 2 else b) for i in range(64)))
        # The client reads nothing yet. Once the replies stop flowing to it (the kernel's
        # buffers are full), dproxy holds the rest and, past 8 MiB, stops reading: the read
        # it already has posted takes one more request (a PING), the next one stays in the
        # receive queue of dproxy's socket.
        ours = c.sock.getsockname()[1]
        queued = lambda: harness.tcp_queues(self.port, ours)[1]  # noqa: E731
        last = [-1]

        def replies_stalled():
            """Our receive queue is non-empty and did not grow since the last poll."""
            now = harness.tcp_queues(ours, self.port)[1]
            same, last[0] = now > 0 and now == last[0], now
            return same

        self.assertTrue(harness.wait_for(replies_stalled, 20, interval=0.2))
        c.send(resp_command("PING"))
        self.assertTrue(harness.wait_for(lambda: queued() == 0, 10))
        tail = resp_command("MGET", a, b) + resp_command("PING")
        c.send(tail)
        self.assertTrue(harness.wait_for(lambda: queued() == len(tail), 10),
                        f"dproxy kept reading: {queued()} of {len(tail)} bytes queued")
        time.sleep(0.5)  # a window to observe that nothing reads it (not a synchronisation)
        self.assertEqual(queued(), len(tail), "dproxy read while its client does not read")
        for i in range(64):
            got = c.read_reply()
            self.assertTrue(got == (va if i % 2 else vb), f"reply {i} differs")
        self.assertEqual(c.read_reply(), b"PONG")
        self.assertTrue(c.read_reply() == [va, vb])
        self.assertEqual(c.read_reply(), b"PONG")

    def test_requests_split_at_every_byte(self):
        a, b = self.keys_on_distinct_servers(2)
        stream = (resp_command("SET", a, "va") + b"SET " + b.encode() + b" vb\r\n" +
                  resp_command("MGET", a, b) + resp_command("PING") + b"\r\n" +
                  resp_command("EXISTS", a, b, "nope") + resp_command("ECHO", "x" * 40))
        c = self.raw()
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(len(stream)):
            c.send(stream[i:i + 1])
            time.sleep(0.0005)
        self.assertEqual(c.read_reply(), b"OK")
        self.assertEqual(c.read_reply(), b"OK")
        self.assertEqual(c.read_reply(), [b"va", b"vb"])
        self.assertEqual(c.read_reply(), b"PONG")
        self.assertEqual(c.read_reply(), 2)
        self.assertEqual(c.read_reply(), b"x" * 40)

    def test_concurrent_clients(self):
        errors = []

        def work(t):
            try:
                r = redis.Redis(host=HOST, port=self.port, socket_timeout=30)
                keys = [self.k(f"t{t}:{i}:{os.urandom(2).hex()}") for i in range(40)]
                for rnd in range(10):
                    pipe = r.pipeline(transaction=False)
                    for i, key in enumerate(keys):
                        pipe.set(key, f"{t}:{rnd}:{i}")
                    pipe.mget(keys)
                    pipe.incr(self.k(f"ctr{t}"))
                    pipe.exists(*keys)
                    out = pipe.execute()
                    want = [f"{t}:{rnd}:{i}".encode() for i in range(len(keys))]
                    if out[-3] != want or out[-2] != rnd + 1 or out[-1] != len(keys):
                        errors.append((t, rnd, out[-3:]))
                        return
                    if r.get(keys[rnd]) != want[rnd]:
                        errors.append((t, rnd, "get"))
                r.close()
            except Exception as e:  # reported below
                errors.append((t, repr(e)))

        threads = [threading.Thread(target=work, args=(t,)) for t in range(16)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(60)
        self.assertFalse(any(th.is_alive() for th in threads), "a client thread hung")
        self.assertEqual(errors, [])

    def test_clients_vanishing_with_replies_pending(self):
        a, b = self.keys_on_distinct_servers(2)
        self.client().mset({a: "x" * 10000, b: "y"})
        for i in range(20):
            s = socket.create_connection((HOST, self.port))
            s.sendall(b"".join(resp_command("MGET", a, b) if j % 2 else resp_command("GET", a)
                               for j in range(500)))
            if i % 2:  # linger on, 0 s: close() sends a reset
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()  # odd rounds: reset instead of a clean close
        c = self.raw()
        self.assert_alive(c)
        self.assertEqual(c.call("MGET", a, b), [b"x" * 10000, b"y"])
        self.assertIsNone(self.proxy.proc.poll())

    def test_unix_socket_client_and_backend(self):
        r = redis.Redis(unix_socket_path=self.sock_path, socket_timeout=10)
        self.addCleanup(r.close)
        key = self.k("unix")
        self.assertTrue(r.set(key, "over unix"))
        self.assertEqual(r.mget([key, self.k("nope")]), [b"over unix", None])
        self.assertEqual(self.direct(self.ports[2]).get(key), b"over unix")
        self.assertTrue(r.ping())


if __name__ == "__main__":
    ARGS = harness.parse_args()
    warnings.simplefilter("ignore", ResourceWarning)
    unittest.main(verbosity=2)
