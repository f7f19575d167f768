// McBinaryFrontEnd: memcached binary protocol clients. See memcache_binary_front_end.h.

#include "core/session/memcache_binary_front_end.h"

#include "core/backend/pool_runtime.h"
#include "core/client_session.h"
#include "core/log.h"
#include "core/session/mc_credentials.h"
#include "core/session/memcache_front_end.h"
#include "core/stats.h"
#include "core/worker.h"

namespace dproxy::core {

namespace mc = protocol::memcache;
namespace bin = protocol::memcache::binary;
using protocol::ParseResult;
using protocol::ParseStatus;
using protocol::Request;

namespace {

// The version dproxy answers (the memcached protocol level it speaks, as for ASCII clients).
constexpr std::string_view kVersion = "1.6.0";

// The reply to a request larger than the session accepts: Value too large, then the close.
constexpr char kTooLargePacket[] = {'\x81', 0,   0,   0,   0,   0,   0,   3,   0,   0,  0, 10,
                                    0,      0,   0,   0,   0,   0,   0,   0,   0,   0,  0, 0,
                                    'T',    'o', 'o', ' ', 'l', 'a', 'r', 'g', 'e', '.'};

// The ASCII command a binary request counts as (per-command stats, and what the routes do with
// it: a cas anywhere makes it a compare-and-swap, refused in replicated / fanout pools as cas is).
mc::Command ascii_command(const bin::Request& r) {
  if (r.cas != 0 && (r.op == bin::Op::kStore || r.op == bin::Op::kConcat ||
                     r.op == bin::Op::kDelete || r.op == bin::Op::kArith)) {
    return mc::Command::kCas;
  }
  switch (r.op) {
    case bin::Op::kGet:
      return mc::Command::kGets;
    case bin::Op::kGat:
      return mc::Command::kGats;
    case bin::Op::kTouch:
      return mc::Command::kTouch;
    case bin::Op::kStore:
      if (r.opcode == bin::kAdd || r.opcode == bin::kAddQ) return mc::Command::kAdd;
      if (r.opcode == bin::kReplace || r.opcode == bin::kReplaceQ) return mc::Command::kReplace;
      return mc::Command::kSet;
    case bin::Op::kConcat:
      return r.opcode == bin::kAppend || r.opcode == bin::kAppendQ ? mc::Command::kAppend
                                                                   : mc::Command::kPrepend;
    case bin::Op::kDelete:
      return mc::Command::kDelete;
    case bin::Op::kArith:
      return r.opcode == bin::kIncrement || r.opcode == bin::kIncrementQ ? mc::Command::kIncr
                                                                         : mc::Command::kDecr;
    case bin::Op::kFlush:
      return mc::Command::kFlushAll;
    case bin::Op::kVersion:
      return mc::Command::kVersion;
    case bin::Op::kQuit:
      return mc::Command::kQuit;
    case bin::Op::kStat:
      return mc::Command::kStats;
    default:
      return mc::Command::kUnsupported;
  }
}

}  // namespace

McBinaryFrontEnd::McBinaryFrontEnd(ClientSession& session, const PoolConfig& config)
    : s_(session),
      max_value_bytes_(config.max_value_bytes),
      auth_required_(!config.sasl_users.empty()),
      ascii_(mc::RequestLimits{250, config.max_value_bytes, 4096}) {}

ParseResult McBinaryFrontEnd::parse(std::string_view in, Request& req) {
  req.reset();
  ParseResult r = bin::parse_request(in, max_value_bytes_, bin_);
  // (A bad magic byte, status 0, and key + extras longer than the body come first.)
  const bool framed =
      r.status == ParseStatus::kOk || (r.status == ParseStatus::kError && bin_.error_status != 0 &&
                                       !(r.close && bin_.error_status == bin::kUnknownCommand));
  if (auth_required_ && !authenticated_ && framed && bin_.op != bin::Op::kSasl &&
      bin_.opcode != bin::kVersion) {
    // Not authenticated yet: only the SASL opcodes and version are served; anything else
    // (checked after the lengths, before anything else, as memcached) gets "Auth failure."
    // and the connection closes.
    bin_.error_status = bin::kAuthError;
    r = ParseResult::Error("authentication required", in.size(), 0, true);
  }
  if (r.status == ParseStatus::kOk) req.frame = in.substr(0, r.consumed);
  // is_read() and the held-input logic look at these.
  req.command = static_cast<uint16_t>(ascii_command(bin_));
  if (bin_.op == bin::Op::kGet) req.flags |= protocol::kFlagRead;
  return r;
}

bool McBinaryFrontEnd::is_read(const Request& req) const {
  return req.has(protocol::kFlagRead);
}

std::string_view McBinaryFrontEnd::request_too_large_reply() const {
  return std::string_view(kTooLargePacket, sizeof(kTooLargePacket));
}

ReplySlot* McBinaryFrontEnd::local_reply(uint16_t status, uint64_t cas, std::string_view value) {
  reply_scratch_.clear();
  if (status != bin::kNoError && value.empty()) {
    bin::append_error(reply_scratch_, bin_.opcode, status, bin_.opaque);
  } else {
    bin::append_response(reply_scratch_, bin_.opcode, status, bin_.opaque, cas, {}, {}, value);
  }
  return s_.ready_slot(reply_scratch_);
}

ReplySlot* McBinaryFrontEnd::refuse(const ParseResult& r, const Request&) {
  if (bin_.error_status == 0) {
    // A byte other than the request magic where a request starts: memcached closes.
    LOG_WARN("pool %s: client %llu: closed: bad magic byte 0x%02x in a binary protocol stream",
             s_.slot_.name.c_str(), static_cast<unsigned long long>(s_.id_),
             r.consumed > 0
                 ? static_cast<unsigned>(static_cast<unsigned char>(s_.rbuf_[s_.rstart_]))
                 : 0u);
    return s_.ready_slot("");
  }
  if (bin_.error_status == bin::kValueTooLarge &&
      (bin_.opcode == bin::kSet || bin_.opcode == bin::kSetQ) && !bin::key_unsendable(bin_.key)) {
    // memcached unlinks the old item of a set refused for its size, so a later get cannot
    // return the value the client replaced: a delete whose reply is dropped.
    bin::Request del = bin_;
    del.op = bin::Op::kDelete;
    del.cas = 0;
    frame_.clear();
    bin::append_backend_request(frame_, del);
    fwd_.reset();
    fwd_.frame = frame_;
    fwd_.keys.push_back(bin_.key);
    fwd_.command = static_cast<uint16_t>(mc::Command::kDelete);
    fwd_.flags = protocol::kFlagMeta | protocol::kFlagWrite | protocol::kFlagNoreply;
    s_.cur_command_ = fwd_.command;
    s_.execute_memcache(fwd_);
    s_.cur_command_ = ReplySlot::kNoCommand;
  }
  return local_reply(bin_.error_status, 0, {});
}

void McBinaryFrontEnd::expect_reply(const ReplySlot* slot) {
  Pending p;
  p.slot = slot;
  p.opcode = bin_.opcode;
  p.opaque = bin_.opaque;
  if (pending_.empty()) {
    keys_.clear();
  } else if (keys_.size() > kCompactKeysAbove) {
    compact_keys();
  }
  if (bin::returns_key(bin_.opcode)) {
    p.key_at = static_cast<uint32_t>(keys_.size());
    p.key_len = static_cast<uint16_t>(bin_.key.size());
    keys_.append(bin_.key);
  }
  pending_.push_back(p);
}

void McBinaryFrontEnd::compact_keys() {
  // The keys of replies already sent are dropped once they are half of the arena (a pipeline
  // that never drains would otherwise grow it without bound).
  size_t base = keys_.size();
  for (size_t i = 0; i < pending_.size(); ++i) {
    if (pending_[i].key_len > 0) {
      base = pending_[i].key_at;
      break;
    }
  }
  if (base < keys_.size() / 2) return;
  keys_.erase(0, base);
  for (size_t i = 0; i < pending_.size(); ++i) {
    if (pending_[i].key_len > 0) pending_[i].key_at -= static_cast<uint32_t>(base);
  }
}

void McBinaryFrontEnd::execute(const Request& req) {
  s_.cur_command_ = req.command;
  s_.execute_memcache(req);
  expect_reply(s_.slots_.back());
}

void McBinaryFrontEnd::execute_line() {
  ParseResult r = ascii_.parse(frame_, fwd_);
  if (r.status != ParseStatus::kOk) {
    // stats <group> memcached does not know: Not found.
    local_reply(bin::kKeyNotFound, 0, {});
    return;
  }
  execute(fwd_);
}

void McBinaryFrontEnd::dispatch(const Request&) {
  s_.cur_command_ = static_cast<uint16_t>(ascii_command(bin_));
  switch (bin_.op) {
    case bin::Op::kNoop:
      local_reply(bin::kNoError, 0, {});
      return;
    case bin::Op::kVersion:
      local_reply(bin::kNoError, 0, kVersion);
      return;
    case bin::Op::kQuit: {
      ReplySlot* slot =
          bin_.opcode == bin::kQuitQ ? s_.ready_slot("") : local_reply(bin::kNoError, 0, {});
      slot->close_after = true;
      s_.stop_input_ = true;
      return;
    }
    case bin::Op::kStat:
      if (bin_.key.empty()) {
        stats_reply();
        return;
      }
      frame_.assign("stats ");
      frame_.append(bin_.key);
      frame_.append("\r\n");
      execute_line();
      return;
    case bin::Op::kFlush:
      frame_.clear();
      bin::append_backend_request(frame_, bin_);
      execute_line();
      return;
    case bin::Op::kSasl:
      sasl();
      return;
    default:
      break;
  }
  if (bin::key_unsendable(bin_.key)) {
    // memcached would serve it; its meta commands cannot carry it (the limit is in the README).
    local_reply(bin::kInvalidArguments, 0,
                "key too long for dproxy: a key with control bytes or spaces may have at most 186 "
                "bytes");
    return;
  }
  frame_.clear();
  bin::append_backend_request(frame_, bin_);
  fwd_.reset();
  fwd_.frame = frame_;
  fwd_.keys.push_back(bin_.key);
  fwd_.command = static_cast<uint16_t>(ascii_command(bin_));
  fwd_.flags =
      protocol::kFlagMeta | (bin_.op == bin::Op::kGet ? protocol::kFlagRead : protocol::kFlagWrite);
  execute(fwd_);
}

void McBinaryFrontEnd::sasl() {
  const auto& users = s_.pool().config().sasl_users;
  if (!auth_required_ || users.empty()) {
    // A memcached without SASL: the opcodes are unknown (the packet is consumed).
    local_reply(bin::kUnknownCommand, 0, {});
    return;
  }
  if (bin_.opcode == bin::kSaslListMechs) {
    local_reply(bin::kNoError, 0, "PLAIN");
    return;
  }
  // PLAIN completes in one step: a step without a started exchange fails, as memcached's.
  std::string_view user;
  std::string_view password;
  const bool ok = bin_.opcode == bin::kSaslAuth && bin_.key == "PLAIN" &&
                  bin::parse_sasl_plain(bin_.value, user, password) &&
                  mc_credentials_ok(users, user, password);
  if (!ok) {
    LOG_WARN("pool %s: client %llu: SASL authentication failed", s_.slot_.name.c_str(),
             static_cast<unsigned long long>(s_.id_));
    local_reply(bin::kAuthError, 0, {});
    return;
  }
  authenticated_ = true;
  local_reply(bin::kNoError, 0, "Authenticated");
}

void McBinaryFrontEnd::stats_reply() {
  // dproxy's own figures, summed over every worker thread: the reply waits for them.
  ReplySlot* slot = s_.new_slot(ReplySlot::Kind::kReady);
  expect_reply(slot);
  McFrontEnd::fill_stats(s_, slot);  // the ASCII stats, translated as the slot leaves
}

void McBinaryFrontEnd::translate(const ReplySlot& slot, std::string* out) {
  if (pending_.empty() || pending_.front().slot != &slot) {
    // A response made here (already binary), or a dropped reply (the delete after a refused
    // set).
    if (out != nullptr) out->append(slot.data);
    return;
  }
  const Pending p = pending_.pop_front();
  if (out != nullptr) {
    bin::append_translated_reply(*out, bin::Pending{p.opcode, p.opaque},
                                 std::string_view(keys_).substr(p.key_at, p.key_len), slot.data);
  }
}

}  // namespace dproxy::core
