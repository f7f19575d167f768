"""The soak's verifying clients. Each runs in a thread of its own, owns its keys (so its model
of them is exact), checks every reply against the model and counts into the shared Verdict.

A request that gets no answer within REPLY_LIMIT (the pool's timeout plus slack; longer for
blocking commands) counts as unanswered; dproxy closing a client's connection counts as closed
by dproxy (subscribers excepted: dproxy closes them when their server goes, so that client
libraries resubscribe).
"""
import random
import socket
import ssl
import struct
import time

from harness import HOST, RawClient, RespClient, RespError, resp_command
from model import Key

REPLY_LIMIT = 8.0  # s: pool timeout_ms (1 s) + a frozen server's longest thaw + slack


class Stop(Exception):
    pass


class Client:
    """Base: a loop of verified operations until `deadline`; reconnects after a failure."""

    name = "client"

    def __init__(self, verdict, port, seed, deadline, prefix, may_lose, nkeys=120):
        self.verdict = verdict
        self.port = port
        self.rng = random.Random(seed)
        self.deadline = deadline
        self.keys = [Key(f"{prefix}:{i}") for i in range(nkeys)]
        self.may_lose = may_lose
        self.seq = 0
        self.conn = None

    def value(self, key):
        self.seq += 1
        pad = "x" * self.rng.choice((0, 10, 100, 1000, 20000))
        return f"{key.name}|{self.seq}|{pad}".encode()

    def connect(self):
        raise NotImplementedError

    def step(self):
        raise NotImplementedError

    def run(self):
        fresh = False  # the connection has not been answered yet
        while time.monotonic() < self.deadline():
            try:
                if self.conn is None:
                    fresh = True  # before connect(): a HELLO in it may meet a burst's close
                    self.conn = self.connect()
                self.step()
                fresh = False
            except socket.timeout:
                self.verdict.fail(self.name, "unanswered", f"no reply within {REPLY_LIMIT} s")
                self.drop()
            except (EOFError, ConnectionResetError, BrokenPipeError, ssl.SSLError) as e:
                if fresh:  # a new connection over client_connections (a burst): closed at once
                    self.verdict.count(self.name, "errors (allowed)")
                    time.sleep(0.2)
                else:
                    self.verdict.fail(self.name, "closed by dproxy", repr(e))
                self.drop()
            except ConnectionRefusedError:
                time.sleep(0.2)
        self.drop()

    def drop(self):
        if self.conn is not None:
            try:
                self.conn.close()
            except OSError:
                pass
        self.conn = None

    # A pool whose servers a reload adds and removes: a key may map back to a server holding
    # an older value of it (as in any sharded cache whose topology changes), so only "a value
    # of this key" is checked.
    stale_ok = False
    # A pool whose replication is asynchronous (Redis Cluster): after a master is killed, its
    # promoted replica may lack the last writes, so an older value of the key is allowed when a
    # master was killed since the newest acknowledged write (the same rule as for a miss).
    stale_after_loss = False

    def judge(self, key, got, what):
        self.verdict.count(self.name, "requests")
        verdict = key.check(got, self.may_lose)
        if verdict == "wrong" and got.startswith((key.value_name or key.name).encode() + b"|"):
            if self.stale_ok:
                verdict = "ok"
            elif self.stale_after_loss and self.may_lose(key.acked_at):
                verdict = "stale"
        key.note(f"{what} -> {got[:40] if got else got!r}: {verdict}")
        if verdict == "stale":
            self.verdict.count(self.name, "stale (allowed)")
        elif verdict == "miss":
            self.verdict.count(self.name, "misses (allowed)")
        elif verdict != "ok":
            column = "wrong values" if verdict == "wrong" else "lost acked writes"
            self.verdict.fail(self.name, column, f"{key.name}: {what} returned "
                              f"{got[:60] if got else got!r}, model acked "
                              f"{key.acked[:60] if key.acked else key.acked!r}", key.history)

    def wrote(self, key, value, acked, issued, what):
        self.verdict.count(self.name, "requests")
        if not acked:
            self.verdict.count(self.name, "errors (allowed)")
        key.wrote(value, acked, issued)
        key.note(f"{what} {'acked' if acked else 'failed'}")


class McAscii(Client):
    """memcached ASCII: set, get, multi-get, delete."""

    name = "mc-ascii"

    def connect(self):
        return RawClient(self.port, timeout=REPLY_LIMIT)

    def step(self):
        c = self.conn
        op = self.rng.random()
        if op < 0.4:
            k = self.rng.choice(self.keys)
            v = self.value(k)
            t = time.monotonic()
            c.send(b"set %s 0 0 %d\r\n%s\r\n" % (k.name.encode(), len(v), v))
            line = c.read_line()
            self.wrote(k, v, line == b"STORED\r\n", t, "set")
        elif op < 0.5:
            k = self.rng.choice(self.keys)
            t = time.monotonic()
            c.send(b"delete %s\r\n" % k.name.encode())
            line = c.read_line()
            self.wrote(k, None, line in (b"DELETED\r\n", b"NOT_FOUND\r\n"), t, "delete")
        else:
            ks = self.rng.sample(self.keys, 1 if op < 0.8 else self.rng.randint(2, 16))
            c.send(b"get " + b" ".join(k.name.encode() for k in ks) + b"\r\n")
            items = c.read_retrieval()
            if not isinstance(items, list):  # an error line: allowed (backend trouble)
                self.verdict.count(self.name, "errors (allowed)")
                return
            got = {i[0].decode(): i[2] for i in items}
            for k in ks:
                self.judge(k, got.get(k.name), "get")


class McBinary(Client):
    """memcached binary: set, getk, quiet multi-get (getkq ... noop), delete."""

    name = "mc-binary"

    def connect(self):
        self.buf = b""
        return socket.create_connection((HOST, self.port), timeout=REPLY_LIMIT)

    def packet(self):
        s = self
        while True:
            if len(s.buf) >= 24:
                bodylen = struct.unpack(">I", s.buf[8:12])[0]
                if len(s.buf) >= 24 + bodylen:
                    p, s.buf = s.buf[:24 + bodylen], s.buf[24 + bodylen:]
                    _, op, keylen, extlen, _, status, _, opaque, _ = struct.unpack(
                        ">BBHBBHIIQ", p[:24])
                    return op, status, opaque, p[24 + extlen:24 + extlen + keylen], \
                        p[24 + extlen + keylen:]
            chunk = self.conn.recv(1 << 16)
            if not chunk:
                raise EOFError("closed")
            s.buf += chunk

    @staticmethod
    def req(op, key=b"", extras=b"", value=b"", opaque=0):
        return struct.pack(">BBHBBHIIQ", 0x80, op, len(key), len(extras), 0, 0,
                           len(key) + len(extras) + len(value), opaque, 0) + extras + key + value

    def step(self):
        s = self.conn
        op = self.rng.random()
        if op < 0.4:
            k = self.rng.choice(self.keys)
            v = self.value(k)
            t = time.monotonic()
            s.sendall(self.req(0x01, k.name.encode(), struct.pack(">II", 0, 0), v))
            _, status, _, _, _ = self.packet()
            self.wrote(k, v, status == 0, t, "bin set")
        elif op < 0.5:
            k = self.rng.choice(self.keys)
            t = time.monotonic()
            s.sendall(self.req(0x04, k.name.encode()))
            _, status, _, _, _ = self.packet()
            self.wrote(k, None, status in (0, 1), t, "bin delete")
        else:
            ks = self.rng.sample(self.keys, self.rng.randint(1, 12))
            s.sendall(b"".join(self.req(0x0d, k.name.encode(), opaque=i)
                               for i, k in enumerate(ks)) + self.req(0x0a, opaque=0xffff))
            got, failed = {}, set()
            while True:
                op_, status, opaque, key, value = self.packet()
                if op_ == 0x0a:
                    break
                if status == 0:
                    got[opaque] = value
                else:
                    failed.add(opaque)
            for i, k in enumerate(ks):
                if i in failed:
                    self.verdict.count(self.name, "errors (allowed)")
                else:
                    self.judge(k, got.get(i), "bin getkq")


class McMeta(Client):
    """memcached meta: ms, md, mg, and quiet multi-gets (mg ... q ending in mn)."""

    name = "mc-meta"

    def connect(self):
        return RawClient(self.port, timeout=REPLY_LIMIT)

    def read_value(self, line):
        """The data of a VA line (its CRLF checked)."""
        data = self.conn.read_exact(int(line.split()[1]) + 2)
        if not data.endswith(b"\r\n"):
            raise AssertionError(f"VA data without CRLF: {data[-10:]!r}")
        return data[:-2]

    def step(self):
        c = self.conn
        op = self.rng.random()
        if op < 0.4:
            k = self.rng.choice(self.keys)
            v = self.value(k)
            t = time.monotonic()
            c.send(b"ms %s %d T0\r\n%s\r\n" % (k.name.encode(), len(v), v))
            self.wrote(k, v, c.read_line() == b"HD\r\n", t, "ms")
        elif op < 0.5:
            k = self.rng.choice(self.keys)
            t = time.monotonic()
            c.send(b"md %s\r\n" % k.name.encode())
            self.wrote(k, None, c.read_line() in (b"HD\r\n", b"NF\r\n"), t, "md")
        elif op < 0.75:
            k = self.rng.choice(self.keys)
            c.send(b"mg %s v\r\n" % k.name.encode())
            line = c.read_line()
            if line.startswith(b"VA "):
                self.judge(k, self.read_value(line), "mg")
            elif line == b"EN\r\n":
                self.judge(k, None, "mg")
            else:  # SERVER_ERROR (backend trouble): allowed
                self.verdict.count(self.name, "errors (allowed)")
        else:
            # A quiet pipeline: misses say nothing, hits carry their opaque, mn ends it.
            ks = self.rng.sample(self.keys, self.rng.randint(2, 16))
            c.send(b"".join(b"mg %s v q O%d\r\n" % (k.name.encode(), i)
                            for i, k in enumerate(ks)) + b"mn\r\n")
            got, errors = {}, 0
            while True:
                line = c.read_line()
                if line == b"MN\r\n":
                    break
                if line.startswith(b"VA "):
                    opaque = next(t for t in line.split()[2:] if t.startswith(b"O"))
                    got[int(opaque[1:])] = self.read_value(line)
                else:  # an error line cannot name its request: judge only the hits
                    errors += 1
            for i, k in enumerate(ks):
                if i in got:
                    self.judge(k, got[i], "mg q")
                elif errors:
                    self.verdict.count(self.name, "errors (allowed)")
                else:
                    self.judge(k, None, "mg q")


class Resp3Client(RespClient):
    """RespClient that says HELLO 3 and reads RESP3 replies (null, map, set, double, boolean,
    big number; a push is returned as a list, which the KV workload never expects)."""

    def __init__(self, port, timeout):
        super().__init__(port, timeout=timeout)
        hello = self.call("HELLO", "3")
        if not isinstance(hello, dict) or hello.get(b"proto") != 3:
            raise AssertionError(f"HELLO 3 answered {hello!r}")

    def read_reply(self):
        line = self.read_line()
        kind, rest = line[:1], line[1:-2]
        if kind == b"_":
            return None
        if kind == b"%":
            out = {}
            for _ in range(int(rest)):
                k = self.read_reply()
                out[k] = self.read_reply()
            return out
        if kind in (b"~", b">"):
            return [self.read_reply() for _ in range(int(rest))]
        if kind == b"#":
            return rest == b"t"
        if kind in (b",", b"("):
            return rest
        if kind in (b"=", b"!"):
            data = self.read_exact(int(rest) + 2)[:-2]
            return RespError(data) if kind == b"!" else data
        self.buf = line + self.buf
        return super().read_reply()


class RedisKV(Client):
    """Redis: SET, GET, MGET, MSET, DEL, and MULTI/EXEC pairs whose atomicity is checked (both
    keys of a pair, one hash tag, always hold the same write)."""

    name = "redis"

    def __init__(self, *args, tagged=False, resp3=False, tls=None, **kw):
        super().__init__(*args, **kw)
        self.tagged = tagged
        self.resp3 = resp3
        self.tls = tls  # an ssl.SSLContext: the pool's listener speaks TLS
        if tagged:  # a cluster: multi-key commands need one slot
            for i, k in enumerate(self.keys):
                k.name = "{%s:%d}%s" % (k.name.rsplit(":", 1)[0], i // 8, k.name)
        self.pairs = [(Key(f"{{{self.keys[0].name}:pair{i}}}a"),
                       Key(f"{{{self.keys[0].name}:pair{i}}}b",
                           value_name=f"{{{self.keys[0].name}:pair{i}}}a")) for i in range(10)]

    def connect(self):
        if self.resp3:
            return Resp3Client(self.port, timeout=REPLY_LIMIT)
        c = RespClient(self.port, timeout=REPLY_LIMIT)
        if self.tls is not None:  # the handshake, within the socket's timeout
            c.sock = self.tls.wrap_socket(c.sock, server_hostname=HOST)
        return c

    def group(self):
        if not self.tagged:
            return self.rng.sample(self.keys, self.rng.randint(2, 10))
        start = self.rng.randrange(0, len(self.keys) // 8) * 8
        return self.rng.sample(self.keys[start:start + 8], self.rng.randint(2, 8))

    def step(self):
        c = self.conn
        op = self.rng.random()
        if op < 0.3:
            k = self.rng.choice(self.keys)
            v = self.value(k)
            t = time.monotonic()
            self.wrote(k, v, c.call("SET", k.name, v) == b"OK", t, "SET")
        elif op < 0.4:
            ks = self.group()
            vs = [self.value(k) for k in ks]
            t = time.monotonic()
            ok = c.call("MSET", *[x for k, v in zip(ks, vs) for x in (k.name, v)]) == b"OK"
            for k, v in zip(ks, vs):
                self.wrote(k, v, ok, t, "MSET")
        elif op < 0.45:
            k = self.rng.choice(self.keys)
            t = time.monotonic()
            self.wrote(k, None, isinstance(c.call("DEL", k.name), int), t, "DEL")
        elif op < 0.55:
            self.transaction()
        elif op < 0.75:
            k = self.rng.choice(self.keys)
            got = c.call("GET", k.name)
            if isinstance(got, RespError):
                self.verdict.count(self.name, "errors (allowed)")
            else:
                self.judge(k, got, "GET")
        else:
            ks = self.group()
            got = c.call("MGET", *[k.name for k in ks])
            if not isinstance(got, list):
                self.verdict.count(self.name, "errors (allowed)")
                return
            for k, g in zip(ks, got):
                self.judge(k, g, "MGET")

    def transaction(self):
        c = self.conn
        a, b = self.rng.choice(self.pairs)
        v = self.value(a)
        t = time.monotonic()
        c.send(resp_command("MULTI") + resp_command("SET", a.name, v) +
               resp_command("SET", b.name, v) + resp_command("EXEC"))
        replies = [c.read_reply() for _ in range(4)]
        ok = replies[3] == [b"OK", b"OK"]
        self.wrote(a, v, ok, t, "MULTI/EXEC")
        self.wrote(b, v, ok, t, "MULTI/EXEC")
        got = c.call("MGET", a.name, b.name)
        if not isinstance(got, list):
            self.verdict.count(self.name, "errors (allowed)")
            return
        self.judge(a, got[0], "MGET pair")
        self.judge(b, got[1], "MGET pair")
        if got[0] != got[1]:
            self.verdict.fail(self.name, "wrong values",
                              f"a transaction's pair differs: {a.name}={got[0]!r:.60} "
                              f"{b.name}={got[1]!r:.60}", a.history)


class PubSub:
    """A publisher and a subscriber of one channel. Every message carries a sequence number;
    on a live subscription (between a confirmation and the connection's end) messages arrive in
    order and none is missing unless its PUBLISH failed or reached no subscriber."""

    name = "pubsub"

    def __init__(self, verdict, port, seed, deadline, channel):
        self.verdict, self.port, self.deadline, self.channel = verdict, port, deadline, channel
        self.rng = random.Random(seed)
        self.status = {}  # seq -> "ok" (PUBLISH counted a subscriber), "maybe", "none"
        self.published = 0

    def publish_loop(self):
        c = None
        while time.monotonic() < self.deadline():
            try:
                if c is None:
                    c = RespClient(self.port, timeout=REPLY_LIMIT)
                seq = self.published + 1
                self.status[seq] = "maybe"
                got = c.call("PUBLISH", self.channel, str(seq))
                self.status[seq] = "ok" if isinstance(got, int) and got > 0 else (
                    "none" if got == 0 else "maybe")
                self.published = seq
                time.sleep(0.002)
            except socket.timeout:
                self.verdict.fail(self.name, "unanswered", "PUBLISH")
                c = None
            except (EOFError, OSError) as e:
                self.verdict.fail(self.name, "closed by dproxy", f"publisher: {e!r}")
                c = None
                self.published += 1
        self.final = self.published

    def subscribe_loop(self):
        while time.monotonic() < self.deadline() + 2:
            try:
                c = RespClient(self.port, timeout=REPLY_LIMIT)
                c.send(resp_command("SUBSCRIBE", self.channel))
                if c.read_reply()[0] != b"subscribe":
                    raise EOFError("no confirmation")
                since = self.published  # messages after this must arrive
                last = None
                while time.monotonic() < self.deadline() + 2:
                    msg = c.read_reply()
                    self.verdict.count(self.name, "requests")
                    seq = int(msg[2])
                    if last is not None and seq <= last:
                        self.verdict.fail(self.name, "pubsub lost/reordered",
                                          f"message {seq} after {last}")
                    lo = last + 1 if last is not None else since + 2
                    for s in range(lo, seq):
                        if self.status.get(s) == "ok":
                            self.verdict.fail(self.name, "pubsub lost/reordered",
                                              f"message {s} missing (got {seq} after {last})")
                    last = seq
            except socket.timeout:
                if time.monotonic() < self.deadline():
                    self.verdict.fail(self.name, "unanswered", "no message in time")
            except (EOFError, OSError):
                time.sleep(0.1)  # the channel's server went: resubscribe, as clients do


class Jobs:
    """An RPUSH producer and a BLPOP consumer of one queue: every acknowledged job is
    consumed exactly once (its server is frozen and thawed, never killed)."""

    name = "jobs"

    def __init__(self, verdict, port, seed, deadline, queue):
        self.verdict, self.port, self.deadline, self.queue = verdict, port, deadline, queue
        self.acked, self.maybe, self.seen = set(), set(), {}
        self.producing = True

    def produce_loop(self):
        c, n = None, 0
        while time.monotonic() < self.deadline():
            try:
                if c is None:
                    c = RespClient(self.port, timeout=REPLY_LIMIT)
                n += 1
                got = c.call("RPUSH", self.queue, str(n))
                (self.acked if isinstance(got, int) else self.maybe).add(n)
                time.sleep(0.003)
            except socket.timeout:
                self.verdict.fail(self.name, "unanswered", "RPUSH")
                self.maybe.add(n)
                c = None
            except (EOFError, OSError) as e:
                self.verdict.fail(self.name, "closed by dproxy", f"producer: {e!r}")
                self.maybe.add(n)
                c = None
        self.producing = False

    def consume_loop(self):
        c, idle_since = None, None
        while True:
            try:
                if c is None:
                    c = RespClient(self.port, timeout=REPLY_LIMIT + 2)
                got = c.call("BLPOP", self.queue, "1")
                self.verdict.count(self.name, "requests")
                if isinstance(got, list):
                    job = int(got[1])
                    self.seen[job] = self.seen.get(job, 0) + 1
                    idle_since = None
                elif not self.producing:
                    idle_since = idle_since or time.monotonic()
                    if time.monotonic() - idle_since > 3:
                        break
            except socket.timeout:
                self.verdict.fail(self.name, "unanswered", "BLPOP")
                c = None
            except (EOFError, OSError) as e:
                self.verdict.fail(self.name, "closed by dproxy", f"consumer: {e!r}")
                c = None

    def settle(self):
        lost = sorted(self.acked - set(self.seen))
        dup = sorted(j for j, n in self.seen.items() if n > 1)
        unknown = sorted(j for j in self.seen if j not in self.acked and j not in self.maybe)
        self.verdict.count(self.name, "jobs lost", len(lost))
        self.verdict.count(self.name, "jobs duplicated", len(dup))
        self.verdict.count(self.name, "wrong values", len(unknown))
        for what, js in (("lost", lost), ("duplicated", dup), ("never produced", unknown)):
            if js:
                self.verdict.failures.append((self.name, what, f"jobs {what}: {js[:20]}", []))
