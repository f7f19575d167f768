// RedisFrontEnd: the commands dproxy answers itself (AUTH, PING, ECHO, QUIT, SELECT, HELLO,
// CLIENT SETNAME/GETNAME/ID/SETINFO, COMMAND, INFO). See redis_front_end.h.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include <chrono>

#include "core/backend/cluster_runtime.h"
#include "core/backend/pool_runtime.h"
#include "core/client_session.h"
#include "core/session/redis_front_end.h"
#include "core/session/redis_text.h"
#include "core/stats.h"
#include "core/worker.h"
#include "protocol/resp/command_reply3.h"
#include "protocol/resp/reply_writer.h"

namespace dproxy::core {

namespace resp = protocol::resp;
using protocol::Request;
using redis_text::append_one_line;
using redis_text::iequals;
using redis_text::valid_client_name;

namespace {
const auto kProcessStart = std::chrono::steady_clock::now();
}  // namespace

bool RedisFrontEnd::auth(std::string_view user, std::string_view password, bool password_only) {
  const std::string& expected = s_.pool().config().client_password;
  if (expected.empty()) {
    // As Redis 7 with no password: the default user is "nopass" and takes any password.
    if (iequals(user, "default") && !password_only) return true;
    if (password_only) {
      s_.redis_error(
          "ERR AUTH <password> called without any password configured for the default user. "
          "Are you sure your configuration is correct?");
    } else {
      s_.redis_error("WRONGPASS invalid username-password pair or user is disabled.");
    }
    return false;
  }
  if (!iequals(user, "default") || password != expected) {
    s_.redis_error("WRONGPASS invalid username-password pair or user is disabled.");
    return false;
  }
  authenticated_ = true;
  return true;
}

void RedisFrontEnd::local(const resp::CommandInfo& cmd, const Request& req) {
  const auto& args = req.args;
  std::string_view name = cmd.name;
  if (name == "ping") {
    if (args.size() > 2) {
      s_.redis_error("ERR wrong number of arguments for 'ping' command");
    } else if (args.size() == 2) {
      resp::append_bulk(s_.ready_slot("")->data, args[1]);
    } else {
      s_.ready_slot("+PONG\r\n");
    }
  } else if (name == "echo") {
    resp::append_bulk(s_.ready_slot("")->data, args[1]);
  } else if (name == "quit") {
    ReplySlot* slot = s_.ready_slot("+OK\r\n");
    slot->close_after = true;
    s_.stop_input_ = true;
  } else if (name == "auth") {
    bool ok = args.size() == 2   ? auth("default", args[1], true)
              : args.size() == 3 ? auth(args[1], args[2], false)
                                 : (s_.redis_error("ERR syntax error"), false);
    if (ok) s_.ready_slot("+OK\r\n");
  } else if (name == "hello") {
    hello(args);
  } else if (name == "select") {
    select(args[1]);
  } else if (name == "client|setname") {
    if (!valid_client_name(args[2])) {
      s_.redis_error("ERR Client names cannot contain spaces, newlines or special characters.");
      return;
    }
    client_name_.assign(args[2]);
    s_.ready_slot("+OK\r\n");
  } else if (name == "client|getname") {
    ReplySlot* slot = s_.ready_slot("");
    if (client_name_.empty()) {
      resp::append_null(slot->data, s_.resp3_);
    } else {
      resp::append_bulk(slot->data, client_name_);
    }
  } else if (name == "client|id") {
    resp::append_integer(s_.ready_slot("")->data, static_cast<int64_t>(s_.id_));
  } else if (name == "info") {
    info_reply(req);
  } else if (name == "command" || name.starts_with("command|")) {
    command_reply(req);
  } else {
    ReplySlot* slot = s_.ready_slot("-ERR dproxy: ");
    resp::append_upper_name(slot->data, name);
    slot->data.append(" is not supported\r\n");
  }
}

void RedisFrontEnd::select(std::string_view arg) {
  int64_t db = 0;
  if (!resp::parse_int64(arg, db)) {
    s_.redis_error("ERR value is not an integer or out of range");
    return;
  }
  PoolRuntime& pool = s_.pool();
  if (pool.cluster() != nullptr) {
    if (db == 0) {
      s_.ready_slot("+OK\r\n");
    } else {
      s_.redis_error("ERR SELECT is not allowed in cluster mode");  // Redis Cluster's reply
    }
    return;
  }
  if (db < 0 || db > INT32_MAX) {
    s_.redis_error("ERR DB index is out of range");
    return;
  }
  if (db == pool.config().db) {
    s_.db_ = -1;  // the pool's own connections
    s_.ready_slot("+OK\r\n");
    return;
  }
  s_.select_db(static_cast<int32_t>(db));
}

void RedisFrontEnd::client_setinfo(const Request& req) {
  const auto& args = req.args;
  if (args.size() != 4) {
    s_.redis_error("ERR wrong number of arguments for 'client|setinfo' command");
    return;
  }
  if (!iequals(args[2], "lib-name") && !iequals(args[2], "lib-ver")) {
    ReplySlot* slot = s_.ready_slot("-ERR Unrecognized option '");
    append_one_line(slot->data, args[2].substr(0, 128));
    slot->data.append("'\r\n");
    return;
  }
  for (char c : args[3]) {
    if (c < '!' || c > '~') {
      ReplySlot* slot = s_.ready_slot("-ERR ");
      append_one_line(slot->data, args[2].substr(0, 128));
      slot->data.append(" cannot contain spaces, newlines or special characters.\r\n");
      return;
    }
  }
  (redis_text::iequals(args[2], "lib-name") ? lib_name_ : lib_ver_).assign(args[3]);
  s_.ready_slot("+OK\r\n");
}

void RedisFrontEnd::reset() {
  // Redis's RESET: no transaction, no WATCH, no subscription, database 0 (the pool's), no
  // name, and authenticated again only if the pool needs no password.
  txn_.reset();
  s_.dedicated_.drop_watch();
  pubsub_.reset();
  s_.db_ = -1;
  s_.resp3_ = false;  // RESP2 again
  client_name_.clear();
  authenticated_ = s_.pool().config().client_password.empty();
  reply_off_ = skip_next_ = suppress_current_ = false;  // CLIENT REPLY ON
  s_.ready_slot("+RESET\r\n");
}

void RedisFrontEnd::client_reply(const Request& req) {
  // CLIENT REPLY ON|OFF|SKIP, as Redis: OFF and SKIP are not answered, ON is.
  const std::string_view mode = req.args.size() == 3 ? req.args[2] : std::string_view();
  if (iequals(mode, "on")) {
    reply_off_ = skip_next_ = suppress_current_ = false;
    s_.ready_slot("+OK\r\n");
  } else if (iequals(mode, "off")) {
    reply_off_ = true;
  } else if (iequals(mode, "skip")) {
    if (!reply_off_) skip_next_ = true;
  } else {
    s_.redis_error("ERR syntax error");
  }
}

void RedisFrontEnd::client_info() {
  // One line in CLIENT LIST's format, for this client as dproxy sees it.
  std::string line = "id=" + std::to_string(s_.id_);
  asio::error_code ec;
  const auto peer = s_.socket_.remote_endpoint(ec);
  std::string addr = "?";
  if (!ec && peer.protocol().family() != AF_UNIX) {
    char host[64] = {0};
    const auto* sa = reinterpret_cast<const sockaddr*>(peer.data());
    if (sa->sa_family == AF_INET) {
      const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
      ::inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
      addr = std::string(host) + ":" + std::to_string(ntohs(in->sin_port));
    } else if (sa->sa_family == AF_INET6) {
      const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
      ::inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
      addr = std::string(host) + ":" + std::to_string(ntohs(in6->sin6_port));
    }
  }
  line += " addr=" + addr + " name=" + client_name_ +
          " db=" + std::to_string(s_.db_ < 0 ? s_.pool().config().db : s_.db_) +
          " sub=" + std::to_string(pubsub_.channel_count()) +
          " psub=" + std::to_string(pubsub_.pattern_count()) +
          " multi=" + std::to_string(txn_.state() == RedisTransaction::State::kQueuing ? 0 : -1) +
          " resp=" + (s_.resp3_ ? "3" : "2") + " lib-name=" + lib_name_ + " lib-ver=" + lib_ver_ +
          "\n";
  resp::append_verbatim_text(s_.ready_slot("")->data, line, s_.resp3_);
}

void RedisFrontEnd::hello(std::span<const std::string_view> args) {
  size_t i = 1;
  int protocol = s_.resp3_ ? 3 : 2;  // HELLO without a version: the current one
  if (args.size() > 1) {
    int64_t version = 0;
    if (!resp::parse_int64(args[1], version)) {
      s_.redis_error("ERR Protocol version is not an integer or out of range");
      return;
    }
    if (version != 2 && version != 3) {
      s_.redis_error("NOPROTO unsupported protocol version");
      return;
    }
    protocol = static_cast<int>(version);
    i = 2;
  }
  std::string_view new_name;
  bool set_name = false;
  for (; i < args.size(); ++i) {
    if (iequals(args[i], "auth") && i + 2 < args.size()) {
      if (!auth(args[i + 1], args[i + 2], false)) return;
      i += 2;
    } else if (iequals(args[i], "setname") && i + 1 < args.size()) {
      new_name = args[++i];
      if (!valid_client_name(new_name)) {
        s_.redis_error("ERR Client names cannot contain spaces, newlines or special characters.");
        return;
      }
      set_name = true;
    } else {
      ReplySlot* slot = s_.ready_slot("-ERR Syntax error in HELLO option '");
      append_one_line(slot->data, args[i].substr(0, 128));
      slot->data.append("'\r\n");
      return;
    }
  }
  if (!authenticated_) {
    // Redis 7.0's wording.
    s_.redis_error(
        "NOAUTH HELLO must be called with the client already authenticated, otherwise the "
        "HELLO AUTH <user> <pass> option can be used to authenticate the client and select "
        "the RESP protocol version at the same time");
    return;
  }
  if (set_name) client_name_.assign(new_name);
  // From here on the session's replies, and the backend connections its requests use, speak
  // this protocol (replies already in flight keep the one they were asked in, as in Redis).
  s_.resp3_ = protocol == 3;
  s_.dedicated_.protocol_changed(s_.resp3_);
  // What a client learns of "the server" (see README, RESP3): Redis's fields, with the pool's
  // lowest backend version, dproxy's client id, and the mode a client must use (a
  // redis_cluster pool is one standalone server to its clients).
  std::string& out = s_.ready_slot("")->data;
  resp::append_map_header(out, 7, s_.resp3_);
  resp::append_bulk(out, "server");
  resp::append_bulk(out, "redis");
  resp::append_bulk(out, "version");
  resp::append_bulk(out, redis_version_text());
  resp::append_bulk(out, "proto");
  resp::append_integer(out, protocol);
  resp::append_bulk(out, "id");
  resp::append_integer(out, static_cast<int64_t>(s_.id_));
  resp::append_bulk(out, "mode");
  resp::append_bulk(out, "standalone");
  resp::append_bulk(out, "role");
  resp::append_bulk(out, "master");
  resp::append_bulk(out, "modules");
  resp::append_array_header(out, 0);
}

std::string RedisFrontEnd::redis_version_text() {
  // The pool's lowest backend version (from each connection's INFO server), else the command
  // table's.
  const uint32_t v = s_.pool().health().lowest_redis_version();
  if (v == 0) return std::string(resp::redis_version());
  return std::to_string(v >> 16) + "." + std::to_string(v >> 8 & 0xff) + "." +
         std::to_string(v & 0xff);
}

void RedisFrontEnd::command_reply(const Request& req) {
  const auto& args = req.args;
  std::string_view sub = args.size() > 1 ? args[1] : std::string_view();
  auto commands = resp::all_commands();
  // The table's entries are RESP2; a RESP3 client gets them re-encoded (command_reply3.h).
  const bool resp3 = s_.resp3_;
  const auto append_info = [resp3](std::string& out, const resp::CommandInfo& c) {
    if (!resp3 || !resp::append_command_info_resp3(out, c.info_reply)) out.append(c.info_reply);
  };
  const auto append_docs = [resp3](std::string& out, const resp::CommandInfo& c) {
    if (!resp3 || !resp::append_command_docs_resp3(out, c.docs_reply)) out.append(c.docs_reply);
  };
  if (args.size() == 1) {
    std::string& out = s_.ready_slot("")->data;
    resp::append_array_header(out, commands.size());
    for (const auto& c : commands) append_info(out, c);
  } else if (iequals(sub, "count")) {
    resp::append_integer(s_.ready_slot("")->data, static_cast<int64_t>(commands.size()));
  } else if (iequals(sub, "list")) {
    auto subcommands = resp::all_subcommands();
    std::string& out = s_.ready_slot("")->data;
    resp::append_array_header(out, commands.size() + subcommands.size());
    for (const auto& c : commands) resp::append_bulk(out, c.name);
    for (const auto& c : subcommands) resp::append_bulk(out, c.name);
  } else if (iequals(sub, "info") || iequals(sub, "docs")) {
    const bool docs = iequals(sub, "docs");
    std::string& out = s_.ready_slot("")->data;
    if (args.size() == 2) {
      if (docs) {
        resp::append_map_header(out, commands.size(), resp3);
      } else {
        resp::append_array_header(out, commands.size());
      }
      for (const auto& c : commands) docs ? append_docs(out, c) : append_info(out, c);
      return;
    }
    size_t found = 0;
    std::string body;
    for (size_t i = 2; i < args.size(); ++i) {
      const resp::CommandInfo* c = resp::find_command_by_full_name(args[i]);
      if (c != nullptr) {
        docs ? append_docs(body, *c) : append_info(body, *c);
        ++found;
      } else if (!docs) {
        resp::append_null(body, resp3);  // what Redis 7.0 answers for an unknown name
        ++found;
      }
    }
    if (docs) {
      resp::append_map_header(out, found, resp3);
    } else {
      resp::append_array_header(out, found);
    }
    out.append(body);
  } else if (iequals(sub, "getkeys") || iequals(sub, "getkeysandflags")) {
    if (args.size() < 3) {
      s_.redis_error("ERR wrong number of arguments for 'command|getkeys' command");
      return;
    }
    command_getkeys_reply(std::span<const std::string_view>(args.data() + 2, args.size() - 2));
  } else {
    ReplySlot* slot = s_.ready_slot("-ERR unknown subcommand '");
    append_one_line(slot->data, sub.substr(0, 128));
    slot->data.append("'. Try COMMAND HELP.\r\n");
  }
}

// COMMAND GETKEYS <command> <args...>: the keys find_keys sees, with Redis's errors.
void RedisFrontEnd::command_getkeys_reply(std::span<const std::string_view> target) {
  const resp::CommandInfo* c = resp::find_command(target[0]);
  if (c != nullptr && c->has_subcommands && target.size() > 1)
    c = resp::find_subcommand(*c, target[1]);
  if (c == nullptr) {
    s_.redis_error("ERR Invalid command specified");
    return;
  }
  std::vector<uint32_t> idx;
  const resp::KeyStatus status = resp::find_keys(*c, target, idx);
  if (status != resp::KeyStatus::kOk && status != resp::KeyStatus::kBlockOption) {
    s_.redis_error("ERR Invalid number of arguments specified for command");
    return;
  }
  if (idx.empty()) {
    s_.redis_error("ERR The command has no key arguments");
    return;
  }
  std::string& out = s_.ready_slot("")->data;
  resp::append_array_header(out, idx.size());
  for (uint32_t i : idx) resp::append_bulk(out, target[i]);
}

void RedisFrontEnd::info_reply(const Request& req) {
  const PoolConfig& config = s_.pool().config();
  auto uptime = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() -
                                                                 kProcessStart)
                    .count();
  // Sections: "INFO" / default / all / everything: every one; else those named.
  bool want_server = req.args.size() < 2, want_clients = want_server, want_dproxy = want_server;
  for (size_t i = 1; i < req.args.size(); ++i) {
    const std::string_view a = req.args[i];
    const bool every = iequals(a, "all") || iequals(a, "everything") || iequals(a, "default");
    want_server = want_server || every || iequals(a, "server");
    want_clients = want_clients || every || iequals(a, "clients");
    want_dproxy = want_dproxy || every || iequals(a, "dproxy");
  }
  std::string text;
  if (want_server) {
    // What health checks and client libraries read (Sidekiq: redis_version): the pool's
    // lowest backend version (from each connection's INFO server), else the command table's.
    text += "# Server\r\nredis_version:" + redis_version_text();
    const std::string listen = config.listen.to_string();
    const size_t colon = listen.rfind(':');
    text +=
        "\r\nredis_mode:standalone\r\nproxy:dproxy\r\nprocess_id:" + std::to_string(::getpid()) +
        "\r\ntcp_port:" +
        (colon == std::string::npos ? std::string("0") : listen.substr(colon + 1)) +
        "\r\nuptime_in_seconds:" + std::to_string(uptime) +
        "\r\nuptime_in_days:" + std::to_string(uptime / 86400) + "\r\n";
  }
  if (want_clients) {
    text += "# Clients\r\nconnected_clients:" + std::to_string(s_.clients_.count.load()) + "\r\n";
  }
  if (!want_dproxy) {
    resp::append_verbatim_text(s_.ready_slot("")->data, text, s_.resp3_);
    return;
  }
  text += "# dproxy\r\ndproxy_version:" DPROXY_VERSION "\r\n";
  text += "uptime_in_seconds:" + std::to_string(uptime) + "\r\n";
  text += "pool:" + config.name + "\r\n";
  text += "pool_listen:" + config.listen.to_string() + "\r\n";
  text += "pool_servers:" + std::to_string(config.servers.size()) + "\r\n";
  for (size_t i = 0; i < config.servers.size(); ++i) {
    const auto& s = config.servers[i];
    text += "server" + std::to_string(i) + ":address=" + s.address() +
            ",weight=" + std::to_string(s.weight) + ",name=" + s.name + "\r\n";
  }
  if (s_.pool().cluster() != nullptr) s_.cluster_.append_info(text);
  text += "redis_commands_table:" + std::string(resp::redis_version()) + "\r\n";
  // The traffic figures are summed over every worker thread: the reply waits for them.
  ReplySlot* slot = s_.new_slot(ReplySlot::Kind::kReady);
  s_.worker_.collect_stats(s_.socket_.get_executor(),
                           [self = s_.shared_from_this(), slot, text = std::move(text),
                            resp3 = s_.resp3_](const StatsSnapshot& snap, const ProcessInfo& info) {
                             std::string body =
                                 text + format_redis_info(snap, info, self->slot_.name);
                             slot->data.clear();
                             resp::append_verbatim_text(slot->data, body, resp3);
                             slot->done = true;
                             self->drain();
                           });
}

}  // namespace dproxy::core
