// RedisPubSub: a client's subscriptions. See redis_pubsub.h.

#include "core/session/redis_pubsub.h"

#include "core/backend/cluster_runtime.h"
#include "core/backend/pool_runtime.h"
#include "core/backend/server_connection.h"
#include "core/client_session.h"
#include "core/log.h"
#include "core/reload_diff.h"
#include "core/worker.h"
#include "protocol/resp/reply_writer.h"
#include "routing/cluster_slots.h"

namespace dproxy::core {

namespace resp = protocol::resp;

namespace {

constexpr std::string_view kVerbs[] = {"subscribe",    "unsubscribe", "psubscribe",
                                       "punsubscribe", "ssubscribe",  "sunsubscribe"};

std::string_view verb(RedisPubSub::Kind kind) {
  return kVerbs[static_cast<size_t>(kind)];
}

bool is_unsubscribe(RedisPubSub::Kind kind) {
  return kind == RedisPubSub::Kind::kUnsubscribe || kind == RedisPubSub::Kind::kPunsubscribe ||
         kind == RedisPubSub::Kind::kSunsubscribe;
}

// The first element of an array frame ("*3\r\n$7\r\nmessage\r\n..."): the push's type.
std::string_view push_type(std::string_view frame) {
  size_t line = frame.find("\r\n");
  if (frame.empty() || frame[0] != '*' || line == std::string_view::npos) return {};
  std::string_view rest = frame.substr(line + 2);
  size_t len_end = rest.find("\r\n");
  if (rest.empty() || rest[0] != '$' || len_end == std::string_view::npos) return {};
  int64_t len = 0;
  if (!resp::parse_int64(rest.substr(1, len_end - 1), len) || len < 0) return {};
  rest.remove_prefix(len_end + 2);
  if (rest.size() < static_cast<size_t>(len)) return {};
  return rest.substr(0, static_cast<size_t>(len));
}

bool one_slot(std::span<const std::string_view> names) {
  for (std::string_view name : names)
    if (routing::key_slot(name) != routing::key_slot(names[0])) return false;
  return true;
}

}  // namespace

RedisPubSub::~RedisPubSub() {
  release();
}

bool RedisPubSub::kind_of(std::string_view name, Kind& kind) {
  for (size_t i = 0; i < std::size(kVerbs); ++i) {
    if (name == kVerbs[i]) {
      kind = static_cast<Kind>(i);
      return true;
    }
  }
  return false;
}

void RedisPubSub::release() {
  for (auto& sub : subs_) {
    sub.conn->set_push_sink(nullptr, 0);
    s_.dedicated_returned();
    s_.worker_.drop_later(std::move(sub.conn));
  }
  subs_.clear();
}

void RedisPubSub::reset() {
  for (auto& sub : subs_) {
    for (const Expect& e : sub.expects) {
      e.slot->outstanding = 0;
      e.slot->done = true;
    }
  }
  release();
  channels_.clear();
  patterns_.clear();
  shard_channels_.clear();
}

size_t RedisPubSub::count(Kind kind) const {
  if (kind == Kind::kSsubscribe || kind == Kind::kSunsubscribe) return shard_channels_.size();
  return channels_.size() + patterns_.size();
}

uint32_t RedisPubSub::channel_place(std::string_view channel) {
  PoolRuntime& pool = s_.pool();
  if (ClusterRuntime* cluster = pool.cluster()) {
    return cluster->master_for(routing::key_slot(channel), s_.id_);
  }
  return pool.server_for(channel);
}

RedisPubSub::Sub* RedisPubSub::sub(uint32_t where) {
  for (auto& sub : subs_) {
    if (sub.where == where) return &sub;
  }
  PoolRuntime& pool = s_.pool();
  if (subs_.empty() && pool.cluster() == nullptr) {
    placed_config_ = pool.config_ptr();
    placed_generation_ = pool.placement_generation();
    if (!watched_) {
      watched_ = true;
      s_.worker_.watch_subscriber(s_.shared_from_this());
    }
  }
  std::unique_ptr<ServerConnection> conn = pool.cluster() != nullptr
                                               ? pool.cluster()->make_dedicated(where)
                                               : pool.make_dedicated(where, -1);
  ++s_.slot_.counters.dedicated_opened;
  s_.dedicated_taken();
  conn->set_push_sink(this, where);
  subs_.push_back(Sub{where, std::move(conn), {}});
  return &subs_.back();
}

void RedisPubSub::send(uint32_t where, Kind kind, std::span<const std::string_view> names,
                       ReplySlot* slot, uint8_t redirects, bool asking) {
  Sub* s = sub(where);
  if (asking) {
    s->conn->out().append(ClusterExecution::kAsking);
  }
  scratch_.clear();
  scratch_.push_back(verb(kind));
  scratch_.insert(scratch_.end(), names.begin(), names.end());
  resp::append_command(s->conn->out(), scratch_);
  s->conn->send_unmatched();
  Expect e{slot, static_cast<uint32_t>(names.size()), kind, {}, redirects, asking};
  if (s_.pool().cluster() != nullptr) e.names.assign(names.begin(), names.end());
  s->expects.push_back(std::move(e));
  ++slot->outstanding;
}

void RedisPubSub::command(Kind kind, std::span<const std::string_view> names) {
  auto& set = kind == Kind::kPsubscribe || kind == Kind::kPunsubscribe   ? patterns_
              : kind == Kind::kSsubscribe || kind == Kind::kSunsubscribe ? shard_channels_
                                                                         : channels_;
  const bool unsubscribe = is_unsubscribe(kind);
  if (s_.pool().cluster() != nullptr && &set == &shard_channels_ && !one_slot(names)) {
    // As Redis Cluster: a command's shard channels share one hash slot.
    s_.redis_error("CROSSSLOT Keys in request don't hash to the same slot");
    return;
  }
  // UNSUBSCRIBE with no name: every one of that kind (Redis then confirms each).
  names_scratch_.clear();
  if (names.empty() && unsubscribe) {
    names_scratch_.assign(set.begin(), set.end());
  } else {
    names_scratch_.assign(names.begin(), names.end());
  }
  ReplySlot* slot = s_.new_slot(ReplySlot::Kind::kReady);
  std::string& out = slot->data;
  const bool pattern = kind == Kind::kPsubscribe || kind == Kind::kPunsubscribe;
  PoolRuntime& pool = s_.pool();
  ClusterRuntime* cluster = pool.cluster();
  // The names whose subscription changes, per place (a pattern: every server, or one master).
  std::vector<std::pair<uint32_t, std::string_view>> changes;
  for (const std::string& name : names_scratch_) {
    const bool changed = unsubscribe ? set.erase(name) > 0 : set.insert(name).second;
    resp::append_push_header(out, 3, s_.resp3_);
    resp::append_bulk(out, verb(kind));
    resp::append_bulk(out, name);
    resp::append_integer(out, static_cast<int64_t>(count(kind)));
    if (!changed) continue;
    if (!pattern) {
      changes.emplace_back(channel_place(name), name);
    } else if (cluster != nullptr) {
      changes.emplace_back(cluster->masters()[0], name);
    } else {
      for (uint32_t i = 0; i < pool.server_count(); ++i) changes.emplace_back(i, name);
    }
  }
  if (names_scratch_.empty()) {
    // Nothing to unsubscribe from: Redis confirms with a null name.
    resp::append_push_header(out, 3, s_.resp3_);
    resp::append_bulk(out, verb(kind));
    resp::append_null(out, s_.resp3_);
    resp::append_integer(out, static_cast<int64_t>(count(kind)));
  }
  // One command per place with its names; the client's confirmations wait for the servers'
  // (a client told it is subscribed is subscribed).
  std::sort(changes.begin(), changes.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  size_t new_places = 0;
  for (size_t i = 0; i < changes.size(); ++i) {
    if (i > 0 && changes[i].first == changes[i - 1].first) continue;
    bool have = false;
    for (const auto& sub : subs_) have = have || sub.where == changes[i].first;
    if (!have) ++new_places;
  }
  if (new_places > 0 &&
      s_.clients_.dedicated.load() + new_places > pool.config().max_dedicated_connections) {
    // The pool's limit: nothing of this command is done.
    for (const std::string& name : names_scratch_) {
      if (unsubscribe) continue;  // (an unsubscribe needs no new connection)
      set.erase(name);
    }
    out.assign(
        "-ERR dproxy: too many dedicated backend connections (the pool's "
        "max_dedicated_connections) to subscribe; try again later\r\n");
    slot->done = true;
    return;
  }
  std::vector<std::string_view> group;
  for (size_t i = 0; i < changes.size();) {
    const uint32_t where = changes[i].first;
    group.clear();
    for (; i < changes.size() && changes[i].first == where; ++i) group.push_back(changes[i].second);
    send(where, kind, group, slot);
  }
  if (slot->outstanding == 0) slot->done = true;
}

void RedisPubSub::on_error(uint32_t id, std::string_view frame) {
  Sub* s = nullptr;
  for (auto& sub : subs_)
    if (sub.where == id) s = &sub;
  if (s == nullptr || s->expects.empty()) return;
  Expect e = std::move(s->expects.front());
  s->expects.pop_front();
  ClusterRuntime* cluster = s_.pool().cluster();
  const routing::ClusterRedirect r = routing::parse_cluster_redirect(frame);
  const bool ask = r.kind == routing::ClusterReply::kAsk;
  if (cluster != nullptr && (ask || r.kind == routing::ClusterReply::kMoved) &&
      e.redirects < ClusterExecution::kMaxRedirects && !e.names.empty()) {
    const uint32_t node = cluster->node_at(r.address, id);
    if (node != ClusterRuntime::kNoNode) {
      if (!ask) cluster->moved(r.slot, node);
      std::vector<std::string_view> names(e.names.begin(), e.names.end());
      --e.slot->outstanding;
      send(node, e.kind, names, e.slot, static_cast<uint8_t>(e.redirects + 1), ask);
      return;
    }
  }
  // The command failed: its reply is the server's error, and what it would have changed did
  // not happen.
  auto& set = e.kind == Kind::kSsubscribe || e.kind == Kind::kSunsubscribe   ? shard_channels_
              : e.kind == Kind::kPsubscribe || e.kind == Kind::kPunsubscribe ? patterns_
                                                                             : channels_;
  for (const std::string& name : e.names) {
    if (is_unsubscribe(e.kind)) {
      set.insert(name);
    } else {
      set.erase(name);
    }
  }
  e.slot->data.assign(frame);
  if (--e.slot->outstanding == 0) {
    e.slot->done = true;
    s_.drain();
  }
}

void RedisPubSub::on_push(uint32_t id, std::string_view frame) {
  if (!frame.empty() && (frame[0] == '-' || frame[0] == '+')) {
    if (frame[0] == '-') return on_error(id, frame);
    // +OK: the answer to an ASKING sent before a redirected command.
    for (auto& sub : subs_)
      if (sub.where == id && !sub.expects.empty()) sub.expects.front().asking = false;
    return;
  }
  const std::string_view type = push_type(frame);
  Kind kind;
  if (kind_of(type, kind)) {
    // A confirmation: counts toward the oldest command sent on this connection.
    for (auto& sub : subs_) {
      if (sub.where != id) continue;
      if (sub.expects.empty() || sub.expects.front().kind != kind) {
        // Not asked for: Redis Cluster dropped shard channels whose slot left this node.
        if (kind == Kind::kSunsubscribe) shard_channels_moved();
        return;
      }
      Expect& e = sub.expects.front();
      if (--e.frames > 0) return;
      ReplySlot* slot = e.slot;
      sub.expects.pop_front();
      if (--slot->outstanding == 0) {
        slot->done = true;
        s_.drain();
      }
      return;
    }
    return;
  }
  if (s_.closed_) return;
  // A message (message, pmessage, smessage): after every reply already queued, so never inside
  // one. A RESP3 client gets it as a push: the same frame with '>' for '*' (the subscriber
  // connections speak RESP2; the elements are bulk strings in both).
  ReplySlot* slot = s_.ready_slot(frame);
  if (s_.resp3_ && !slot->data.empty() && slot->data[0] == '*') slot->data[0] = '>';
  slot->command = ReplySlot::kNoCommand;
  s_.drain();
  if (s_.queued_reply_bytes() > kOutputLimit) {
    LOG_WARN(
        "client %llu: subscriber not reading: %zu bytes of messages waiting; disconnecting "
        "it (the pub/sub output limit is %zu bytes)",
        static_cast<unsigned long long>(s_.id_), s_.queued_reply_bytes(), kOutputLimit);
    s_.close();
  }
}

void RedisPubSub::shard_channels_moved() {
  if (s_.closed_) return;
  // The client still believes it is subscribed: closing it makes its library subscribe again,
  // and dproxy then places the channel on the slot's new master.
  LOG_INFO(
      "client %llu: a shard channel's slot moved to another node (the server dropped the "
      "subscription); closing the subscribed client",
      static_cast<unsigned long long>(s_.id_));
  s_.close();
}

void RedisPubSub::on_push_lost(uint32_t id, std::string_view why) {
  // Its subscriptions are gone: closing the client makes its library reconnect and subscribe
  // again, as after a Redis restart.
  LOG_INFO("client %llu: subscriber connection %u lost (%.*s); closing the client",
           static_cast<unsigned long long>(s_.id_), id, static_cast<int>(why.size()), why.data());
  s_.close();
}

bool RedisPubSub::check_placement() {
  watched_ = placed_check();
  return watched_;
}

bool RedisPubSub::placed_check() {
  if (subs_.empty() || !placed_config_) return false;
  PoolRuntime& pool = s_.pool();
  const char* why = nullptr;
  if (placed_config_ != pool.config_ptr()) {
    if (pool.cluster() != nullptr || !same_placement(*placed_config_, pool.config())) {
      why = "a reload changed the pool's servers";
    } else {
      placed_config_ = pool.config_ptr();  // other settings changed: channels stay put
    }
  }
  if (why == nullptr && placed_generation_ != pool.placement_generation())
    why = "a server of the pool was ejected or came back";
  if (why == nullptr) return true;
  if (!subscribed()) {
    release();  // nothing listens on them any more
    return false;
  }
  LOG_INFO("client %llu: its channels may live elsewhere now (%s); closing the subscribed client",
           static_cast<unsigned long long>(s_.id_), why);
  s_.close();
  return false;
}

size_t RedisPubSub::buffer_bytes() const {
  size_t n = 0;
  for (const auto& s : subs_)
    if (s.conn) n += s.conn->buffer_bytes();
  return n;
}

}  // namespace dproxy::core
