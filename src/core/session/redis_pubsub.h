#pragma once
// Redis pub/sub for one client: SUBSCRIBE / PSUBSCRIBE / SSUBSCRIBE and their UNSUBSCRIBEs, on
// subscriber connections of the client's own (one per server it listens on), with the
// confirmations and counts one Redis would give, and messages relayed as they arrive.
//
// Placement: a channel lives on the server its name hashes to (hash tags apply, like a key), so
// PUBLISH and SUBSCRIBE of one channel meet there; a pattern listens on every server. In
// redis_cluster pools a channel (and a shard channel) goes to its hash slot's master and a
// pattern to one master (the cluster bus carries PUBLISH to every node).
//
// RESP3 clients: confirmations and messages are pushes ('>'), queued after the replies already
// due, never inside one; the subscriber connections themselves speak RESP2 (a message frame is
// the same bytes but for its type byte), so a HELLO 2 / 3 while subscribed changes nothing there.

#include <cstdint>
#include <deque>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/reply_sink.h"

namespace dproxy::core {

class ClientSession;
class ServerConnection;
struct PoolConfig;
struct ReplySlot;

class RedisPubSub final : public PushSink {
 public:
  enum class Kind : uint8_t {
    kSubscribe,
    kUnsubscribe,
    kPsubscribe,
    kPunsubscribe,
    kSsubscribe,
    kSunsubscribe
  };
  // A subscriber that does not read its messages is disconnected once this many reply bytes
  // wait for it (Redis's default pubsub client-output-buffer-limit, hard part).
  static constexpr size_t kOutputLimit = 32 << 20;

  explicit RedisPubSub(ClientSession& session) : s_(session) {}
  ~RedisPubSub();
  RedisPubSub(const RedisPubSub&) = delete;
  RedisPubSub& operator=(const RedisPubSub&) = delete;

  // The command name is one of the six (lower case): its Kind, or false.
  static bool kind_of(std::string_view name, Kind& kind);
  // Subscribed mode (in RESP2 only the six, PING, QUIT and RESET are allowed).
  bool subscribed() const {
    return !channels_.empty() || !patterns_.empty() || !shard_channels_.empty();
  }
  // One of the six with its arguments (names; may be empty for the UNSUBSCRIBEs).
  void command(Kind kind, std::span<const std::string_view> names);
  // The client went away: the subscriber connections are closed.
  void release();
  // RESET: every subscription dropped (the subscriber connections closed); confirmations still
  // awaited are sent as they are.
  void reset();
  size_t channel_count() const { return channels_.size() + shard_channels_.size(); }
  size_t pattern_count() const { return patterns_.size(); }
  // Called every 500 ms while there are subscriber connections (Worker::watch_subscriber):
  // false once there are none, or when the channels' placement moved under them (a reload that
  // changed the servers, a server ejected or back with auto_eject_hosts; not in redis_cluster
  // pools, whose nodes carry every PUBLISH): a subscribed client is then closed (its library
  // reconnects and subscribes again, where the channels now live).
  bool check_placement();
  // Buffer memory of the subscriber connections (memory stats).
  size_t buffer_bytes() const;

  void on_push(uint32_t id, std::string_view frame) override;
  void on_push_lost(uint32_t id, std::string_view why) override;

 private:
  struct Expect {
    ReplySlot* slot;
    uint32_t frames;  // confirmations still to come for it from this connection
    Kind kind;        // of the command sent: its confirmations are of this kind
    // redis_cluster pools: the names sent (re-sent after a MOVED / ASK), how often this
    // command was redirected, and whether an ASKING's +OK comes first.
    std::vector<std::string> names;
    uint8_t redirects = 0;
    bool asking = false;
  };
  struct Sub {
    uint32_t where;  // server index; redis_cluster: node index
    std::unique_ptr<ServerConnection> conn;
    std::deque<Expect> expects;
  };
  // The subscriber connection to `where`, made on first use (the caller checked the pool's
  // max_dedicated_connections).
  Sub* sub(uint32_t where);
  // Where a channel (or shard channel) lives.
  uint32_t channel_place(std::string_view channel);
  // Sends "<kind> names..." on `where`'s subscriber connection; `slot` completes once its
  // confirmations are in.
  void send(uint32_t where, Kind kind, std::span<const std::string_view> names, ReplySlot* slot,
            uint8_t redirects = 0, bool asking = false);
  // An error frame on subscriber connection `id`: the answer to its oldest command. A MOVED /
  // ASK (redis_cluster: SSUBSCRIBE to a node whose slot moved) sends it again where it points;
  // another error, or too many redirections, becomes the command's reply.
  void on_error(uint32_t id, std::string_view frame);
  size_t count(Kind kind) const;
  // An sunsubscribe no command asked for arrived: the client is closed (see the .cpp).
  void shard_channels_moved();

  ClientSession& s_;
  std::vector<Sub> subs_;
  // The placement the subscriber connections were made under (see check_placement).
  std::shared_ptr<const PoolConfig> placed_config_;
  uint64_t placed_generation_ = 0;
  bool watched_ = false;  // in the worker's list of subscribers to check
  bool placed_check();
  std::set<std::string, std::less<>> channels_;
  std::set<std::string, std::less<>> patterns_;
  std::set<std::string, std::less<>> shard_channels_;
  std::vector<std::string_view> scratch_;
  std::vector<std::string> names_scratch_;
};

}  // namespace dproxy::core
