<?php
$port = (int)$argv[1];
$k = "{" . $argv[2] . "}";
function check($ok, $what) {
  if (!$ok) { fwrite(STDERR, "failed: $what\n"); exit(1); }
}
$r = new Redis();
$r->connect("127.0.0.1", $port, 5);
check($r->select(1), "select");
check($r->set("{$k}a", "1") === true, "set");
check($r->get("{$k}a") === "1", "get");
$res = $r->multi()->set("{$k}x", "1")->incr("{$k}x")->exec();
check($res === [true, 2], "multi " . json_encode($res));
$res = $r->pipeline()->set("{$k}p", "v")->get("{$k}p")->incr("{$k}x")->exec();
check($res === [true, "v", 3], "pipeline " . json_encode($res));
$r->watch("{$k}x");
$v = (int)$r->get("{$k}x");
$res = $r->multi()->set("{$k}x", (string)($v + 1))->exec();
check($res === [true], "watch " . json_encode($res));
// Another client pushes while BLPOP waits (redis-cli, in the background).
exec("sh -c 'sleep 0.3; redis-cli -h 127.0.0.1 -p $port -n 1 RPUSH " . escapeshellarg("{$k}q") .
     " job' > /dev/null 2>&1 &");
$res = $r->blPop(["{$k}q"], 5);
check($res === ["{$k}q", "job"], "blpop " . json_encode($res));
exec("sh -c 'sleep 0.3; redis-cli -h 127.0.0.1 -p $port PUBLISH " . escapeshellarg("{$k}ch") .
     " hello' > /dev/null 2>&1 &");
$s = new Redis();
$s->connect("127.0.0.1", $port, 5);
$s->setOption(Redis::OPT_READ_TIMEOUT, 5);
$got = null;
try {
  $s->subscribe(["{$k}ch"], function ($redis, $chan, $msg) use (&$got) {
    $got = $msg;
    throw new RuntimeException("received");
  });
} catch (Throwable $e) {  // (phpredis reports the callback's exception as a read error)
}
check($got === "hello", "subscribe " . json_encode($got));
$info = $r->info();
check(isset($info["redis_version"]) && preg_match('/^\d+\.\d+/', $info["redis_version"]), "info");
echo "php ok\n";
