// libFuzzer target: RESP request parser (multibulk and inline, stateful discard of oversize
// arguments). Any split of the input gives the same commands and errors.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_common.h"
#include "protocol/resp/request_parser.h"

namespace {

namespace resp = dproxy::protocol::resp;
using dproxy::protocol::ParseStatus;

std::string drive(std::string_view input, size_t first, size_t step) {
  resp::RequestParser parser(resp::RequestLimits{64, 1024, 512});
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
    FUZZ_ASSERT(r.consumed <= buf.size());
    if (r.status == ParseStatus::kOk) {
      FUZZ_ASSERT(r.consumed > 0);
      if (!req.args.empty()) {
        log.append("cmd");
        for (auto a : req.args) log.append(" [").append(a).append("]");
        log.append("\n");
      }
    } else {
      FUZZ_ASSERT(r.error.size() >= 2 && r.error.substr(r.error.size() - 2) == "\r\n");
      log.append("err:").append(r.error);
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
