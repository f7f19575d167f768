"""Replicated pools with a frozen (SIGSTOP) replica, memcached and Redis: reads fail over after
the request timeout, write_ack all reports the timeout, one/majority answer without waiting, and
clients that leave while late replies are still due do not disturb dproxy.
"""
import os
import signal
import time
import unittest
import warnings

import harness
from harness import HOST, Dproxy, Processes, RawClient, RespClient, RespError, free_port, \
    resp_command

ARGS = None
TIMEOUT_MS = 300


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


def stop_process(proc, timeout=5.0):
    """SIGSTOPs `proc` and waits until every thread of it is stopped."""
    os.kill(proc.pid, signal.SIGSTOP)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = []
        for t in os.listdir(f"/proc/{proc.pid}/task"):
            try:
                with open(f"/proc/{proc.pid}/task/{t}/stat") as f:
                    states.append(f.read().rsplit(")", 1)[1].split()[0])
            except FileNotFoundError:
                pass
        if states and all(s in ("T", "t") for s in states):
            return
        time.sleep(0.005)
    raise RuntimeError(f"process {proc.pid} did not stop")


def cont_process(proc):
    try:
        os.kill(proc.pid, signal.SIGCONT)
    except ProcessLookupError:
        pass


class Memcached:
    name = "memcached"

    @staticmethod
    def backend(procs):
        return procs.memcached()

    @staticmethod
    def client(port):
        return RawClient(port)

    @staticmethod
    def set_req(key, value):
        return b"set %s 0 0 %d\r\n%s\r\n" % (key, len(value), value)

    @staticmethod
    def get_req(key):
        return b"get %s\r\n" % key

    @staticmethod
    def read_set(c):
        line = c.read_line()
        return b"OK" if line == b"STORED\r\n" else line[:-2]

    @staticmethod
    def read_get(c):
        r = c.read_retrieval()
        if isinstance(r, bytes):
            return r[:-2]
        return r[0][2] if r else None

    @staticmethod
    def timeout_error(port):
        return f"SERVER_ERROR backend {HOST}:{port} timed out".encode()

    @staticmethod
    def direct_get(port, key):
        return harness.backend_get(port, key)


class Redis:
    name = "redis"

    @staticmethod
    def backend(procs):
        return procs.redis()

    @staticmethod
    def client(port):
        return RespClient(port)

    @staticmethod
    def set_req(key, value):
        return resp_command(b"SET", key, value)

    @staticmethod
    def get_req(key):
        return resp_command(b"GET", key)

    @staticmethod
    def read_set(c):
        r = c.read_reply()
        return bytes(r) if isinstance(r, (bytes, RespError)) else r

    read_get = read_set

    @staticmethod
    def timeout_error(port):
        return f"ERR dproxy: backend {HOST}:{port} timed out".encode()

    @staticmethod
    def direct_get(port, key):
        c = RespClient(port)
        try:
            return c.call(b"GET", key)
        finally:
            c.close()


class SlowReplicaBase:
    ops = None

    def setUp(self):
        self.prefix = f"{self._testMethodName}:{time.monotonic_ns()}:".encode()
        self.procs = Processes()
        self.backends = [self.ops.backend(self.procs) for _ in range(3)]
        children = [addr(b.port) for b in self.backends]
        self.ports = {}
        pools = {}
        for ack in ("all", "majority", "one"):
            self.ports[ack] = free_port()
            pools[ack] = {"protocol": self.ops.name, "listen": addr(self.ports[ack]),
                          "policy": "replicated", "write_ack": ack, "hash": "md5",
                          "timeout_ms": TIMEOUT_MS, "server_failure_limit": 1000000,
                          "children": children}
        self.proxy = Dproxy(self.procs, ARGS.dproxy, pools)
        self.addCleanup(self.close)

    def close(self):
        for b in self.backends:
            cont_process(b)
        rc = self.proxy.stop()
        self.proxy.log.close()
        for p in list(self.procs.procs):
            self.procs.kill(p)
        self.procs.close()
        self.assertEqual(rc, 0, "dproxy exit code")

    def k(self, name):
        return self.prefix + str(name).encode()

    def client(self, ack):
        c = self.ops.client(self.ports[ack])
        self.addCleanup(c.close)
        return c

    def values(self, key, n=3):
        """The value of `key` on each of the first `n` backends (asked directly)."""
        return [self.ops.direct_get(b.port, key) for b in self.backends[:n]]

    def test_read_fails_over_after_timeout_of_frozen_first_child(self):
        key = self.k("r")
        c = self.client("one")
        c.send(self.ops.set_req(key, b"v"))
        self.assertEqual(self.ops.read_set(c), b"OK")
        self.assertTrue(wait_for(lambda: self.values(key) == [b"v"] * 3, 5))
        stop_process(self.backends[0])
        t0 = time.monotonic()
        c.send(self.ops.get_req(key))
        self.assertEqual(self.ops.read_get(c), b"v")
        self.assertGreaterEqual(time.monotonic() - t0, TIMEOUT_MS / 1000 * 0.9)

    def test_write_ack_with_frozen_replica(self):
        stop_process(self.backends[2])
        key = self.k("w")
        c = self.client("all")
        c.send(self.ops.set_req(key, b"all"))
        self.assertEqual(self.ops.read_set(c), self.ops.timeout_error(self.backends[2].port))
        for ack in ("one", "majority"):
            c = self.client(ack)
            t0 = time.monotonic()
            c.send(self.ops.set_req(key, ack.encode()))
            self.assertEqual(self.ops.read_set(c), b"OK", ack)
            # Answered without waiting for the frozen replica's timeout.
            self.assertLess(time.monotonic() - t0, TIMEOUT_MS / 1000, ack)
        self.assertTrue(wait_for(
            lambda: self.values(key, 2) == [b"majority"] * 2, 5), self.values(key, 2))

    def test_clients_leaving_with_late_replies_due(self):
        stop_process(self.backends[1])
        keys = [self.k(i) for i in range(100)]
        for ack in ("one", "majority"):
            for round_ in range(3):
                c = self.ops.client(self.ports[ack])
                c.send(b"".join(self.ops.set_req(key, b"%d" % round_) for key in keys))
                if round_ == 0:
                    for key in keys:
                        self.assertEqual(self.ops.read_set(c), b"OK")
                c.close()  # rounds 1 and 2 leave before reading the replies
        # Half the late replies time out, then the replica comes back.
        time.sleep(TIMEOUT_MS / 1000 / 2)
        cont_process(self.backends[1])
        time.sleep(TIMEOUT_MS / 1000)
        self.assertIsNone(self.proxy.proc.poll())
        # Everything works again (the timed-out connection may need a reconnect first).
        key = self.k("after")

        def write_all():
            c = self.ops.client(self.ports["all"])
            try:
                c.send(self.ops.set_req(key, b"after"))
                return self.ops.read_set(c) == b"OK"
            finally:
                c.close()

        self.assertTrue(wait_for(write_all, 10, interval=0.1))
        self.assertEqual(self.values(key), [b"after"] * 3)
        for ack in ("one", "majority"):
            c = self.client(ack)
            c.send(self.ops.get_req(keys[0]))
            self.assertIn(self.ops.read_get(c), (b"0", b"1", b"2"))


class MemcachedSlowReplicaTest(SlowReplicaBase, unittest.TestCase):
    ops = Memcached


class RedisSlowReplicaTest(SlowReplicaBase, unittest.TestCase):
    ops = Redis


if __name__ == "__main__":
    ARGS = harness.parse_args()
    warnings.simplefilter("ignore", ResourceWarning)
    unittest.main(verbosity=2)
