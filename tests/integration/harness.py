"""Test fixtures: real memcached / nutcracker / dproxy processes on free loopback ports.

Every process is started by the fixture, tracked by PID and killed by PID on teardown.
"""
import argparse
import json
import os
import pwd
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


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_port(port, proc=None, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited early with {proc.returncode}")
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"port {port} did not open in {timeout}s")


class Processes:
    """Owns child processes; kills them (by PID) on close."""

    def __init__(self):
        self.procs = []
        self.tmp = tempfile.TemporaryDirectory(prefix="dproxy-test-")

    def spawn(self, argv, **kw):
        kw.setdefault("stdout", subprocess.DEVNULL)
        kw.setdefault("stderr", subprocess.DEVNULL)
        p = subprocess.Popen(argv, **kw)
        self.procs.append(p)
        return p

    def kill(self, p, sig=signal.SIGKILL):
        if p.poll() is None:
            os.kill(p.pid, sig)
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                p.wait()

    def memcached(self, port=None):
        port = port or free_port()
        p = self.spawn(["memcached", "-u", pwd.getpwuid(os.getuid()).pw_name,
                        "-l", HOST, "-p", str(port), "-U", "0", "-m", "256",
                        "-t", "1", "-I", "8m"])
        wait_port(port, p)
        p.port = port
        return p

    def redis(self, port=None, extra=()):
        port = port or free_port()
        p = self.spawn(["redis-server", "--bind", HOST, "--port", str(port), "--save", "",
                        "--appendonly", "no", "--dir", self.tmp.name,
                        "--dbfilename", f"dump-{port}.rdb", *extra])
        wait_port(port, p)
        p.port = port
        return p

    def close(self):
        for p in reversed(self.procs):
            try:
                self.kill(p, signal.SIGTERM)
            except ProcessLookupError:
                pass
        self.procs = []
        self.tmp.cleanup()


class Dproxy:
    """A dproxy process started with a config built from `pools` (dict pool-name -> pool)."""

    def __init__(self, procs, binary, pools, threads=2, extra_args=()):
        self.procs = procs
        self.config_path = os.path.join(procs.tmp.name, f"pools-{time.monotonic_ns()}.json")
        with open(self.config_path, "w") as f:
            json.dump({"pools": pools}, f, indent=2)
        self.log_path = self.config_path + ".log"
        self.log = open(self.log_path, "w")
        self.proc = procs.spawn([binary, "--config", self.config_path, "--threads", str(threads),
                                 *extra_args], stderr=self.log)
        for pool in pools.values():
            listen = pool["listen"]
            if not listen.startswith("/"):
                wait_port(int(listen.rsplit(":", 1)[1]), self.proc)

    def log_text(self):
        self.log.flush()
        with open(self.log_path) as f:
            return f.read()

    def stop(self):
        self.procs.kill(self.proc, signal.SIGTERM)
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
    """Runs dproxy to completion (e.g. --test-config, --help); returns CompletedProcess (text)."""
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=timeout, **kw)


def wait_unix_socket(path, proc=None, timeout=10.0):
    """Waits until a unix stream socket at `path` accepts connections."""
    deadline = time.time() + timeout
    while time.time() < deadline:
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
