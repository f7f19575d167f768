// libFuzzer target: memcached request parser. Parsing never crashes, frames stay inside the
// buffer, and any split of the input into reads gives the same frames and errors.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_common.h"
#include "protocol/memcache/request_parser.h"

namespace {

namespace mc = dproxy::protocol::memcache;
using dproxy::protocol::ParseStatus;

// A key points into the buffer, or (a meta base64 key) into the request's decoded key.
bool key_inside(std::string_view k, std::string_view buf, const dproxy::protocol::Request& req) {
  if (k.data() >= buf.data() && k.data() + k.size() <= buf.data() + buf.size()) return true;
  return k.data() == req.decoded_key.data() && k.size() == req.decoded_key.size();
}

std::string drive(std::string_view input, size_t first, size_t step) {
  mc::RequestParser parser(mc::RequestLimits{250, 4096, 8192});
  dproxy::protocol::Request req;
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
      for (auto k : req.keys) FUZZ_ASSERT(key_inside(k, buf, req));
      log.append("ok:").append(req.frame).append("\n");
    } else {
      // A reply line, or nothing for the silent close of an HTTP request line.
      FUZZ_ASSERT(r.error.empty() ? r.close : r.error.ends_with("\r\n"));
      FUZZ_ASSERT(r.consumed <= buf.size());
      // An error keeps the keys it parsed (inside the buffer) and says whether it was noreply.
      for (auto k : req.keys) FUZZ_ASSERT(key_inside(k, buf, req));
      log.append(req.has(dproxy::protocol::kFlagNoreply) ? "err(noreply):" : "err:")
          .append(r.error.empty() ? std::string_view("close\n") : r.error);
      if (r.close) break;
    }
    feeder.consume(r.consumed, r.skip);
  }
  return log;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  dproxy_fuzz::check_split_invariance(data, size, drive);
  return 0;
}
