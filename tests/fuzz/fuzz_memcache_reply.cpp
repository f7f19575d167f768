// libFuzzer target: memcached reply scanner (both reply shapes) and the VALUE item iterator.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_common.h"
#include "protocol/memcache/reply_parser.h"

namespace {

namespace mc = dproxy::protocol::memcache;
using dproxy::protocol::ParseStatus;

std::string drive(std::string_view input, size_t first, size_t step, mc::ReplyKind kind) {
  dproxy_fuzz::Feeder feeder(input, first, step);
  std::string log;
  mc::ReplyScanState state;  // the resumable scan must agree with a scan from the start
  std::vector<size_t> marks;
  while (feeder.ready()) {
    std::string_view buf = feeder.buffer();
    bool is_error = false;
    auto r = mc::scan_reply(buf, kind, &is_error);
    bool resumed_error = false;
    auto resumed = mc::scan_reply(buf, kind, state, &resumed_error,
                                  kind == mc::ReplyKind::kRetrieval ? &marks : nullptr);
    FUZZ_ASSERT(resumed.status == r.status && resumed.consumed == r.consumed &&
                resumed.size_hint == r.size_hint && resumed_error == is_error);
    FUZZ_ASSERT(r.status == ParseStatus::kNeedMore || state.pos == 0);
    if (r.status == ParseStatus::kNeedMore) {
      if (!feeder.feed()) break;
      continue;
    }
    if (r.status == ParseStatus::kError) {
      log.append("bad\n");
      break;  // the connection would be closed
    }
    FUZZ_ASSERT(r.consumed > 0 && r.consumed <= buf.size());
    std::string_view reply = buf.substr(0, r.consumed);
    log.append(is_error ? "error:" : "ok:").append(reply).append("\n");
    if (kind == mc::ReplyKind::kRetrieval && !is_error) {
      mc::ValueIterator it(reply);
      mc::ValueItem item;
      size_t n = 0;
      while (it.next(item)) {
        FUZZ_ASSERT(item.bytes.data() >= reply.data() &&
                    item.bytes.data() + item.bytes.size() <= reply.data() + reply.size());
        FUZZ_ASSERT(item.bytes.substr(0, 6) == "VALUE ");
        // The scan's marks locate the same items and keys.
        const size_t m = n * mc::kMarksPerItem;
        FUZZ_ASSERT(m + 2 < marks.size());
        FUZZ_ASSERT(marks[m] == static_cast<size_t>(item.key.data() - reply.data()));
        FUZZ_ASSERT(marks[m + 1] == item.key.size());
        FUZZ_ASSERT(marks[m + 2] ==
                    static_cast<size_t>(item.bytes.data() + item.bytes.size() - reply.data()));
        ++n;
      }
      FUZZ_ASSERT(marks.size() == n * mc::kMarksPerItem);
    }
    feeder.consume(r.consumed, 0);
  }
  return log;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  auto kind = (data[0] & 1) ? mc::ReplyKind::kRetrieval : mc::ReplyKind::kLine;
  dproxy_fuzz::check_split_invariance(data + 1, size - 1,
                                      [kind](std::string_view in, size_t first, size_t step) {
                                        return drive(in, first, step, kind);
                                      });
  return 0;
}
