"""The stats listener (twemproxy JSON, HTTP /metrics and /stats), memcached `stats` and Redis
INFO figures, checked against the traffic each test sends through dproxy."""
import json
import re
import socket
import subprocess
import time
import unittest
import urllib.error
import urllib.request

import harness
from harness import (HOST, DproxyTop, Nutcracker, Processes, RawClient, RespClient, free_port,
                     wait_for)

ARGS = None

POOL_KEYS = {"client_eof", "client_err", "client_connections", "server_ejects", "forward_error",
             "fragments"}
SERVER_KEYS = {"server_eof", "server_err", "server_timedout", "server_connections",
               "server_ejected_at", "requests", "request_bytes", "responses", "response_bytes",
               "in_queue", "in_queue_bytes", "out_queue", "out_queue_bytes"}
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')


def raw_stats(port):
    """twemproxy's protocol: connect, send nothing, read one JSON document until EOF."""
    return json.loads(harness.exchange(port))


def parse_prometheus(text):
    """Returns {(name, frozenset(labels)): value} and {name: type}; fails on a bad line."""
    samples, types = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            types[name] = kind
            continue
        if line.startswith("#") or not line:
            continue
        m = SAMPLE.match(line)
        assert m, f"not a Prometheus sample line: {line!r}"
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        samples[(m.group(1), labels)] = float(m.group(4))
    return samples, types


def lbl(**kw):
    return frozenset(kw.items())


class StatsTest(unittest.TestCase):
    def setUp(self):
        self.procs = Processes()
        self.addCleanup(self.procs.close)
        self.mc = [self.procs.memcached(), self.procs.memcached()]
        self.rd = self.procs.redis()
        self.mc_port, self.rd_port, self.stats_port = free_port(), free_port(), free_port()
        self.mc_pool = {"protocol": "memcached", "listen": f"{HOST}:{self.mc_port}",
                        "hash": "md5", "policy": "ketama", "server_failure_limit": 1,
                        "server_retry_timeout_ms": 60000,
                        "servers": [f"{HOST}:{self.mc[0].port}:1 alpha",
                                    f"{HOST}:{self.mc[1].port}:1"]}
        self.proxy = DproxyTop(self.procs, ARGS.dproxy, {
            "mc": self.mc_pool,
            "rd": {"protocol": "redis", "listen": f"{HOST}:{self.rd_port}",
                   "servers": [f"{HOST}:{self.rd.port}"]},
        }, top={"stats": {"listen": f"{HOST}:{self.stats_port}"}})
        harness.wait_port(self.stats_port, self.proxy.proc)

    def mc_traffic(self, n):
        c = RawClient(self.mc_port)
        self.addCleanup(c.close)
        for i in range(n):
            c.send(b"set st%d 0 0 3\r\nabc\r\n" % i)
            self.assertEqual(c.read_line(), b"STORED\r\n")
        for i in range(n):
            c.send(b"get st%d\r\n" % i)
            self.assertEqual(len(c.read_retrieval()), 1)
        return c

    def test_twemproxy_json_counts_the_traffic(self):
        c = self.mc_traffic(50)
        # One multi-get over both servers: split into one fragment per server.
        c.send(b"get " + b" ".join(b"st%d" % i for i in range(50)) + b"\r\n")
        self.assertEqual(len(c.read_retrieval()), 50)
        doc = raw_stats(self.stats_port)
        self.assertEqual(doc["service"], "dproxy")
        for k in ("source", "version", "uptime", "timestamp", "total_connections",
                  "curr_connections"):
            self.assertIn(k, doc)
        self.assertGreaterEqual(doc["curr_connections"], 1)
        pool = doc["mc"]
        self.assertTrue(POOL_KEYS <= set(pool), set(pool))
        self.assertIn("alpha", pool)  # a named server is keyed by its name, as twemproxy does
        self.assertIn(f"{HOST}:{self.mc[1].port}", pool)
        servers = [v for v in pool.values() if isinstance(v, dict)]
        self.assertEqual(len(servers), 2)
        for s in servers:
            self.assertEqual(set(s), SERVER_KEYS)
            self.assertGreater(s["requests"], 0)  # ketama spreads 50 keys over both
            self.assertEqual(s["requests"], s["responses"])
            self.assertEqual(s["server_connections"], 1)
            self.assertEqual(s["in_queue"] + s["out_queue"], 0)
        # 50 sets + 50 gets, then the multi-get as one fragment per server.
        self.assertEqual(sum(s["requests"] for s in servers), 102)
        self.assertEqual(pool["fragments"], 2)
        self.assertEqual(pool["client_connections"], 1)
        self.assertEqual(pool["forward_error"], 0)
        set_bytes = len(b"set st0 0 0 3\r\nabc\r\n") * 10 + len(b"set st10 0 0 3\r\nabc\r\n") * 40
        self.assertGreater(sum(s["request_bytes"] for s in servers), set_bytes)
        # The client goes: its connection is counted as closed by the client. (The start-up
        # check that the listener is up was one connection too: count from here.)
        eof = pool["client_eof"]
        c.close()
        self.assertTrue(
            wait_for(lambda: raw_stats(self.stats_port)["mc"]["client_eof"] == eof + 1, 10),
            raw_stats(self.stats_port)["mc"])
        self.assertEqual(raw_stats(self.stats_port)["mc"]["client_connections"], 0)

    def test_same_keys_as_nutcracker(self):
        nut = Nutcracker(self.procs, {"hash": "md5", "distribution": "ketama",
                                      "servers": self.mc_pool["servers"]}, "mc")
        ours = raw_stats(self.stats_port)
        theirs = raw_stats(nut.stats_port)
        self.assertTrue(set(theirs) <= set(ours) | {"mc"}, set(theirs) - set(ours))
        self.assertEqual(set(theirs["mc"]), set(ours["mc"]))
        for name, value in theirs["mc"].items():
            if isinstance(value, dict):
                self.assertEqual(set(value), set(ours["mc"][name]))

    def test_http_metrics_and_stats(self):
        self.mc_traffic(20)
        r = RespClient(self.rd_port)
        self.addCleanup(r.close)
        for i in range(30):
            self.assertEqual(r.call("SET", f"m{i}", "v"), b"OK")
            self.assertEqual(r.call("GET", f"m{i}"), b"v")
        out = subprocess.run(["curl", "-sS", "-D", "-", f"http://{HOST}:{self.stats_port}/metrics"],
                             capture_output=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        head, _, body = out.stdout.decode().partition("\r\n\r\n")
        self.assertIn("HTTP/1.1 200 OK", head)
        self.assertIn("text/plain; version=0.0.4", head)
        samples, types = parse_prometheus(body)
        self.assertEqual(types["dproxy_request_duration_seconds"], "histogram")
        self.assertEqual(types["dproxy_server_requests_total"], "counter")
        self.assertEqual(samples[("dproxy_requests_total", lbl(pool="rd"))], 60)
        for cmd, n in (("get", 30), ("set", 30)):
            labels = dict(pool="rd", command=cmd)
            self.assertEqual(samples[("dproxy_request_duration_seconds_count", lbl(**labels))], n)
            buckets = sorted((float(dict(k[1])["le"]) if dict(k[1])["le"] != "+Inf"
                              else float("inf"), v)
                             for k, v in samples.items()
                             if k[0] == "dproxy_request_duration_seconds_bucket"
                             and dict(k[1]).get("pool") == "rd"
                             and dict(k[1]).get("command") == cmd)
            counts = [v for _, v in buckets]
            self.assertEqual(counts, sorted(counts))  # cumulative
            self.assertEqual(counts[-1], n)
        self.assertEqual(samples[("dproxy_request_duration_seconds_count",
                                  lbl(pool="mc", command="get"))], 20)
        up = [v for k, v in samples.items() if k[0] == "dproxy_server_up"]
        self.assertEqual(up, [1.0, 1.0, 1.0])
        rd_server = lbl(pool="rd", server=f"{HOST}:{self.rd.port}", address=f"{HOST}:{self.rd.port}")
        self.assertEqual(samples[("dproxy_server_requests_total", rd_server)], 60)
        # GET /stats: the JSON document over HTTP.
        with urllib.request.urlopen(f"http://{HOST}:{self.stats_port}/stats", timeout=10) as resp:
            self.assertEqual(resp.headers["Content-Type"], "application/json")
            doc = json.loads(resp.read())
        self.assertEqual(doc["rd"][f"{HOST}:{self.rd.port}"]["requests"], 60)
        with self.assertRaises(urllib.error.HTTPError) as ctx:
            urllib.request.urlopen(f"http://{HOST}:{self.stats_port}/nope", timeout=10)
        self.assertEqual(ctx.exception.code, 404)

    def test_memcached_stats_and_redis_info(self):
        c = self.mc_traffic(10)
        c.send(b"stats\r\n")
        lines = c.read_until(b"END\r\n").decode().split("\r\n")
        stats = dict(line.split(" ", 2)[1:] for line in lines if line.startswith("STAT "))
        self.assertEqual(stats["pool"], "mc")
        self.assertEqual(stats["pool_requests"], "21")  # 10 sets, 10 gets, this stats
        self.assertEqual(stats["cmd_set"], "10")
        self.assertEqual(stats["cmd_get"], "10")
        self.assertEqual(int(stats["server0_requests"]) + int(stats["server1_requests"]), 20)
        # A group: every server's lines, one END (the items of both servers add up).
        c.send(b"stats items\r\n")
        lines = c.read_until(b"END\r\n").decode().split("\r\n")
        self.assertEqual(lines[-2:], ["END", ""])
        self.assertTrue(all(line.startswith("STAT items:") for line in lines[:-2]), lines)
        numbers = [int(line.split()[2]) for line in lines[:-2]
                   if line.split()[1].endswith(":number")]
        self.assertEqual(len(numbers), 2)  # slab class 1 of each server
        self.assertGreaterEqual(sum(numbers), 10)
        c.send(b"stats reset\r\nstats detail on\r\nstats detail off\r\n")
        self.assertEqual(c.read_line(), b"RESET\r\n")
        self.assertEqual(c.read_line(), b"OK\r\n")
        self.assertEqual(c.read_line(), b"OK\r\n")
        r = RespClient(self.rd_port)
        self.addCleanup(r.close)
        for i in range(7):
            self.assertEqual(r.call("SET", f"i{i}", "v"), b"OK")
        info = r.call("INFO").decode()
        self.assertIn("# dproxy\r\n", info)
        self.assertIn("cmdstat_set:calls=7,", info)
        self.assertIn("pool_requests:8\r\n", info)
        self.assertEqual(r.call("INFO", "dproxy").decode().count("cmdstat_set:calls=7,"), 1)
        self.assertEqual(r.call("INFO", "keyspace"), b"")

    def test_down_server_is_visible(self):
        self.procs.kill(self.mc[1])
        c = RawClient(self.mc_port)
        self.addCleanup(c.close)
        errors = 0
        for i in range(40):
            c.send(b"get down%d\r\n" % i)
            if c.read_retrieval() != []:
                errors += 1
        self.assertGreater(errors, 0)
        doc = raw_stats(self.stats_port)
        dead = doc["mc"][f"{HOST}:{self.mc[1].port}"]
        self.assertEqual(doc["mc"]["server_ejects"], 1)
        self.assertGreater(dead["server_ejected_at"], 0)
        self.assertEqual(doc["mc"]["forward_error"], errors)
        body = urllib.request.urlopen(f"http://{HOST}:{self.stats_port}/metrics",
                                      timeout=10).read().decode()
        samples, _ = parse_prometheus(body)
        addr = f"{HOST}:{self.mc[1].port}"
        self.assertEqual(samples[("dproxy_server_up", lbl(pool="mc", server=addr, address=addr))],
                         0)


class StatsListenTest(unittest.TestCase):
    def test_taken_stats_address_is_fatal_when_configured(self):
        procs = Processes()
        self.addCleanup(procs.close)
        blocker = socket.socket()
        self.addCleanup(blocker.close)
        blocker.bind((HOST, 0))
        blocker.listen(1)
        taken = blocker.getsockname()[1]
        config = f"{procs.tmp.name}/c.json"
        with open(config, "w") as f:
            json.dump({"stats": {"listen": f"{HOST}:{taken}"}, "pools": {"p": {
                "protocol": "memcached", "listen": f"{HOST}:{free_port()}",
                "servers": [f"{HOST}:1"]}}}, f)
        r = harness.run_dproxy(ARGS.dproxy, ["--config", config])
        self.assertEqual(r.returncode, 1)
        self.assertIn(f"stats.listen: cannot listen on {HOST}:{taken}", r.stderr)

    def test_disabled(self):
        procs = Processes()
        self.addCleanup(procs.close)
        # The stats port is held (bound, not listening): a dproxy that bound it anyway could
        # not start, one that did not leaves it refusing connections.
        held = harness.HeldPort()
        self.addCleanup(held.close)
        port, stats = free_port(), held.port
        proxy = DproxyTop(procs, ARGS.dproxy, {"p": {
            "protocol": "memcached", "listen": f"{HOST}:{port}", "servers": [f"{HOST}:1"]}},
            top={"stats": {"listen": f"{HOST}:{stats}", "enabled": False}})
        self.assertIsNone(proxy.proc.poll())
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection((HOST, stats), timeout=5)
        self.assertNotIn("stats: listening", proxy.log_text())


if __name__ == "__main__":
    import warnings
    warnings.simplefilter("ignore", ResourceWarning)
    ARGS = harness.parse_args()
    unittest.main(verbosity=2)
