"""The verifying chaos soak (scripts/soak.sh, tools/soak/) in CI.

With the ASan/UBSan build: a 2-minute soak, every must-be-zero column 0, memory and descriptors
back, no sanitizer report. With the release build: the soak's self-test, which corrupts a
memcached key, deletes an acknowledged Redis Cluster key and forges a job behind dproxy's back,
and passes only if the verdict catches all three (so a soak that checks nothing cannot pass).
"""
import os
import subprocess
import sys
import unittest

import harness

ARGS = None
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


class SoakTest(unittest.TestCase):
    def run_soak(self, *args):
        r = subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "tools", "soak", "soak.py"),
                            "--dproxy", ARGS.dproxy, "--seed", "20261205", *args],
                           capture_output=True, text=True, timeout=540)
        print(r.stdout[-6000:], file=sys.stderr)
        return r

    def test_soak(self):
        sanitized = "asan" in os.path.basename(os.path.dirname(os.path.abspath(ARGS.dproxy)))
        if sanitized:
            r = self.run_soak("--minutes", "2")
        else:
            r = self.run_soak("--minutes", "0.75", "--self-test")
        self.assertEqual(r.returncode, 0, r.stdout[-4000:] + r.stderr[-4000:])
        self.assertIn("soak: PASSED", r.stdout)


if __name__ == "__main__":
    ARGS = harness.parse_args()
    unittest.main()
