"""Real binary-protocol memcached clients from Debian through dproxy over three memcached
servers (ketama): Ruby's Dalli 3.0 (ruby-dalli: binary only), pylibmc with binary=True, and
libmemcached's `memccapable -b` and `-a` (every binary and every ASCII test of it). A missing
client fails under CI=true (it is installed by scripts/install-deps.sh) and is skipped, loudly,
elsewhere.
"""
import os
import shutil
import subprocess
import unittest

import harness
from harness import HOST, Dproxy, Processes, free_port

ARGS = None
PYTHON = "/usr/bin/python3"  # Debian's, with python3-pylibmc

DALLI = r'''
require 'dalli'
port = ARGV[0]
dc = Dalli::Client.new("127.0.0.1:#{port}", socket_timeout: 2, down_retry_delay: 0)
k = "dalli:#{Process.pid}:#{Time.now.to_f}"
raise "set" unless dc.set(k, "v1")
raise "get" unless dc.get(k) == "v1"
raise "get miss" unless dc.get(k + "missing").nil?
keys = (0...30).map { |i| "#{k}:#{i}" }
keys.each_with_index { |kk, i| dc.set(kk, "val#{i}") if i % 3 != 0 }
multi = dc.get_multi(*keys)
exp = {}
keys.each_with_index { |kk, i| exp[kk] = "val#{i}" if i % 3 != 0 }
raise "get_multi #{multi.inspect}" unless multi == exp
raise "incr init" unless dc.incr(k + "c", 1, nil, 10) == 10
raise "incr" unless dc.incr(k + "c", 5) == 15
raise "decr" unless dc.decr(k + "c", 20) == 0
raise "incr missing" unless dc.incr(k + "nope", 1).nil?
raise "cas" unless dc.cas(k) { |v| v + "-cas" }
raise "cas value" unless dc.get(k) == "v1-cas"
value, cas = dc.get_cas(k)
raise "cas id #{cas.inspect}" if cas.nil? || cas == 0
raise "set_cas stale" if dc.set_cas(k, "x", cas + 1)
raise "set_cas" unless dc.set_cas(k, "y", cas)
raise "touch" unless dc.touch(k, 100)
raise "touch miss" if dc.touch(k + "missing", 100)
raise "fetch" unless dc.fetch(k + "f") { "computed" } == "computed"
raise "fetch hit" unless dc.fetch(k + "f") { "other" } == "computed"
raise "add existing" if dc.add(k, "z")
raise "replace" unless dc.replace(k, "r")
raise "append" unless dc.set(k + "raw", "a", 0, raw: true) && dc.append(k + "raw", "b") && dc.get(k + "raw", raw: true) == "ab"
raise "delete" unless dc.delete(k)
raise "deleted" unless dc.get(k).nil?
raise "big" unless dc.set(k + "big", "x" * 500_000) && dc.get(k + "big").size == 500_000
dc.set(k + "obj", {a: [1, 2, "three"]})
raise "obj" unless dc.get(k + "obj") == {a: [1, 2, "three"]}
stats = dc.stats
raise "stats" unless stats.values.first && stats.values.first["curr_connections"]
raise "version" unless dc.version.values.first
dc.close
puts "dalli ok #{Gem.loaded_specs['dalli']&.version || Dalli::VERSION}"
'''

PYLIBMC = r'''
import sys, pylibmc, time
port = sys.argv[1]
c = pylibmc.Client([f"127.0.0.1:{port}"], binary=True, behaviors={"cas": True})
k = f"pylibmc:{time.monotonic_ns()}"
assert c.set(k, "v1")
assert c.get(k) == "v1"
assert c.get(k + "missing") is None
keys = [f"{k}:{i}" for i in range(30)]
for i, kk in enumerate(keys):
    if i % 3: c.set(kk, f"val{i}")
assert c.get_multi(keys) == {kk: f"val{i}" for i, kk in enumerate(keys) if i % 3}
c.set_multi({k + "a": 1, k + "b": [1, 2]})
assert c.get_multi([k + "a", k + "b"]) == {k + "a": 1, k + "b": [1, 2]}
c.set(k + "n", 5)
assert c.incr(k + "n", 3) == 8 and c.decr(k + "n", 10) == 0
try:
    c.incr(k + "nope")
    raise AssertionError("incr on a missing key")
except pylibmc.NotFound:
    pass
assert not c.add(k, "x") and c.replace(k, "r") and c.get(k) == "r"
assert c.append(k, "-app") and c.prepend(k, "pre-") and c.get(k) == "pre-r-app"
v, cas = c.gets(k)
assert c.cas(k, "casd", cas) and not c.cas(k, "stale", cas)
assert c.touch(k, 100)
assert c.delete(k) and not c.delete(k)
c.delete_multi(keys)
assert c.get_multi(keys) == {}
assert c.get_stats()
c.flush_all()
print("pylibmc ok", pylibmc.__version__)
'''

PHP = r'''<?php
$port = (int)$argv[1];
foreach ([false, true] as $binary) {
  $m = new Memcached();
  $m->setOption(Memcached::OPT_BINARY_PROTOCOL, $binary);
  $m->addServer("127.0.0.1", $port);
  $k = "php:" . ($binary ? "b" : "a") . ":" . getmypid() . ":" . microtime(true);
  $check = function ($ok, $what) use ($m, $binary) {
    if (!$ok) {
      fwrite(STDERR, ($binary ? "binary" : "ascii") . " $what: " . $m->getResultMessage() . "\n");
      exit(1);
    }
  };
  $check($m->set($k, "v1") && $m->get($k) === "v1", "set/get");
  $check($m->get($k . "missing") === false && $m->getResultCode() == Memcached::RES_NOTFOUND,
         "miss");
  $items = [];
  for ($i = 0; $i < 30; $i++) { if ($i % 3) $items["$k:$i"] = "val$i"; }
  $check($m->setMulti($items), "setMulti");
  $keys = [];
  for ($i = 0; $i < 30; $i++) $keys[] = "$k:$i";
  $check($m->getMulti($keys) == $items, "getMulti");
  $check($m->set("$k:n", 5) && $m->increment("$k:n", 3) === 8 && $m->decrement("$k:n", 10) === 0,
         "incr/decr");
  $check(!$m->add($k, "x") && $m->replace($k, "r") && $m->get($k) === "r", "add/replace");
  $m->setOption(Memcached::OPT_COMPRESSION, false);
  $check($m->append($k, "-app") && $m->prepend($k, "pre-") && $m->get($k) === "pre-r-app",
         "append/prepend");
  $v = $m->get($k, null, Memcached::GET_EXTENDED);
  $check($m->cas($v["cas"], $k, "casd") && !$m->cas($v["cas"], $k, "stale"), "cas");
  $check($m->touch($k, 100), "touch");
  $check($m->delete($k) && !$m->delete($k), "delete");
  $check(is_array($m->getVersion()), "version");
  echo "php ok " . ($binary ? "binary" : "ascii") . "\n";
}
'''


missing = harness.missing


class BinaryClientsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.procs = Processes()
        cls.backends = [cls.procs.memcached() for _ in range(3)]
        cls.port = free_port()
        cls.proxy = Dproxy(cls.procs, ARGS.dproxy, {
            "mc": {"protocol": "memcached", "listen": f"{HOST}:{cls.port}",
                   "policy": "ketama", "hash": "md5",
                   "servers": [f"{HOST}:{b.port}:1" for b in cls.backends]},
        })

    @classmethod
    def tearDownClass(cls):
        rc = cls.proxy.stop()
        log = cls.proxy.log_text()
        cls.procs.close()
        assert rc == 0, f"dproxy exited with {rc}: {log[-2000:]}"

    def run_script(self, argv, script, suffix):
        path = os.path.join(self.procs.tmp.name, "client" + suffix)
        with open(path, "w") as f:
            f.write(script)
        r = subprocess.run([*argv, path, str(self.port)], capture_output=True, text=True,
                           timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return r.stdout

    def test_dalli(self):
        if shutil.which("ruby") is None:
            missing("ruby")
        if subprocess.run(["ruby", "-e", "require 'dalli'"], capture_output=True).returncode:
            missing("ruby-dalli")
        out = self.run_script(["ruby"], DALLI, ".rb")
        self.assertIn("dalli ok 3.", out)

    def test_php_memcached(self):
        # php-memcached (libmemcached) in its default ASCII mode and with OPT_BINARY_PROTOCOL.
        if shutil.which("php") is None:
            missing("php-cli")
        if subprocess.run(["php", "-r", "exit(class_exists('Memcached') ? 0 : 1);"]).returncode:
            missing("php-memcached")
        out = self.run_script(["php"], PHP, ".php")
        self.assertEqual(out.count("php ok"), 2, out)

    def test_dalli_sasl(self):
        if subprocess.run(["ruby", "-e", "require 'dalli'"], capture_output=True).returncode:
            missing("ruby-dalli")
        port = free_port()
        proxy = Dproxy(self.procs, ARGS.dproxy, {
            "sasl": {"protocol": "memcached", "listen": f"{HOST}:{port}", "policy": "ketama",
                     "sasl": {"app": "s3cret"},
                     "servers": [f"{HOST}:{b.port}:1" for b in self.backends]},
        })
        script = (
            "require 'dalli'\n"
            "port = ARGV[0]\n"
            "ok = Dalli::Client.new(\"127.0.0.1:#{port}\", username: 'app', password: 's3cret',"
            " socket_timeout: 2)\n"
            "raise 'set' unless ok.set('sasl-key', 'v')\n"
            "raise 'get' unless ok.get('sasl-key') == 'v'\n"
            "bad = Dalli::Client.new(\"127.0.0.1:#{port}\", username: 'app', password: 'nope',"
            " socket_timeout: 2, down_retry_delay: 0)\n"
            "begin\n"
            "  bad.get('sasl-key')\n"
            "  raise 'a wrong password was accepted'\n"
            "rescue Dalli::DalliError => e\n"
            "  puts \"refused: #{e.class}\"\n"
            "end\n"
            "puts 'sasl ok'\n")
        path = os.path.join(self.procs.tmp.name, "sasl.rb")
        with open(path, "w") as f:
            f.write(script)
        r = subprocess.run(["ruby", path, str(port)], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("sasl ok", r.stdout)
        self.assertIn("refused", r.stdout)
        self.assertEqual(proxy.stop(), 0)

    def test_pylibmc_binary(self):
        if subprocess.run([PYTHON, "-c", "import pylibmc"], capture_output=True).returncode:
            missing("python3-pylibmc")
        self.assertIn("pylibmc ok", self.run_script([PYTHON], PYLIBMC, ".py"))

    def memccapable(self, mode, first_test):
        if shutil.which("memccapable") is None:
            missing("memccapable (libmemcached-tools)")
        r = subprocess.run(["memccapable", mode, "-h", HOST, "-p", str(self.port)],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn(first_test, r.stdout)  # the tests ran (not skipped as unsupported)
        self.assertIn("All tests passed", r.stdout + r.stderr)
        self.assertNotIn("[FAIL]", r.stdout + r.stderr)

    def test_memccapable_binary(self):
        self.memccapable("-b", "binary noop")

    def test_memccapable_ascii(self):
        """memccapable -a: every ASCII test (noreply variants, cas, verbosity, stat ...)."""
        self.memccapable("-a", "ascii set noreply")


if __name__ == "__main__":
    ARGS = harness.parse_args()
    unittest.main()
