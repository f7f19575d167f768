#include "core/stats_server.h"

#include <memory>

#include "core/log.h"
#include "core/stats.h"

namespace dproxy::core {

namespace {

// An HTTP client sends its request right after connecting; a twemproxy-style client sends
// nothing and waits for the document. After this long without a byte, the client gets the JSON.
constexpr std::chrono::milliseconds kRequestWait{300};
constexpr size_t kMaxRequestBytes = 8192;

class StatsConnection : public std::enable_shared_from_this<StatsConnection> {
 public:
  StatsConnection(asio::ip::tcp::socket socket, StatsCollector collector)
      : socket_(std::move(socket)),
        timer_(socket_.get_executor()),
        collector_(std::move(collector)) {}

  void start() {
    timer_.expires_after(kRequestWait);
    timer_.async_wait([self = shared_from_this()](const asio::error_code& ec) {
      if (ec || self->answered_) return;
      if (self->request_.empty()) {
        self->answered_ = true;
        asio::error_code ignored;
        self->socket_.cancel(ignored);
        self->respond(Kind::kRawJson);
      }
    });
    read();
  }

 private:
  enum class Kind {
    kRawJson,
    kJson,
    kMetrics,
    kHealthz,
    kReadyz,
    kNotFound,
    kBadMethod,
    kBadRequest
  };

  void read() {
    socket_.async_read_some(asio::buffer(buf_),
                            [self = shared_from_this()](const asio::error_code& ec, size_t n) {
                              if (self->answered_) return;
                              if (ec) {
                                // EOF before any byte (a client that half-closed at once):
                                // twemproxy's answer.
                                if (ec == asio::error::eof && self->request_.empty()) {
                                  self->answered_ = true;
                                  self->timer_.cancel();
                                  self->respond(Kind::kRawJson);
                                }
                                return;
                              }
                              self->request_.append(self->buf_.data(), n);
                              self->on_bytes();
                            });
  }

  void on_bytes() {
    size_t end = request_.find("\r\n\r\n");
    if (end == std::string::npos) end = request_.find("\n\n");
    if (end == std::string::npos) {
      if (request_.size() > kMaxRequestBytes) return finish(Kind::kBadRequest);
      return read();
    }
    size_t line_end = request_.find_first_of("\r\n");
    std::string_view line(request_.data(), line_end);
    size_t sp1 = line.find(' ');
    size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
    if (sp1 == std::string_view::npos) return finish(Kind::kBadRequest);
    std::string_view method = line.substr(0, sp1);
    std::string_view target = line.substr(
        sp1 + 1, sp2 == std::string_view::npos ? std::string_view::npos : sp2 - sp1 - 1);
    size_t query = target.find('?');
    if (query != std::string_view::npos) target = target.substr(0, query);
    if (method != "GET" && method != "HEAD") return finish(Kind::kBadMethod);
    head_only_ = method == "HEAD";
    if (target == "/metrics") return finish(Kind::kMetrics);
    if (target == "/healthz") return finish(Kind::kHealthz);
    if (target == "/readyz") return finish(Kind::kReadyz);
    if (target == "/stats" || target == "/") return finish(Kind::kJson);
    finish(Kind::kNotFound);
  }

  void finish(Kind kind) {
    answered_ = true;
    timer_.cancel();
    respond(kind);
  }

  void respond(Kind kind) {
    if (kind == Kind::kNotFound || kind == Kind::kBadMethod || kind == Kind::kBadRequest) {
      const char* status = kind == Kind::kNotFound    ? "404 Not Found"
                           : kind == Kind::kBadMethod ? "405 Method Not Allowed"
                                                      : "400 Bad Request";
      write_http(status, "text/plain; charset=utf-8",
                 "dproxy stats: GET /metrics (Prometheus text), GET /stats (JSON), GET /healthz, "
                 "GET /readyz\n");
      return;
    }
    if (kind == Kind::kHealthz) {
      // Alive: the process runs its event loop and answers.
      write_http("200 OK", "text/plain; charset=utf-8", "ok\n");
      return;
    }
    collector_(socket_.get_executor(), [self = shared_from_this(), kind](const StatsSnapshot& snap,
                                                                         const ProcessInfo& info) {
      if (kind == Kind::kReadyz) {
        // Ready: every pool has at least one server that is not marked down.
        std::string not_ready;
        for (const auto& pool : snap.pools) {
          bool any_up = false;
          for (const auto& s : pool.servers) any_up = any_up || s.up;
          if (!any_up) not_ready += (not_ready.empty() ? "" : ", ") + pool.name;
        }
        if (not_ready.empty())
          self->write_http("200 OK", "text/plain; charset=utf-8", "ready\n");
        else
          self->write_http("503 Service Unavailable", "text/plain; charset=utf-8",
                           "not ready: no server up in pool " + not_ready + "\n");
      } else if (kind == Kind::kMetrics) {
        self->write_http("200 OK", "text/plain; version=0.0.4; charset=utf-8",
                         format_prometheus(snap, info));
      } else if (kind == Kind::kJson) {
        self->write_http("200 OK", "application/json", format_stats_json(snap, info));
      } else {
        self->out_ = format_stats_json(snap, info);
        self->write();
      }
    });
  }

  void write_http(const char* status, const char* type, const std::string& body) {
    out_ = std::string("HTTP/1.1 ") + status + "\r\nContent-Type: " + type +
           "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n";
    if (!head_only_) out_ += body;
    write();
  }

  void write() {
    asio::async_write(socket_, asio::buffer(out_),
                      [self = shared_from_this()](const asio::error_code&, size_t) {
                        asio::error_code ignored;
                        self->socket_.shutdown(asio::socket_base::shutdown_both, ignored);
                        self->socket_.close(ignored);
                      });
  }

  asio::ip::tcp::socket socket_;
  asio::steady_timer timer_;
  StatsCollector collector_;
  std::array<char, 2048> buf_{};
  std::string request_;
  std::string out_;
  bool answered_ = false;
  bool head_only_ = false;
};

}  // namespace

StatsServer::StatsServer(asio::io_context& io, StatsCollector collector)
    : io_(io), collector_(std::move(collector)), acceptor_(io) {}

StatsServer::~StatsServer() {
  close();
}

bool StatsServer::open(const ListenAddress& address, std::string& error) {
  address_ = address;
  asio::error_code ec;
  asio::ip::address ip = asio::ip::make_address(address.host, ec);
  asio::ip::tcp::endpoint endpoint(ip, address.port);
  if (!ec) acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    error = "stats.listen: cannot listen on " + address.to_string() + ": " + ec.message();
    asio::error_code ignored;
    acceptor_.close(ignored);
    return false;
  }
  accept_next();
  return true;
}

void StatsServer::log_listening() const {
  LOG_INFO("stats: listening on %s (twemproxy JSON; HTTP GET /metrics, /stats, /healthz, /readyz)",
           address_.to_string().c_str());
}

void StatsServer::close() {
  asio::error_code ignored;
  if (acceptor_.is_open()) acceptor_.close(ignored);
}

void StatsServer::accept_next() {
  acceptor_.async_accept([this](const asio::error_code& ec, asio::ip::tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
    if (!ec) std::make_shared<StatsConnection>(std::move(socket), collector_)->start();
    accept_next();
  });
}

}  // namespace dproxy::core
