// libFuzzer target: memcached binary request parser (and the translation of what it parses).
// Parsing never crashes, packets stay inside the buffer, any split of the input into reads
// gives the same packets and errors, and every parsed request can be translated into a backend
// command and its replies back into binary responses.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_common.h"
#include "protocol/memcache/binary.h"

namespace {

namespace bin = dproxy::protocol::memcache::binary;
using dproxy::protocol::ParseStatus;

bool inside(std::string_view part, std::string_view buf) {
  return part.empty() ||
         (part.data() >= buf.data() && part.data() + part.size() <= buf.data() + buf.size());
}

std::string drive(std::string_view input, size_t first, size_t step) {
  bin::Request req;
  dproxy_fuzz::Feeder feeder(input, first, step);
  std::string log;
  std::string scratch;
  while (feeder.ready()) {
    std::string_view buf = feeder.buffer();
    auto r = bin::parse_request(buf, 4096, req);
    if (r.status == ParseStatus::kNeedMore) {
      if (!feeder.feed()) break;
      continue;
    }
    if (r.status == ParseStatus::kOk) {
      FUZZ_ASSERT(r.consumed >= bin::kHeaderBytes && r.consumed <= buf.size());
      FUZZ_ASSERT(inside(req.key, buf) && inside(req.value, buf));
      FUZZ_ASSERT(req.key.size() <= bin::kMaxKeyBytes);
      log.append("ok:").append(buf.substr(0, r.consumed)).append("\n");
      scratch.clear();
      bin::append_backend_request(scratch, req);
      FUZZ_ASSERT(scratch.empty() || scratch.ends_with("\r\n"));
      // The translation of a reply (here: the request's own value) never crashes.
      scratch.clear();
      bin::append_translated_reply(scratch, bin::Pending{req.opcode, req.opaque}, req.key,
                                   req.value);
    } else {
      FUZZ_ASSERT(r.consumed <= buf.size());
      FUZZ_ASSERT(inside(req.key, buf));
      log.append("err:").append(std::to_string(req.error_status)).append(r.error).append("\n");
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
