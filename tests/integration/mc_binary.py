"""memcached binary protocol helpers for the integration tests: request packets, response
parsing, and an exchange that reads responses until a marker noop answers."""
import select
import socket
import struct
import time

from harness import HOST

OP = dict(get=0x00, set=0x01, add=0x02, replace=0x03, delete=0x04, incr=0x05, decr=0x06,
          quit=0x07, flush=0x08, getq=0x09, noop=0x0a, version=0x0b, getk=0x0c, getkq=0x0d,
          append=0x0e, prepend=0x0f, stat=0x10, setq=0x11, addq=0x12, replaceq=0x13,
          deleteq=0x14, incrq=0x15, decrq=0x16, quitq=0x17, flushq=0x18, appendq=0x19,
          prependq=0x1a, touch=0x1c, gat=0x1d, gatq=0x1e, gatk=0x23, gatkq=0x24)
MARK = 0xfeedf00d  # the opaque of the noop ending an exchange


def req(op, key=b"", extras=b"", value=b"", opaque=0, cas=0, magic=0x80):
    if isinstance(op, str):
        op = OP[op]
    return struct.pack(">BBHBBHIIQ", magic, op, len(key), len(extras), 0, 0,
                       len(key) + len(extras) + len(value), opaque, cas) + extras + key + value


def store(op, key, value, flags=0, exptime=0, opaque=0, cas=0):
    return req(op, key, struct.pack(">II", flags, exptime), value, opaque, cas)


def arith(op, key, delta, initial=0, exptime=0, opaque=0, cas=0):
    return req(op, key, struct.pack(">QQI", delta, initial, exptime), opaque=opaque, cas=cas)


def touch(op, key, exptime, opaque=0):
    return req(op, key, struct.pack(">I", exptime), opaque=opaque)


def parse(data):
    """Splits a response stream into (opcode, status, opaque, cas, extras, key, value) tuples;
    a trailing partial packet is returned as bytes."""
    out = []
    while len(data) >= 24:
        magic, op, keylen, extlen, _, status, bodylen, opaque, cas = struct.unpack(
            ">BBHBBHIIQ", data[:24])
        if magic != 0x81 or len(data) < 24 + bodylen:
            break
        body = data[24:24 + bodylen]
        out.append((op, status, opaque, cas, body[:extlen], body[extlen:extlen + keylen],
                    body[extlen + keylen:]))
        data = data[24 + bodylen:]
    if data:
        out.append(data)
    return out


def exchange(port, data, timeout=10.0, mark=True):
    """Sends `data` (then a marker noop unless mark is False) and returns the parsed responses
    up to and including the marker's, plus "<closed>" when the connection closed first."""
    s = socket.create_connection((HOST, port), timeout=timeout)
    try:
        s.sendall(data + (req("noop", opaque=MARK) if mark else b""))
        got = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([s], [], [], max(deadline - time.monotonic(), 0))
            if not ready:
                break
            try:
                chunk = s.recv(1 << 20)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return parse(got) + ["<closed>"]
            got += chunk
            packets = parse(got)
            if packets and isinstance(packets[-1], tuple) and packets[-1][0] == OP["noop"] \
                    and packets[-1][2] == MARK:
                return packets
        return parse(got) + ["<timeout>"]
    finally:
        s.close()
