"""Memory after bursts: dproxy gives back what a burst took, and shows where memory is.

Bursts of clients that pipeline gets without reading (dproxy buffers replies up to its per-client
limits), then vanish. Between bursts, garbage connections and a backend restart. After the
clients leave, RSS must come back within a margin of the warm-up level (connection buffers
shrink, free reply slots are released, the allocator is asked to return freed memory), and
during a burst the per-component figures of the stats listener must account for most of the
heap in use.
"""
import os
import socket
import time
import unittest

import harness
from harness import (HOST, Dproxy, Processes, free_port, is_asan_binary, vm_rss_kb, wait_for)

ARGS = None
CLIENTS = 24
GETS_PER_CLIENT = 20000
VALUE = 1000
# After the clients leave, RSS may stay this much above warm-up: the workers' reply-buffer
# pools (up to 4 MiB each, two workers), the allocator's retained free memory below the trim
# threshold (8 MiB) and backend buffers at their working size.
MARGIN_KB = 24 * 1024


def burst(port, clients=CLIENTS, seconds=2.0):
    """Clients that send GETS_PER_CLIENT gets each and never read; returns the open sockets."""
    socks = []
    for _ in range(clients):
        s = socket.create_connection((HOST, port))
        s.setblocking(False)
        socks.append(s)
    req = b"get k\r\n" * GETS_PER_CLIENT
    sent = [0] * len(socks)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and min(sent) < len(req):
        for i, s in enumerate(socks):
            if sent[i] < len(req):
                try:
                    sent[i] += s.send(req[sent[i]:sent[i] + 65536])
                except BlockingIOError:
                    pass
        time.sleep(0.005)
    return socks


class MemoryTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.procs = Processes()
        cls.backends = [cls.procs.memcached() for _ in range(2)]
        cls.port = free_port()
        cls.proxy = Dproxy(cls.procs, ARGS.dproxy, {
            "m": {"protocol": "memcached", "listen": f"{HOST}:{cls.port}",
                  "servers": [f"{HOST}:{b.port}" for b in cls.backends]}})
        cls.asan = is_asan_binary(ARGS.dproxy)

    @classmethod
    def tearDownClass(cls):
        cls.procs.close()

    def set_value(self):
        c = socket.create_connection((HOST, self.port))
        c.sendall(b"set k 0 0 %d\r\n" % VALUE + b"x" * VALUE + b"\r\n")
        self.assertEqual(c.recv(100), b"STORED\r\n")
        c.close()

    def test_rss_returns_after_bursts_and_components_show_it(self):
        self.set_value()
        pid = self.proxy.proc.pid
        # Warm-up: one burst of the same shape, cleared, so that warm-up counts what any burst
        # leaves behind by design (thread arenas, pools).
        for s in burst(self.port, clients=2, seconds=0.5):
            s.close()
        stats = self.proxy.stats()
        for key in ("memory_rss_bytes", "memory_heap_used_bytes", "memory_heap_free_bytes",
                    "memory_trims", "memory_buffer_pool_bytes", "memory_client_buffer_bytes",
                    "memory_reply_slots", "memory_reply_slot_bytes",
                    "memory_backend_buffer_bytes"):
            self.assertIn(key, stats)
        self.assertTrue(wait_for(lambda: self.proxy.stats()["curr_connections"] == 0, 10))
        warm_kb = vm_rss_kb(pid)
        peaks = []
        for rnd in range(3):
            socks = burst(self.port)
            during = self.proxy.stats()
            peaks.append(vm_rss_kb(pid))
            components = (during["memory_buffer_pool_bytes"] + during["memory_client_buffer_bytes"]
                          + during["memory_reply_slot_bytes"]
                          + during["memory_backend_buffer_bytes"])
            self.assertGreater(during["memory_reply_slots"], CLIENTS)
            if not self.asan:
                # The components account for most of what is allocated.
                self.assertGreater(components, 0.5 * during["memory_heap_used_bytes"],
                                   (components, during["memory_heap_used_bytes"]))
            for s in socks:
                s.close()
            # Garbage and a backend restart between bursts.
            g = socket.create_connection((HOST, self.port))
            g.sendall(os.urandom(4096))
            g.close()
            if rnd == 1:
                self.procs.kill(self.backends[1])
                self.backends[1] = self.procs.memcached(self.backends[1].port)
            self.assertTrue(wait_for(lambda: self.proxy.stats()["curr_connections"] == 0, 20))
        # Trimming runs every 2 s; wait for RSS to settle back.
        settled = wait_for(lambda: vm_rss_kb(pid) <= warm_kb + MARGIN_KB, 15, interval=0.5)
        if os.environ.get("DPROXY_TEST_VERBOSE"):
            print(f"warm {warm_kb} KiB, peaks {peaks}, after {vm_rss_kb(pid)} KiB")
        after_kb = vm_rss_kb(pid)
        after = self.proxy.stats()
        if not self.asan:
            self.assertTrue(settled, f"RSS {after_kb} KiB after the bursts, warm-up {warm_kb} KiB, "
                                     f"peaks {peaks}")
            self.assertGreater(after["memory_trims"], 0)
        # With no client left, connections hold nothing: no reply slots, no client buffers.
        self.assertEqual(after["memory_reply_slots"], 0)
        self.assertEqual(after["memory_client_buffer_bytes"], 0)
        self.assertEqual(self.proxy.stop(), 0)


if __name__ == "__main__":
    ARGS = harness.parse_args()
    unittest.main()
