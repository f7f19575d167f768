// libFuzzer target: the memcached meta protocol, both directions. Requests (mg / ms / md / ma /
// mn / me among classic commands): parsing never crashes, frames and keys stay inside the
// buffer (a base64 key: inside the request's decoded key, which re-encodes to the key token),
// and any split of the input into reads gives the same frames, keys, flags and errors. Replies
// of quiet requests (ReplyKind::kMetaQuiet: meta replies up to "MN"): the same split invariance.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_common.h"
#include "protocol/memcache/meta.h"
#include "protocol/memcache/reply_parser.h"
#include "protocol/memcache/request_parser.h"

namespace {

namespace mc = dproxy::protocol::memcache;
using dproxy::protocol::ParseStatus;
using dproxy::protocol::Request;

bool inside(std::string_view k, std::string_view buf) {
  return k.data() >= buf.data() && k.data() + k.size() <= buf.data() + buf.size();
}

void log_request(std::string& log, const Request& req, std::string_view buf) {
  for (auto k : req.keys) {
    if (inside(k, buf)) {
      log.append(" key:").append(k);
      continue;
    }
    // A base64 key: the decoded bytes of a token of the frame.
    FUZZ_ASSERT(k.data() == req.decoded_key.data() && k.size() == req.decoded_key.size());
    std::string enc;
    mc::meta::append_base64(enc, k);
    std::string back;
    FUZZ_ASSERT(mc::meta::base64_decode(enc, back) && back == k);
    log.append(" b64key:").append(enc);
  }
  log.append(" flags:").append(std::to_string(req.flags)).append("\n");
}

std::string drive_requests(std::string_view input, size_t first, size_t step) {
  mc::RequestParser parser(mc::RequestLimits{250, 4096, 8192});
  Request req;
  dproxy_fuzz::Feeder feeder(input, first, step);
  std::string log;
  while (feeder.ready()) {
    std::string_view buf = feeder.buffer();
    auto r = parser.parse(buf, req);
    if (r.status == ParseStatus::kNeedMore) {
      if (!feeder.feed()) break;
      continue;
    }
    if (r.status == ParseStatus::kOk) {
      FUZZ_ASSERT(r.consumed > 0 && r.consumed <= buf.size());
      FUZZ_ASSERT(req.frame.data() == buf.data() && req.frame.size() == r.consumed);
      // A meta request other than mn is routed by exactly one key.
      if (req.has(dproxy::protocol::kFlagMeta)) FUZZ_ASSERT(req.keys.size() == 1);
      log.append("ok:").append(req.frame);
      log_request(log, req, buf);
    } else {
      FUZZ_ASSERT(r.error.empty() ? r.close : r.error.ends_with("\r\n"));
      FUZZ_ASSERT(r.consumed <= buf.size());
      log.append("err:").append(r.error.empty() ? std::string_view("close\n") : r.error);
      log_request(log, req, buf);
      if (r.close) break;
    }
    feeder.consume(r.consumed, r.skip);
  }
  return log;
}

std::string drive_replies(std::string_view input, size_t first, size_t step) {
  dproxy_fuzz::Feeder feeder(input, first, step);
  std::string log;
  while (feeder.ready()) {
    std::string_view buf = feeder.buffer();
    bool is_error = false;
    auto r = mc::scan_reply(buf, mc::ReplyKind::kMetaQuiet, &is_error);
    if (r.status == ParseStatus::kNeedMore) {
      if (!feeder.feed()) break;
      continue;
    }
    if (r.status == ParseStatus::kError) {
      log.append("bad\n");
      break;
    }
    FUZZ_ASSERT(r.consumed >= 4 && r.consumed <= buf.size());
    FUZZ_ASSERT(buf.substr(0, r.consumed).ends_with("MN\r\n"));
    log.append(is_error ? "error:" : "reply:").append(buf.substr(0, r.consumed)).append("\n");
    feeder.consume(r.consumed, 0);
  }
  return log;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The first byte picks the direction; the rest is the stream.
  if (size == 0) return 0;
  if (data[0] & 1) {
    dproxy_fuzz::check_split_invariance(data + 1, size - 1, drive_replies);
  } else {
    dproxy_fuzz::check_split_invariance(data + 1, size - 1, drive_requests);
  }
  return 0;
}
