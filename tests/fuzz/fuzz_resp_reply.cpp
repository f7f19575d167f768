// libFuzzer target: RESP2 / RESP3 reply scanner (resumable form) and ArrayReader.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_common.h"
#include "protocol/resp/reply_parser.h"

namespace {

namespace resp = dproxy::protocol::resp;
using dproxy::protocol::ParseStatus;

std::string drive(std::string_view input, size_t first, size_t step) {
  dproxy_fuzz::Feeder feeder(input, first, step);
  resp::ReplyScanState state;
  resp::ReplyScanState marked_state;  // the same scan noting element ends must agree
  std::vector<size_t> marks;
  std::string log;
  while (feeder.ready()) {
    std::string_view buf = feeder.buffer();
    bool is_error = false;
    auto r = resp::scan_reply(buf, state, &is_error);
    bool marked_error = false;
    auto rm = resp::scan_reply(buf, marked_state, &marked_error, &marks);
    FUZZ_ASSERT(rm.status == r.status && rm.consumed == r.consumed && rm.size_hint == r.size_hint &&
                marked_error == is_error);
    if (r.status == ParseStatus::kNeedMore) {
      if (!feeder.feed()) break;
      continue;
    }
    if (r.status == ParseStatus::kError) {
      log.append("bad\n");
      break;
    }
    FUZZ_ASSERT(r.consumed > 0 && r.consumed <= buf.size());
    std::string_view reply = buf.substr(0, r.consumed);
    // The stateless form agrees with the resumable one on a complete reply.
    bool again = false;
    auto r2 = resp::scan_reply(reply, &again);
    FUZZ_ASSERT(r2.status == ParseStatus::kOk && r2.consumed == r.consumed && again == is_error);
    const auto aggregate = [](char c) {
      return c == '*' || c == '~' || c == '>' || c == '%' || c == '|';
    };
    if (aggregate(reply[0]) && reply[0] != '|') {
      // An array, or RESP3's set, push or map (its keys and values in turn).
      resp::ArrayReader reader(reply);
      std::string_view element;
      int64_t n = 0;
      bool flat = reply[0] == '*';  // marks are noted for arrays only
      while (reader.next(element)) {
        // Marks, when present, are exactly the elements' ends (a flat array).
        if (aggregate(element[0])) flat = false;
        if (!marks.empty()) {
          FUZZ_ASSERT(static_cast<size_t>(n) < marks.size());
          FUZZ_ASSERT(marks[static_cast<size_t>(n)] ==
                      static_cast<size_t>(element.data() + element.size() - reply.data()));
        }
        ++n;
      }
      FUZZ_ASSERT(reader.ok() && n == (reader.size() < 0 ? 0 : reader.size()));
      FUZZ_ASSERT(marks.size() == (flat ? static_cast<size_t>(n) : 0));
    } else {
      FUZZ_ASSERT(marks.empty());
    }
    log.append(is_error ? "error:" : "ok:").append(reply).append("\n");
    feeder.consume(r.consumed, 0);
  }
  return log;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  dproxy_fuzz::check_split_invariance(data, size, drive);
  return 0;
}
