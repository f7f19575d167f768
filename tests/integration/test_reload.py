"""Live config reload (SIGHUP) under continuous load, and the log file (reopen, levels)."""
import json
import os
import signal
import socket
import threading
import time
import unittest

import harness
from harness import (HOST, Processes, RawClient, RespClient, free_port, resp_command, wait_for,
                     wait_port)

ARGS = None


class Load:
    """Client threads, each on ONE connection for the whole test, doing set-then-get rounds
    (memcached or Redis) until stopped or `limit_s` passes. Counts rounds, errors (an error
    reply, an exception, a closed connection) and wrong values. A miss right after a set is
    counted apart: it is what moving a key to another server looks like."""

    def __init__(self, port, redis, clients, tag, limit_s=60.0):
        self.port, self.redis, self.tag = port, redis, tag
        self.rounds = self.errors = self.wrong = self.misses = 0
        self.error_samples = []
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.deadline = time.monotonic() + limit_s
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True)
                        for i in range(clients)]
        for t in self.threads:
            t.start()

    def run(self, n):
        c = (RespClient if self.redis else RawClient)(self.port)
        i = 0
        try:
            while not self.stop_event.is_set() and time.monotonic() < self.deadline:
                key, value = f"{self.tag}-{n}-{i % 200}", f"v{i}"
                if self.redis:
                    ok = c.call("SET", key, value) == b"OK"
                    got = c.call("GET", key)
                else:
                    c.send(f"set {key} 0 0 {len(value)}\r\n{value}\r\n".encode())
                    ok = c.read_line() == b"STORED\r\n"
                    c.send(f"get {key}\r\n".encode())
                    items = c.read_retrieval()
                    if isinstance(items, list):
                        got = items[0][2] if items else None
                    else:
                        got = items  # an error line
                with self.lock:
                    self.rounds += 1
                    if not ok:
                        self.errors += 1
                    elif got is None:
                        self.misses += 1
                    elif got != value.encode():
                        if isinstance(got, bytes) and not got.startswith(b"v"):
                            self.errors += 1
                            self.error_samples.append(got[:200])
                        else:
                            self.wrong += 1
                i += 1
        except Exception as e:  # a dropped connection ends this client: counted as an error
            with self.lock:
                self.errors += 1
                self.error_samples.append(repr(e))
        finally:
            c.close()

    def rounds_now(self):
        with self.lock:
            return self.rounds

    def finish(self):
        self.stop_event.set()
        for t in self.threads:
            t.join(timeout=30)


class ReloadTest(unittest.TestCase):
    def setUp(self):
        self.procs = Processes()
        self.addCleanup(self.procs.close)
        self.mc = [self.procs.memcached() for _ in range(3)]
        self.rd = [self.procs.redis() for _ in range(2)]
        self.a_port, self.b_port, self.c_port = free_port(), free_port(), free_port()
        self.stats_port = free_port()
        self.pools = {
            "a": {"protocol": "memcached", "listen": f"{HOST}:{self.a_port}",
                  "servers": [f"{HOST}:{self.mc[0].port}", f"{HOST}:{self.mc[1].port}"]},
            "b": {"protocol": "redis", "listen": f"{HOST}:{self.b_port}",
                  "servers": [f"{HOST}:{self.rd[0].port}"]},
        }
        self.config_path = os.path.join(self.procs.tmp.name, "reload.json")
        self.log_path = os.path.join(self.procs.tmp.name, "dproxy.log")
        self.write_config()
        # Log lines go to --log-file; stderr (a sanitizer report) to a file Processes checks.
        self.proc = self.procs.spawn_dproxy([ARGS.dproxy, "--config", self.config_path,
                                             "--threads", "2", "--log-file", self.log_path])
        for port in (self.a_port, self.b_port, self.stats_port):
            wait_port(port, self.proc)

    def write_config(self, text=None):
        if text is None:
            text = json.dumps({"stats": {"listen": f"{HOST}:{self.stats_port}"},
                               "pools": self.pools}, indent=1)
        tmp = self.config_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.config_path)

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def reload(self, expect):
        """SIGHUP, then waits until the log has one more line containing `expect`."""
        before = self.log().count(expect)
        os.kill(self.proc.pid, signal.SIGHUP)
        self.assertTrue(wait_for(lambda: self.log().count(expect) > before, 20),
                        f"no new log line with {expect!r}")

    def stats(self):
        data = harness.exchange(self.stats_port, b"GET /stats HTTP/1.0\r\n\r\n")
        return json.loads(data.split(b"\r\n\r\n", 1)[1])

    def wait_progress(self, *loads):
        """Each load does some more rounds (the proxy keeps serving)."""
        marks = [l.rounds_now() for l in loads]
        self.assertTrue(
            wait_for(lambda: all(l.rounds_now() >= m + 20 for l, m in zip(loads, marks)), 30),
            "the load stopped making progress")

    def test_reload_under_load(self):
        load_a = Load(self.a_port, False, 3, "a")
        load_b = Load(self.b_port, True, 3, "b")
        self.addCleanup(load_a.finish)
        self.addCleanup(load_b.finish)
        self.wait_progress(load_a, load_b)

        # 1. Add a pool: it starts listening; the others never notice.
        self.pools["c"] = {"protocol": "memcached", "listen": f"{HOST}:{self.c_port}",
                           "servers": [f"{HOST}:{self.mc[2].port}"]}
        self.write_config()
        self.reload("reload: applied")
        self.assertIn("added c;", self.log())
        c = RawClient(self.c_port)
        c.send(b"set onc 0 0 2\r\nhi\r\n")
        self.assertEqual(c.read_line(), b"STORED\r\n")
        self.assertEqual(harness.backend_get(self.mc[2].port, b"onc"), b"hi")
        self.wait_progress(load_a, load_b)

        # 2. Change server lists and settings: new requests use them, in-flight ones complete.
        self.pools["a"]["servers"].append(f"{HOST}:{self.mc[2].port}")
        self.pools["a"]["timeout_ms"] = 2000
        self.pools["b"]["servers"] = [f"{HOST}:{self.rd[1].port}"]
        self.write_config()
        self.reload("reload: applied")
        self.assertIn("changed a, b;", self.log())
        # Pool b now writes to the second Redis only: a fresh key lands there.
        r = RespClient(self.b_port)
        self.assertEqual(r.call("SET", "after-change", "1"), b"OK")
        self.assertEqual(harness.redis_direct(self.rd[1].port).get("after-change"), b"1")
        self.assertIsNone(harness.redis_direct(self.rd[0].port).get("after-change"))
        r.close()
        self.wait_progress(load_a, load_b)

        # 3. Remove a pool: it stops accepting; its connected client gets its replies, then EOF.
        c.send(b"get onc\r\n")
        self.assertEqual(c.read_retrieval(), [(b"onc", 0, b"hi")])
        del self.pools["c"]
        self.write_config()
        self.reload("reload: applied")
        self.assertIn("removed c;", self.log())
        self.assertTrue(c.is_closed(timeout=10))
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection((HOST, self.c_port), timeout=5)
        self.wait_progress(load_a, load_b)

        # 4. An invalid config is rejected with the reason; the running one stays.
        self.write_config('{"pools": {"a": {"protocol": "memcached"}}}')
        self.reload("reload rejected")
        self.assertIn('pools.a: missing required key "listen"', self.log())
        self.pools["a"]["protocol"] = "redis"
        self.write_config()
        self.reload("reload rejected")
        self.assertIn("pools.a.protocol: a pool cannot change protocol on reload", self.log())
        self.pools["a"]["protocol"] = "memcached"
        self.wait_progress(load_a, load_b)

        load_a.finish()
        load_b.finish()
        for load in (load_a, load_b):
            self.assertEqual(load.errors, 0, load.error_samples[:5])
            self.assertEqual(load.wrong, 0)
            self.assertGreater(load.rounds, 100)
            # A miss can only come from a key moving at the server-list change.
            self.assertLessEqual(load.misses, 6)
        doc = self.stats()
        self.assertEqual(set(k for k, v in doc.items() if isinstance(v, dict)), {"a", "b"})
        self.assertIn(f"{HOST}:{self.mc[2].port}", doc["a"])
        # Every client of a and b kept its one connection through all four reloads.
        self.assertEqual(doc["a"]["client_err"] + doc["b"]["client_err"], 0)
        metrics = harness_metrics(self.stats_port)
        self.assertIn("dproxy_config_reloads_total 3\n", metrics)
        self.assertIn("dproxy_config_reload_failures_total 2\n", metrics)
        self.assertIsNone(self.proc.poll())

    def test_reload_drops_idle_dedicated_connections(self):
        # A BLPOP leaves its dedicated connection idle for reuse (made in the pool's db 0). A
        # reload that changes the pool's db must not hand that connection to the next blocking
        # command: its BLPOP would wait in database 0 while the pushes land in database 1.
        c = RespClient(self.b_port)
        self.addCleanup(c.close)
        self.assertIsNone(c.call("BLPOP", "reload:q", "0.1"))
        self.assertGreaterEqual(self.stats()["b"]["dedicated_idle"], 1)
        self.pools["b"]["db"] = 1
        self.write_config()
        self.reload("reload: applied")
        self.assertEqual(c.call("RPUSH", "reload:q", "job"), 1)
        self.assertEqual(c.call("BLPOP", "reload:q", "2"), [b"reload:q", b"job"])
        direct = RespClient(self.rd[0].port)
        self.addCleanup(direct.close)
        self.assertEqual(direct.call("SELECT", "1"), b"OK")
        self.assertEqual(direct.call("EXISTS", "reload:q"), 0)

    def test_reload_moving_channels_closes_subscribers(self):
        # A subscriber's channels live on the servers their names hash to. A reload that only
        # changes a timeout keeps the subscription; one that adds a server may move channels, so
        # dproxy closes the subscribed client (its library reconnects and subscribes again where
        # the channels now live) instead of leaving it on a server no PUBLISH reaches any more.
        channels = [f"reload:ch{i}" for i in range(20)]
        sub = RespClient(self.b_port)
        self.addCleanup(sub.close)
        sub.send(resp_command("SUBSCRIBE", *channels))
        for i, ch in enumerate(channels):
            self.assertEqual(sub.read_reply(), [b"subscribe", ch.encode(), i + 1])
        pub = RespClient(self.b_port)
        self.addCleanup(pub.close)
        self.pools["b"]["timeout_ms"] = 1500
        self.write_config()
        self.reload("reload: applied")
        time.sleep(1.2)  # two placement checks (every 500 ms)
        self.assertEqual(pub.call("PUBLISH", channels[0], "kept"), 1)
        self.assertEqual(sub.read_reply(), [b"message", channels[0].encode(), b"kept"])

        self.pools["b"]["servers"].append(f"{HOST}:{self.rd[1].port}")
        self.write_config()
        self.reload("reload: applied")
        sub.sock.settimeout(5)
        with self.assertRaises(EOFError):
            sub.read_reply()
        self.assertIn("closing the subscribed client", self.log())
        # Subscribing again (as a client library does) reaches every channel where it now lives.
        harness.subscribed_everywhere(self, self.b_port, pub, channels, "moved")

    def test_log_file_reopen_and_levels(self):
        self.assertTrue(wait_for(lambda: "started:" in self.log(), 10))
        # Never one line per request at the default level.
        lines_before = self.log().count("\n")
        c = RawClient(self.a_port)
        for i in range(200):
            c.send(b"set lg%d 0 0 1\r\nx\r\n" % i)
            self.assertEqual(c.read_line(), b"STORED\r\n")
        c.close()
        time.sleep(0.3)
        self.assertLessEqual(self.log().count("\n") - lines_before, 4)  # backend connects
        # logrotate: move the file away, SIGUSR1, and the next lines go to a new file.
        rotated = self.log_path + ".1"
        os.rename(self.log_path, rotated)
        os.kill(self.proc.pid, signal.SIGUSR1)
        self.assertTrue(wait_for(
            lambda: os.path.exists(self.log_path) and "log file reopened" in self.log(), 10))
        with open(rotated) as f:
            old = f.read()
        self.assertIn("started:", old)
        self.assertNotIn("log file reopened", old)
        # SIGTTIN raises the level, SIGTTOU lowers it (twemproxy's signals).
        os.kill(self.proc.pid, signal.SIGTTIN)
        self.assertTrue(wait_for(lambda: "log level is now debug" in self.log(), 10))
        c = RawClient(self.a_port)
        c.send(b"get lg1\r\n")
        c.read_retrieval()
        c.close()
        # One at a time: a signal sent while the same one is still pending is merged with it.
        for level in ("info", "warn", "error"):
            before = self.log().count("log level is now")
            os.kill(self.proc.pid, signal.SIGTTOU)
            self.assertTrue(wait_for(lambda: self.log().count("log level is now") > before, 10))
            self.assertTrue(self.log().rstrip().endswith(f"log level is now {level}"))
        # At level error a rejected reload still logs; an applied one (info) does not.
        self.write_config("{")
        self.reload("reload rejected")
        text = self.log()
        self.assertRegex(text.splitlines()[0], r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \[INFO\] ")
        self.assertNotIn("received SIGHUP", text)  # info lines are off at level error
        self.assertIsNone(self.proc.poll())


def harness_metrics(port):
    return harness.exchange(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").decode()


if __name__ == "__main__":
    import warnings
    warnings.simplefilter("ignore", ResourceWarning)
    ARGS = harness.parse_args()
    unittest.main(verbosity=2)
