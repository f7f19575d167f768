#include "core/prober.h"

#include <string>

#include "core/server_health.h"
#include "protocol/memcache/reply_parser.h"
#include "protocol/resp/reply_parser.h"
#include "protocol/resp/reply_writer.h"

namespace dproxy::core {

namespace {

constexpr std::chrono::milliseconds kTick{100};

// One probe: connect, send the probe request, read the answer, report to the pool's health.
class Probe : public std::enable_shared_from_this<Probe> {
 public:
  Probe(asio::io_context& io, std::shared_ptr<PoolHealth> health, size_t index,
        asio::generic::stream_protocol::endpoint endpoint)
      : health_(std::move(health)),
        index_(index),
        endpoint_(std::move(endpoint)),
        socket_(io),
        timer_(io) {
    const PoolConfig& config = health_->config();
    redis_ = config.protocol == Protocol::kRedis;
    if (redis_) {
      // The same setup a data connection sends, then PING: every reply must be a success.
      if (!config.server_password.empty()) {
        std::string_view auth[] = {"AUTH", config.server_password};
        protocol::resp::append_command(request_, auth);
        ++replies_;
      }
      if (config.db != 0) {
        std::string db = std::to_string(config.db);
        std::string_view select[] = {"SELECT", db};
        protocol::resp::append_command(request_, select);
        ++replies_;
      }
      request_.append("*1\r\n$4\r\nPING\r\n");
      ++replies_;
    } else {
      request_ = "version\r\n";
      replies_ = 1;
    }
  }

  void run() {
    const PoolConfig& config = health_->config();
    timer_.expires_after(std::chrono::milliseconds(config.connect_timeout_ms + config.timeout_ms));
    timer_.async_wait([self = shared_from_this()](const asio::error_code& ec) {
      if (!ec) self->finish(false, "no answer in time");
    });
    socket_.async_connect(endpoint_, [self = shared_from_this()](const asio::error_code& ec) {
      if (ec) return self->finish(false, "connect failed: " + ec.message());
      asio::async_write(self->socket_, asio::buffer(self->request_),
                        [self](const asio::error_code& err, size_t) {
                          if (err) return self->finish(false, "write failed: " + err.message());
                          self->read();
                        });
    });
  }

 private:
  void read() {
    if (buffer_.size() - used_ < 512) buffer_.resize(buffer_.size() + 4096);
    socket_.async_read_some(asio::buffer(buffer_.data() + used_, buffer_.size() - used_),
                            [self = shared_from_this()](const asio::error_code& ec, size_t n) {
                              if (ec) return self->finish(false, "read failed: " + ec.message());
                              self->used_ += n;
                              self->check();
                            });
  }

  void check() {
    std::string_view in(buffer_.data(), used_);
    while (replies_ > 0) {
      bool is_error = false;
      protocol::ParseResult r = redis_
                                    ? protocol::resp::scan_reply(in, &is_error)
                                    : protocol::memcache::scan_reply(
                                          in, protocol::memcache::ReplyKind::kVersion, &is_error);
      if (r.status == protocol::ParseStatus::kNeedMore) return read();
      std::string_view reply =
          r.status == protocol::ParseStatus::kOk ? in.substr(0, r.consumed) : in.substr(0, 80);
      // memcached: kVersion accepts only "VERSION ..."; Redis: the last reply must be PING's
      // +PONG (AUTH / SELECT before it: any success).
      const bool pong_expected = redis_ && replies_ == 1;
      if (r.status == protocol::ParseStatus::kError || is_error ||
          (pong_expected && reply != "+PONG\r\n")) {
        std::string text(reply.substr(0, 200));
        while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
        return finish(false, "unexpected answer: " + text);
      }
      in.remove_prefix(r.consumed);
      --replies_;
    }
    finish(true, {});
  }

  void finish(bool ok, const std::string& why) {
    if (done_) return;
    done_ = true;
    asio::error_code ignored;
    timer_.cancel();
    socket_.close(ignored);
    if (ok) {
      health_->mark_up(index_);
    } else {
      health_->probe_failed(index_, why);
    }
  }

  std::shared_ptr<PoolHealth> health_;
  size_t index_;
  asio::generic::stream_protocol::endpoint endpoint_;
  asio::generic::stream_protocol::socket socket_;
  asio::steady_timer timer_;
  bool redis_ = false;
  bool done_ = false;
  std::string request_;
  uint32_t replies_ = 0;
  std::vector<char> buffer_;
  size_t used_ = 0;
};

}  // namespace

Prober::Prober(asio::io_context& io) : io_(io), timer_(io) {}

void Prober::start() {
  timer_.expires_after(kTick);
  timer_.async_wait([this](const asio::error_code& ec) {
    if (ec || stopped_) return;
    tick();
    start();
  });
}

void Prober::stop() {
  stopped_ = true;
  timer_.cancel();
}

void Prober::tick() {
  int64_t now = PoolHealth::now_ms();
  for (const Target& target : targets_) {
    PoolHealth& pool = *target.health;
    for (size_t i = 0; i < pool.size(); ++i) {
      ServerHealth& h = pool.server(i);
      if (!h.down.load() || h.probing.load() || h.retry_at_ms.load() > now) continue;
      h.probing.store(true);
      std::make_shared<Probe>(io_, target.health, i, target.endpoints[i])->run();
    }
  }
}

}  // namespace dproxy::core
