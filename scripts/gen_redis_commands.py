#!/usr/bin/env python3
"""Generates dproxy's Redis command table from a running redis-server 7.0.

Usage (from the repository root):  /usr/bin/python3 scripts/gen_redis_commands.py
Options: --redis-server PATH (default: redis-server on PATH, else /usr/bin/redis-server),
         --output FILE (default: src/protocol/resp/command_table_data.inc),
         --check (exit 1 when the output file is not what this run would write).

The script starts its own redis-server on a free 127.0.0.1 port (no persistence), reads
COMMAND INFO and COMMAND DOCS (subcommands included) over a plain socket, stops the server by PID
and writes a C++ table for src/protocol/resp/command_table.cpp. Output is deterministic: entries
sorted by name, and the parts of the replies that Redis emits in hash order (subcommands) are
re-encoded in name order, so re-running against the same Redis version gives identical bytes.

Only the Python standard library is used (no redis-py needed).

Routing rules: see ROUTING RULES below; the same table is documented in command_table.h.
"""

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUTPUT = os.path.join(REPO_ROOT, "src", "protocol", "resp", "command_table_data.inc")
SCRIPT_NAME = "scripts/gen_redis_commands.py"

# ---------------------------------------------------------------------------------------------
# Bit names. These must match the enums in src/protocol/resp/command_table.h; an unknown name
# from a newer Redis stops the script so the header gets updated consciously.
# ---------------------------------------------------------------------------------------------
COMMAND_FLAGS = {
    "write": "kCmdWrite",
    "readonly": "kCmdReadonly",
    "denyoom": "kCmdDenyoom",
    "module": "kCmdModule",
    "admin": "kCmdAdmin",
    "pubsub": "kCmdPubsub",
    "noscript": "kCmdNoscript",
    "blocking": "kCmdBlocking",
    "loading": "kCmdLoading",
    "stale": "kCmdStale",
    "skip_monitor": "kCmdSkipMonitor",
    "skip_slowlog": "kCmdSkipSlowlog",
    "asking": "kCmdAsking",
    "fast": "kCmdFast",
    "no_auth": "kCmdNoAuth",
    "may_replicate": "kCmdMayReplicate",
    "no_mandatory_keys": "kCmdNoMandatoryKeys",
    "no_async_loading": "kCmdNoAsyncLoading",
    "no_multi": "kCmdNoMulti",
    "movablekeys": "kCmdMovablekeys",
    "allow_busy": "kCmdAllowBusy",
}

ACL_CATEGORIES = {
    "@keyspace": "kAclKeyspace",
    "@read": "kAclRead",
    "@write": "kAclWrite",
    "@set": "kAclSet",
    "@sortedset": "kAclSortedset",
    "@list": "kAclList",
    "@hash": "kAclHash",
    "@string": "kAclString",
    "@bitmap": "kAclBitmap",
    "@hyperloglog": "kAclHyperloglog",
    "@geo": "kAclGeo",
    "@stream": "kAclStream",
    "@pubsub": "kAclPubsub",
    "@admin": "kAclAdmin",
    "@fast": "kAclFast",
    "@slow": "kAclSlow",
    "@blocking": "kAclBlocking",
    "@dangerous": "kAclDangerous",
    "@connection": "kAclConnection",
    "@transaction": "kAclTransaction",
    "@scripting": "kAclScripting",
}

KEY_SPEC_FLAGS = {
    "RO": "kKeyRO",
    "RW": "kKeyRW",
    "OW": "kKeyOW",
    "RM": "kKeyRM",
    "access": "kKeyAccess",
    "update": "kKeyUpdate",
    "insert": "kKeyInsert",
    "delete": "kKeyDelete",
    "not_key": "kKeyNotKey",
    "incomplete": "kKeyIncomplete",
    "variable_flags": "kKeyVariableFlags",
}

# Commands whose keys the key specs alone cannot find (KeyFinder in command_table.h).
SPECIAL_KEY_FINDERS = {
    "xread": "kStreams",
    "xreadgroup": "kStreams",
    "sort": "kSort",
    "sort_ro": "kSort",
    "migrate": "kMigrate",
}

# ---------------------------------------------------------------------------------------------
# ROUTING RULES (documented as a table in src/protocol/resp/command_table.h; keep both in sync).
# Applied in order, first match wins:
#   1. EXPLICIT[name] (full name, "client|setname" for a subcommand), else for a subcommand
#      EXPLICIT["container|*"]. KEYED means "skip to rule 4".
#   2. ACL category @pubsub                                  -> kRejected, kPubSub
#   3. ACL category @transaction                             -> kRejected, kTransaction
#      flag blocking (except XREAD/XREADGROUP: find_keys rejects them only WITH BLOCK)
#                                                            -> kRejected, kBlocking
#      flag admin                                            -> kRejected, kAdmin
#      a subcommand whose container is in EXPLICIT           -> the container's class
#   4. key specs (not_key ones ignored) name exactly one key -> kSingleKey
#      key specs can name more than one key                  -> kSameServer
#   5. no key and no rule: the script fails (decide, then add the command to EXPLICIT).
# A container entry ("object") not in EXPLICIT gets its subcommands' class when they all agree,
# else kRejected / kUnknownSubcommand (it is only consulted for an unknown subcommand).
# ---------------------------------------------------------------------------------------------
LOCAL = ("kLocal", None)
FORWARD = ("kNoKeyForward", None)
SPLIT = ("kMultiKeySplit", None)
BROADCAST = ("kBroadcast", None)
KEYED = ("KEYED", None)


def rejected(reason):
    return ("kRejected", reason)


EXPLICIT = {}


def _explicit(names, routing):
    for name in names.split():
        assert name not in EXPLICIT, name
        EXPLICIT[name] = routing


# Answered by dproxy itself.
_explicit("ping echo quit auth hello select info", LOCAL)
_explicit("command command|count command|info command|docs command|list command|getkeys "
          "command|getkeysandflags", LOCAL)
_explicit("client|setname client|getname client|id", LOCAL)
# No key; any server gives the right answer.
_explicit("time lolwut command|help object|help xinfo|help xgroup|help", FORWARD)
# Split per server, replies merged by dproxy.
_explicit("mget mset del unlink exists touch", SPLIT)
# The one MEMORY subcommand with a key.
_explicit("memory|usage", KEYED)
# Rejected.
_explicit("monitor", rejected("kMonitor"))
_explicit("wait", rejected("kBlocking"))
_explicit("pubsub pubsub|*", rejected("kPubSub"))  # the subscription commands: session modes
# PUBSUB introspection: asked of every server and merged (a channel lives on one server, a
# pattern on every server), HELP from any.
_explicit("pubsub|channels pubsub|shardchannels pubsub|numsub pubsub|shardnumsub pubsub|numpat",
          BROADCAST)
# Functions live on every server (like SCRIPT LOAD); KILL goes to every server.
_explicit("function|load function|delete function|flush function|restore function|kill "
          "script|kill", BROADCAST)
_explicit("function|list function|dump function|stats function|help pubsub|help", FORWARD)
# Sent to every server (or walked server by server: SCAN) and merged by dproxy.
_explicit("keys scan randomkey dbsize flushall flushdb script|load script|exists script|flush",
          BROADCAST)
_explicit("script script|* function", rejected("kNotRouted"))
_explicit("swapdb move", rejected("kMultiDb"))
_explicit("cluster cluster|* readonly readwrite asking restore-asking", rejected("kCluster"))
_explicit("reset client", rejected("kConnection"))
_explicit("migrate shutdown debug replicaof slaveof save bgsave bgrewriteaof lastsave sync psync "
          "replconf failover role pfdebug pfselftest config config|* acl acl|* module module|* "
          "latency latency|* slowlog slowlog|* memory memory|*",
          rejected("kAdmin"))


# ---------------------------------------------------------------------------------------------
# MERGES (the `merge` column, documented in src/protocol/resp/command_table.h): how the replies
# of a split (kMultiKeySplit) or broadcast (kBroadcast) command become the client's reply; the
# value names a merge unit of src/protocol/resp/merge.h. Every split or broadcast command must
# be named here, and no other command (the script stops otherwise).
# ---------------------------------------------------------------------------------------------
MERGES = {}


def _merge(names, merge):
    for name in names.split():
        assert name not in MERGES, name
        MERGES[name] = merge


_merge("mget", "kArrayInKeyOrder")
_merge("mset flushall flushdb script|flush", "kAllOk")
_merge("del unlink exists touch dbsize", "kSum")
_merge("keys", "kConcat")
_merge("script|load", "kAllSame")
_merge("script|exists", "kAndArray")
_merge("scan", "kScanCursor")
_merge("randomkey", "kAnyKey")
_merge("pubsub|channels pubsub|shardchannels", "kConcat")
_merge("pubsub|numsub pubsub|shardnumsub", "kPairSum")
_merge("pubsub|numpat", "kMax")
_merge("function|load", "kAllSame")
_merge("function|delete function|flush function|restore", "kAllOk")
_merge("function|kill script|kill", "kAnyOk")


def decide_routing(cmd, container):
    """Returns (routing, reason, rule) for one command or subcommand (not for containers)."""
    name = cmd["name"]
    rule = EXPLICIT.get(name)
    if rule is None and container is not None:
        rule = EXPLICIT.get(container["name"] + "|*")
    if rule is not None and rule != KEYED:
        return rule + ("rule 1: explicit",)
    if rule is None:
        if "@pubsub" in cmd["acl"]:
            return ("kRejected", "kPubSub", "rule 2: @pubsub")
        if "@transaction" in cmd["acl"]:
            return ("kRejected", "kTransaction", "rule 3: @transaction")
        if "blocking" in cmd["flags"] and cmd["key_finder"] != "kStreams":
            return ("kRejected", "kBlocking", "rule 3: flag blocking")
        if "admin" in cmd["flags"]:
            return ("kRejected", "kAdmin", "rule 3: flag admin")
        if container is not None and container["name"] in EXPLICIT:
            return EXPLICIT[container["name"]] + ("rule 3: container " + container["name"],)
    specs = [s for s in cmd["key_specs"] if "not_key" not in s["flags"]]
    if not specs:
        raise SystemExit(f"{SCRIPT_NAME}: no routing rule for '{name}' (it has no key): "
                         "add it to EXPLICIT")
    single = (len(specs) == 1 and cmd["key_finder"] == "kSpecs" and
              specs[0]["bs_type"] in ("index", "keyword") and
              specs[0]["fk_type"] == "range" and specs[0]["lastkey"] == 0)
    if single:
        return ("kSingleKey", None, "rule 4: one key")
    return ("kSameServer", None, "rule 4: several keys")


# ---------------------------------------------------------------------------------------------
# RESP2 client keeping reply types, so replies can be re-encoded byte for byte.
# A node is (type, value): ("+", str), ("-", str), (":", int), ("$", bytes or None),
# ("*", list of nodes or None).
# ---------------------------------------------------------------------------------------------
class RespClient:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.buf = b""
        self.pos = 0

    def close(self):
        self.sock.close()

    def _need(self, n):
        while len(self.buf) - self.pos < n:
            data = self.sock.recv(1 << 20)
            if not data:
                raise EOFError("redis-server closed the connection")
            self.buf += data

    def _line(self):
        while True:
            end = self.buf.find(b"\r\n", self.pos)
            if end >= 0:
                line = self.buf[self.pos:end]
                self.pos = end + 2
                return line
            self._need(len(self.buf) - self.pos + 1)

    def _read(self):
        self._need(1)
        kind = chr(self.buf[self.pos])
        self.pos += 1
        line = self._line()
        if kind in "+-":
            return (kind, line.decode())
        if kind == ":":
            return (kind, int(line))
        if kind == "$":
            n = int(line)
            if n < 0:
                return (kind, None)
            self._need(n + 2)
            data = self.buf[self.pos:self.pos + n]
            self.pos += n + 2
            return (kind, data)
        if kind == "*":
            n = int(line)
            if n < 0:
                return (kind, None)
            return (kind, [self._read() for _ in range(n)])
        raise RuntimeError(f"unexpected RESP type byte {kind!r}")

    def call(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a.encode() if isinstance(a, str) else a
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(out))
        start = self.pos
        node = self._read()
        raw = self.buf[start:self.pos]
        self.buf = self.buf[self.pos:]
        self.pos = 0
        if node[0] == "-":
            raise RuntimeError(f"redis error for {args}: {node[1]}")
        return node, raw


def encode(node):
    kind, value = node
    if kind in "+-":
        return b"%s%s\r\n" % (kind.encode(), value.encode())
    if kind == ":":
        return b":%d\r\n" % value
    if kind == "$":
        return b"$-1\r\n" if value is None else b"$%d\r\n%s\r\n" % (len(value), value)
    if kind == "*":
        if value is None:
            return b"*-1\r\n"
        return b"*%d\r\n" % len(value) + b"".join(encode(v) for v in value)
    raise ValueError(kind)


def text(node):
    """Plain Python value of a node (str for strings, int, list)."""
    kind, value = node
    if kind == "$":
        return None if value is None else value.decode()
    if kind == "*":
        return None if value is None else [text(v) for v in value]
    return value


def as_map(node):
    items = node[1]
    return {text(items[i]): items[i + 1] for i in range(0, len(items), 2)}


# ---------------------------------------------------------------------------------------------
# redis-server lifecycle
# ---------------------------------------------------------------------------------------------
def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis(binary, workdir):
    last_error = None
    for _ in range(5):
        port = free_port()
        proc = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
             "no", "--dir", workdir, "--daemonize", "no", "--logfile", ""],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                last_error = f"redis-server exited with status {proc.returncode} on port {port}"
                break
            try:
                client = RespClient(port)
                client.call("PING")
                return proc, client
            except (OSError, EOFError, RuntimeError) as e:
                last_error = str(e)
                time.sleep(0.05)
        stop_redis(proc)
    raise SystemExit(f"{SCRIPT_NAME}: cannot start {binary}: {last_error}")


def stop_redis(proc):
    if proc.poll() is None:
        proc.terminate()  # by PID: SIGTERM to the process this script started
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------------------------------------
# Reading the command table
# ---------------------------------------------------------------------------------------------
def sorted_info_entry(node):
    """A COMMAND INFO entry with its subcommand list (element 9) in name order."""
    items = list(node[1])
    if len(items) > 9 and items[9][1]:
        subs = sorted(items[9][1], key=lambda n: text(n[1][0]))
        items[9] = ("*", [sorted_info_entry(s) for s in subs])
    return ("*", items)


def sorted_docs(node):
    """A COMMAND DOCS map with its "subcommands" map in name order."""
    items = list(node[1])
    for i in range(0, len(items), 2):
        if text(items[i]) == "subcommands":
            sub = items[i + 1][1]
            pairs = sorted(((sub[j], sub[j + 1]) for j in range(0, len(sub), 2)),
                           key=lambda p: text(p[0]))
            items[i + 1] = ("*", [x for name, doc in pairs for x in (name, sorted_docs(doc))])
    return ("*", items)


def parse_key_spec(node):
    m = as_map(node)
    bs = as_map(m["begin_search"])
    fk = as_map(m["find_keys"])
    bs_spec = as_map(bs["spec"])
    fk_spec = as_map(fk["spec"])
    spec = {"flags": text(m["flags"]), "bs_type": text(bs["type"]),
            "fk_type": text(fk["type"])}
    if spec["bs_type"] == "index":
        spec["index"] = text(bs_spec["index"])
    elif spec["bs_type"] == "keyword":
        spec["keyword"] = text(bs_spec["keyword"])
        spec["startfrom"] = text(bs_spec["startfrom"])
    if spec["fk_type"] == "range":
        spec["lastkey"] = text(fk_spec["lastkey"])
        spec["keystep"] = text(fk_spec["keystep"])
        spec["limit"] = text(fk_spec["limit"])
    elif spec["fk_type"] == "keynum":
        spec["keynumidx"] = text(fk_spec["keynumidx"])
        spec["firstkey"] = text(fk_spec["firstkey"])
        spec["keystep"] = text(fk_spec["keystep"])
    for f in spec["flags"]:
        if f not in KEY_SPEC_FLAGS:
            raise SystemExit(f"{SCRIPT_NAME}: unknown key spec flag '{f}': update command_table.h")
    return spec


def parse_command(node, docs_pair):
    items = node[1]
    name = text(items[0])
    cmd = {
        "name": name,
        "arity": text(items[1]),
        "flags": text(items[2]),
        "first_key": text(items[3]),
        "last_key": text(items[4]),
        "step": text(items[5]),
        "acl": text(items[6]),
        "key_specs": [parse_key_spec(s) for s in items[8][1]],
        "info_reply": encode(node),
        "docs_reply": b"" if docs_pair is None else encode(docs_pair[0]) + encode(docs_pair[1]),
        "docs": {} if docs_pair is None else {k: text(v) for k, v in as_map(docs_pair[1]).items()},
        "key_finder": SPECIAL_KEY_FINDERS.get(name, "kSpecs"),
        "subcommands": [],
    }
    for f in cmd["flags"]:
        if f not in COMMAND_FLAGS:
            raise SystemExit(f"{SCRIPT_NAME}: unknown command flag '{f}' ({name}): "
                             "update command_table.h")
    for c in cmd["acl"]:
        if c not in ACL_CATEGORIES:
            raise SystemExit(f"{SCRIPT_NAME}: unknown ACL category '{c}' ({name}): "
                             "update command_table.h")
    if cmd["key_finder"] == "kSpecs":
        for s in cmd["key_specs"]:
            if "unknown" in (s["bs_type"], s["fk_type"]) or "incomplete" in s["flags"]:
                raise SystemExit(f"{SCRIPT_NAME}: '{name}' has a key spec the key specs alone "
                                 "cannot apply: add a KeyFinder for it")
    return cmd


def read_commands(client):
    info_node, _ = client.call("INFO", "server")
    version = None
    for line in text(info_node).splitlines():
        if line.startswith("redis_version:"):
            version = line.split(":", 1)[1].strip()
    if not version:
        raise SystemExit(f"{SCRIPT_NAME}: no redis_version in INFO server")
    count = text(client.call("COMMAND", "COUNT")[0])

    info_all, _ = client.call("COMMAND", "INFO")
    docs_all, _ = client.call("COMMAND", "DOCS")
    docs_items = docs_all[1]
    docs = {text(docs_items[i]): (docs_items[i], sorted_docs(docs_items[i + 1]))
            for i in range(0, len(docs_items), 2)}

    commands = []
    for raw in info_all[1]:
        entry = sorted_info_entry(raw)
        name = text(entry[1][0])
        cmd = parse_command(entry, docs.get(name))
        sub_docs = {}
        if name in docs:
            sub_node = as_map(docs[name][1]).get("subcommands")
            if sub_node is not None:
                s = sub_node[1]
                sub_docs = {text(s[j]): (s[j], s[j + 1]) for j in range(0, len(s), 2)}
        for sub_entry in entry[1][9][1]:
            sub_name = text(sub_entry[1][0])
            sub = parse_command(sub_entry, sub_docs.get(sub_name))
            # Cross-check: the nested entry is what COMMAND INFO / DOCS <container|sub> return.
            direct_info, _ = client.call("COMMAND", "INFO", sub_name)
            if encode(direct_info[1][0]) != sub["info_reply"]:
                raise SystemExit(f"{SCRIPT_NAME}: COMMAND INFO {sub_name} differs from the entry "
                                 f"nested in COMMAND INFO {name}")
            direct_docs, _ = client.call("COMMAND", "DOCS", sub_name)
            if encode(direct_docs[1][0]) + encode(direct_docs[1][1]) != sub["docs_reply"]:
                raise SystemExit(f"{SCRIPT_NAME}: COMMAND DOCS {sub_name} differs from the entry "
                                 f"nested in COMMAND DOCS {name}")
            cmd["subcommands"].append(sub)
        commands.append(cmd)
    commands.sort(key=lambda c: c["name"])
    if len(commands) != count:
        raise SystemExit(f"{SCRIPT_NAME}: COMMAND COUNT {count} != {len(commands)} entries")
    return version, commands


# ---------------------------------------------------------------------------------------------
# Routing
# ---------------------------------------------------------------------------------------------
def assign_routing(commands):
    for cmd in commands:
        for sub in cmd["subcommands"]:
            sub["routing"], sub["reason"], sub["rule"] = decide_routing(sub, cmd)
        if cmd["subcommands"]:
            rule = EXPLICIT.get(cmd["name"])
            if rule is not None:
                cmd["routing"], cmd["reason"] = rule
                cmd["rule"] = "rule 1: explicit"
            else:
                classes = {(s["routing"], s["reason"]) for s in cmd["subcommands"]}
                if len(classes) == 1:
                    cmd["routing"], cmd["reason"] = classes.pop()
                    cmd["rule"] = "container: its subcommands' class"
                else:
                    cmd["routing"], cmd["reason"] = "kRejected", "kUnknownSubcommand"
                    cmd["rule"] = "container: subcommands differ"
        else:
            cmd["routing"], cmd["reason"], cmd["rule"] = decide_routing(cmd, None)
    for c in commands + [s for c in commands for s in c["subcommands"]]:
        c["merge"] = MERGES.get(c["name"])
        merging = c["routing"] in ("kMultiKeySplit", "kBroadcast")
        if merging != (c["merge"] is not None):
            raise SystemExit(f"{SCRIPT_NAME}: '{c['name']}' ({c['routing']}) "
                             + ("needs a merge: add it to MERGES" if merging
                                else "is not split or broadcast: remove it from MERGES"))
    unused = set(EXPLICIT) - {c["name"] for c in commands} - {
        s["name"] for c in commands for s in c["subcommands"]} - {
        c["name"] + "|*" for c in commands if c["subcommands"]}
    if unused:
        raise SystemExit(f"{SCRIPT_NAME}: EXPLICIT names unknown commands: {sorted(unused)}")


# ---------------------------------------------------------------------------------------------
# C++ output, laid out the way clang-format (the repository's .clang-format, 100 columns) would
# lay it out, so the file also passes `clang-format --dry-run -Werror`.
# ---------------------------------------------------------------------------------------------
COLUMNS = 100


def escape_units(data):
    """The C++ escaped form of each byte of `data`, one string per byte."""
    if isinstance(data, str):
        data = data.encode()
    units = []
    for b in data:
        if b == 0x5C:
            units.append("\\\\")
        elif b == 0x22:
            units.append('\\"')
        elif b == 0x0D:
            units.append("\\r")
        elif b == 0x0A:
            units.append("\\n")
        elif 0x20 <= b < 0x7F:
            units.append(chr(b))
        else:
            units.append("\\%03o" % b)
    return units


def literal_pieces(data, width):
    """Splits `data` into the contents of adjacent string literals of at most `width` characters
    (escaped), preferring to end a piece after CRLF, then after a space."""
    units = escape_units(data)
    # Tokens end after "\n" (CRLF) or after a space.
    tokens, cur = [], []
    for u in units:
        cur.append(u)
        if u in ("\\n", " "):
            tokens.append(cur)
            cur = []
    if cur:
        tokens.append(cur)
    pieces, line = [], ""
    for tok in tokens:
        t = "".join(tok)
        if len(line) + len(t) <= width:
            line += t
            continue
        if line:
            pieces.append(line)
            line = ""
        for u in tok:  # a token longer than a line: cut between escape units
            if len(line) + len(u) > width:
                pieces.append(line)
                line = ""
            line += u
    if line or not pieces:
        pieces.append(line)
    return pieces


def assign_string(indent, field, data):
    """`.field = "..."` with continuation literals aligned under the first one, ending in ','."""
    lhs = " " * indent + f".{field} = "
    col = len(lhs)
    width = COLUMNS - col - 3  # two quotes and the comma of the last line
    pieces = literal_pieces(data, width)
    lines = [lhs + '"' + pieces[0] + '"']
    lines += [" " * col + '"' + p + '"' for p in pieces[1:]]
    lines[-1] += ","
    return lines


def assign_bits(indent, field, names, table):
    """`.field = kA | kB | ...,` wrapped after " |", continuations aligned after the "= "."""
    lhs = " " * indent + f".{field} = "
    if not names:
        return [lhs + "0,"]
    terms = [table[n] for n in names]
    lines, line = [], lhs + terms[0]
    for i, term in enumerate(terms[1:], start=2):
        tail = 1 if i == len(terms) else 2  # "," after the last term, " |" after the others
        if len(line) + len(" | ") + len(term) + tail > COLUMNS:
            lines.append(line + " |")
            line = " " * len(lhs) + term
        else:
            line += " | " + term
    lines.append(line + ",")
    return lines


def bits_expr(names, table):
    return " | ".join(table[n] for n in names) if names else "0"


def key_spec_fields(spec):
    fields = [f".flags = {bits_expr(spec['flags'], KEY_SPEC_FLAGS)}"]
    bs = {"index": "kIndex", "keyword": "kKeyword", "unknown": "kUnknown"}[spec["bs_type"]]
    fields.append(f".begin_search = BeginSearch::{bs}")
    if spec["bs_type"] == "index":
        fields.append(f".index = {spec['index']}")
    elif spec["bs_type"] == "keyword":
        fields.append(f'.keyword = "{spec["keyword"]}"')
        fields.append(f".startfrom = {spec['startfrom']}")
    fk = {"range": "kRange", "keynum": "kKeynum", "unknown": "kUnknown"}[spec["fk_type"]]
    fields.append(f".find_keys = FindKeys::{fk}")
    if spec["fk_type"] == "range":
        fields.append(f".lastkey = {spec['lastkey']}")
        fields.append(f".keystep = {spec['keystep']}")
        fields.append(f".limit = {spec['limit']}")
    elif spec["fk_type"] == "keynum":
        fields.append(f".keystep = {spec['keystep']}")
        fields.append(f".keynumidx = {spec['keynumidx']}")
        fields.append(f".firstkey = {spec['firstkey']}")
    return fields


def key_spec_lines(spec):
    fields = key_spec_fields(spec)
    one = "    {" + ", ".join(fields) + "},"
    if len(one) <= COLUMNS:
        return [one]
    lines = ["    {" + fields[0] + ","]
    lines += ["     " + f + "," for f in fields[1:-1]]
    lines.append("     " + fields[-1] + "},")
    return lines


def command_lines(cmd, spec_offset, sub_offset):
    ind = 8
    pad = " " * ind
    out = ["    {", f"{pad}// {cmd['rule']}"]
    out.append(f'{pad}.name = "{cmd["name"]}",')
    out.append(f"{pad}.arity = {cmd['arity']},")
    out += assign_bits(ind, "flags", cmd["flags"], COMMAND_FLAGS)
    out += assign_bits(ind, "acl_categories", cmd["acl"], ACL_CATEGORIES)
    out.append(f"{pad}.first_key = {cmd['first_key']},")
    out.append(f"{pad}.last_key = {cmd['last_key']},")
    out.append(f"{pad}.step = {cmd['step']},")
    if cmd["key_specs"]:
        out.append(f"{pad}.key_specs = std::span<const KeySpec>(kKeySpecs + {spec_offset}, "
                   f"{len(cmd['key_specs'])}),")
    else:
        out.append(f"{pad}.key_specs = {{}},")
    out.append(f"{pad}.key_finder = KeyFinder::{cmd['key_finder']},")
    out.append(f"{pad}.routing = Routing::{cmd['routing']},")
    if cmd["reason"]:
        out.append(f"{pad}.reject_reason = reasons::{cmd['reason']},")
    else:
        out.append(f"{pad}.reject_reason = {{}},")
    if cmd["merge"]:
        out.append(f"{pad}.merge = Merge::{cmd['merge']},")
    out += assign_string(ind, "info_reply", cmd["info_reply"])
    out += assign_string(ind, "docs_reply", cmd["docs_reply"])
    docs = cmd["docs"]
    out += assign_string(ind, "group", docs.get("group") or "")
    out += assign_string(ind, "since", docs.get("since") or "")
    out += assign_string(ind, "summary", docs.get("summary") or "")
    out.append(f"{pad}.has_subcommands = {'true' if cmd['subcommands'] else 'false'},")
    if cmd["subcommands"]:
        out.append(f"{pad}.subcommands = std::span<const CommandInfo>(kSubcommands + {sub_offset}, "
                   f"{len(cmd['subcommands'])}),")
    else:
        out.append(f"{pad}.subcommands = {{}},")
    out.append("    },")
    return out


def comment_lines(textline):
    """A // comment wrapped at the column limit."""
    words, lines, line = textline.split(), [], "//"
    for w in words:
        if len(line) + 1 + len(w) > COLUMNS:
            lines.append(line)
            line = "//"
        line += " " + w
    lines.append(line)
    return lines


def generate(version, commands):
    subs = [s for c in commands for s in c["subcommands"]]
    n_top, n_sub = len(commands), len(subs)
    counts = {}
    for c in commands + subs:
        counts[c["routing"]] = counts.get(c["routing"], 0) + 1
    max_len = max(len(c["name"]) for c in commands + subs)

    out = []
    out += comment_lines(f"GENERATED by {SCRIPT_NAME} from redis-server {version} "
                         "(COMMAND INFO, COMMAND DOCS).")
    out += ["// DO NOT EDIT. To change it, edit the script (routing rules included) and run",
            f"//   /usr/bin/python3 {SCRIPT_NAME}",
            "// from the repository root. Included once, by command_table.cpp."]
    out += comment_lines(f"{n_top} commands (COMMAND COUNT of redis-server {version}), "
                         f"{n_sub} subcommands.")
    out += comment_lines("Routing classes of commands and subcommands: " +
                         ", ".join(f"{k} {counts[k]}" for k in sorted(counts)) + ".")
    out += ["",
            f'constexpr std::string_view kGeneratedRedisVersion = "{version}";',
            f"constexpr std::size_t kCommandCount = {n_top};",
            f"constexpr std::size_t kSubcommandCount = {n_sub};",
            '// Longest command or subcommand name ("container|sub" included).',
            f"constexpr std::size_t kMaxCommandNameLength = {max_len};",
            "",
            "constexpr KeySpec kKeySpecs[] = {"]
    spec_offsets, n_specs = {}, 0
    for c in commands + subs:
        spec_offsets[c["name"]] = n_specs
        for i, spec in enumerate(c["key_specs"]):
            out.append(f"    // {c['name']} [{i}]")
            out += key_spec_lines(spec)
            n_specs += 1
    out += ["};", "",
            "// Every subcommand, sorted by full name (so each container's are contiguous).",
            "constexpr CommandInfo kSubcommands[] = {"]
    for s in subs:
        out += command_lines(s, spec_offsets[s["name"]], 0)
    out += ["};", "", "// Every top-level command, sorted by name.",
            "constexpr CommandInfo kCommands[] = {"]
    sub_offset = 0
    for c in commands:
        out += command_lines(c, spec_offsets[c["name"]], sub_offset)
        sub_offset += len(c["subcommands"])
    out += ["};", ""]
    return "\n".join(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-server", default=shutil.which("redis-server") or
                        "/usr/bin/redis-server")
    parser.add_argument("--output", default=DEFAULT_OUTPUT)
    parser.add_argument("--check", action="store_true",
                        help="compare with the existing output instead of writing it")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="gen_redis_commands.") as workdir:
        proc, client = start_redis(args.redis_server, workdir)
        try:
            version, commands = read_commands(client)
        finally:
            client.close()
            stop_redis(proc)

    if not version.startswith("7.0."):
        print(f"{SCRIPT_NAME}: warning: redis-server {version}, the table targets 7.0",
              file=sys.stderr)
    assign_routing(commands)
    content = generate(version, commands)

    if args.check:
        try:
            with open(args.output, encoding="utf-8") as f:
                current = f.read()
        except FileNotFoundError:
            current = None
        if current != content:
            print(f"{SCRIPT_NAME}: {args.output} is out of date", file=sys.stderr)
            return 1
        print(f"{args.output} is up to date")
        return 0
    tmp = args.output + ".tmp"
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write(content)
    os.replace(tmp, args.output)
    n_sub = sum(len(c["subcommands"]) for c in commands)
    print(f"wrote {os.path.relpath(args.output, REPO_ROOT)}: redis-server {version}, "
          f"{len(commands)} commands, {n_sub} subcommands")
    return 0


if __name__ == "__main__":
    sys.exit(main())
