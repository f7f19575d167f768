#!/usr/bin/python3
"""Regenerates (or checks) the nutcracker golden values of the routing unit tests from Debian's
/usr/sbin/nutcracker, the way they were first collected:

  hashes      tests/unit/routing/hash_test.cpp nutcracker_hashes(): the full 32-bit hash of
              each key, for the 12 hashes. For each hash, the key is sent through nutcracker
              modula pools of 64, 63, 61, 59, 53 and 47 equal-weight servers; the server that
              receives it gives hash % n, and the Chinese remainder theorem gives the hash (the
              product of the moduli exceeds 2^32).
  placements  tests/unit/routing/distribution_test.cpp kPlacements: the server index of each
              golden key for each (config, distribution, hash) row.

The servers are fake Redis servers in this process that record the keys they receive (RESP
carries any byte, so keys with control characters work). The placement configs name fixed
ports (127.0.0.1:21001-21008, 127.0.0.1:11211) and unix sockets under /tmp/dproxy-golden,
because a ketama continuum hashes the server names: those must be free.

Usage: /usr/bin/python3 scripts/nutcracker_golden.py [--check] [hashes] [placements]
  without --check: prints the C++ tables; with --check: compares them with the test files
  and exits 1 on a difference.
"""
import argparse
import os
import re
import socketserver
import sys
import threading

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import harness  # noqa: E402

HOST = harness.HOST
HASHES = ["one_at_a_time", "md5", "crc16", "crc32", "crc32a", "fnv1_64", "fnv1a_64", "fnv1_32",
          "fnv1a_32", "hsieh", "murmur", "jenkins"]  # kAllKinds order
MODULI = [64, 63, 61, 59, 53, 47]

HASH_KEYS = [
    b"abcdefghijkl", b"a", b"123456789", b"abcd", b"k" * 250, b"ab", b"abc", b"hello",
    b"abcdefghijklm", b"caf\xc3\xa9", b"\xff\xfe", b"The_quick_brown_fox_jumps_over_the_lazy_dog",
    b"\x80", b"foo:bar:baz", b"\xe9t\xe9", bytes(range(0x21, 0x7f)) + bytes(range(0x80, 0x100)),
    b"user:{1000}:profile", b"\x01\x02\x80\xff",
]

PLACEMENT_KEYS = [
    b"a", b"foo", b"bar", b"hello", b"key:1", b"key:2", b"key:3", b"key:42", b"user:1000",
    b"session:abcdef", b"The_quick_brown_fox", b"\x80", b"\xff\xfe\xfd", b"caf\xc3\xa9",
    b"\xe9t\xe9", b"a{b}c", b"1234567890123", b"x" * 64, b"k" * 250, b"0", b"-1", b"memcached",
    b"nutcracker", b"dproxy",
]

SOCK_DIR = "/tmp/dproxy-golden"
CONFIGS = {
    "named_weighted": ["127.0.0.1:21001:1 alpha", "127.0.0.1:21002:2", "127.0.0.1:21003:3 gamma",
                       "127.0.0.1:21004:1"],
    "port11211": ["127.0.0.1:11211:1", "127.0.0.1:21002:1", "127.0.0.1:21003:3"],
    "unix": [f"{SOCK_DIR}/mc1.sock:1", f"{SOCK_DIR}/mc2.sock:2 sockbeta", "127.0.0.1:21003:1"],
    "float_edge5": ["127.0.0.1:21001:1", "127.0.0.1:21002:2", "127.0.0.1:21003:3",
                    "127.0.0.1:21004:4", "127.0.0.1:21005:15"],
    "many_weighted": [f"127.0.0.1:{21001 + i}:{i + 1}" + (f" node{i}" if i % 3 == 0 else "")
                      for i in range(8)],
}
# The rows of kPlacements, in order.
PLACEMENT_ROWS = ([("named_weighted", d, h) for d in ("ketama", "modula") for h in HASHES] +
                  [("port11211", "ketama", "fnv1a_64"), ("unix", "ketama", "fnv1a_64"),
                   ("float_edge5", "ketama", "fnv1a_64"), ("many_weighted", "ketama", "fnv1a_64"),
                   ("port11211", "modula", "fnv1a_64"), ("unix", "modula", "fnv1a_64"),
                   ("many_weighted", "modula", "fnv1a_64")])


class Recorder:
    """Fake Redis servers: each records the keys (first argument) of the commands it gets and
    answers a null bulk."""

    def __init__(self):
        self.lock = threading.Lock()
        self.seen = {}  # key -> server id
        self.servers = {}

    def handler(self, server_id):
        recorder = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                buf = b""
                while True:
                    try:
                        chunk = self.request.recv(65536)
                    except OSError:
                        return
                    if not chunk:
                        return
                    buf += chunk
                    while True:
                        cmd, buf = parse_command(buf)
                        if cmd is None:
                            break
                        if len(cmd) > 1:
                            with recorder.lock:
                                recorder.seen[cmd[1]] = server_id
                        self.request.sendall(b"$-1\r\n")

        return Handler

    def listen(self, server_id, address):
        """`address`: a TCP port or a unix socket path."""
        if server_id in self.servers:
            return
        if isinstance(address, int):
            socketserver.ThreadingTCPServer.allow_reuse_address = True
            srv = socketserver.ThreadingTCPServer((HOST, address), self.handler(server_id))
        else:
            if os.path.exists(address):
                os.unlink(address)
            srv = socketserver.ThreadingUnixStreamServer(address, self.handler(server_id))
        srv.daemon_threads = True
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        self.servers[server_id] = srv

    def close(self):
        for srv in self.servers.values():
            srv.shutdown()
            srv.server_close()


def parse_command(buf):
    """One complete RESP multibulk command from `buf`: (args, rest) or (None, buf)."""
    if not buf.startswith(b"*") or b"\r\n" not in buf:
        return None, buf
    eol = buf.index(b"\r\n")
    n, pos, args = int(buf[1:eol]), eol + 2, []
    for _ in range(n):
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None, buf
        size = int(buf[pos + 1:eol])
        if len(buf) < eol + 2 + size + 2:
            return None, buf
        args.append(buf[eol + 2:eol + 2 + size])
        pos = eol + 2 + size + 2
    return args, buf[pos:]


def route(procs, recorder, servers, distribution, hash_name, keys):
    """The server index nutcracker sends each key to."""
    nc = harness.Nutcracker(procs, {"redis": True, "hash": hash_name,
                                    "distribution": distribution, "servers": servers})
    c = harness.RespClient(nc.port)
    out = []
    try:
        for key in keys:
            with recorder.lock:
                recorder.seen.pop(key, None)
            reply = c.call(b"GET", key)
            assert reply is None, (key, reply)
            with recorder.lock:
                out.append(recorder.seen[key])
    finally:
        c.close()
        nc.stop()
    return out


def crt(residues):
    value, modulus = 0, 1
    for r, n in residues:
        while value % n != r:
            value += modulus
        modulus *= n
    assert value < 1 << 32, value
    return value


def c_string(key):
    out = ""
    for b in key:
        if b in (0x22, 0x5c) or b < 0x20 or b >= 0x7f:
            out += "\\x%02x" % b
        else:
            out += chr(b)
    return '"' + out + '"'


def gen_hashes(procs, recorder):
    ports = [harness.free_port() for _ in range(max(MODULI))]
    for i, port in enumerate(ports):
        recorder.listen(("h", i), port)
    values = {key: [] for key in HASH_KEYS}
    for hash_name in HASHES:
        residues = {key: [] for key in HASH_KEYS}
        for n in MODULI:
            # Named so that twemproxy's internal order (by name: length, then bytes), which
            # modula slots follow, is the list order.
            servers = [f"{HOST}:{p}:1 s{i:02d}" for i, p in enumerate(ports[:n])]
            for key, owner in zip(HASH_KEYS, route(procs, recorder, servers, "modula",
                                                   hash_name, HASH_KEYS)):
                residues[key].append((owner[1], n))
        for key in HASH_KEYS:
            values[key].append(crt(residues[key]))
    return values


def gen_placements(procs, recorder):
    os.makedirs(SOCK_DIR, exist_ok=True)
    rows = []
    for config, distribution, hash_name in PLACEMENT_ROWS:
        servers = CONFIGS[config]
        for spec in servers:
            address = spec.split(" ")[0].rsplit(":", 1)[0]
            target = address if address.startswith("/") else int(address.rsplit(":", 1)[1])
            recorder.listen(address, target)
        owners = route(procs, recorder, servers, distribution, hash_name, PLACEMENT_KEYS)
        index = {spec.split(" ")[0].rsplit(":", 1)[0]: i for i, spec in enumerate(servers)}
        rows.append((config, distribution, hash_name, "".join(str(index[o]) for o in owners)))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true")
    ap.add_argument("what", nargs="*", help="hashes, placements (default: both)")
    args = ap.parse_args()
    what = args.what or ["hashes", "placements"]
    if set(what) - {"hashes", "placements"}:
        ap.error("what: hashes or placements")
    procs = harness.Processes()
    recorder = Recorder()
    status = 0
    try:
        if "hashes" in what:
            values = gen_hashes(procs, recorder)
            if args.check:
                with open(os.path.join(ROOT, "tests/unit/routing/hash_test.cpp")) as f:
                    text = f.read()
                table = text[text.index("nutcracker_hashes()"):text.index("return kGolden;")]
                found = [int(x, 16) for x in re.findall(r"0x([0-9a-f]{8})", table)]
                expected = [v for key in HASH_KEYS for v in values[key]]
                ok = found == expected
                print(f"hashes: {'match' if ok else 'DIFFER from'} hash_test.cpp "
                      f"({len(expected)} values)")
                status |= 0 if ok else 1
            else:
                for key in HASH_KEYS:
                    hexes = ", ".join("0x%08x" % v for v in values[key])
                    print(f"      {{{c_string(key)},\n       {{{hexes}}}}},")
        if "placements" in what:
            rows = gen_placements(procs, recorder)
            if args.check:
                with open(os.path.join(ROOT, "tests/unit/routing/distribution_test.cpp")) as f:
                    text = f.read()
                table = text[text.index("kPlacements[] = {"):]
                table = table[:table.index("};")]
                found = re.findall(r'"([0-9]+)"\}', table)
                ok = found == [r[3] for r in rows]
                print(f"placements: {'match' if ok else 'DIFFER from'} distribution_test.cpp "
                      f"({len(rows)} rows)")
                status |= 0 if ok else 1
            else:
                names = {h: "k" + "".join(p.capitalize() for p in h.split("_")) for h in HASHES}
                names.update({"one_at_a_time": "kOneAtATime", "md5": "kMd5", "crc16": "kCrc16",
                              "crc32": "kCrc32", "crc32a": "kCrc32a", "fnv1_64": "kFnv1_64",
                              "fnv1a_64": "kFnv1a_64", "fnv1_32": "kFnv1_32",
                              "fnv1a_32": "kFnv1a_32"})
                for config, distribution, hash_name, owners in rows:
                    print(f'    {{"{config}", DistributionKind::k{distribution.capitalize()}, '
                          f'HashKind::{names[hash_name]}, "{owners}"}},')
    finally:
        recorder.close()
        procs.close()
    return status


if __name__ == "__main__":
    sys.exit(main())
