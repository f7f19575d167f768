"""Redis session modes under random use (issue 17): clients mix transactions, WATCH, blocking
pops, subscriptions, SELECT, RESET and plain commands at random, and vanish at random moments
(mid-frame, while blocked, while subscribed, inside MULTI). Bounded by count and time.

Afterwards: dproxy is alive and answers, every dedicated backend connection was given back
(the stats say 0 held), no backend keeps a blocked client of ours, and (under ASan) no
sanitizer report appears (the harness fails the test on one).
"""
import os
import random
import socket
import time
import unittest

import harness
from harness import HOST, Dproxy, Processes, RespClient, free_port, resp_command

ARGS = None


def info_field(port, section, field):
    c = RespClient(port)
    try:
        text = c.call("INFO", section).decode()
    finally:
        c.close()
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split(":", 1)[1])
    raise AssertionError(f"{field} not in INFO {section}")


class SessionModesStress(harness.PoolsTestMixin, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.procs = Processes()
        cls.servers = [cls.procs.redis() for _ in range(3)]
        cls.ports = [s.port for s in cls.servers]
        cls.pools = {
            "ketama": {"protocol": "redis", "listen": f"{HOST}:{free_port()}", "hash": "md5",
                       "hash_tag": "{}", "timeout_ms": 2000,
                       "servers": [f"{HOST}:{p}" for p in cls.ports]},
        }
        cls.proxy = Dproxy(cls.procs, ARGS.dproxy, cls.pools)
        cls.port = int(cls.pools["ketama"]["listen"].rsplit(":", 1)[1])

    def one_client(self, rng, prefix):
        s = socket.create_connection((HOST, self.port), timeout=5)
        tag = "{" + prefix + str(rng.randrange(4)) + "}"
        ops = [
            lambda: [resp_command("SET", tag + "k", "v"), resp_command("GET", tag + "k")],
            lambda: [resp_command("MULTI"), resp_command("INCR", tag + "n"),
                     resp_command("GET", tag + "k"), resp_command("EXEC")],
            lambda: [resp_command("WATCH", tag + "k"), resp_command("MULTI"),
                     resp_command("SET", tag + "k", "w"), resp_command("EXEC")],
            lambda: [resp_command("WATCH", tag + "k"), resp_command("UNWATCH")],
            lambda: [resp_command("BLPOP", tag + "q", "0.05")],
            lambda: [resp_command("BLPOP", tag + "q", "0")],  # may block until vanished
            lambda: [resp_command("RPUSH", tag + "q", "j")],
            lambda: [resp_command("SUBSCRIBE", tag + "ch", prefix + "x")],
            lambda: [resp_command("PSUBSCRIBE", prefix + "*")],
            lambda: [resp_command("PUBLISH", tag + "ch", "m")],
            lambda: [resp_command("UNSUBSCRIBE")],
            lambda: [resp_command("SELECT", str(rng.randrange(3)))],
            lambda: [resp_command("RESET")],
            lambda: [resp_command("MULTI"), resp_command("SET", tag + "k", "x")],  # no EXEC
            lambda: [resp_command("DISCARD")],
            lambda: [resp_command("PING")],
            lambda: [resp_command("MGET", tag + "k", prefix + "other")],
        ]
        try:
            for _ in range(rng.randrange(5, 40)):
                data = b"".join(rng.choice(ops)())
                if rng.random() < 0.05:
                    s.sendall(data[:rng.randrange(1, len(data))])  # vanish mid-frame
                    break
                s.sendall(data)
                if rng.random() < 0.3:
                    s.settimeout(0.05)
                    try:
                        s.recv(65536)
                    except (socket.timeout, ConnectionError):
                        pass
                    s.settimeout(5)
        except OSError:
            pass  # dproxy closed us (a QUIT-like end is fine)
        finally:
            s.close()

    def test_random_modes_and_vanishing_clients(self):
        seed = int(os.environ.get("DPROXY_STRESS_SEED", random.randrange(1 << 30)))
        print(f"\n[stress] seed {seed}")
        rng = random.Random(seed)
        prefix = f"st{os.urandom(3).hex()}"
        deadline = time.monotonic() + 60
        for _ in range(300):
            if time.monotonic() > deadline:
                break
            self.one_client(rng, prefix)
        # Every dedicated connection is given back once its client is gone.
        self.assertTrue(harness.wait_for(
            lambda: self.proxy.stats()["ketama"]["dedicated_connections"] == 0, 10),
            self.proxy.stats()["ketama"])
        self.assertTrue(harness.wait_for(
            lambda: sum(info_field(p, "clients", "blocked_clients") for p in self.ports) == 0,
            10))
        self.assertTrue(harness.wait_for(
            lambda: sum(info_field(p, "stats", "pubsub_channels") +
                        info_field(p, "stats", "pubsub_patterns") for p in self.ports) == 0, 10))
        c = RespClient(self.port)
        self.addCleanup(c.close)
        self.assertEqual(c.call("PING"), b"PONG")
        self.assertEqual(c.call("SET", prefix + "after", "1"), b"OK")
        self.assertEqual(c.call("MULTI"), b"OK")
        self.assertEqual(c.call("GET", prefix + "after"), b"QUEUED")
        self.assertEqual(c.call("EXEC"), [b"1"])
        self.assertIsNone(self.proxy.proc.poll())


if __name__ == "__main__":
    ARGS = harness.parse_args()
    unittest.main()
