"""The Debian package (scripts/package.sh): built from the binary under test, unpacked with
`dpkg -x` into a temporary root (never into the system), then: the files are where the README
says, the installed binary runs and accepts the shipped config, the man page renders within 80
columns, the systemd unit passes `systemd-analyze verify` without a warning, and the logrotate
snippet rotates a running dproxy's log (SIGUSR1: dproxy writes on in a new file).
"""
import os
import re
import shutil
import signal
import subprocess
import tempfile
import unittest

import harness
from harness import HOST, Processes, free_port, wait_for, wait_port

ARGS = None
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def read(path):
    with open(path) as f:
        return f.read()


def run(argv, **kw):
    kw.setdefault("timeout", 120)
    return subprocess.run(argv, capture_output=True, text=True, **kw)


class PackageTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="dproxy-package-")
        out = os.path.join(cls.tmp.name, "out")
        r = run([os.path.join(REPO, "scripts", "package.sh"), "--binary",
                 os.path.abspath(ARGS.dproxy), "--out", out])
        if r.returncode != 0:
            raise AssertionError(f"package.sh failed ({r.returncode}):\n{r.stderr}")
        cls.deb = r.stdout.strip().splitlines()[-1]
        cls.root = os.path.join(cls.tmp.name, "root")
        r = run(["dpkg", "-x", cls.deb, cls.root])
        if r.returncode != 0:
            raise AssertionError(f"dpkg -x failed: {r.stderr}")
        cls.version = run([ARGS.dproxy, "--version"]).stdout.split()[1]

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def path(self, rel):
        return os.path.join(self.root, rel.lstrip("/"))

    def test_control_and_files(self):
        self.assertTrue(os.path.basename(self.deb).startswith(f"dproxy_{self.version}_"))
        info = run(["dpkg-deb", "-f", self.deb, "Package", "Version", "Depends"]).stdout
        self.assertIn("Package: dproxy", info)
        self.assertIn(f"Version: {self.version}", info)
        self.assertRegex(info, r"Depends: .*libc6.*libyaml-cpp.*adduser")
        conffiles = run(["dpkg-deb", "-I", self.deb, "conffiles"]).stdout.split()
        self.assertEqual(sorted(conffiles), ["/etc/default/dproxy", "/etc/dproxy/pools.json",
                                             "/etc/logrotate.d/dproxy"])
        for rel in ["/usr/bin/dproxy", "/lib/systemd/system/dproxy.service",
                    "/usr/share/man/man8/dproxy.8.gz", *conffiles]:
            self.assertTrue(os.path.isfile(self.path(rel)), rel)
        self.assertTrue(os.access(self.path("/usr/bin/dproxy"), os.X_OK))

    def test_installed_binary_runs_with_the_shipped_config(self):
        r = harness.run_dproxy(self.path("/usr/bin/dproxy"), ["--version"])
        self.assertEqual((r.returncode, r.stdout), (0, f"dproxy {self.version}\n"))
        r = harness.run_dproxy(self.path("/usr/bin/dproxy"),
                               ["--test-config", "--config", self.path("/etc/dproxy/pools.json")])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("OK", r.stdout)

    def test_man_page_renders(self):
        env = dict(os.environ, MANWIDTH="80", LANG="C.UTF-8", MAN_KEEP_FORMATTING="0")
        r = run(["man", "-l", self.path("/usr/share/man/man8/dproxy.8.gz")], env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotRegex(r.stderr, r"(?i)\berror\b|tbl:")
        text = re.sub(r".\x08", "", r.stdout)  # overstrike bold/underline, if any
        for heading in ["NAME", "SYNOPSIS", "INSTALLING THE PACKAGE", "COMMAND LINE",
                        "CONFIGURATION", "OPERATING DPROXY", "SEE ALSO"]:
            self.assertRegex(text, rf"(?m)^{heading}$")
        # The config reference and the signals are in it.
        for phrase in ["server_retry_timeout_ms", "resolve_interval_ms", "--test-config",
                       "SIGUSR1", "Reloading the configuration"]:
            self.assertIn(phrase, text)
        # Tables are sized for 80 columns (scripts/man_tables.py); the two whose first column
        # holds long key names need more, but none runs away (go-md2man alone: 350 columns).
        tops = [len(line) for line in text.splitlines() if "\u250c" in line]  # a table's top
        self.assertGreaterEqual(len(tops), 8)
        self.assertLessEqual(max(tops), 120, tops)
        self.assertGreaterEqual(sum(1 for w in tops if w <= 80), len(tops) - 2, tops)

    def test_systemd_unit(self):
        with open(self.path("/lib/systemd/system/dproxy.service")) as f:
            unit = f.read()
        self.assertIn("ExecReload=/bin/kill -HUP $MAINPID", unit)
        self.assertIn("KillSignal=SIGTERM", unit)
        for option in ["NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes",
                       "PrivateTmp=yes", "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
                       "LimitNOFILE=", "User=dproxy"]:
            self.assertIn(option, unit)
        tool = shutil.which("systemd-analyze")
        if tool is None:
            self.skipTest("systemd-analyze is not installed (Debian package systemd)")
        # verify checks that ExecStart's binary exists and Documentation's man page opens: point
        # both at the unpacked root (the unit is otherwise used as shipped).
        check = os.path.join(self.tmp.name, "verify")
        os.makedirs(check, exist_ok=True)
        with open(os.path.join(check, "dproxy.service"), "w") as f:
            f.write(unit.replace("/usr/bin/dproxy", self.path("/usr/bin/dproxy")))
        env = dict(os.environ, MANPATH=self.path("/usr/share/man"))
        r = run([tool, "verify", os.path.join(check, "dproxy.service")], env=env)
        # A bad value is only a warning to systemd (exit 0): any output is a failure here.
        self.assertEqual((r.returncode, r.stdout + r.stderr), (0, ""))

    def test_logrotate_snippet_reopens_the_log(self):
        with open(self.path("/etc/logrotate.d/dproxy")) as f:
            snippet = f.read()
        self.assertIn("--signal=SIGUSR1 dproxy.service", snippet)
        tool = shutil.which("logrotate") or ("/usr/sbin/logrotate"
                                             if os.path.exists("/usr/sbin/logrotate") else None)
        if tool is None:
            self.skipTest("logrotate is not installed (Debian package logrotate)")
        procs = Processes()
        try:
            logs = os.path.join(procs.tmp.name, "log")
            os.mkdir(logs, 0o755)
            log = os.path.join(logs, "dproxy.log")
            config = os.path.join(procs.tmp.name, "pools.json")
            port = free_port()
            with open(config, "w") as f:
                f.write('{"stats": {"enabled": false}, "pools": {"m": {"protocol": "memcached", '
                        f'"listen": "{HOST}:{port}", "servers": ["{HOST}:{free_port()}"]}}}}}}')
            proc = procs.spawn_dproxy([self.path("/usr/bin/dproxy"), "--config", config,
                                       "--threads", "1", "--log-file", log])
            wait_port(port, proc)
            # The snippet as shipped, on this directory, signalling this dproxy (not a unit),
            # as root (no "dproxy" user here).
            conf = snippet.replace("/var/log/dproxy", logs)
            conf = re.sub(r"\n\s*su dproxy dproxy\n", "\n", conf)
            conf = re.sub(r"systemctl kill [^\n]*", f"kill -USR1 {proc.pid}", conf)
            self.assertIn(f"kill -USR1 {proc.pid}", conf)
            conf_path = os.path.join(procs.tmp.name, "logrotate.conf")
            with open(conf_path, "w") as f:
                f.write(conf)
            r = run([tool, "--force", "--state", os.path.join(procs.tmp.name, "state"),
                     conf_path])
            self.assertEqual(r.returncode, 0, r.stderr)
            rotated = log + ".1"
            self.assertTrue(os.path.isfile(rotated), os.listdir(logs))
            self.assertIn("started", read(rotated))
            self.assertTrue(wait_for(lambda: os.path.isfile(log) and
                                     "log file reopened" in read(log), 10),
                            "dproxy did not write to a new log file after logrotate")
            procs.kill(proc, signal.SIGTERM)
            self.assertEqual(proc.returncode, 0)
            self.assertIn("dproxy stopped", read(log))
        finally:
            procs.close()


if __name__ == "__main__":
    import warnings
    warnings.simplefilter("ignore", ResourceWarning)
    ARGS = harness.parse_args()
    unittest.main(verbosity=2)
