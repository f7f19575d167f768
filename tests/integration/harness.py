"""Test fixtures: real memcached / nutcracker / dproxy processes on free loopback ports.

Every process is started by the fixture, tracked by PID and killed by PID on teardown.
"""
import argparse
import json
import os
import pwd
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

HOST = "127.0.0.1"


def parse_args():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dproxy", required=True, help="path to the dproxy binary")
    args, rest = ap.parse_known_args()
    sys.argv = [sys.argv[0]] + rest
    return args


def _ephemeral_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
        return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


_EPHEMERAL = _ephemeral_range()
_handed_out = set()  # ports free_port() gave this test process: never given twice


def _bindable(port):
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((HOST, port))
        return True
    except OSError:
        return False


def free_port():
    """A loopback TCP port that nothing is bound to, for a process this test starts.

    Chosen at random below the kernel's ephemeral range (so no outgoing connection of any process
    takes it as its local port before the server binds it) and never handed out twice in one
    test process; a bind check skips ports in use (e.g. by a suite running in parallel)."""
    lo, hi = 10000, min(_EPHEMERAL[0], 65536) - 1
    if hi - lo < 1000:  # an unusual ephemeral range: fall back to one of its ports
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((HOST, 0))
            return s.getsockname()[1]
    for _ in range(1000):
        port = random.randint(lo, hi)
        if port in _handed_out or not _bindable(port):
            continue
        _handed_out.add(port)
        return port
    raise RuntimeError("no free loopback port")


class HeldPort:
    """A loopback port that stays closed: bound (so no one else gets it) but not listening, so
    a connect to it is refused. Release with close() (also on garbage collection)."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind((HOST, 0))
        self.port = self.sock.getsockname()[1]

    def close(self):
        self.sock.close()

    def __del__(self):
        self.sock.close()


def wait_port(port, proc=None, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited early with {proc.returncode}")
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"port {port} did not open in {timeout}s")


SANITIZER_REPORT = re.compile(r"ERROR: (Address|Leak|Thread|Memory)Sanitizer|"
                              r"SUMMARY: \w+Sanitizer|: runtime error: ")


def sanitizer_report(text):
    """The sanitizer report (AddressSanitizer, LeakSanitizer, UBSan ...) in `text`, or None."""
    m = SANITIZER_REPORT.search(text or "")
    if not m:
        return None
    start = text.rfind("\n", 0, max(0, m.start() - 2000)) + 1
    return text[start:start + 12000]


def _read_log(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except (OSError, TypeError):
        return ""


class UncleanExit(AssertionError):
    """A dproxy this test started exited uncleanly (non-zero, a signal, a sanitizer report)."""


class Processes:
    """Owns child processes; kills them (by PID) on close.

    Every dproxy started through this object (Dproxy, DproxyTop, or spawn_dproxy()) is
    watched: close() stops it (SIGTERM) if it still runs and raises UncleanExit, after every
    process is gone, when one exited with a status other than 0 or its log (stderr) holds a
    sanitizer report; the report and the log tail are in the exception's message, so they reach
    the test's output."""

    DPROXY_EXIT_TIMEOUT = 60.0  # an ASan build with much memory to check for leaks is slow

    def __init__(self):
        self.procs = []
        self.dproxies = []  # [proc, log path, expected exit status]
        self.log_files = []
        self.tmp = tempfile.TemporaryDirectory(prefix="dproxy-test-")

    def spawn(self, argv, **kw):
        kw.setdefault("stdout", subprocess.DEVNULL)
        kw.setdefault("stderr", subprocess.DEVNULL)
        p = subprocess.Popen(argv, **kw)
        self.procs.append(p)
        return p

    def watch_dproxy(self, proc, log_path, expected_rc=0, log_file=None):
        """close() checks `proc` (a dproxy whose stderr goes to `log_path`) exits cleanly (and
        closes `log_file`, the file object of that log, if given)."""
        self.dproxies.append([proc, log_path, expected_rc])
        if log_file is not None:
            self.log_files.append(log_file)

    def expect_exit(self, proc, rc):
        """The test expects the watched dproxy `proc` to exit with status `rc` (not 0)."""
        for entry in self.dproxies:
            if entry[0] is proc:
                entry[2] = rc

    def spawn_dproxy(self, argv, log_path=None, **kw):
        """Starts a dproxy (argv[0] is the binary) with stderr to `log_path` (default: a new
        file in the temporary directory) and watches it. Returns the Popen, with .log_path."""
        if log_path is None:
            log_path = os.path.join(self.tmp.name, f"dproxy-{time.monotonic_ns()}.stderr")
        with open(log_path, "a") as log:
            p = self.spawn(argv, stderr=log, **kw)
        p.log_path = log_path
        self.watch_dproxy(p, log_path)
        return p

    def kill(self, p, sig=signal.SIGKILL, timeout=10):
        """Sends `sig` to `p` and waits (SIGKILL after `timeout` s). A watched dproxy killed
        on purpose with SIGKILL is expected to exit with -SIGKILL."""
        if sig == signal.SIGKILL and p.poll() is None:
            self.expect_exit(p, -signal.SIGKILL)
        if p.poll() is None:
            os.kill(p.pid, sig)
            try:
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                p.wait()

    def check_dproxies(self):
        """Stops the watched dproxy processes still running (SIGTERM, all at once); returns a
        description of each unclean exit (empty list: all clean)."""
        problems = []
        running = [e for e in self.dproxies if e[0].poll() is None]
        for proc, _, _ in running:
            try:
                os.kill(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + self.DPROXY_EXIT_TIMEOUT
        for proc, log_path, expected in self.dproxies:
            note = ""
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                note = f" (still running {self.DPROXY_EXIT_TIMEOUT:.0f} s after SIGTERM: killed)"
            log = _read_log(log_path)
            report = sanitizer_report(log)
            if proc.returncode != expected or report or note:
                tail = report or "\n".join(log.splitlines()[-40:])
                what = "; its log holds a sanitizer report" if report else ""
                problems.append(f"dproxy pid {proc.pid} exited with {proc.returncode} (expected "
                                f"{expected}){note}{what}; log {log_path}:\n{tail}")
        self.dproxies = []
        for f in self.log_files:
            f.close()
        self.log_files = []
        return problems

    def close(self):
        problems = self.check_dproxies()
        # Everything else (backends, nutcracker) is killed at once: SIGKILL, no one-by-one
        # graceful exits to wait for (memcached takes about a second on SIGTERM).
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.kill(p.pid, signal.SIGCONT)
                    os.kill(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for p in self.procs:
            p.wait()
        self.procs = []
        self.tmp.cleanup()
        if problems:
            for text in problems:
                print("\n" + text, file=sys.stderr, flush=True)
            raise UncleanExit("; ".join(p.split("\n", 1)[0] for p in problems))

    def memcached(self, port=None):
        port = port or free_port()
        p = self.spawn(["memcached", "-u", pwd.getpwuid(os.getuid()).pw_name,
                        "-l", HOST, "-p", str(port), "-U", "0", "-m", "256",
                        "-t", "1", "-I", "8m"])
        wait_port(port, p)
        p.port = port
        return p

    def memcached_unix(self, path):
        """A memcached serving only the unix socket `path`."""
        p = self.spawn(["memcached", "-u", pwd.getpwuid(os.getuid()).pw_name, "-s", path,
                        "-a", "0700", "-m", "64", "-t", "1"])
        wait_unix_socket(path, p)
        p.path = path
        return p

    def redis(self, port=None, extra=()):
        port = port or free_port()
        p = self.spawn(["redis-server", "--bind", HOST, "--port", str(port), "--save", "",
                        "--appendonly", "no", "--dir", self.tmp.name,
                        "--dbfilename", f"dump-{port}.rdb", *extra])
        wait_port(port, p)
        p.port = port
        return p

    def redis_cluster_node(self, port):
        """A cluster-enabled redis-server on `port`; its nodes-<port>.conf survives a restart on
        the same port, so a node killed and started again rejoins its cluster."""
        conf = os.path.join(self.tmp.name, f"nodes-{port}.conf")
        return self.redis(port, extra=[
            "--cluster-enabled", "yes", "--cluster-config-file", conf,
            "--cluster-node-timeout", "2000", "--cluster-require-full-coverage", "yes"])

    def redis_cluster(self, masters=3, replicas=1, timeout=60.0):
        """A Redis Cluster of `masters` * (1 + `replicas`) redis-servers on loopback, created
        with `redis-cli --cluster create`; returns once every node reports cluster_state:ok
        and agrees on the slot map. Returns a RedisCluster (its `nodes` are the processes)."""
        nodes = [self.redis_cluster_node(free_cluster_port())
                 for _ in range(masters * (1 + replicas))]
        addrs = [f"{HOST}:{n.port}" for n in nodes]
        out = subprocess.run(["redis-cli", "--cluster", "create", *addrs, "--cluster-replicas",
                              str(replicas), "--cluster-yes"], capture_output=True, text=True,
                             timeout=timeout)
        if out.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {out.stdout}{out.stderr}")
        cluster = RedisCluster(self, nodes)
        if not wait_for(lambda: cluster.converged(replicas), timeout, interval=0.1):
            raise RuntimeError("the cluster did not converge: " + cluster.describe())
        return cluster


def free_cluster_port():
    """A free loopback port whose cluster bus port (port + 10000) is free as well."""
    import random
    for _ in range(200):
        port = random.randint(12000, 30000)
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as a, \
                    socket.socket(socket.AF_INET, socket.SOCK_STREAM) as b:
                a.bind((HOST, port))
                b.bind((HOST, port + 10000))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port pair for a cluster node")


def _cluster_cmd(port, *args, timeout=5.0):
    """One command to one node (a RespClient), None when the node does not answer."""
    try:
        c = RespClient(port, timeout=timeout)
    except OSError:
        return None
    try:
        return c.call(*args)
    except (OSError, EOFError):
        return None
    finally:
        c.close()


class RedisCluster:
    """The nodes (redis-server processes) of a cluster made by Processes.redis_cluster."""

    def __init__(self, procs, nodes):
        self.procs = procs
        self.nodes = nodes

    def alive(self):
        return [n for n in self.nodes if n.poll() is None]

    def slots(self, port=None):
        """CLUSTER SLOTS as [(first, last, master_port, [replica ports])] (None: no answer)."""
        for n in ([port] if port else [n.port for n in self.alive()]):
            reply = _cluster_cmd(n, "CLUSTER", "SLOTS")
            if isinstance(reply, list):
                return sorted((r[0], r[1], int(r[2][1]), [int(x[1]) for x in r[3:]])
                              for r in reply)
        return None

    def info(self, port):
        reply = _cluster_cmd(port, "CLUSTER", "INFO")
        if not isinstance(reply, bytes):
            return {}
        return dict(line.split(":", 1) for line in reply.decode().split("\r\n") if ":" in line)

    def converged(self, replicas=None):
        """Every live node says cluster_state:ok and reports the same slot map (in which every
        master has `replicas` replicas, when given)."""
        maps = []
        for n in self.alive():
            if self.info(n.port).get("cluster_state") != "ok":
                return False
            maps.append(self.slots(n.port))
        if not all(m == maps[0] and m for m in maps):
            return False
        return replicas is None or all(len(r[3]) == replicas for r in maps[0])

    def masters(self):
        """Ports of the masters that own slots, in slot order."""
        return [m for _, _, m, _ in self.slots()]

    def node(self, port):
        return next(n for n in self.nodes if n.port == port)

    def restart(self, port):
        """Starts the node of `port` again (after it was killed); it rejoins the cluster (as a
        replica when its slots failed over meanwhile)."""
        i = next(i for i, n in enumerate(self.nodes) if n.port == port)
        self.nodes[i] = self.procs.redis_cluster_node(port)
        return self.nodes[i]

    def node_id(self, port):
        return _cluster_cmd(port, "CLUSTER", "MYID").decode()

    def master_of(self, slot):
        for first, last, master, replicas in self.slots():
            if first <= slot <= last:
                return master, replicas
        return None, []

    def key_slot_and_masters(self, key):
        """(the hash slot of `key`, the port of its master, the port of another master)."""
        slot = _cluster_cmd(self.nodes[0].port, "CLUSTER", "KEYSLOT", key)
        src, _ = self.master_of(slot)
        return slot, src, next(m for m in self.masters() if m != src)

    def move_slot(self, slot, to):
        """Hands hash slot `slot` (which must hold no key) to the master on port `to` as a
        reshard does: IMPORTING on it, MIGRATING on the current master, then NODE on every node.
        A proxy in front learns of it only from the nodes' MOVED replies."""
        frm, _ = self.master_of(slot)
        if frm == to:
            return
        frm_id, to_id = self.node_id(frm), self.node_id(to)
        steps = [(to, "IMPORTING", frm_id), (frm, "MIGRATING", to_id)]
        steps += [(n.port, "NODE", to_id) for n in self.alive()]
        for port, state, node in steps:
            reply = _cluster_cmd(port, "CLUSTER", "SETSLOT", slot, state, node)
            if reply != b"OK":
                raise AssertionError(f"SETSLOT {slot} {state} on {port}: {reply!r}")

    def describe(self):
        return "; ".join(f"{n.port}: {self.info(n.port).get('cluster_state')}"
                         for n in self.alive())


class Dproxy:
    """A dproxy process started with a config built from `pools` (dict pool-name -> pool) and
    the top-level keys `top` (e.g. shutdown_timeout_ms). Unless `top` sets "stats", the stats
    listener gets a port of its own (`stats_port`), so that dproxy processes of tests running
    in parallel never compete for the default 22222. Its stderr (log lines and any sanitizer
    report) goes to `log_path`; `procs` checks its exit (see Processes)."""

    def __init__(self, procs, binary, pools, threads=2, extra_args=(), top=None):
        self.procs = procs
        top = dict(top or {})
        self.stats_port = None
        if "stats" not in top:
            self.stats_port = free_port()
            top["stats"] = {"listen": f"{HOST}:{self.stats_port}"}
        elif top["stats"].get("enabled", True) and "listen" in top["stats"]:
            self.stats_port = int(top["stats"]["listen"].rsplit(":", 1)[1])
        self.config_path = os.path.join(procs.tmp.name, f"pools-{time.monotonic_ns()}.json")
        with open(self.config_path, "w") as f:
            json.dump({"pools": pools, **top}, f, indent=2)
        self.log_path = self.config_path + ".log"
        self.log = open(self.log_path, "w")
        self.proc = procs.spawn([binary, "--config", self.config_path, "--threads", str(threads),
                                 *extra_args], stderr=self.log)
        procs.watch_dproxy(self.proc, self.log_path, log_file=self.log)
        for pool in pools.values():
            listen = pool["listen"]
            if not listen.startswith("/"):
                wait_port(int(listen.rsplit(":", 1)[1]), self.proc)

    def log_text(self):
        self.log.flush()
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def stats(self):
        """The stats listener's JSON document (twemproxy's shape)."""
        data = exchange(self.stats_port, b"GET /stats HTTP/1.0\r\n\r\n")
        return json.loads(data.split(b"\r\n\r\n", 1)[1])

    def in_flight(self, pool, server):
        """Requests of pool `pool` queued for or sent to `server` (its stats key: the name, or
        host:port) and not answered yet, summed over the worker threads."""
        entry = self.stats()[pool][server]
        return entry["in_queue"] + entry["out_queue"]

    def stop(self):
        """SIGTERM; waits for the exit and returns the exit status."""
        self.procs.kill(self.proc, signal.SIGTERM, timeout=Processes.DPROXY_EXIT_TIMEOUT)
        return self.proc.returncode


class RawClient:
    """A plain socket client for exact protocol checks."""

    def __init__(self, port, timeout=10.0):
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def read_exact(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(f"connection closed, partial {self.buf!r}")
            self.buf += chunk
        i = self.buf.index(b"\r\n") + 2
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def read_until(self, terminator):
        while terminator not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(f"connection closed, partial {self.buf[:200]!r}")
            self.buf += chunk
        i = self.buf.index(terminator) + len(terminator)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def read_retrieval(self):
        """Reads one get reply; returns list of (key, flags, value[, cas]) or an error line."""
        items = []
        while True:
            line = self.read_line()
            if line == b"END\r\n":
                return items
            if not line.startswith(b"VALUE "):
                return line
            parts = line.split()
            n = int(parts[3])
            data = self.read_exact(n + 2)
            assert data.endswith(b"\r\n"), data[-10:]
            items.append((parts[1], int(parts[2]), data[:-2]) + tuple(int(x) for x in parts[4:]))

    def is_closed(self, timeout=2.0):
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except (ConnectionResetError, BrokenPipeError):
            return True

    def close(self):
        self.sock.close()


def backend_get(port, key):
    """Asks one memcached directly for `key`; returns the value or None."""
    c = RawClient(port)
    try:
        c.send(b"get " + key + b"\r\n")
        items = c.read_retrieval()
        return items[0][2] if items else None
    finally:
        c.close()


# --- twemproxy (nutcracker) reference process -------------------------------------------------

NUTCRACKER = "/usr/sbin/nutcracker"


def _yaml_scalar(value):
    """A YAML scalar for a nutcracker config value (JSON string syntax is valid YAML)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(str(value))


class Nutcracker:
    """A Debian /usr/sbin/nutcracker (twemproxy 0.5) process serving one memcached pool.

    `pool` holds the YAML keys of the pool (hash, distribution, hash_tag, ...) plus "servers", a
    list of twemproxy server strings ("127.0.0.1:PORT:WEIGHT [NAME]"). The listen port, stats
    port, pid file and log file are chosen here; the stats port is a free port so parallel runs
    never collide on 22222.
    """

    def __init__(self, procs, pool, pool_name="pool", binary=NUTCRACKER):
        self.procs = procs
        self.port = free_port()
        self.stats_port = free_port()
        stem = os.path.join(procs.tmp.name, f"nutcracker-{time.monotonic_ns()}")
        self.config_path = stem + ".yml"
        self.log_path = stem + ".log"
        self.pid_path = stem + ".pid"
        settings = {"listen": f"{HOST}:{self.port}", "auto_eject_hosts": False,
                    "timeout": 5000, "preconnect": True}
        settings.update({k: v for k, v in pool.items() if k != "servers"})
        lines = [f"{pool_name}:"]
        for key, value in settings.items():
            lines.append(f"  {key}: {_yaml_scalar(value)}")
        lines.append("  servers:")
        for server in pool["servers"]:
            lines.append(f"   - {_yaml_scalar(server)}")
        with open(self.config_path, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.proc = procs.spawn([binary, "-c", self.config_path, "-p", self.pid_path,
                                 "-o", self.log_path, "-s", str(self.stats_port),
                                 "-a", HOST])
        wait_port(self.port, self.proc)

    def log_text(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def stop(self):
        self.procs.kill(self.proc, signal.SIGTERM)
        return self.proc.returncode


def run_dproxy(binary, args, timeout=10.0, **kw):
    """Runs dproxy to completion (e.g. --test-config, --help); returns CompletedProcess (text).
    Raises UncleanExit when its stderr holds a sanitizer report."""
    r = subprocess.run([binary, *args], capture_output=True, text=True, timeout=timeout, **kw)
    report = sanitizer_report(r.stderr)
    if report:
        print("\n" + report, file=sys.stderr, flush=True)
        raise UncleanExit(f"dproxy {' '.join(args)}: sanitizer report (exit {r.returncode})")
    return r


def wait_unix_socket(path, proc=None, timeout=10.0):
    """Waits until a unix stream socket at `path` accepts connections."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited early with {proc.returncode}")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(0.5)
                s.connect(path)
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"unix socket {path} did not open in {timeout}s")


# --- Redis (RESP2) helpers --------------------------------------------------------------------


class RespError(bytes):
    """An error reply ("-ERR ..."), without the leading '-' and the trailing CRLF."""


def resp_command(*args):
    """Encodes one command as a RESP multibulk (str arguments are UTF-8 encoded)."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        elif isinstance(a, int):
            a = str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def missing(what):
    """A client library or tool that is not installed: a failure in CI (scripts/install-deps.sh
    installs it), a skip elsewhere."""
    import unittest
    if os.environ.get("CI") == "true":
        raise AssertionError(f"{what} is not installed (scripts/install-deps.sh installs it)")
    raise unittest.SkipTest(f"{what} is not installed")


def subscribed_everywhere(test, port, publisher, channels, payload):
    """A new RESP2 client on `port` subscribes to `channels` (each confirmation checked); then
    `publisher` (a RespClient) publishes `payload` to each, which must reach exactly that one
    subscriber. Returns the subscriber (closed at the test's cleanup)."""
    sub = RespClient(port)
    test.addCleanup(sub.close)
    sub.send(resp_command("SUBSCRIBE", *channels))
    for i, ch in enumerate(channels):
        test.assertEqual(sub.read_reply(), [b"subscribe", ch.encode(), i + 1])

    def one_each():  # a subscriber closed just before may still be leaving its server
        counts = publisher.call("PUBSUB", "NUMSUB", *channels)
        return counts[1::2] == [1] * len(channels)
    test.assertTrue(wait_for(one_each, 10), publisher.call("PUBSUB", "NUMSUB", *channels))
    for ch in channels:
        test.assertEqual(publisher.call("PUBLISH", ch, payload), 1, ch)
        test.assertEqual(sub.read_reply(), [b"message", ch.encode(), payload.encode()])
    return sub


class RespClient(RawClient):
    """A raw RESP2 socket client: exact bytes in, parsed (or exact) replies out.

    read_reply() returns bytes (simple or bulk string), None (null bulk / null array), int,
    list, or RespError. read_raw_reply() returns the exact bytes of one reply.
    """

    def call(self, *args):
        self.send(resp_command(*args))
        return self.read_reply()

    def read_reply(self):
        line = self.read_line()
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest
        if kind == b"-":
            return RespError(rest)
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.read_exact(n + 2)
            assert data.endswith(b"\r\n"), data[-10:]
            return data[:-2]
        if kind == b"*":
            n = int(rest)
            if n < 0:
                return None
            return [self.read_reply() for _ in range(n)]
        raise AssertionError(f"not a RESP reply: {line!r}")

    def read_raw_reply(self):
        line = self.read_line()
        kind, rest = line[:1], line[1:-2]
        if kind == b"$" and int(rest) >= 0:
            return line + self.read_exact(int(rest) + 2)
        if kind == b"*" and int(rest) > 0:
            return line + b"".join(self.read_raw_reply() for _ in range(int(rest)))
        return line


def redis_direct(port, password=None, db=0):
    """A redis-py client connected straight to one redis-server (not through dproxy)."""
    import redis  # only the Redis tests need python3-redis

    return redis.Redis(host=HOST, port=port, password=password, db=db, socket_timeout=10)


def redis_key_on(ports, keys, password=None, db=0):
    """For each key, the list of the redis-servers (of `ports`) that hold it (asked directly)."""
    found = {k: [] for k in keys}
    for port in ports:
        r = redis_direct(port, password=password, db=db)
        try:
            pipe = r.pipeline(transaction=False)
            for k in keys:
                pipe.exists(k)
            for k, n in zip(keys, pipe.execute()):
                if n:
                    found[k].append(port)
        finally:
            r.close()
    return found


class PoolsTestMixin:
    """For unittest.TestCase classes whose setUpClass sets cls.procs, cls.pools (pool name ->
    pool JSON) and cls.proxy: stops dproxy at the end (exit status 0 required), gives each test
    a key prefix, a pool's port and raw RESP clients closed at the end of the test, and a
    one-server Redis pool of the test's own (to kill its server)."""

    @classmethod
    def tearDownClass(cls):
        rc = cls.proxy.stop()
        log = cls.proxy.log_text()
        cls.procs.close()
        assert rc == 0, f"dproxy exited with {rc}: {log[-2000:]}"

    def setUp(self):
        self.prefix = f"{self._testMethodName}:{os.urandom(4).hex()}:"

    def port(self, pool):
        return int(self.pools[pool]["listen"].rsplit(":", 1)[1])

    def raw(self, pool=None, port=None):
        c = RespClient(port or self.port(pool))
        self.addCleanup(c.close)
        return c

    def one_server_proxy(self, binary, **pool_extra):
        """(server, proxy, port): a redis-server and a dproxy pool "one" in front of it, both
        the test's own (stopped at its end)."""
        procs = Processes()
        self.addCleanup(procs.close)
        server = procs.redis()
        pools = {"one": {"protocol": "redis", "listen": f"{HOST}:{free_port()}",
                         "servers": [f"{HOST}:{server.port}"], **pool_extra}}
        proxy = Dproxy(procs, binary, pools)
        server.procs = procs
        return server, proxy, int(pools["one"]["listen"].rsplit(":", 1)[1])


class RedisTestMixin:
    """Helpers for unittest.TestCase classes testing a Redis pool of dproxy.

    The class sets `port` (dproxy's listen port) and `ports` (the backend redis-servers) in
    setUpClass; every test gets a unique key prefix.
    """

    def setUp(self):
        self.prefix = f"{self._testMethodName}:{time.monotonic_ns()}:"

    def k(self, name):
        return self.prefix + str(name)

    def client(self, port=None, decode=False, **kw):
        """A redis-py client connected to dproxy (closed at the end of the test)."""
        import redis

        r = redis.Redis(host=HOST, port=port or self.port, decode_responses=decode,
                        socket_timeout=30, **kw)
        self.addCleanup(r.close)
        return r

    def raw(self, port=None):
        c = RespClient(port or self.port)
        self.addCleanup(c.close)
        return c

    def direct(self, port, **kw):
        r = redis_direct(port, **kw)
        self.addCleanup(r.close)
        return r

    def where(self, keys):
        """For each key, the backends (of self.ports) holding it."""
        return redis_key_on(self.ports, keys)

    def keys_on_distinct_servers(self, n):
        """`n` keys (with this test's prefix) that live on `n` different backends."""
        r = self.client()
        chosen, used = [], set()
        for _ in range(400):
            key = self.k(os.urandom(4).hex())
            r.set(key, "x")
            port = self.where([key])[key][0]
            r.delete(key)
            if port not in used:
                used.add(port)
                chosen.append(key)
                if len(chosen) == n:
                    return chosen
        raise AssertionError(f"could not find {n} keys on distinct servers")

    def assert_alive(self, c):
        """The same raw connection still serves requests (forwarded and local)."""
        key = self.k(f"alive{os.urandom(3).hex()}")
        self.assertEqual(c.call("SET", key, "ok"), b"OK")
        self.assertEqual(c.call("GET", key), b"ok")
        self.assertEqual(c.call("PING"), b"PONG")


# --- fault injection helpers (test_faults*.py, test_shutdown*.py) -----------------------------


def vm_rss_kb(pid):
    """Resident set size of process `pid` in KiB (VmRSS from /proc/PID/status)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def tcp_queues(local_port, remote_port):
    """(send queue, receive queue) in bytes of the IPv4 loopback TCP socket whose local port is
    `local_port` and whose peer's is `remote_port` (from /proc/net/tcp), or None. Used on the
    server's end of a test's connection: a receive queue that stays full shows the server
    stopped reading."""
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            local, remote, queues = fields[1], fields[2], fields[4]
            if int(local.split(":")[1], 16) == local_port and \
                    int(remote.split(":")[1], 16) == remote_port:
                tx, rx = queues.split(":")
                return int(tx, 16), int(rx, 16)
    return None


def fd_count(pid):
    """Number of open file descriptors of process `pid`."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def is_asan_binary(path):
    """True when `path` is built with AddressSanitizer (its memory figures are not comparable)."""
    try:
        out = subprocess.run(["ldd", path], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    if "libasan" in out:
        return True
    import mmap
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        return m.find(b"AddressSanitizer") >= 0


def raise_nofile_limit():
    """Raises this process's RLIMIT_NOFILE soft limit to the hard limit (children inherit it).

    Returns the (soft, hard) limits in effect afterwards."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def exchange(port, request=b"", timeout=10.0):
    """Connects to 127.0.0.1:port, sends `request` (maybe nothing) and reads until the server
    closes the connection; returns every byte read."""
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        if request:
            s.sendall(request)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return data
            data += chunk


def wait_for(predicate, timeout, interval=0.02):
    """Polls `predicate` until it returns a true value (returned) or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def wait_log(proxy, text, timeout=10.0, start=0):
    """Waits until dproxy's log (from character `start`) contains `text`; returns True/False."""
    return bool(wait_for(lambda: text in proxy.log_text()[start:], timeout))


def resume(proc):
    """SIGCONT a process that may have been stopped (safe if it already exited)."""
    try:
        os.kill(proc.pid, signal.SIGCONT)
    except ProcessLookupError:
        pass


class DproxyTop(Dproxy):
    """A Dproxy whose config also has top-level keys (e.g. shutdown_timeout_ms)."""

    def __init__(self, procs, binary, pools, top=None, threads=2, extra_args=()):
        super().__init__(procs, binary, pools, threads=threads, extra_args=extra_args, top=top)


class FakeServer:
    """A misbehaving TCP server on 127.0.0.1 run by a thread: for every chunk a connection
    receives, `respond(data)` gives the bytes to send back (None: close the connection).

    Records every accepted connection, the bytes received, and how many connections the peer
    closed (EOF). Stop it with close()."""

    def __init__(self, respond, port=None):
        import threading
        self.respond = respond
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((HOST, port or 0))
        self.listener.listen(128)
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.accepted = 0
        self.peer_closed = 0
        self.received = b""
        self.stopping = False
        self.threads = []
        self.conns = []
        self.thread = threading.Thread(target=self._accept_loop, daemon=True)
        self.thread.start()

    def _accept_loop(self):
        import threading
        while not self.stopping:
            try:
                conn, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.accepted += 1
                self.conns.append(conn)
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self.threads.append(t)
            t.start()

    def _serve(self, conn):
        conn.settimeout(0.1)
        try:
            while not self.stopping:
                try:
                    data = conn.recv(65536)
                except socket.timeout:
                    continue
                if not data:
                    with self.lock:
                        self.peer_closed += 1
                    return
                with self.lock:
                    self.received += data
                reply = self.respond(data)
                if reply is None:
                    return
                if reply:
                    conn.sendall(reply)
        except OSError:
            with self.lock:
                self.peer_closed += 1
        finally:
            conn.close()

    def close(self):
        self.stopping = True
        try:
            self.listener.close()
        except OSError:
            pass
        self.thread.join(timeout=5)
        for t in self.threads:
            t.join(timeout=5)


class MemcachedOps:
    """Protocol adapter for the fault tests: memcached ASCII over a RawClient.

    Results are ("ok", value_or_None) or ("error", text-without-CRLF)."""

    name = "memcached"

    @staticmethod
    def backend(procs, port=None):
        return procs.memcached(port)

    @staticmethod
    def client(port, timeout=10.0):
        return RawClient(port, timeout=timeout)

    @staticmethod
    def set_req(key, value):
        return b"set %s 0 0 %d\r\n%s\r\n" % (key, len(value), value)

    @staticmethod
    def get_req(key):
        return b"get %s\r\n" % key

    @staticmethod
    def read_set(c):
        line = c.read_line()
        if line == b"STORED\r\n":
            return ("ok", None)
        return ("error", line[:-2].decode(errors="replace"))

    @staticmethod
    def read_get(c):
        r = c.read_retrieval()
        if isinstance(r, bytes):
            return ("error", r[:-2].decode(errors="replace"))
        return ("ok", r[0][2] if r else None)

    @staticmethod
    def direct_get(port, key):
        return backend_get(port, key)

    @staticmethod
    def error_prefix(address):
        """The start of every error dproxy sends for a failing backend `address`."""
        return f"SERVER_ERROR backend {address} "


class RedisOps:
    """Protocol adapter for the fault tests: Redis RESP2 over a RespClient."""

    name = "redis"

    @staticmethod
    def backend(procs, port=None):
        return procs.redis(port)

    @staticmethod
    def client(port, timeout=10.0):
        return RespClient(port, timeout=timeout)

    @staticmethod
    def set_req(key, value):
        return resp_command(b"SET", key, value)

    @staticmethod
    def get_req(key):
        return resp_command(b"GET", key)

    @staticmethod
    def read_set(c):
        r = c.read_reply()
        if isinstance(r, RespError):
            return ("error", r.decode(errors="replace"))
        if r == b"OK":
            return ("ok", None)
        return ("error", f"unexpected SET reply {r!r}")

    @staticmethod
    def read_get(c):
        r = c.read_reply()
        if isinstance(r, RespError):
            return ("error", r.decode(errors="replace"))
        return ("ok", r)

    @staticmethod
    def direct_get(port, key):
        c = RespClient(port)
        try:
            return c.call(b"GET", key)
        finally:
            c.close()

    @staticmethod
    def error_prefix(address):
        return f"ERR dproxy: backend {address} "


def start_cluster(procs, binary, ops, n=3, pool=None, threads=2, top=None, backends=None):
    """`n` backends of `ops`'s protocol (or the given `backends`) and a dproxy pool "p" in
    front of them; `pool` overrides pool keys. Returns (backends, proxy, listen port)."""
    backends = backends if backends is not None else [ops.backend(procs) for _ in range(n)]
    port = free_port()
    cfg = {"protocol": ops.name, "listen": f"{HOST}:{port}", "hash": "md5",
           "servers": [f"{HOST}:{b.port}" for b in backends]}
    cfg.update(pool or {})
    proxy = DproxyTop(procs, binary, {"p": cfg}, top=top, threads=threads)
    return backends, proxy, port


def locate_keys(ops, ports, keys):
    """For each key, the backends (of `ports`) holding it, asked directly (pipelined gets)."""
    found = {k: [] for k in keys}
    for port in ports:
        c = ops.client(port)
        try:
            c.send(b"".join(ops.get_req(k) for k in keys))
            for k in keys:
                kind, value = ops.read_get(c)
                if kind == "ok" and value is not None:
                    found[k].append(port)
        finally:
            c.close()
    return found


def spread_keys(ops, proxy_port, ports, per_server, prefix):
    """Keys (bytes, starting with `prefix`) stored through dproxy until each backend of
    `ports` holds `per_server` of them. Returns {port: [keys]}."""
    out = {p: [] for p in ports}
    c = ops.client(proxy_port)
    try:
        for batch in range(50):
            keys = [b"%s:%d:%d" % (prefix, batch, i) for i in range(64)]
            c.send(b"".join(ops.set_req(k, b"seed") for k in keys))
            for k in keys:
                kind, text = ops.read_set(c)
                assert kind == "ok", (k, text)
            for k, where in locate_keys(ops, ports, keys).items():
                assert len(where) == 1, (k, where)
                if len(out[where[0]]) < per_server:
                    out[where[0]].append(k)
            if all(len(v) == per_server for v in out.values()):
                return out
    finally:
        c.close()
    raise AssertionError(f"could not spread keys: { {p: len(v) for p, v in out.items()} }")


def freeze(proc, timeout=5.0):
    """SIGSTOPs `proc` and waits until every one of its threads is stopped (state T)."""
    os.kill(proc.pid, signal.SIGSTOP)

    def all_stopped():
        try:
            tasks = os.listdir(f"/proc/{proc.pid}/task")
            for t in tasks:
                with open(f"/proc/{proc.pid}/task/{t}/stat") as f:
                    state = f.read().rsplit(")", 1)[1].split()[0]
                if state not in ("T", "t"):
                    return False
            return True
        except FileNotFoundError:
            return False

    if not wait_for(all_stopped, timeout, interval=0.005):
        raise RuntimeError(f"process {proc.pid} did not stop")
