"""What each key may hold, for the soak's verifying clients (see soak.py).

Every value written is unique (key, writer sequence), so a read can tell a right value from a
stale one or another key's. A write that was acknowledged fixes the key's value; a write that
failed (error, timeout) may or may not have landed, and may land late (a frozen server still
holds it in its socket buffer): it stays acceptable until SETTLE seconds after a newer
acknowledged write. A miss is acceptable when the pool may lose data (a cache, or a server of
the pool was killed since the write was acknowledged), never otherwise.
"""
import collections
import threading
import time

SETTLE = 15.0  # s: longest a failed write may still land (timeouts + a frozen server's thaw)


class Verdict:
    """The soak's counters, shared by every thread."""

    COLUMNS = ("requests", "wrong values", "lost acked writes", "unanswered",
               "closed by dproxy", "pubsub lost/reordered", "jobs lost", "jobs duplicated",
               "soak errors", "errors (allowed)", "misses (allowed)", "stale (allowed)")
    MUST_BE_ZERO = ("wrong values", "lost acked writes", "unanswered", "closed by dproxy",
                    "pubsub lost/reordered", "jobs lost", "jobs duplicated", "soak errors")

    def __init__(self, seed):
        self.seed = seed
        self.lock = threading.Lock()
        self.rows = collections.defaultdict(lambda: collections.Counter())
        self.failures = []  # (workload, text, history)

    def count(self, workload, column, n=1):
        with self.lock:
            self.rows[workload][column] += n

    def fail(self, workload, column, text, history=()):
        with self.lock:
            self.rows[workload][column] += 1
            if len(self.failures) < 20:
                self.failures.append((workload, column, text, list(history)))

    def ok(self):
        return all(r[c] == 0 for r in self.rows.values() for c in self.MUST_BE_ZERO)

    def table(self):
        names = sorted(self.rows)
        width = max([len(c) for c in self.COLUMNS] + [8])
        cols = [max(len(n), 8) for n in names]
        lines = [" " * width + " | " + " | ".join(n.rjust(w) for n, w in zip(names, cols))]
        for c in self.COLUMNS:
            mark = " *" if c in self.MUST_BE_ZERO else "  "
            lines.append(c.ljust(width) + " | " + " | ".join(
                str(self.rows[n][c]).rjust(w) for n, w in zip(names, cols)) + mark)
        lines.append("(* must be 0)")
        return "\n".join(lines)


class PoolLosses:
    """When servers of a pool lost their data (kill -9): a miss after that is allowed."""

    def __init__(self, children=1):
        self.kills = [[] for _ in range(children)]  # per child (replicated pools): kill times

    def killed(self, child=0):
        self.kills[child].append(time.monotonic())

    def miss_allowed(self, acked_at):
        """A miss of a value acknowledged at `acked_at`: allowed only when every child lost
        data since (in a plain pool: its one 'child', any server of it)."""
        return all(any(t >= acked_at for t in k) for k in self.kills)


class Key:
    __slots__ = ("name", "value_name", "acked", "acked_at", "uncertain", "history")

    def __init__(self, name, value_name=None):
        self.name = name
        # The key name its values start with: its own, or (the second key of a MULTI/EXEC
        # pair, which gets the first key's values) another key's.
        # (None: its own name, even after a rename.)
        self.value_name = value_name
        self.acked = None  # None: absent (never written, or deleted)
        self.acked_at = 0.0
        self.uncertain = []  # [(value or None, issued at)]
        self.history = collections.deque(maxlen=16)

    def note(self, what):
        self.history.append(f"{time.monotonic():.3f} {what}")

    def wrote(self, value, acked, issued_at):
        """A write of `value` (None: a delete) issued at `issued_at`: acknowledged or not."""
        if acked:
            self.acked = value
            self.acked_at = issued_at
            self.uncertain = [(v, t) for v, t in self.uncertain if t > issued_at - SETTLE]
        else:
            self.uncertain.append((value, issued_at))

    def check(self, got, may_lose):
        """'ok', 'miss' (allowed), 'lost' or 'wrong' for a read that returned `got`."""
        if got is not None and (got == self.acked or any(got == v for v, _ in self.uncertain)):
            return "ok"
        if got is None:
            if self.acked is None or any(v is None for v, _ in self.uncertain):
                return "ok"
            return "miss" if may_lose(self.acked_at) else "lost"
        return "wrong"
