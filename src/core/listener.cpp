#include "core/listener.h"

#include <sys/stat.h>
#include <unistd.h>

#include "core/backend/server_health.h"
#include "core/client_session.h"
#include "core/log.h"
#include "core/worker.h"

namespace dproxy::core {

Listener::Listener(asio::io_context& io, size_t pool_id, std::shared_ptr<const PoolConfig> pool,
                   PoolClients& clients, std::vector<std::unique_ptr<Worker>>& workers)
    : io_(io), pool_id_(pool_id), clients_(clients), workers_(workers), acceptor_(io) {
  set_config(std::move(pool));
  bound_ = pool_->listen;
}

void Listener::set_config(std::shared_ptr<const PoolConfig> pool) {
  pool_ = std::move(pool);
  const PoolConfig& p = *pool_;
  // A TLS listener's client expects a handshake: a plaintext error would only be a bad record to
  // it, so such a connection is closed without one.
  if (p.tls.enabled) {
    too_many_.clear();
    return;
  }
  too_many_ = p.protocol == Protocol::kRedis
                  ? "-ERR max number of clients reached (dproxy pool " + p.name +
                        " client_connections=" + std::to_string(p.client_connections) + ")\r\n"
                  : "SERVER_ERROR too many client connections (dproxy pool " + p.name +
                        " client_connections=" + std::to_string(p.client_connections) + ")\r\n";
}

Listener::~Listener() {
  close();
}

bool Listener::open(std::string& error) {
  const std::string where =
      "pools." + pool_->name + ".listen: cannot listen on " + pool_->listen.to_string() + ": ";
  asio::error_code ec;
  asio::generic::stream_protocol::endpoint endpoint;
  if (pool_->listen.is_unix) {
    struct stat st {};
    // A stale socket file from an earlier run would make bind fail; never remove anything else.
    if (::stat(pool_->listen.host.c_str(), &st) == 0 && S_ISSOCK(st.st_mode))
      ::unlink(pool_->listen.host.c_str());
    endpoint = asio::local::stream_protocol::endpoint(pool_->listen.host);
  } else {
    asio::ip::address addr = asio::ip::make_address(pool_->listen.host, ec);
    if (ec) {
      error = where + "\"" + pool_->listen.host + "\" is not an IP address";
      return false;
    }
    endpoint = asio::ip::tcp::endpoint(addr, pool_->listen.port);
  }
  protocol_ = endpoint.protocol();
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec && !pool_->listen.is_unix)
    acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_.bind(endpoint, ec);
  // nutcracker's listen string "/path 0666" sets the socket file's permissions.
  if (!ec && pool_->listen.is_unix && pool_->listen.mode != 0 &&
      ::chmod(pool_->listen.host.c_str(), static_cast<mode_t>(pool_->listen.mode)) != 0)
    ec = asio::error_code(errno, asio::system_category());
  if (!ec)
    acceptor_.listen(pool_->backlog != 0 ? static_cast<int>(pool_->backlog)
                                         : asio::socket_base::max_listen_connections,
                     ec);
  if (ec) {
    error = where + ec.message();
    asio::error_code ignored;
    acceptor_.close(ignored);
    return false;
  }
  unlink_on_close_ = pool_->listen.is_unix;
  LOG_INFO("pool %s: listening on %s (%s)", pool_->name.c_str(), pool_->listen.to_string().c_str(),
           pool_->protocol == Protocol::kMemcached ? "memcached" : "redis");
  return true;
}

void Listener::start() {
  started_ = true;
  accept_next();
}

void Listener::close() {
  if (!acceptor_.is_open()) return;
  asio::error_code ignored;
  acceptor_.close(ignored);
  if (unlink_on_close_) ::unlink(bound_.host.c_str());
}

void Listener::accept_next() {
  // NOTE: the socket is accepted on this (the main) thread's io_context and its descriptor is
  // handed to a worker, which registers it with its own io_context on its own thread. Workers
  // run their io_context without per-descriptor locking (Worker: ASIO_CONCURRENCY_HINT_UNSAFE_IO),
  // so no other thread may ever touch a socket of theirs.
  acceptor_.async_accept(
      [this](const asio::error_code& ec, asio::generic::stream_protocol::socket socket) {
        if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
        if (ec) {
          LOG_WARN("pool %s: accept failed: %s", pool_->name.c_str(), ec.message().c_str());
        } else if (pool_->client_connections != 0 &&
                   clients_.count.load() >= pool_->client_connections) {
          // Over the limit: tell the client why, then close (never blocks: one small write; a
          // TLS listener closes without a word).
          LOG_WARN("pool %s: refusing a client connection: client_connections=%u reached%s",
                   pool_->name.c_str(), pool_->client_connections,
                   too_many_.empty() ? " (TLS listener: closed without a reply)" : "");
          asio::error_code ignored;
          socket.non_blocking(true, ignored);
          if (!too_many_.empty()) socket.write_some(asio::buffer(too_many_), ignored);
          socket.shutdown(asio::socket_base::shutdown_both, ignored);
          socket.close(ignored);
        } else {
          asio::error_code rec;
          const int fd = socket.release(rec);
          if (rec) {
            LOG_WARN("pool %s: accept failed: %s", pool_->name.c_str(), rec.message().c_str());
          } else {
            Worker& worker = *workers_[next_worker_];
            next_worker_ = (next_worker_ + 1) % workers_.size();
            clients_.count.fetch_add(1);
            uint64_t id = next_id_++;
            asio::post(worker.io(), [&worker, pool = pool_id_, &clients = clients_, id,
                                     protocol = protocol_, fd] {
              asio::generic::stream_protocol::socket s(worker.io());
              asio::error_code aec;
              s.assign(protocol, fd, aec);
              if (aec) {
                // Not registered with the worker's reactor: the descriptor is still ours to close.
                LOG_WARN("client connection dropped: %s", aec.message().c_str());
                ::close(fd);
                clients.count.fetch_sub(1);
                return;
              }
              std::make_shared<ClientSession>(worker, pool, clients, std::move(s), id)->start();
            });
          }
        }
        accept_next();
      });
}

}  // namespace dproxy::core
