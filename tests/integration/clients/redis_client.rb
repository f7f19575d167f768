require "redis"
port = ARGV[0].to_i
k = "{#{ARGV[1]}}"
def check(ok, what)
  raise "failed: #{what}" unless ok
end
r = Redis.new(host: "127.0.0.1", port: port, db: 1, timeout: 10)
check(r.set("#{k}a", "1") == "OK", "set")
check(r.get("#{k}a") == "1", "get")
res = r.multi { |t| t.set("#{k}x", "1"); t.incr("#{k}x") }
check(res == ["OK", 2], "multi #{res.inspect}")
res = r.pipelined { |p| p.set("#{k}p", "v"); p.get("#{k}p"); p.incr("#{k}x") }
check(res == ["OK", "v", 3], "pipelined #{res.inspect}")
r.watch("#{k}x") do
  v = r.get("#{k}x").to_i
  res = r.multi { |t| t.set("#{k}x", (v + 1).to_s) }
  check(res == ["OK"], "watch #{res.inspect}")
end
pusher = Thread.new { sleep 0.3; Redis.new(host: "127.0.0.1", port: port, db: 1).rpush("#{k}q", "job") }
res = r.blpop("#{k}q", timeout: 5)
check(res == ["#{k}q", "job"], "blpop #{res.inspect}")
pusher.join
got = nil
sub = Redis.new(host: "127.0.0.1", port: port, timeout: 10)
t = Thread.new do
  sub.subscribe("#{k}ch") do |on|
    on.subscribe { |_c, _n| Redis.new(host: "127.0.0.1", port: port).publish("#{k}ch", "hello") }
    on.message { |_c, msg| got = msg; sub.unsubscribe }
  end
end
check(t.join(10), "pubsub timeout")
check(got == "hello", "pubsub #{got.inspect}")
check(r.info["redis_version"] =~ /\A\d+\.\d+/, "info")
puts "ruby ok"
