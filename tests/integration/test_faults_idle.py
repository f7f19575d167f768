"""A backend that closes idle connections (Redis `timeout`) is not a failing backend."""
import unittest

import harness
from harness import HOST, Dproxy, Processes, RespClient, free_port

ARGS = None


class IdleCloseTest(unittest.TestCase):
    def test_idle_close_does_not_mark_the_server_down(self):
        procs = Processes()
        self.addCleanup(procs.close)
        backend = procs.redis(extra=("--timeout", "1"))
        port = free_port()
        proxy = Dproxy(procs, ARGS.dproxy, {"r": {
            "protocol": "redis", "listen": f"{HOST}:{port}", "server_failure_limit": 1,
            "server_retry_timeout_ms": 60000, "servers": [f"{HOST}:{backend.port}"]}}, threads=2)
        c = RespClient(port)
        self.addCleanup(c.close)
        self.assertEqual(c.call("SET", "idle", "1"), b"OK")

        def backend_clients():
            """Ids of the clients connected to the backend, besides the one asking."""
            r = harness.redis_direct(backend.port)
            try:
                me = r.client_id()
                return {c["id"] for c in r.client_list() if int(c["id"]) != me}
            finally:
                r.close()

        before = backend_clients()
        self.assertTrue(before, "dproxy has no backend connection")
        # The server drops dproxy's idle backend connections after 1 s: wait until every one
        # of them is gone (dproxy may open new ones at once).
        self.assertTrue(harness.wait_for(lambda: not (before & backend_clients()), 15,
                                         interval=0.1),
                        "the backend did not close dproxy's idle connection")
        for _ in range(5):
            self.assertEqual(c.call("GET", "idle"), b"1")
        self.assertNotIn("marked DOWN", proxy.log_text())


if __name__ == "__main__":
    import warnings
    warnings.simplefilter("ignore", ResourceWarning)
    ARGS = harness.parse_args()
    unittest.main(verbosity=2)
