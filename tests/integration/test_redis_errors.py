"""Redis through dproxy: every rejection class with its exact error, protocol errors, the
max_value_bytes limit, client AUTH, backend AUTH/SELECT (server_password, db) and backend
failures. After every error that does not close the connection, the same connection is shown to
still serve requests.

Where Redis itself has the wording (unknown command, wrong arity, unknown subcommand, protocol
errors, NOAUTH, WRONGPASS, NOPROTO), dproxy's reply is compared byte for byte with a real
redis-server's reply to the same bytes.
"""
import os
import signal
import time
import unittest
import warnings

import harness
from harness import (HOST, Dproxy, Processes, RedisTestMixin, RespClient, RespError, free_port,
                     redis_direct, redis_key_on, resp_command)

import redis

ARGS = None

BLOCKING = (b"blocking commands would stall other clients' requests on the shared backend "
            b"connection")
PUBSUB = b"pub/sub needs a connection to one server"
ADMIN = b"server administration commands are not proxied, connect to the server directly"
NOT_ROUTED = b"not yet routed across servers"
CLUSTER = b"Redis Cluster commands are not supported by dproxy"
CONNECTION = b"connection state commands are not proxied, the backend connection is shared"
TOO_LARGE = b"-ERR dproxy: value too large (max_value_bytes)\r\n"
SERVER_PASSWORD = "backend-pw"
CLIENT_PASSWORD = "client-pw"


def rejected(name, reason):
    return RespError(b"ERR dproxy: " + name + b" is not supported (" + reason + b")")


class RedisErrorsTest(RedisTestMixin, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.procs = Processes()
        cls.backends = [cls.procs.redis() for _ in range(3)]
        cls.ports = [b.port for b in cls.backends]
        # Two servers that require a password, for server_password / db.
        # An ACL user (server_user) limited to keys acl:*.
        cls.secure = [cls.procs.redis(extra=["--requirepass", SERVER_PASSWORD,
                                             "--user", "alice", "on", ">alicepw", "~acl:*", "+@all"])
                      for _ in range(2)]
        cls.flaky = cls.procs.redis()  # stopped, killed and restarted by the tests
        cls.stall = cls.procs.redis()  # stopped (SIGSTOP) by a test
        cls.dead = harness.HeldPort()  # bound, never listening: connects are refused
        cls.dead_port = cls.dead.port
        servers = [f"{HOST}:{p} r{i}" for i, p in enumerate(cls.ports)]
        secure = [f"{HOST}:{b.port}" for b in cls.secure]
        cls.port = {name: free_port() for name in (
            "main", "small", "auth", "backauth", "acluser", "wrongpw", "nopwserver", "baddb",
            "halfdown", "flaky", "stall")}

        def pool(name, srv, **kw):
            # These pools check the error of each failing request, so marking a server down
            # (which makes later requests fail fast with "is down") is kept out of the way here;
            # test_faults.py covers ejection.
            kw.setdefault("server_failure_limit", 1000000)
            return {"protocol": "redis", "listen": f"{HOST}:{cls.port[name]}", "hash_tag": "{}",
                    "servers": srv, **kw}

        pools = {
            "main": pool("main", servers),
            "small": pool("small", servers, max_value_bytes=1024),
            "auth": pool("auth", servers, client_password=CLIENT_PASSWORD),
            "backauth": pool("backauth", secure, server_password=SERVER_PASSWORD, db=3),
            "acluser": pool("acluser", secure, server_user="alice", server_password="alicepw"),
            "wrongpw": pool("wrongpw", secure[:1], server_password="not-the-password"),
            "nopwserver": pool("nopwserver", servers[:1], server_password="unneeded"),
            "baddb": pool("baddb", servers[1:2], db=99),
            "halfdown": pool("halfdown", [servers[0], f"{HOST}:{cls.dead_port} dead"],
                             timeout_ms=1000),
            "flaky": pool("flaky", [f"{HOST}:{cls.flaky.port}"], timeout_ms=500),
            "stall": pool("stall", [f"{HOST}:{cls.stall.port} s0", servers[0]], timeout_ms=500),
        }
        cls.proxy = Dproxy(cls.procs, ARGS.dproxy, pools)

    @classmethod
    def tearDownClass(cls):
        rc = cls.proxy.stop()
        cls.procs.close()
        assert rc == 0, f"dproxy exited with {rc}"

    def raw(self, pool="main"):
        """A raw client of dproxy's pool `pool` (a name) or of a port."""
        c = RespClient(self.port[pool] if isinstance(pool, str) else pool)
        self.addCleanup(c.close)
        return c

    def client(self, pool="main", **kw):
        r = redis.Redis(host=HOST, port=self.port[pool], socket_timeout=10, **kw)
        self.addCleanup(r.close)
        return r

    def assert_same_as_redis(self, data, replies=1):
        """dproxy answers `data` with exactly the bytes a real redis-server answers."""
        c, d = self.raw(), self.raw(self.ports[0])
        c.send(data)
        d.send(data)
        for _ in range(replies):
            self.assertEqual(c.read_raw_reply(), d.read_raw_reply(), data)
        self.assert_alive(c)

    # --- rejections ------------------------------------------------------------------------

    def test_malformed_numkeys_and_streams_match_redis(self):
        # dproxy cannot route these (their key list is malformed): a server answers them with
        # Redis's wording, which differs per command; nothing is run.
        s = self.k("s")
        for args in [("EVAL", "return 1", "-1"), ("EVAL", "return 1", "5", "a"),
                     ("EVAL", "return 1", "x"), ("FCALL", "f", "2", "a"),
                     ("ZUNIONSTORE", "d", "0", "a"), ("ZINTERCARD", "0", "a"),
                     ("LMPOP", "0", "LEFT"), ("LMPOP", "3", "a", "LEFT"),
                     ("XREAD", "STREAMS", s, "t", "0"), ("XREAD", "COUNT", "1", s),
                     ("SINTERCARD", "-2", "a")]:
            self.assert_same_as_redis(resp_command(*args))
        # Inside MULTI such a command is queued and fails alone in EXEC, as in Redis.
        c, d = self.raw(), self.raw(self.ports[0])
        script = (resp_command("MULTI") + resp_command("EVAL", "return 1", "-1") +
                  resp_command("SET", "{t}" + s, "1") + resp_command("EXEC"))
        c.send(script)
        d.send(script)
        for _ in range(4):
            self.assertEqual(c.read_raw_reply(), d.read_raw_reply())

    def test_unknown_command_wrong_arity_unknown_subcommand_match_redis(self):
        self.assert_same_as_redis(resp_command("NOSUCHCMD", "a", "b c"))
        self.assert_same_as_redis(b"nosuch inline args\r\n")
        self.assert_same_as_redis(resp_command("GET"))
        self.assert_same_as_redis(resp_command("SET", "k"))
        self.assert_same_as_redis(resp_command("OBJECT", "ENCODING"))
        self.assert_same_as_redis(resp_command("CLIENT"))
        self.assert_same_as_redis(resp_command("MSET", "a", "1", "b"))
        self.assert_same_as_redis(resp_command("PING", "a", "b"))
        self.assert_same_as_redis(resp_command("OBJECT", "NOSUCH", "k"))
        self.assert_same_as_redis(resp_command("XINFO", "nosuch"))
        self.assert_same_as_redis(resp_command("COMMAND", "NOSUCH"))
        self.assert_same_as_redis(resp_command("HELLO", "4"))
        c = self.raw()
        self.assertEqual(c.call("NOSUCH"), RespError(
            b"ERR unknown command 'NOSUCH', with args beginning with: "))
        self.assertEqual(c.call("GET"), RespError(
            b"ERR wrong number of arguments for 'get' command"))
        self.assertEqual(c.call("OBJECT", "nosuch", "k"), RespError(
            b"ERR unknown subcommand 'nosuch'. Try OBJECT HELP."))
        self.assert_alive(c)

    def test_unknown_command_long_arguments_truncated_like_redis(self):
        # Regression (fixed): Redis caps the "with args beginning with:" list at 128 characters in total
        # (each further arg printed with precision 128 - what is already there); dproxy prints
        # every arg up to 128 bytes each until its reply reaches 512 bytes, so the text differs.
        self.assert_same_as_redis(resp_command("FOO", "a" * 100, "b" * 100, "c" * 100))

    def test_crlf_inside_echoed_arguments_keeps_framing(self):
        # Regression (fixed): the unknown-command, unknown-subcommand and HELLO-option errors copy the client's
        # bytes verbatim into a one-line "-ERR" reply. Redis maps '\r' and '\n' to ' '
        # (addReplyErrorLength / rejectCommand); dproxy sends them raw, so the error line is cut
        # in two and the client reads the rest of it as the next reply (the stream desyncs).
        for args in [("FOO", "a\r\nb"), ("A\r\nB",), ("OBJECT", "a\r\nb", "x"),
                     ("HELLO", "2", "a\r\nb")]:
            self.assert_same_as_redis(resp_command(*args) + resp_command("PING"), replies=2)

    def test_hello_setname_validates_the_name_like_redis(self):
        # Regression (fixed): CLIENT SETNAME refuses a name with a space, but HELLO 2 SETNAME "a b" is accepted
        # (dproxy answers the HELLO map and CLIENT GETNAME then returns "a b"). Redis answers
        # "-ERR Client names cannot contain spaces, newlines or special characters." and keeps
        # the old name.
        self.assert_same_as_redis(resp_command("HELLO", "2", "SETNAME", "a b") +
                                  resp_command("CLIENT", "GETNAME"), replies=2)

    def test_hello_non_integer_protocol_version_matches_redis(self):
        # Regression (fixed): for a protocol version that is not an integer ("abc", "02") Redis answers
        # "-ERR Protocol version is not an integer or out of range"; dproxy answers
        # "-NOPROTO unsupported protocol version" (right only for integers other than 2/3).
        self.assert_same_as_redis(resp_command("HELLO", "abc"))

    def test_every_rejection_class_exact_error_connection_survives(self):
        c = self.raw()
        s = self.k("stream")
        cases = [
            # SUBSCRIBE, PUBLISH, PUBSUB ... run (test_redis_pubsub.py).
            (("WAIT", "0", "0"), rejected(b"WAIT", BLOCKING)),
            # XREAD/XREADGROUP with BLOCK run on dedicated connections (test_redis_blocking.py);
            # replicated and fanout pools refuse them (test_routes_redis.py).
            # MULTI (and what follows it) is checked in test_redis_refused_multi.py; without a
            # MULTI, EXEC and DISCARD get Redis's own errors.
            (("EXEC",), RespError(b"ERR EXEC without MULTI")),
            (("DISCARD",), RespError(b"ERR DISCARD without MULTI")),
            # Blocking commands and WATCH run on dedicated connections (test_redis_blocking.py).
            (("WATCH", "k"), b"OK"),
            (("UNWATCH",), b"OK"),
            (("MONITOR",), rejected(b"MONITOR", b"MONITOR needs a connection to one server")),
            (("CONFIG", "GET", "maxmemory"), rejected(b"CONFIG GET", ADMIN)),
            (("CONFIG", "SET", "maxmemory", "1"), rejected(b"CONFIG SET", ADMIN)),
            (("SHUTDOWN",), rejected(b"SHUTDOWN", ADMIN)),
            (("SHUTDOWN", "NOSAVE"), rejected(b"SHUTDOWN", ADMIN)),
            (("DEBUG", "SLEEP", "0"), rejected(b"DEBUG", ADMIN)),
            (("SAVE",), rejected(b"SAVE", ADMIN)),
            (("REPLICAOF", "NO", "ONE"), rejected(b"REPLICAOF", ADMIN)),
            (("CLIENT", "LIST"), rejected(b"CLIENT LIST", ADMIN)),
            (("CLIENT", "KILL", "ID", "1"), rejected(b"CLIENT KILL", ADMIN)),
            (("CLIENT", "TRACKING", "on"), rejected(b"CLIENT TRACKING", CONNECTION)),
            (("RESET",), b"RESET"),  # test_redis_transactions.py
            # SCRIPT KILL / FUNCTION KILL go to every server (test_redis_pubsub.py).
            (("SCRIPT", "KILL"), RespError(b"NOTBUSY No scripts in execution right now.")),
            (("SCRIPT", "DEBUG", "YES"), rejected(b"SCRIPT DEBUG", NOT_ROUTED)),
            # MOVE runs on the key's server, SWAPDB on every server (test_redis_transactions.py).
            (("MOVE", "k", "1"), 0),
            (("CLUSTER", "INFO"), rejected(b"CLUSTER INFO", CLUSTER)),
            (("READONLY",), rejected(b"READONLY", CLUSTER)),
            (("SELECT", "99999"), RespError(b"ERR DB index is out of range")),
            (("EVAL", "return 1", "0"), RespError(
                b"ERR dproxy: EVAL names no key, so there is no server to route it to (pass at "
                b"least one key)")),
            (("FCALL", "f", "0"), RespError(
                b"ERR dproxy: FCALL names no key, so there is no server to route it to (pass at "
                b"least one key)")),
            # (HELLO 3 switches to RESP3: test_redis_resp3.py.)
            (("HELLO", "4"), RespError(b"NOPROTO unsupported protocol version")),
            # Malformed numkeys / STREAMS lists: Redis's own errors (test_malformed_numkeys...).
            (("EVAL", "return 1", "-1"), RespError(b"ERR Number of keys can't be negative")),
        ]
        # One at a time, then all of them in one pipeline: same replies, in order.
        for args, want in cases:
            self.assertEqual(c.call(*args), want, args)
            self.assert_alive(c)
        c.send(b"".join(resp_command(*args) for args, _ in cases))
        for args, want in cases:
            self.assertEqual(c.read_reply(), want, args)
        self.assert_alive(c)
        # None of them reached a backend: the servers still run with their data and config.
        probe = self.k("probe")
        self.assertEqual(c.call("SET", probe, "still-here"), b"OK")
        c.call("SHUTDOWN", "NOSAVE")
        self.assertEqual(c.call("GET", probe), b"still-here")
        for port in self.ports:
            d = redis_direct(port)
            self.assertEqual(d.config_get("maxmemory"), {"maxmemory": "0"})
            self.assertTrue(d.ping())
            d.close()

    def test_redis_py_sees_rejections_as_response_errors(self):
        r = self.client()
        # MULTI/EXEC runs (test_redis_transactions.py).
        self.assertEqual(r.pipeline(transaction=True).set(self.k("a"), 1).execute(), [True])
        with self.assertRaisesRegex(redis.ResponseError, "SCRIPT DEBUG is not supported"):
            r.execute_command("SCRIPT", "DEBUG", "YES")
        with self.assertRaisesRegex(redis.ResponseError, "WAIT is not supported"):
            r.wait(0, 0)
        self.assertTrue(r.set(self.k("a"), "1"))
        self.assertEqual(r.get(self.k("a")), b"1")

    # --- protocol errors -------------------------------------------------------------------

    def test_protocol_errors_close_only_that_connection(self):
        bystander = self.raw()
        self.assertEqual(bystander.call("PING"), b"PONG")
        for data in [b"*1\r\n$abc\r\n", b"*abc\r\n", b"*1\r\nGET\r\n", b"*2\r\n$-5\r\n",
                     b"*-1\r\n*0\r\n*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$\r\n",
                     b'SET k "unbalanced\r\n', b"*1\r\n$4\r\nPING\r\n*1\r\n$x\r\n"]:
            c, d = self.raw(), self.raw(self.ports[0])
            c.send(data)
            d.send(data)
            while True:  # replies before the error, then the error, then EOF: as Redis does
                want = d.read_raw_reply()
                self.assertEqual(c.read_raw_reply(), want, data)
                if want.startswith(b"-"):
                    break
            self.assertTrue(want.startswith(b"-ERR Protocol error: "), want)
            self.assertTrue(c.is_closed(), data)
            self.assertTrue(d.is_closed(), data)
            self.assert_alive(bystander)
        # Bulk data not followed by CRLF: Redis does not check, dproxy does (its own wording).
        c = self.raw()
        c.send(b"*1\r\n$4\r\nPINGxx")
        self.assertEqual(c.read_line(), b"-ERR Protocol error: expected CRLF after bulk data\r\n")
        self.assertTrue(c.is_closed())
        self.assert_alive(bystander)
        self.assertEqual(bystander.call("CLIENT", "ID"), bystander.call("CLIENT", "ID"))

    def test_inline_line_too_long_closes(self):
        c = self.raw()
        c.send(b"SET k " + b"x" * (70 * 1024))
        self.assertEqual(c.read_line(), b"-ERR Protocol error: too big inline request\r\n")
        self.assertTrue(c.is_closed())

    # --- max_value_bytes -------------------------------------------------------------------

    def test_argument_over_max_value_bytes_refused_connection_keeps_working(self):
        c = self.raw("small")
        key = self.k("v")
        self.assertEqual(c.call("SET", key, "x" * 1024), b"OK")  # exactly the limit
        c.send(resp_command("SET", key, "y" * 1025))
        self.assertEqual(c.read_line(), TOO_LARGE)
        self.assertEqual(c.call("GET", key), b"x" * 1024)
        # In the middle of a pipeline: the reply order is kept, the value is never stored.
        c.send(resp_command("SET", key, "a") + resp_command("APPEND", key, "z" * 5000) +
               resp_command("GET", key) + resp_command("SET", "k" * 2000, "v") +
               resp_command("PING"))
        self.assertEqual(c.read_line(), b"+OK\r\n")
        self.assertEqual(c.read_line(), TOO_LARGE)
        self.assertEqual(c.read_raw_reply(), b"$1\r\na\r\n")
        self.assertEqual(c.read_line(), TOO_LARGE)
        self.assertEqual(c.read_line(), b"+PONG\r\n")
        # A multi-key command carrying one oversize value stores nothing at all.
        others = [self.k(f"m{i}:{os.urandom(3).hex()}") for i in range(6)]
        args = ["MSET"]
        for i, k in enumerate(others):
            args += [k, "v" * (2000 if i == 4 else 10)]
        self.assertEqual(c.call(*args), RespError(TOO_LARGE[1:-2]))
        self.assertEqual(c.call("EXISTS", *others), 0)
        # The oversize value arriving slowly, in pieces.
        frame = resp_command("SET", key, "w" * 100000) + resp_command("GET", key)
        for i in range(0, len(frame), 16384):
            c.send(frame[i:i + 16384])
            time.sleep(0.005)
        self.assertEqual(c.read_line(), TOO_LARGE)
        self.assertEqual(c.read_raw_reply(), b"$1\r\na\r\n")
        self.assert_alive(c)

    # --- client AUTH -----------------------------------------------------------------------

    def test_client_password(self):
        secure = self.raw(self.secure[0].port)  # a real redis with requirepass, for wording
        c = self.raw("auth")
        key = self.k("a")
        for args in [("GET", key), ("PING",), ("SET", key, "v"), ("MGET", key, key),
                     ("AUTH", "wrong"), ("AUTH", "default", "wrong"),
                     ("HELLO", "2", "AUTH", "default", "wrong"),
                     ("AUTH", "nobody", CLIENT_PASSWORD)]:
            want = secure.call(*args)
            self.assertEqual(c.call(*args), want, args)
            self.assertTrue(want.startswith((b"NOAUTH", b"WRONGPASS")), want)
        self.assertEqual(c.call("GET", key),
                         RespError(b"NOAUTH Authentication required."))
        self.assertTrue(c.call("HELLO", "2").startswith(
            b"NOAUTH HELLO must be called with the client already authenticated, otherwise the "
            b"HELLO "))
        self.assertEqual(c.call("AUTH", "wrong"), RespError(
            b"WRONGPASS invalid username-password pair or user is disabled."))
        self.assertEqual(c.call("AUTH", CLIENT_PASSWORD), b"OK")
        self.assertEqual(c.call("SET", key, "v"), b"OK")
        self.assertEqual(c.call("GET", key), b"v")
        self.assertEqual(c.call("AUTH", "wrong"), RespError(
            b"WRONGPASS invalid username-password pair or user is disabled."))
        self.assertEqual(c.call("GET", key), b"v")  # a failed re-AUTH keeps the session
        # AUTH default <password>, pipelined behind a refused request.
        c2 = self.raw("auth")
        c2.send(resp_command("GET", key) + resp_command("AUTH", "default", CLIENT_PASSWORD) +
                resp_command("GET", key))
        self.assertEqual(c2.read_reply(), RespError(b"NOAUTH Authentication required."))
        self.assertEqual(c2.read_reply(), b"OK")
        self.assertEqual(c2.read_reply(), b"v")
        # HELLO 2 AUTH ... authenticates too.
        c3 = self.raw("auth")
        hello = c3.call("HELLO", "2", "AUTH", "default", CLIENT_PASSWORD)
        self.assertEqual(hello[:2], [b"server", b"redis"])
        self.assertEqual(c3.call("GET", key), b"v")
        # QUIT works before AUTH.
        c4 = self.raw("auth")
        self.assertEqual(c4.call("QUIT"), b"OK")
        self.assertTrue(c4.is_closed())
        # redis-py with password=.
        r = self.client("auth", password=CLIENT_PASSWORD)
        self.assertEqual(r.get(key), b"v")
        self.assertTrue(r.set(key, "w"))
        with self.assertRaisesRegex(redis.ResponseError, "^WRONGPASS"):
            self.client("auth", password="wrong").get(key)
        with self.assertRaisesRegex(redis.AuthenticationError, "Authentication required"):
            self.client("auth").get(key)

    def test_hello_before_auth_wording_matches_redis(self):
        # Regression (fixed): dproxy's NOAUTH reply to HELLO is Redis 7.2's wording ("... otherwise the
        # HELLO <proto> AUTH <user> <pass> option ..."), while its command table (and the
        # installed redis-server) is 7.0.15, which says "... otherwise the HELLO AUTH <user>
        # <pass> option ...".
        secure, c = self.raw(self.secure[0].port), self.raw("auth")
        self.assertEqual(c.call("HELLO", "2"), secure.call("HELLO", "2"))

    def test_auth_on_a_pool_without_password_matches_redis(self):
        self.assert_same_as_redis(resp_command("AUTH", "x"))

    def test_auth_with_username_on_a_pool_without_password_matches_redis(self):
        # Regression (fixed): with no password configured Redis 7's default user is "nopass", so
        # "AUTH default <anything>" (and HELLO 2 AUTH default <anything>) answers +OK; dproxy
        # answers "-ERR AUTH <password> called without any password configured ...", so a
        # client configured with username "default" and a password fails through dproxy only.
        self.assert_same_as_redis(resp_command("AUTH", "default", "x"))

    # --- backend AUTH / SELECT -------------------------------------------------------------

    def test_server_password_and_db(self):
        r = self.client("backauth")
        keys = [self.k(os.urandom(4).hex()) for _ in range(40)]
        self.assertTrue(r.mset({k: "v-" + k for k in keys}))
        self.assertEqual(r.mget(keys), [("v-" + k).encode() for k in keys])
        ports = [b.port for b in self.secure]
        in_db3 = redis_key_on(ports, keys, password=SERVER_PASSWORD, db=3)
        in_db0 = redis_key_on(ports, keys, password=SERVER_PASSWORD, db=0)
        for k in keys:
            self.assertEqual(len(in_db3[k]), 1, k)
            self.assertEqual(in_db0[k], [], k)
        self.assertEqual(len({p for v in in_db3.values() for p in v}), 2)
        d = redis_direct(ports[0], password=SERVER_PASSWORD)
        self.addCleanup(d.close)
        d.execute_command("SELECT", "3")
        k0 = next(k for k in keys if in_db3[k] == [ports[0]])
        self.assertEqual(d.get(k0), ("v-" + k0).encode())
        self.assertEqual(r.delete(*keys), len(keys))

    def test_server_user(self):
        # AUTH alice alicepw on every backend connection: her keys pass, others are refused by
        # the server's ACL (so the connection is hers, not the default user's).
        r = self.client("acluser")
        keys = [f"acl:{os.urandom(4).hex()}" for _ in range(10)]
        self.assertTrue(r.mset({k: "v" for k in keys}))
        self.assertEqual(r.mget(keys), [b"v"] * len(keys))
        with self.assertRaises(redis.ResponseError) as e:
            r.set(self.k("not-hers"), "v")
        self.assertIn("no permissions", str(e.exception))
        self.assertEqual(r.delete(*keys), len(keys))

    def test_wrong_server_password_names_the_backend(self):
        c = self.raw("wrongpw")
        addr = f"{HOST}:{self.secure[0].port}".encode()
        want = RespError(b"ERR dproxy: backend " + addr + b" refused the connection setup "
                         b"(AUTH/SELECT): WRONGPASS invalid username-password pair or user is "
                         b"disabled.")
        for _ in range(3):
            self.assertEqual(c.call("GET", self.k("a")), want)
            self.assertEqual(c.call("PING"), b"PONG")  # the client connection stays open
            time.sleep(0.1)
        self.assertEqual(c.call("ECHO", "still open"), b"still open")

    def test_failed_select_does_not_run_the_request_in_db_0(self):
        # Regression (fixed): the backend setup (AUTH/SELECT) is pipelined with the first requests. When SELECT
        # fails ("db": 99 on a server with 16 databases) dproxy answers the client with an error,
        # but the redis-server has already executed the request behind it in database 0: the
        # client is told the SET failed while the key was written into the wrong database.
        c = self.raw("baddb")
        key = self.k("baddb")
        reply = c.call("SET", key, "written-anyway")
        self.assertEqual(reply, RespError(
            f"ERR dproxy: backend {HOST}:{self.ports[1]} refused the connection setup "
            f"(AUTH/SELECT): ERR DB index is out of range".encode()))
        self.assertEqual(c.call("PING"), b"PONG")
        self.assertIsNone(redis_direct(self.ports[1]).get(key), "SET ran in db 0")

    def test_failed_auth_does_not_run_the_request(self):
        # Regression (fixed): same as above for AUTH: "server_password" set for a redis-server that has no
        # password; AUTH fails ("ERR AUTH <password> called without any password configured"),
        # the client gets an error, yet the SET pipelined behind AUTH was executed.
        c = self.raw("nopwserver")
        key = self.k("nopw")
        reply = c.call("SET", key, "written-anyway")
        self.assertIsInstance(reply, RespError)
        self.assertIn(f"backend {HOST}:{self.ports[0]} refused the connection setup".encode(),
                      reply)
        self.assertIsNone(redis_direct(self.ports[0]).get(key), "SET ran although AUTH failed")

    # --- backend failures ------------------------------------------------------------------

    def test_dead_backend_fails_only_its_keys(self):
        c = self.raw("halfdown")
        dead = RespError(f"ERR dproxy: backend {HOST}:{self.dead_port} connect failed: "
                         f"Connection refused".encode())
        live_key = dead_key = None
        for i in range(200):
            key = self.k(os.urandom(4).hex())
            reply = c.call("SET", key, "v")
            if reply == b"OK":
                live_key = live_key or key
            else:
                self.assertEqual(reply, dead)
                dead_key = dead_key or key
            if live_key and dead_key:
                break
        self.assertTrue(live_key and dead_key)
        self.assertEqual(redis_direct(self.ports[0]).get(live_key), b"v")
        for _ in range(3):
            self.assertEqual(c.call("GET", live_key), b"v")
            self.assertEqual(c.call("GET", dead_key), dead)
            self.assertEqual(c.call("MGET", live_key, dead_key), dead)
            self.assertEqual(c.call("EXISTS", live_key, dead_key), dead)
            self.assertEqual(c.call("MGET", live_key, live_key), [b"v", b"v"])
            self.assertEqual(c.call("PING"), b"PONG")
            time.sleep(0.1)

    def test_stalled_shard_fails_split_commands_without_shifting_replies(self):
        c = self.raw("stall")
        a = b = None
        for _ in range(200):
            key = self.k(os.urandom(4).hex())
            c.call("SET", key, "v-" + key)
            if redis_direct(self.stall.port).exists(key):
                a = a or key
            else:
                b = b or key
            if a and b:
                break
        timed_out = RespError(f"ERR dproxy: backend {HOST}:{self.stall.port} timed out".encode())
        harness.freeze(self.stall)  # every thread stopped before the requests go out
        try:
            c.send(resp_command("MGET", b, a) + resp_command("GET", b) +
                   resp_command("EXISTS", a, b, b) + resp_command("SET", b, "new") +
                   resp_command("PING"))
            self.assertEqual(c.read_reply(), timed_out)
            self.assertEqual(c.read_reply(), ("v-" + b).encode())
            self.assertEqual(c.read_reply(), timed_out)
            self.assertEqual(c.read_reply(), b"OK")
            self.assertEqual(c.read_reply(), b"PONG")
        finally:
            os.kill(self.stall.pid, signal.SIGCONT)
        # The late replies of the stalled server are dropped, never given to later requests.
        for _ in range(3):
            self.assertEqual(c.call("MGET", a, b, a), [("v-" + a).encode(), b"new",
                                                       ("v-" + a).encode()])
            self.assertEqual(c.call("EXISTS", a, b, self.k("nope")), 2)
            self.assertEqual(c.call("GET", a), ("v-" + a).encode())

    def test_backend_stall_times_out_and_restart_recovers(self):
        c = self.raw("flaky")
        port = self.flaky.port
        key = self.k("f")
        self.assertEqual(c.call("SET", key, "1"), b"OK")
        # Stalled backend: the request fails alone after timeout_ms, later requests work.
        harness.freeze(self.flaky)
        try:
            start = time.monotonic()
            self.assertEqual(c.call("GET", key), RespError(
                f"ERR dproxy: backend {HOST}:{port} timed out".encode()))
            elapsed = time.monotonic() - start
            self.assertTrue(0.3 < elapsed < 3, elapsed)
            self.assertEqual(c.call("PING"), b"PONG")
        finally:
            os.kill(self.flaky.pid, signal.SIGCONT)
        self.assertEqual(c.call("INCR", self.k("n")), 1)  # the late GET reply was discarded
        self.assertEqual(c.call("GET", key), b"1")
        # Killed backend: errors name it; once it is back, the same client connection recovers.
        self.procs.kill(self.flaky)
        reply = c.call("GET", key)
        self.assertIsInstance(reply, RespError)
        self.assertTrue(reply.startswith(f"ERR dproxy: backend {HOST}:{port} ".encode()), reply)
        self.assertEqual(c.call("PING"), b"PONG")
        type(self).flaky = self.procs.redis(port=port)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            reply = c.call("SET", key, "2")
            if reply == b"OK":
                break
            self.assertTrue(reply.startswith(f"ERR dproxy: backend {HOST}:{port} ".encode()))
            time.sleep(0.05)
        self.assertEqual(c.call("GET", key), b"2")


if __name__ == "__main__":
    ARGS = harness.parse_args()
    warnings.simplefilter("ignore", ResourceWarning)
    unittest.main(verbosity=2)
