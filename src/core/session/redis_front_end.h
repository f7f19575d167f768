#pragma once
// The Redis front end (RESP2, and RESP3 after HELLO 3): parsing, the command table lookup, AUTH,
// commands dproxy answers itself (PING, ECHO, HELLO, COMMAND, INFO, CLIENT ...), refusals (and a
// refused transaction), and the hand-off of everything else to the session's execution.

#include <span>
#include <string>
#include <string_view>

#include "core/config.h"
#include "core/session/front_end.h"
#include "core/session/redis_pubsub.h"
#include "core/session/redis_transaction.h"
#include "protocol/resp/command_table.h"
#include "protocol/resp/request_parser.h"

namespace dproxy::core {

class ClientSession;

class RedisFrontEnd final : public FrontEnd {
 public:
  RedisFrontEnd(ClientSession& session, const PoolConfig& config);

  protocol::ParseResult parse(std::string_view in, protocol::Request& req) override;
  ReplySlot* refuse(const protocol::ParseResult& r, const protocol::Request& req) override;
  void dispatch(const protocol::Request& req) override;
  bool is_read(const protocol::Request& req) const override;
  bool refusal_waits_for_reads() const override {
    // The RESP parser remembers the discard of a refused command: it cannot be parsed again.
    return false;
  }
  std::string_view request_too_large_reply() const override;
  void on_closed() override { pubsub_.release(); }
  bool check_subscriptions() override { return pubsub_.check_placement(); }
  size_t backend_buffer_bytes() const override { return pubsub_.buffer_bytes(); }

 private:
  // Looks the command up, checks AUTH, a refused transaction and the keys, then answers it or
  // hands it to the session.
  void dispatch_command(const protocol::Request& req);
  // The command (or subcommand) of `req`; nullptr when unknown (the error reply is queued).
  const protocol::resp::CommandInfo* lookup(const protocol::Request& req);
  [[gnu::cold]] void unknown_command(const protocol::Request& req);
  [[gnu::cold]] void unknown_subcommand(const protocol::resp::CommandInfo& cmd,
                                        const protocol::Request& req);
  // Finds the key arguments (into the session's key_idx_); false when malformed (error queued).
  bool keys(const protocol::resp::CommandInfo& cmd, const protocol::Request& req);
  [[gnu::cold]] void key_error(const protocol::resp::CommandInfo& cmd, const protocol::Request& req,
                               protocol::resp::KeyStatus status);
  // A command of the table's kRejected class: MULTI starts a transaction (refused in replicated
  // and fanout pools), EXEC / DISCARD without MULTI get Redis's errors; anything else is never
  // forwarded: the error names the reason.
  void reject(const protocol::resp::CommandInfo& cmd, const protocol::Request& req);
  // Sharded and redis_cluster pools: what the table refuses but such a pool runs (MULTI, WATCH,
  // blocking commands, pub/sub, MOVE, SWAPDB). False when `cmd` is none of them.
  bool one_server_command(const protocol::resp::CommandInfo& cmd, const protocol::Request& req,
                          bool sharded);
  // A refused command that a pool of one server forwards (see redis_front_end.cpp).
  static bool transparent(const protocol::resp::CommandInfo& cmd);
  // Any command while a transaction is open (queued, or refused).
  void transaction_command(const protocol::resp::CommandInfo& cmd, const protocol::Request& req);
  // Every command after a refused MULTI up to EXEC / DISCARD: answered as Redis answers a
  // transaction it discards, never forwarded.
  void refused_transaction(const protocol::resp::CommandInfo& cmd);
  // Subscribed mode (RESP2 only: a RESP3 client runs any command while subscribed, its
  // messages arriving as pushes between replies): only the subscription commands, PING, QUIT.
  void subscribed_command(const protocol::resp::CommandInfo& cmd, const protocol::Request& req);
  // PUBLISH / SPUBLISH: to where the channel lives (as a key: see redis_pubsub.h).
  void publish(const protocol::resp::CommandInfo& cmd, const protocol::Request& req);
  // SELECT n: checked by a server, then this session's requests go to database n.
  void select(std::string_view db);
  void local(const protocol::resp::CommandInfo& cmd, const protocol::Request& req);
  // HELLO [2|3] [AUTH user pass] [SETNAME name]: HELLO 3 switches the session to RESP3 (its
  // replies, and the backend connections it uses), HELLO 2 back; other versions -NOPROTO.
  void hello(std::span<const std::string_view> args);
  // The version HELLO and INFO report: the pool's lowest backend version.
  std::string redis_version_text();
  void command_reply(const protocol::Request& req);
  void command_getkeys_reply(std::span<const std::string_view> target);
  // RESET: the session back to a new connection's state ("+RESET").
  void reset();
  // CLIENT REPLY ON|OFF|SKIP: the replies of later commands dropped (or not).
  void client_reply(const protocol::Request& req);
  // CLIENT INFO: this client, in CLIENT LIST's format.
  void client_info();
  // CLIENT SETINFO LIB-NAME|LIB-VER value (Redis 7.2; not in the 7.0 command table).
  void client_setinfo(const protocol::Request& req);
  void info_reply(const protocol::Request& req);
  // AUTH check against the pool's client_password; on failure queues the error reply.
  // `password_only`: the one-argument form (AUTH <password>).
  bool auth(std::string_view user, std::string_view password, bool password_only);

  ClientSession& s_;
  protocol::resp::RequestParser parser_;
  bool authenticated_ = false;
  RedisTransaction txn_;
  RedisPubSub pubsub_;
  std::string client_name_;
  std::string lib_name_;  // CLIENT SETINFO
  // CLIENT REPLY: OFF drops every reply, SKIP the next command's; suppress_current_: the
  // command being dispatched has its reply dropped.
  bool reply_off_ = false;
  bool skip_next_ = false;
  bool suppress_current_ = false;
  std::string lib_ver_;
  std::string last_command_name_;  // the name of the last command looked up, as sent
  const protocol::resp::CommandInfo* last_command_ = nullptr;
};

}  // namespace dproxy::core
