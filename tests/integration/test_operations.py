"""What an operator reads and relies on: a warning at start for each server that cannot be
connected (start does not wait for it), a reload's log naming the servers added, removed and
moved in each changed pool, and host-name re-resolution that never blocks the main thread (the
stats listener, served there, answers while a DNS lookup hangs).
"""
import json
import os
import socket
import time
import unittest

import harness
from harness import HOST, Dproxy, Processes, free_port, wait_for, wait_log

ARGS = None


def http_status(port, path, timeout=10.0):
    raw = harness.exchange(port, f"GET {path} HTTP/1.0\r\n\r\n".encode(), timeout=timeout)
    return int(raw.split()[1])


class OperationsTest(unittest.TestCase):
    def setUp(self):
        self.procs = Processes()
        self.addCleanup(self.procs.close)

    def test_unreachable_servers_are_warned_about_at_start(self):
        live = self.procs.memcached()
        dead, dead_named = free_port(), free_port()  # nobody listens there
        port = free_port()
        started = time.monotonic()
        proxy = Dproxy(self.procs, ARGS.dproxy, {"m": {
            "protocol": "memcached", "listen": f"{HOST}:{port}", "connect_timeout_ms": 500,
            "servers": [f"{HOST}:{live.port}:1 up", f"{HOST}:{dead}",
                        f"{HOST}:{dead_named}:1 down"]}})
        self.assertLess(time.monotonic() - started, 5.0)  # listening without waiting
        self.assertTrue(wait_log(proxy, f"server down ({HOST}:{dead_named}) cannot be connected"))
        self.assertTrue(wait_log(proxy, f"server {HOST}:{dead} cannot be connected at start: "))
        time.sleep(0.6)  # past connect_timeout_ms: every attempt has ended
        warnings = [line for line in proxy.log_text().splitlines()
                    if "cannot be connected at start" in line]
        self.assertEqual(len(warnings), 2, warnings)
        self.assertTrue(all("[WARN]" in w and "pool m:" in w for w in warnings), warnings)
        self.assertNotIn(f"{HOST}:{live.port})", "\n".join(warnings))
        # It serves: a key on the live server is stored through dproxy.
        c = harness.RawClient(port)
        stored = 0
        for i in range(20):
            c.send(b"set k%d 0 0 1\r\nx\r\n" % i)
            stored += c.read_line() == b"STORED\r\n"
        c.close()
        self.assertGreater(stored, 0)

    def test_reload_names_the_changed_servers(self):
        a, b, b2, c = (free_port() for _ in range(4))
        port, other = free_port(), free_port()
        pools = {
            "m": {"protocol": "memcached", "listen": f"{HOST}:{port}",
                  "servers": [f"{HOST}:{a}:1 a", f"{HOST}:{b}:1 b"]},
            "same": {"protocol": "memcached", "listen": f"{HOST}:{other}",
                     "servers": [f"{HOST}:{a}:1 a"]}}
        proxy = Dproxy(self.procs, ARGS.dproxy, pools, top={"stats": {"enabled": False}})
        pools["m"]["servers"] = [f"{HOST}:{b2}:3 b", f"{HOST}:{c}:1 c"]
        with open(proxy.config_path, "w") as f:
            json.dump({"stats": {"enabled": False}, "pools": pools}, f)
        mark = len(proxy.log_text())
        os.kill(proxy.proc.pid, 1)  # SIGHUP
        self.assertTrue(wait_log(proxy, "reload: pool m:", start=mark), proxy.log_text()[mark:])
        line = next(l for l in proxy.log_text()[mark:].splitlines() if "reload: pool m:" in l)
        self.assertIn(f"servers added c ({HOST}:{c}); removed a ({HOST}:{a}); "
                      f"address changed b {HOST}:{b} -> {HOST}:{b2}; weight changed b 1 -> 3",
                      line)
        self.assertIn("changed m; 1 unchanged", proxy.log_text()[mark:])
        self.assertNotIn("reload: pool same:", proxy.log_text())

    @unittest.skipUnless(os.geteuid() == 0, "needs root: a private /etc/hosts and resolv.conf "
                                            "(unshare -m) and a silent DNS server on port 53")
    def test_a_hanging_lookup_does_not_block_the_main_thread(self):
        # A "DNS server" on 127.0.0.53:53 that reads queries and never answers.
        dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(dns.close)
        try:
            dns.bind(("127.0.0.53", 53))
        except OSError as e:
            self.skipTest(f"cannot bind 127.0.0.53:53: {e}")
        tmp = self.procs.tmp.name
        hosts, resolv = os.path.join(tmp, "hosts"), os.path.join(tmp, "resolv.conf")
        with open(hosts, "w") as f:
            f.write("127.0.0.1 slow-dns-host\n")
        with open(resolv, "w") as f:
            f.write("nameserver 127.0.0.53\noptions timeout:4 attempts:1\n")
        mc = self.procs.memcached()
        listen, stats = free_port(), free_port()
        cfg = os.path.join(tmp, "slow.json")
        with open(cfg, "w") as f:
            json.dump({"resolve_interval_ms": 100, "stats": {"listen": f"{HOST}:{stats}"},
                       "pools": {"m": {"protocol": "memcached", "listen": f"{HOST}:{listen}",
                                       "servers": [f"slow-dns-host:{mc.port}:1 s"]}}}, f)
        log_path = cfg + ".log"
        dp = self.procs.spawn_dproxy(
            ["unshare", "-m", "sh", "-c",
             'mount --bind "$0" /etc/hosts && mount --bind "$1" /etc/resolv.conf && '
             'shift && exec "$@"', hosts, resolv, ARGS.dproxy, "-c", cfg, "-l", "debug"],
            log_path=log_path)
        harness.wait_port(listen, dp)
        self.assertTrue(wait_for(lambda: "addresses unchanged" in harness._read_log(log_path), 10))
        # The name leaves /etc/hosts: the next lookup asks the silent server and waits 4 s.
        with open(hosts, "w") as f:  # same inode: the bind mount shows the new text
            f.write("127.0.0.2 other-host\n")
        dns.settimeout(10)
        dns.recvfrom(512)  # a lookup is in progress now
        worst = 0.0
        deadline = time.monotonic() + 2.5  # well inside the 4 s the lookup hangs
        while time.monotonic() < deadline:
            t = time.monotonic()
            self.assertEqual(http_status(stats, "/healthz", timeout=3), 200)
            worst = max(worst, time.monotonic() - t)
            time.sleep(0.05)
        self.assertLess(worst, 1.0, f"/healthz took {worst:.2f} s during a DNS lookup")
        # The lookup fails after its timeout: the pool keeps its address and serves.
        self.assertTrue(wait_for(lambda: "pool m keeps its addresses"
                                 in harness._read_log(log_path), 15))
        c = harness.RawClient(listen)
        c.send(b"set k 0 0 1\r\nx\r\n")
        self.assertEqual(c.read_line(), b"STORED\r\n")
        c.close()


if __name__ == "__main__":
    import warnings
    warnings.simplefilter("ignore", ResourceWarning)
    ARGS = harness.parse_args()
    unittest.main(verbosity=2)
