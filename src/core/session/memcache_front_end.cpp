// McFrontEnd: memcached ASCII clients. See memcache_front_end.h.

#include "core/session/memcache_front_end.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstdio>

#include "core/backend/pool_runtime.h"
#include "core/client_session.h"
#include "core/log.h"
#include "core/session/mc_credentials.h"
#include "core/stats.h"
#include "core/worker.h"
#include "protocol/memcache/meta.h"

namespace dproxy::core {

namespace mc = protocol::memcache;
using protocol::ParseResult;
using protocol::ParseStatus;
using protocol::Request;

McFrontEnd::McFrontEnd(ClientSession& session, const PoolConfig& config, size_t max_line_bytes)
    : s_(session),
      parser_(mc::RequestLimits{250, config.max_value_bytes, max_line_bytes}),
      authenticated_(config.sasl_users.empty()) {}

// memcached's own version line. libmemcached (memcping, memcstat, ...) refuses a major version 0,
// so dproxy answers the memcached protocol level it speaks; its own version is in `stats`.
constexpr std::string_view kVersionReply = "VERSION 1.6.0\r\n";

ParseResult McFrontEnd::parse(std::string_view in, Request& req) {
  if (!started_ && !in.empty()) {
    started_ = true;
    // Bytes that are no memcached ASCII: a TLS record (ClientHello) would wait for a "\n"
    // that may never come: close at once. (A binary request, 0x80, chose the binary front end.)
    const auto first = static_cast<unsigned char>(in[0]);
    if (first == 0x16) {
      req.reset();
      close_logged_ = true;
      log_close("a TLS handshake on a plain memcached port");
      return ParseResult::Error(mc::errors::kCloseHttp, in.size(), 0, true);
    }
  }
  return parser_.parse(in, req);
}

void McFrontEnd::log_close(const char* why) {
  char peer[INET6_ADDRSTRLEN + 16] = "?";
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (::getpeername(s_.socket_.native_handle(), reinterpret_cast<sockaddr*>(&ss), &len) == 0) {
    char host[INET6_ADDRSTRLEN] = "";
    if (ss.ss_family == AF_INET) {
      const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
      ::inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
      std::snprintf(peer, sizeof(peer), "%s:%u", host, ntohs(a->sin_port));
    } else if (ss.ss_family == AF_INET6) {
      const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
      ::inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
      std::snprintf(peer, sizeof(peer), "[%s]:%u", host, ntohs(a->sin6_port));
    } else if (ss.ss_family == AF_UNIX) {
      std::snprintf(peer, sizeof(peer), "unix socket");
    }
  }
  LOG_WARN("pool %s: client %s: closed: %s", s_.slot_.name.c_str(), peer, why);
}

ReplySlot* McFrontEnd::refuse(const ParseResult& r, const Request& req) {
  // A close without a reply: an HTTP request line (memcached closes too), or the bytes parse()
  // found to be no memcached ASCII (logged there).
  if (r.close && r.error.empty() && !close_logged_) log_close("an HTTP request line");
  if (!authenticated_) [[unlikely]]
    return refuse_unauthenticated(r, req);
  refused_store(r.error, req);
  // A request that asked for no reply gets none (an empty slot still closes in order).
  return s_.ready_slot(req.has(protocol::kFlagNoreply) ? std::string_view() : r.error);
}

void McFrontEnd::dispatch(const Request& req) {
  if (!authenticated_) [[unlikely]] {
    authenticate(req);
    return;
  }
  s_.cur_command_ = req.command;
  dispatch_request(req);
}

void McFrontEnd::authenticate(const Request& req) {
  if (static_cast<mc::Command>(req.command) != mc::Command::kSet) {
    s_.ready_slot("CLIENT_ERROR unauthenticated\r\n");
    return;
  }
  // The data block: after the command line, before its CRLF.
  const size_t line_end = req.frame.find('\n') + 1;
  std::string_view data = req.frame.substr(line_end, req.frame.size() - line_end - 2);
  const size_t space = data.find(' ');
  if (space == std::string_view::npos) {
    s_.ready_slot("CLIENT_ERROR bad authentication token format\r\n");
    return;
  }
  if (!mc_credentials_ok(s_.pool().config().sasl_users, data.substr(0, space),
                         data.substr(space + 1))) {
    LOG_WARN("pool %s: client %llu: ASCII authentication failed", s_.slot_.name.c_str(),
             static_cast<unsigned long long>(s_.id_));
    s_.ready_slot("CLIENT_ERROR authentication failure\r\n");
    return;
  }
  authenticated_ = true;
  s_.ready_slot("STORED\r\n");
}

ReplySlot* McFrontEnd::refuse_unauthenticated(const ParseResult& r, const Request& req) {
  // memcached -Y answers any line it cannot take as the authenticating `set` alike, whatever
  // else is wrong with it (noreply included); a data block without its CRLF is the exception.
  // Nothing reaches a backend (a `set` refused for its size deletes nothing).
  if (r.error.empty()) return s_.ready_slot("");  // closing (HTTP line, TLS bytes): no answer
  if (static_cast<mc::Command>(req.command) == mc::Command::kSet &&
      r.error == mc::errors::kBadDataChunk)
    return s_.ready_slot("CLIENT_ERROR bad command line termination\r\n");
  return s_.ready_slot("CLIENT_ERROR unauthenticated\r\n");
}

bool McFrontEnd::is_read(const Request& req) const {
  auto cmd = static_cast<mc::Command>(req.command);
  return cmd == mc::Command::kGet || cmd == mc::Command::kGets ||
         ((cmd == mc::Command::kMetaGet || cmd == mc::Command::kMetaDebug) &&
          req.has(protocol::kFlagRead));
}

std::string_view McFrontEnd::request_too_large_reply() const {
  return "SERVER_ERROR request too large\r\n";
}

inline void McFrontEnd::dispatch_request(const Request& req) {
  auto cmd = static_cast<mc::Command>(req.command);
  if (cmd == mc::Command::kStats) {
    stats_reply();
    return;
  }
  if (req.has(protocol::kFlagRejected) || cmd == mc::Command::kUnsupported) {
    ReplySlot* slot = s_.ready_slot("CLIENT_ERROR command '");
    slot->data.append(req.name);
    slot->data.append("' is not supported by dproxy\r\n");
    return;
  }
  switch (cmd) {
    case mc::Command::kVersion:
      s_.ready_slot(kVersionReply);
      return;
    case mc::Command::kVerbosity:
      if (!req.has(protocol::kFlagNoreply)) s_.ready_slot("OK\r\n");
      return;
    case mc::Command::kMetaNoop:
      // The end of a quiet pipeline: every request before it has its reply (or its silence)
      // in an earlier slot, so "MN" follows them all.
      s_.ready_slot("MN\r\n");
      return;
    case mc::Command::kQuit: {
      ReplySlot* slot = s_.ready_slot("");
      slot->close_after = true;
      s_.stop_input_ = true;
      return;
    }
    default:
      break;
  }
  s_.execute_memcache(req);
}

void McFrontEnd::refused_store(std::string_view error, const Request& req) {
  // memcached unlinks the old item when it refuses a `set` for its size (only `set`: the other
  // storage commands leave it; but ms, whatever its mode), so a later get cannot return the
  // value the client replaced.
  const auto cmd = static_cast<mc::Command>(req.command);
  if (error != mc::errors::kTooLarge || req.keys.empty() ||
      (cmd != mc::Command::kSet && cmd != mc::Command::kMetaSet))
    return;
  if (cmd == mc::Command::kMetaSet && req.keys[0].data() == req.decoded_key.data()) {
    // A base64 key (flag b), sent the same way.
    delete_scratch_.assign("md ");
    mc::meta::append_base64(delete_scratch_, req.keys[0]);
    delete_scratch_.append(" b\r\n");
  } else if (cmd == mc::Command::kMetaSet) {
    delete_scratch_.assign("md ");
    delete_scratch_.append(req.keys[0]);
    delete_scratch_.append("\r\n");
  } else {
    delete_scratch_.assign("delete ");
    delete_scratch_.append(req.keys[0]);
    delete_scratch_.append("\r\n");
  }
  protocol::ParseResult r = parser_.parse(delete_scratch_, delete_req_);
  if (r.status != ParseStatus::kOk) return;
  // Its reply is dropped; the refusal's own reply (or silence) follows it in order.
  delete_req_.flags |= protocol::kFlagNoreply;
  s_.cur_command_ = delete_req_.command;
  dispatch_request(delete_req_);
  s_.cur_command_ = ReplySlot::kNoCommand;
}

void McFrontEnd::stats_reply() {
  fill_stats(s_, s_.new_slot(ReplySlot::Kind::kReady));
}

void McFrontEnd::fill_stats(ClientSession& session, ReplySlot* slot) {
  // The figures are summed over every worker thread: the reply waits for them.
  session.worker_.collect_stats(session.socket_.get_executor(),
                                [self = session.shared_from_this(), slot](const StatsSnapshot& snap,
                                                                          const ProcessInfo& info) {
                                  slot->data = format_memcached_stats(snap, info, self->slot_.name);
                                  slot->data.append("END\r\n");
                                  slot->done = true;
                                  self->drain();
                                });
}

}  // namespace dproxy::core
