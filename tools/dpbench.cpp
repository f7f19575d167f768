// dpbench: a closed-loop load generator for memcached ASCII and Redis RESP servers and proxies.
//
// N connections spread over M threads (one epoll loop per thread). Each connection sends a batch
// of `--pipeline` requests in one write, waits for every reply, records each request's latency
// (batch send -> its reply parsed) and sends the next batch. Requests are GET/SET in a weighted
// mix, or multi-gets of K keys (memcached `get k1 .. kK`, Redis MGET), on uniformly random keys
// "<prefix><8 digits>" from a fixed key space, with fixed-size values.
//
// A run has two phases, warm-up and measure, each bounded by a request count or a duration. Between
// them every connection is idle (no request in flight) and `--hook-warm CMD` runs; after the
// measure phase `--hook-done CMD` runs before the connections close. The hooks let a caller attach
// perf, start callgrind collection or snapshot a malloc counter exactly around the measured
// requests, on connections that are already established and warm. Hooks run through system()
// with DPBENCH_PID set to dpbench's own PID, so that they can sample its CPU time too.
//
// Output: one line on stdout,
//   RESULT label=.. ops=.. secs=.. ops_per_sec=.. p50_us=.. p99_us=.. p999_us=.. max_us=..
//          errors=.. hits=.. misses=.. keys_per_sec=..
// Loopback only: the host must be in 127.0.0.0/8 (or ::1 is not supported; use 127.0.0.1).
//
// Other modes: --prefill (SET every key of the key space once, pipelined) and --idle N (open N
// connections, optionally send one GET on each, run --hook-warm, close).

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

enum class Proto { kMemcached, kRedis };
enum class Op : uint8_t { kGet, kSet, kMget };

struct Options {
  std::string host = "127.0.0.1";
  int port = 0;
  Proto proto = Proto::kMemcached;
  int connections = 50;
  bool tls = false;  // TLS to the server (no certificate check; handshakes before warm-up)
  int threads = 1;
  int pipeline = 1;
  int get_weight = 1;
  int set_weight = 1;
  int mget = 0;  // keys per multi-get; > 0 makes every request a multi-get
  uint64_t keys = 100000;
  int value_size = 32;
  std::string prefix = "key:";
  double warmup_secs = 0;
  uint64_t warmup_requests = 0;
  double secs = 0;
  uint64_t requests = 0;
  std::string hook_warm;
  std::string hook_done;
  std::string label = "run";
  bool prefill = false;
  int idle = 0;
  bool idle_touch = false;
  double stall_secs = 10;  // a phase with no reply for this long fails the run
  double max_secs = 600;   // hard cap on the whole run
  uint64_t seed = 1;
};

const char kUsage[] =
    "Usage: dpbench --port P --protocol memcached|redis [options]\n"
    "  --host IP               127.0.0.x only (default 127.0.0.1)\n"
    "  --connections N         client connections (default 50)\n"
    "  --threads M             client threads, connections spread round robin (default 1)\n"
    "  --tls                   TLS connections (the server's certificate is not checked; the\n"
    "                          handshakes happen while connecting, outside every measured phase)\n"
    "  --pipeline D            requests per batch written at once (default 1)\n"
    "  --ratio G:S             GET:SET weights (default 1:1)\n"
    "  --mget K                every request is a K-key multi-get (memcached get / Redis MGET)\n"
    "  --keys N                key space (default 100000), keys are <prefix><8 digits>\n"
    "  --prefix S              key prefix (default key:)\n"
    "  --value-size B          SET value bytes (default 32)\n"
    "  --warmup-secs S | --warmup-requests N   warm-up phase (not measured)\n"
    "  --secs S | --requests N measured phase: duration or total request count\n"
    "  --hook-warm CMD         shell command run after warm-up (all connections idle)\n"
    "  --hook-done CMD         shell command run after the measured phase, before closing\n"
    "                          (hooks see DPBENCH_PID, the PID of this dpbench)\n"
    "  --prefill               SET every key once (pipelined), then exit\n"
    "  --idle N [--idle-touch] open N connections (send one GET each), run --hook-warm, close\n"
    "  --stall-secs S          fail when no reply arrives for S seconds (default 10)\n"
    "  --max-secs S            hard limit on the whole run (default 600)\n"
    "  --label S               label printed in the RESULT line\n"
    "  --seed N                random seed (default 1)\n";

[[noreturn]] void die(const std::string& message) {
  std::fprintf(stderr, "dpbench: %s\n", message.c_str());
  std::exit(2);
}

// Parses a decimal integer (optional leading '-') from the start of s; stops at a non-digit.
int64_t parse_int(std::string_view s) {
  bool neg = !s.empty() && s[0] == '-';
  int64_t v = 0;
  for (size_t i = neg ? 1 : 0; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i)
    v = v * 10 + (s[i] - '0');
  return neg ? -v : v;
}

// ---------------------------------------------------------------------------------------------
// Latency histogram: log-linear buckets, 64 sub-buckets per power of two (<1.6% error), in ns.

class Histogram {
 public:
  static constexpr int kSub = 6;
  static constexpr int kBuckets = (64 - kSub) * (1 << kSub) + (1 << kSub);
  Histogram() : counts_(kBuckets, 0) {}
  void add(uint64_t ns) {
    ++counts_[index(ns)];
    ++total_;
    if (ns > max_) max_ = ns;
  }
  void merge(const Histogram& o) {
    for (int i = 0; i < kBuckets; ++i) counts_[i] += o.counts_[i];
    total_ += o.total_;
    max_ = std::max(max_, o.max_);
  }
  void clear() {
    std::fill(counts_.begin(), counts_.end(), 0);
    total_ = 0;
    max_ = 0;
  }
  uint64_t total() const { return total_; }
  uint64_t max() const { return max_; }
  // Value at quantile q (0..1): midpoint of the bucket holding the q-th sample.
  double quantile_ns(double q) const {
    if (total_ == 0) return 0;
    uint64_t rank = static_cast<uint64_t>(q * static_cast<double>(total_));
    if (rank >= total_) rank = total_ - 1;
    uint64_t seen = 0;
    for (int i = 0; i < kBuckets; ++i) {
      seen += counts_[i];
      if (seen > rank) return midpoint(i);
    }
    return static_cast<double>(max_);
  }

 private:
  static int index(uint64_t v) {
    if (v < (1u << kSub)) return static_cast<int>(v);
    int e = 63 - __builtin_clzll(v);  // >= kSub
    int sub = static_cast<int>((v >> (e - kSub)) & ((1 << kSub) - 1));
    return (e - kSub + 1) * (1 << kSub) + sub;
  }
  static double midpoint(int i) {
    if (i < (1 << kSub)) return i;
    int e = i / (1 << kSub) + kSub - 1;
    int sub = i % (1 << kSub);
    double lo = std::ldexp(1.0, e) + sub * std::ldexp(1.0, e - kSub);
    return lo + std::ldexp(1.0, e - kSub) / 2;
  }
  std::vector<uint64_t> counts_;
  uint64_t total_ = 0;
  uint64_t max_ = 0;
};

struct Stats {
  Histogram hist;
  uint64_t ops = 0;
  uint64_t errors = 0;
  uint64_t hits = 0;
  uint64_t misses = 0;
  std::string first_error;
  void merge(const Stats& o) {
    hist.merge(o.hist);
    ops += o.ops;
    errors += o.errors;
    hits += o.hits;
    misses += o.misses;
    if (first_error.empty()) first_error = o.first_error;
  }
  void clear() { *this = Stats{}; }
};

// xorshift64*: fast, deterministic per connection.
struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 0x1234567) {
    if (s == 0) s = 1;
  }
  uint64_t next() {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 0x2545F4914F6CDD1Dull;
  }
  uint64_t below(uint64_t n) { return next() % n; }
};

// ---------------------------------------------------------------------------------------------
// Request encoding.

class Encoder {
 public:
  explicit Encoder(const Options& o) : o_(o), value_(static_cast<size_t>(o.value_size), 'v') {
    for (int i = 0; i < o.value_size; ++i) value_[i] = static_cast<char>('a' + i % 26);
    klen_ = std::to_string(o.prefix.size() + 8);
    vlen_ = std::to_string(value_.size());
    mget_n_ = std::to_string(o.mget + 1);
  }
  void key(std::string& out, uint64_t k) const {
    char digits[9];
    uint64_t v = k % 100000000ull;
    for (int i = 7; i >= 0; --i) {
      digits[i] = static_cast<char>('0' + v % 10);
      v /= 10;
    }
    out.append(o_.prefix);
    out.append(digits, 8);
  }
  void get(std::string& out, uint64_t k) const {
    if (o_.proto == Proto::kMemcached) {
      out.append("get ");
      key(out, k);
      out.append("\r\n");
    } else {
      out.append("*2\r\n$3\r\nGET\r\n$");
      out.append(klen_);
      out.append("\r\n");
      key(out, k);
      out.append("\r\n");
    }
  }
  void set(std::string& out, uint64_t k) const {
    if (o_.proto == Proto::kMemcached) {
      out.append("set ");
      key(out, k);
      out.append(" 0 0 ");
      out.append(vlen_);
      out.append("\r\n");
      out.append(value_);
      out.append("\r\n");
    } else {
      out.append("*3\r\n$3\r\nSET\r\n$");
      out.append(klen_);
      out.append("\r\n");
      key(out, k);
      out.append("\r\n$");
      out.append(vlen_);
      out.append("\r\n");
      out.append(value_);
      out.append("\r\n");
    }
  }
  void mget(std::string& out, Rng& rng, int n) const {
    if (o_.proto == Proto::kMemcached) {
      out.append("get");
      for (int i = 0; i < n; ++i) {
        out.push_back(' ');
        key(out, rng.below(o_.keys));
      }
      out.append("\r\n");
    } else {
      out.append("*");
      out.append(n == o_.mget ? mget_n_ : std::to_string(n + 1));
      out.append("\r\n$4\r\nMGET\r\n");
      for (int i = 0; i < n; ++i) {
        out.append("$");
        out.append(klen_);
        out.append("\r\n");
        key(out, rng.below(o_.keys));
        out.append("\r\n");
      }
    }
  }

 private:
  const Options& o_;
  std::string value_;
  std::string klen_, vlen_, mget_n_;
};

// ---------------------------------------------------------------------------------------------
// Reply parsing. Each returns bytes consumed by one complete reply, 0 when more data is needed,
// and updates hits/misses/errors.

struct ReplyTally {
  uint64_t hits = 0, misses = 0, errors = 0;
  std::string first_error;
};

const char* find_crlf(const char* p, const char* end) {
  while (p + 1 < end) {
    const char* cr =
        static_cast<const char*>(std::memchr(p, '\r', static_cast<size_t>(end - p - 1)));
    if (!cr) return nullptr;
    if (cr[1] == '\n') return cr;
    p = cr + 1;
  }
  return nullptr;
}

bool starts(std::string_view line, std::string_view prefix) {
  return line.substr(0, prefix.size()) == prefix;
}

void note_error(ReplyTally& t, std::string_view line) {
  ++t.errors;
  if (t.first_error.empty()) t.first_error.assign(line.substr(0, 200));
}

size_t parse_memcached(const char* begin, const char* end, Op op, int expect_keys, ReplyTally& t) {
  const char* p = begin;
  int values = 0;
  for (;;) {
    const char* cr = find_crlf(p, end);
    if (!cr) return 0;
    std::string_view line(p, static_cast<size_t>(cr - p));
    const char* next = cr + 2;
    if (op == Op::kSet) {
      if (line != "STORED") note_error(t, line);
      return static_cast<size_t>(next - begin);
    }
    if (starts(line, "VALUE ")) {
      // VALUE <key> <flags> <bytes> [<cas>]
      size_t sp1 = line.find(' ', 6);
      size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
      if (sp2 == std::string_view::npos) {
        note_error(t, line);
        return static_cast<size_t>(next - begin);
      }
      uint64_t bytes = static_cast<uint64_t>(parse_int(line.substr(sp2 + 1)));
      if (static_cast<uint64_t>(end - next) < bytes + 2) return 0;
      p = next + bytes + 2;
      ++values;
      continue;
    }
    if (line == "END") {
      t.hits += static_cast<uint64_t>(values);
      t.misses += static_cast<uint64_t>(std::max(0, expect_keys - values));
      return static_cast<size_t>(next - begin);
    }
    note_error(t, line);  // ERROR, CLIENT_ERROR, SERVER_ERROR ...
    return static_cast<size_t>(next - begin);
  }
}

// Returns consumed bytes or 0 if incomplete. `top` tallies GET/MGET hits and misses.
size_t parse_resp_value(const char* begin, const char* end, ReplyTally& t, bool tally, int depth) {
  if (begin >= end) return 0;
  const char* cr = find_crlf(begin, end);
  if (!cr) return 0;
  std::string_view line(begin + 1, static_cast<size_t>(cr - begin - 1));
  const char* next = cr + 2;
  switch (*begin) {
    case '+':
    case ':':
      return static_cast<size_t>(next - begin);
    case '-':
      note_error(t, line);
      return static_cast<size_t>(next - begin);
    case '$': {
      int64_t len = parse_int(line);
      if (len < 0) {
        if (tally) ++t.misses;
        return static_cast<size_t>(next - begin);
      }
      if (end - next < len + 2) return 0;
      if (tally) ++t.hits;
      return static_cast<size_t>(next + len + 2 - begin);
    }
    case '*': {
      int64_t n = parse_int(line);
      const char* p = next;
      if (depth > 8) die("RESP nesting too deep");
      for (int64_t i = 0; i < n; ++i) {
        size_t used = parse_resp_value(p, end, t, tally && depth == 0, depth + 1);
        if (used == 0) return 0;
        p += used;
      }
      return static_cast<size_t>(p - begin);
    }
    default:
      die("malformed RESP reply starting with '" +
          std::string(begin, std::min<size_t>(40, static_cast<size_t>(end - begin))) + "'");
  }
}

// ---------------------------------------------------------------------------------------------
// Connections and worker threads.

bool is_loopback(const std::string& host) {
  in_addr a{};
  if (inet_pton(AF_INET, host.c_str(), &a) != 1) return false;
  return (ntohl(a.s_addr) >> 24) == 127;
}

int connect_nonblocking(const Options& o) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) die(std::string("socket: ") + std::strerror(errno));
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(o.port));
  inet_pton(AF_INET, o.host.c_str(), &sa.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0 && errno != EINPROGRESS)
    die("connect " + o.host + ":" + std::to_string(o.port) + ": " + std::strerror(errno));
  return fd;
}

struct Pending {
  Op op;
  int keys;
};

// --tls: one client context for every connection (set in main before the workers start).
SSL_CTX* g_tls = nullptr;

std::string tls_error() {
  unsigned long e = ERR_get_error();
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return e == 0 ? std::string("unknown error") : std::string(buf);
}

struct Conn {
  int fd = -1;
  SSL* ssl = nullptr;
  bool connected = false;
  bool want_out = false;
  std::string out;
  size_t out_off = 0;
  std::vector<char> in;
  size_t in_len = 0;
  std::deque<Pending> pending;
  Clock::time_point batch_start;
  uint64_t quota = 0;  // requests left in a count-bounded phase
  uint64_t prefill_next = 0;
  std::unique_ptr<Rng> rng;
};

struct Shared {
  std::mutex mu;
  std::condition_variable cv;
  int phase = -1;  // generation number workers wait for
  int done_count = 0;
  bool stop = false;
  std::atomic<bool> time_up{false};
  std::atomic<int64_t> last_progress_ns{0};
};

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

class Worker {
 public:
  Worker(const Options& o, Shared& sh, int id) : o_(o), sh_(sh), enc_(o), id_(id) {
    ep_ = epoll_create1(EPOLL_CLOEXEC);
    if (ep_ < 0) die(std::string("epoll_create1: ") + std::strerror(errno));
  }
  ~Worker() {
    for (auto& c : conns_) {
      if (c->ssl != nullptr) SSL_free(c->ssl);
      if (c->fd >= 0) close(c->fd);
    }
    close(ep_);
  }
  void add_conn(uint64_t conn_index) {
    auto c = std::make_unique<Conn>();
    c->rng = std::make_unique<Rng>(o_.seed * 1000003 + conn_index);
    c->in.resize(64 * 1024);
    c->prefill_next = conn_index;
    conns_.push_back(std::move(c));
  }
  size_t size() const { return conns_.size(); }
  std::vector<std::unique_ptr<Conn>>& conns() { return conns_; }

  // Opens every connection (at most `max_inflight` connecting at once) and waits for all.
  void connect_all(int max_inflight) {
    size_t next = 0, connected = 0, inflight = 0;
    int64_t deadline = now_ns() + static_cast<int64_t>(30e9);
    std::vector<epoll_event> evs(256);
    while (connected < conns_.size()) {
      while (next < conns_.size() && inflight < static_cast<size_t>(max_inflight)) {
        Conn& c = *conns_[next];
        c.fd = connect_nonblocking(o_);
        epoll_event ev{};
        ev.events = EPOLLOUT;
        ev.data.ptr = &c;
        epoll_ctl(ep_, EPOLL_CTL_ADD, c.fd, &ev);
        ++next;
        ++inflight;
      }
      if (now_ns() > deadline) die("timed out connecting to " + o_.host);
      int n = epoll_wait(ep_, evs.data(), static_cast<int>(evs.size()), 100);
      for (int i = 0; i < n; ++i) {
        Conn& c = *static_cast<Conn*>(evs[i].data.ptr);
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0)
          die("connect to " + o_.host + ":" + std::to_string(o_.port) + ": " + std::strerror(err));
        if (g_tls != nullptr) handshake(c);
        c.connected = true;
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.ptr = &c;
        epoll_ctl(ep_, EPOLL_CTL_MOD, c.fd, &ev);
        ++connected;
        --inflight;
      }
    }
  }

  // --tls: a blocking handshake on the fresh connection, which then goes back to non-blocking.
  void handshake(Conn& c) {
    int flags = fcntl(c.fd, F_GETFL);
    fcntl(c.fd, F_SETFL, flags & ~O_NONBLOCK);
    c.ssl = SSL_new(g_tls);
    SSL_set_fd(c.ssl, c.fd);
    SSL_set_mode(c.ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (SSL_connect(c.ssl) != 1)
      die("TLS handshake with " + o_.host + ":" + std::to_string(o_.port) +
          " failed: " + tls_error());
    fcntl(c.fd, F_SETFL, flags);
  }

  // Runs one phase. count_mode: each connection's quota is preset; otherwise until time_up.
  void run_phase(bool count_mode, bool prefill) {
    stats_.clear();
    count_mode_ = count_mode;
    prefill_ = prefill;
    size_t active = 0;
    for (auto& c : conns_) {
      if (start_batch(*c)) ++active;
    }
    std::vector<epoll_event> evs(256);
    while (active > 0) {
      int n = epoll_wait(ep_, evs.data(), static_cast<int>(evs.size()), 50);
      if (n < 0 && errno != EINTR) die(std::string("epoll_wait: ") + std::strerror(errno));
      for (int i = 0; i < n; ++i) {
        Conn& c = *static_cast<Conn*>(evs[i].data.ptr);
        if (evs[i].events & EPOLLOUT) flush(c);
        if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
          if (on_readable(c)) {
            // batch complete
            if (!start_batch(c)) --active;
          }
        }
      }
      int64_t idle = now_ns() - sh_.last_progress_ns.load(std::memory_order_relaxed);
      if (idle > static_cast<int64_t>(o_.stall_secs * 1e9))
        die("no reply for " + std::to_string(o_.stall_secs) +
            " seconds (server stalled or dropped requests)");
    }
  }
  Stats& stats() { return stats_; }

 private:
  // Builds and writes the next batch; false when the connection has nothing more to do.
  bool start_batch(Conn& c) {
    if (count_mode_ && c.quota == 0) return false;
    if (!count_mode_ && sh_.time_up.load(std::memory_order_relaxed)) return false;
    int n = o_.pipeline;
    if (count_mode_ && c.quota < static_cast<uint64_t>(n)) n = static_cast<int>(c.quota);
    c.out.clear();
    c.out_off = 0;
    for (int i = 0; i < n; ++i) {
      if (prefill_) {
        enc_.set(c.out, c.prefill_next);
        c.prefill_next += static_cast<uint64_t>(o_.connections);
        c.pending.push_back({Op::kSet, 1});
      } else if (o_.mget > 0) {
        enc_.mget(c.out, *c.rng, o_.mget);
        c.pending.push_back({Op::kMget, o_.mget});
      } else {
        uint64_t pick = c.rng->below(static_cast<uint64_t>(o_.get_weight + o_.set_weight));
        uint64_t k = c.rng->below(o_.keys);
        if (pick < static_cast<uint64_t>(o_.get_weight)) {
          enc_.get(c.out, k);
          c.pending.push_back({Op::kGet, 1});
        } else {
          enc_.set(c.out, k);
          c.pending.push_back({Op::kSet, 1});
        }
      }
    }
    if (count_mode_) c.quota -= static_cast<uint64_t>(n);
    c.batch_start = Clock::now();
    flush(c);
    return true;
  }

  void flush(Conn& c) {
    while (c.out_off < c.out.size()) {
      if (c.ssl != nullptr) {
        int w =
            SSL_write(c.ssl, c.out.data() + c.out_off, static_cast<int>(c.out.size() - c.out_off));
        if (w <= 0) {
          int e = SSL_get_error(c.ssl, w);
          if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) break;
          die("SSL_write: " + tls_error());
        }
        c.out_off += static_cast<size_t>(w);
        continue;
      }
      ssize_t w = ::send(c.fd, c.out.data() + c.out_off, c.out.size() - c.out_off, MSG_NOSIGNAL);
      if (w < 0) {
        if (errno == EAGAIN) break;
        if (errno == EINTR) continue;
        die(std::string("send: ") + std::strerror(errno));
      }
      c.out_off += static_cast<size_t>(w);
    }
    bool want = c.out_off < c.out.size();
    if (want != c.want_out) {
      epoll_event ev{};
      ev.events = EPOLLIN | (want ? EPOLLOUT : 0u);
      ev.data.ptr = &c;
      epoll_ctl(ep_, EPOLL_CTL_MOD, c.fd, &ev);
      c.want_out = want;
    }
  }

  // Reads and parses; true when the batch's last reply arrived.
  bool on_readable(Conn& c) {
    for (;;) {
      if (c.in_len == c.in.size()) c.in.resize(c.in.size() * 2);
      if (c.ssl != nullptr) {
        // Until the stream has nothing decrypted left and the socket nothing to read.
        int r = SSL_read(c.ssl, c.in.data() + c.in_len, static_cast<int>(c.in.size() - c.in_len));
        if (r <= 0) {
          int e = SSL_get_error(c.ssl, r);
          if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) break;
          if (e == SSL_ERROR_ZERO_RETURN) die("server closed the connection");
          die("SSL_read: " + tls_error());
        }
        c.in_len += static_cast<size_t>(r);
        continue;
      }
      ssize_t r = ::recv(c.fd, c.in.data() + c.in_len, c.in.size() - c.in_len, 0);
      if (r < 0) {
        if (errno == EAGAIN) break;
        if (errno == EINTR) continue;
        die(std::string("recv: ") + std::strerror(errno));
      }
      if (r == 0) die("server closed the connection");
      c.in_len += static_cast<size_t>(r);
      if (c.in_len < c.in.size()) break;  // drained the socket (short read)
    }
    size_t off = 0;
    bool any = false;
    Clock::time_point now = Clock::now();
    uint64_t lat = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(now - c.batch_start).count());
    while (!c.pending.empty()) {
      const Pending& p = c.pending.front();
      ReplyTally t;
      size_t used;
      if (o_.proto == Proto::kMemcached) {
        used = parse_memcached(c.in.data() + off, c.in.data() + c.in_len, p.op, p.keys, t);
      } else {
        used = parse_resp_value(c.in.data() + off, c.in.data() + c.in_len, t, p.op != Op::kSet, 0);
      }
      if (used == 0) break;
      off += used;
      any = true;
      stats_.ops++;
      stats_.hist.add(lat);
      stats_.hits += t.hits;
      stats_.misses += t.misses;
      stats_.errors += t.errors;
      if (!t.first_error.empty() && stats_.first_error.empty()) stats_.first_error = t.first_error;
      c.pending.pop_front();
    }
    if (off > 0) {
      std::memmove(c.in.data(), c.in.data() + off, c.in_len - off);
      c.in_len -= off;
    }
    if (any) sh_.last_progress_ns.store(now_ns(), std::memory_order_relaxed);
    if (c.pending.empty() && c.in_len > 0) die("unexpected bytes after the last reply");
    return c.pending.empty();
  }

  const Options& o_;
  Shared& sh_;
  Encoder enc_;
  [[maybe_unused]] int id_;
  int ep_;
  std::vector<std::unique_ptr<Conn>> conns_;
  Stats stats_;
  bool count_mode_ = true;
  bool prefill_ = false;
};

// ---------------------------------------------------------------------------------------------

struct PhaseSpec {
  bool count_mode;
  uint64_t requests;
  double secs;
  bool prefill;
};

void run_hook(const std::string& cmd, const char* name) {
  if (cmd.empty()) return;
  std::fflush(stdout);
  int rc = std::system(cmd.c_str());
  if (rc != 0) std::fprintf(stderr, "dpbench: %s hook exited with status %d\n", name, rc);
}

double parse_double(const char* s, const char* name) {
  char* end = nullptr;
  double v = std::strtod(s, &end);
  if (!s[0] || *end) die(std::string(name) + " needs a number, got '" + s + "'");
  return v;
}
uint64_t parse_u64(const char* s, const char* name) {
  char* end = nullptr;
  unsigned long long v = std::strtoull(s, &end, 10);
  if (!s[0] || *end) die(std::string(name) + " needs a non-negative integer, got '" + s + "'");
  return v;
}

Options parse_args(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&]() -> const char* {
      if (i + 1 >= argc) die(a + " needs a value");
      return argv[++i];
    };
    if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    } else if (a == "--host") {
      o.host = val();
    } else if (a == "--port") {
      o.port = static_cast<int>(parse_u64(val(), "--port"));
    } else if (a == "--protocol") {
      std::string p = val();
      if (p == "memcached" || p == "memcache") {
        o.proto = Proto::kMemcached;
      } else if (p == "redis" || p == "resp") {
        o.proto = Proto::kRedis;
      } else {
        die("--protocol is memcached or redis, got '" + p + "'");
      }
    } else if (a == "--connections") {
      o.connections = static_cast<int>(parse_u64(val(), "--connections"));
    } else if (a == "--tls") {
      o.tls = true;
    } else if (a == "--threads") {
      o.threads = static_cast<int>(parse_u64(val(), "--threads"));
    } else if (a == "--pipeline") {
      o.pipeline = static_cast<int>(parse_u64(val(), "--pipeline"));
    } else if (a == "--ratio") {
      std::string r = val();
      if (std::sscanf(r.c_str(), "%d:%d", &o.get_weight, &o.set_weight) != 2 || o.get_weight < 0 ||
          o.set_weight < 0 || o.get_weight + o.set_weight == 0)
        die("--ratio needs G:S, got '" + r + "'");
    } else if (a == "--mget") {
      o.mget = static_cast<int>(parse_u64(val(), "--mget"));
    } else if (a == "--keys") {
      o.keys = parse_u64(val(), "--keys");
    } else if (a == "--prefix") {
      o.prefix = val();
    } else if (a == "--value-size") {
      o.value_size = static_cast<int>(parse_u64(val(), "--value-size"));
    } else if (a == "--warmup-secs") {
      o.warmup_secs = parse_double(val(), "--warmup-secs");
    } else if (a == "--warmup-requests") {
      o.warmup_requests = parse_u64(val(), "--warmup-requests");
    } else if (a == "--secs") {
      o.secs = parse_double(val(), "--secs");
    } else if (a == "--requests") {
      o.requests = parse_u64(val(), "--requests");
    } else if (a == "--hook-warm") {
      o.hook_warm = val();
    } else if (a == "--hook-done") {
      o.hook_done = val();
    } else if (a == "--label") {
      o.label = val();
    } else if (a == "--prefill") {
      o.prefill = true;
    } else if (a == "--idle") {
      o.idle = static_cast<int>(parse_u64(val(), "--idle"));
    } else if (a == "--idle-touch") {
      o.idle_touch = true;
    } else if (a == "--stall-secs") {
      o.stall_secs = parse_double(val(), "--stall-secs");
    } else if (a == "--max-secs") {
      o.max_secs = parse_double(val(), "--max-secs");
    } else if (a == "--seed") {
      o.seed = parse_u64(val(), "--seed");
    } else {
      die("unknown option '" + a + "' (try --help)");
    }
  }
  if (o.port <= 0 || o.port > 65535) die("--port is required");
  if (!is_loopback(o.host)) die("--host must be a 127.0.0.0/8 address, got '" + o.host + "'");
  if (o.idle > 0) o.connections = o.idle;
  if (o.connections < 1 || o.threads < 1 || o.pipeline < 1) die("counts must be >= 1");
  if (o.threads > o.connections) o.threads = o.connections;
  if (o.keys == 0 || o.keys > 100000000ull) die("--keys must be 1..100000000");
  if (o.mget > 0 && o.mget > 100000) die("--mget too large");
  if (!o.prefill && o.idle == 0 && o.secs <= 0 && o.requests == 0)
    die("give --secs S or --requests N");
  if (o.secs > 0 && o.requests > 0) die("--secs and --requests are exclusive");
  if (o.warmup_secs > 0 && o.warmup_requests > 0)
    die("--warmup-secs and --warmup-requests are exclusive");
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  Options o = parse_args(argc, argv);
  // Hooks inherit the environment: tell them which process is the load generator.
  setenv("DPBENCH_PID", std::to_string(getpid()).c_str(), 1);
  // Hard cap on the whole run: a watchdog thread exits the process.
  std::thread([max = o.max_secs] {
    std::this_thread::sleep_for(std::chrono::duration<double>(max));
    std::fprintf(stderr, "dpbench: --max-secs %.0f reached, giving up\n", max);
    std::_Exit(3);
  }).detach();

  if (o.tls) {
    g_tls = SSL_CTX_new(TLS_client_method());
    if (g_tls == nullptr) die("SSL_CTX_new: " + tls_error());
    SSL_CTX_set_verify(g_tls, SSL_VERIFY_NONE, nullptr);
  }

  Shared sh;
  std::vector<std::unique_ptr<Worker>> workers;
  for (int t = 0; t < o.threads; ++t) workers.push_back(std::make_unique<Worker>(o, sh, t));
  for (int c = 0; c < o.connections; ++c)
    workers[static_cast<size_t>(c % o.threads)]->add_conn(static_cast<uint64_t>(c));

  // Connect (in parallel per worker thread).
  {
    std::vector<std::thread> ts;
    for (auto& w : workers) ts.emplace_back([&w] { w->connect_all(512); });
    for (auto& t : ts) t.join();
  }

  // Connection c gets total/n requests, plus one for the first total%n connections.
  auto assign_quota = [&](uint64_t total) {
    uint64_t n = static_cast<uint64_t>(o.connections);
    for (int c = 0; c < o.connections; ++c) {
      Conn& conn =
          *workers[static_cast<size_t>(c % o.threads)]->conns()[static_cast<size_t>(c / o.threads)];
      conn.quota = total / n + (static_cast<uint64_t>(c) < total % n ? 1 : 0);
    }
  };

  // Runs one phase on all workers and returns merged stats and elapsed seconds.
  auto run_phase = [&](const PhaseSpec& spec, double& elapsed) {
    if (spec.count_mode) assign_quota(spec.requests);
    sh.time_up = false;
    sh.last_progress_ns = now_ns();
    auto t0 = Clock::now();
    std::vector<std::thread> ts;
    for (auto& w : workers)
      ts.emplace_back([&w, &spec] { w->run_phase(spec.count_mode, spec.prefill); });
    if (!spec.count_mode) {
      // Sleep in small steps so a finished/broken run is not held up.
      auto until = t0 + std::chrono::duration<double>(spec.secs);
      while (Clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(5));
      sh.time_up = true;
    }
    for (auto& t : ts) t.join();
    elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
    Stats total;
    for (auto& w : workers) total.merge(w->stats());
    return total;
  };

  double elapsed = 0;
  if (o.idle > 0) {
    if (o.idle_touch) {
      assign_quota(static_cast<uint64_t>(o.connections));
      Options& mo = o;
      int saved_get = mo.get_weight, saved_set = mo.set_weight;
      mo.get_weight = 1;
      mo.set_weight = 0;
      Stats s = run_phase({true, static_cast<uint64_t>(o.connections), 0, false}, elapsed);
      mo.get_weight = saved_get;
      mo.set_weight = saved_set;
      if (s.ops != static_cast<uint64_t>(o.connections)) die("idle touch incomplete");
    }
    std::fprintf(stderr, "dpbench: %d connections open\n", o.connections);
    run_hook(o.hook_warm, "warm");
    std::printf("RESULT label=%s idle_connections=%d\n", o.label.c_str(), o.connections);
    return 0;
  }

  if (o.prefill) {
    Stats s = run_phase({true, o.keys, 0, true}, elapsed);
    std::printf("RESULT label=%s prefill=%llu secs=%.3f errors=%llu\n", o.label.c_str(),
                static_cast<unsigned long long>(s.ops), elapsed,
                static_cast<unsigned long long>(s.errors));
    if (s.errors) std::fprintf(stderr, "dpbench: first error: %s\n", s.first_error.c_str());
    return s.errors ? 1 : 0;
  }

  if (o.warmup_requests > 0 || o.warmup_secs > 0) {
    Stats w = run_phase({o.warmup_requests > 0, o.warmup_requests, o.warmup_secs, false}, elapsed);
    if (w.errors)
      std::fprintf(stderr, "dpbench: warm-up had %llu errors, first: %s\n",
                   static_cast<unsigned long long>(w.errors), w.first_error.c_str());
  }
  run_hook(o.hook_warm, "warm");
  Stats s = run_phase({o.requests > 0, o.requests, o.secs, false}, elapsed);
  run_hook(o.hook_done, "done");

  double keys_per_op = o.mget > 0 ? o.mget : 1;
  std::printf(
      "RESULT label=%s ops=%llu secs=%.3f ops_per_sec=%.0f p50_us=%.1f p99_us=%.1f p999_us=%.1f "
      "max_us=%.1f errors=%llu hits=%llu misses=%llu keys_per_sec=%.0f\n",
      o.label.c_str(), static_cast<unsigned long long>(s.ops), elapsed,
      static_cast<double>(s.ops) / elapsed, s.hist.quantile_ns(0.50) / 1e3,
      s.hist.quantile_ns(0.99) / 1e3, s.hist.quantile_ns(0.999) / 1e3,
      static_cast<double>(s.hist.max()) / 1e3, static_cast<unsigned long long>(s.errors),
      static_cast<unsigned long long>(s.hits), static_cast<unsigned long long>(s.misses),
      static_cast<double>(s.ops) * keys_per_op / elapsed);
  if (s.errors) std::fprintf(stderr, "dpbench: first error: %s\n", s.first_error.c_str());
  return 0;
}
