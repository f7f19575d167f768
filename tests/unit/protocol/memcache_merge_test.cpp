// Unit tests for the memcached merge units: byte strings in, the client's reply out (no sockets,
// no session).

#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/memcache/merge.h"
#include "protocol/memcache/reply_parser.h"

namespace {

namespace mc = dproxy::protocol::memcache;
using dproxy::protocol::Fragments;
using dproxy::protocol::MergeScratch;

// The replies of a split request as the session hands them over: each with its error flag and
// the marks its retrieval scan left.
struct Replies {
  std::vector<std::string> bytes;
  std::vector<uint8_t> errors;
  std::vector<std::vector<size_t>> marks;
  std::vector<std::string_view> views;
  std::vector<std::span<const size_t>> mark_views;

  Replies(std::vector<std::string> replies, std::vector<uint8_t> failed = {})
      : bytes(std::move(replies)), errors(std::move(failed)) {
    errors.resize(bytes.size(), 0);
    marks.resize(bytes.size());
    for (size_t f = 0; f < bytes.size(); ++f) {
      if (errors[f] != 0) continue;
      mc::ReplyScanState state;
      const auto r = mc::scan_reply(bytes[f], mc::ReplyKind::kRetrieval, state, nullptr, &marks[f]);
      REQUIRE(r.status == dproxy::protocol::ParseStatus::kOk);
    }
    for (size_t f = 0; f < bytes.size(); ++f) {
      views.push_back(bytes[f]);
      mark_views.push_back(marks[f]);
    }
  }
  Fragments fragments() const { return {views, errors, mark_views}; }
};

// The keys of a split get: `line` as the request has them, each key's fragment.
struct Keys {
  std::string line;
  std::vector<uint32_t> len;
  std::vector<uint16_t> frag;

  Keys(std::string keys, std::vector<uint16_t> frags)
      : line(std::move(keys)), frag(std::move(frags)) {
    size_t at = 0;
    while (at < line.size()) {
      const size_t end = std::min(line.find(' ', at), line.size());
      len.push_back(static_cast<uint32_t>(end - at));
      at = end + 1;
    }
  }
  mc::SplitKeys split() const { return {line, len, frag}; }
};

std::string multiget(const Replies& replies, const Keys& keys, std::string dst = {}) {
  MergeScratch scratch;
  mc::merge_multiget(replies.fragments(), keys.split(), scratch, dst);
  return dst;
}

std::string item(std::string_view key, std::string_view value) {
  return "VALUE " + std::string(key) + " 0 " + std::to_string(value.size()) + "\r\n" +
         std::string(value) + "\r\n";
}

}  // namespace

TEST_CASE("memcache merge_multiget: the hits of every fragment, in key order") {
  // a and c went to fragment 0, b and d to fragment 1.
  const Replies replies(
      {item("a", "1") + item("c", "333") + "END\r\n", item("b", "22") + item("d", "") + "END\r\n"});
  const Keys keys("a b c d", {0, 1, 0, 1});
  CHECK(multiget(replies, keys) ==
        item("a", "1") + item("b", "22") + item("c", "333") + item("d", "") + "END\r\n");
  // Appended after what the destination already holds.
  CHECK(multiget(replies, keys, "+earlier\r\n") == "+earlier\r\n" + item("a", "1") +
                                                       item("b", "22") + item("c", "333") +
                                                       item("d", "") + "END\r\n");
}

TEST_CASE("memcache merge_multiget: misses leave no item") {
  const Replies replies({item("c", "3") + "END\r\n", item("b", "2") + "END\r\n"});
  CHECK(multiget(replies, Keys("a b c d", {0, 1, 0, 1})) ==
        item("b", "2") + item("c", "3") + "END\r\n");
  const Replies none({"END\r\n", "END\r\n"});
  CHECK(multiget(none, Keys("a b", {0, 1})) == "END\r\n");
}

TEST_CASE("memcache merge_multiget: a failed fragment is the whole reply") {
  const Replies replies({item("a", "1") + "END\r\n", "SERVER_ERROR backend timeout\r\n"}, {0, 1});
  CHECK(multiget(replies, Keys("a b", {0, 1})) == "SERVER_ERROR backend timeout\r\n");
}

TEST_CASE("memcache merge_multiget: odd inputs") {
  SUBCASE("a key asked twice is answered twice, as memcached does") {
    const Replies replies(
        {item("a", "1") + item("a", "1") + "END\r\n", item("b", "2") + "END\r\n"});
    CHECK(multiget(replies, Keys("a b a", {0, 1, 0})) ==
          item("a", "1") + item("b", "2") + item("a", "1") + "END\r\n");
  }
  SUBCASE("an item for a key not asked is dropped") {
    const Replies replies({item("zz", "9") + "END\r\n", item("b", "2") + "END\r\n"});
    CHECK(multiget(replies, Keys("a b", {0, 1})) == item("b", "2") + "END\r\n");
  }
  SUBCASE("keys separated by several spaces; gets items with a cas value") {
    const std::string a = "VALUE key:a 5 2 77\r\nxy\r\n";
    const Replies replies({a + "END\r\n", "END\r\n"});
    Keys keys("key:a   key:b", {0, 1});
    keys.len = {5, 5};
    CHECK(multiget(replies, keys) == a + "END\r\n");
  }
}

TEST_CASE("memcache merge_all_same: the success reply only when every server gives it") {
  auto merged = [](std::vector<std::string> bytes, std::vector<uint8_t> errors = {},
                   std::string_view all = "OK\r\n") {
    std::vector<std::string_view> views(bytes.begin(), bytes.end());
    errors.resize(bytes.size(), 0);
    std::string dst;
    mc::merge_all_same(Fragments{views, errors, {}}, all, dst);
    return dst;
  };
  CHECK(merged({"OK\r\n", "OK\r\n", "OK\r\n"}) == "OK\r\n");
  CHECK(merged({"OK\r\n", "ERROR\r\n", "SERVER_ERROR x\r\n"}) == "ERROR\r\n");
  CHECK(merged({"OK\r\n", "SERVER_ERROR backend down\r\n"}, {0, 1}) ==
        "SERVER_ERROR backend down\r\n");
  CHECK(merged({}) == "OK\r\n");
  // stats reset: RESET from every server.
  CHECK(merged({"RESET\r\n", "RESET\r\n"}, {}, "RESET\r\n") == "RESET\r\n");
  CHECK(merged({"RESET\r\n", "OK\r\n"}, {}, "RESET\r\n") == "OK\r\n");
}

TEST_CASE("memcache merge_stat_lines: every server's lines, one END") {
  auto merged = [](std::vector<std::string> bytes, std::vector<uint8_t> errors = {}) {
    std::vector<std::string_view> views(bytes.begin(), bytes.end());
    errors.resize(bytes.size(), 0);
    std::string dst;
    mc::merge_stat_lines(Fragments{views, errors, {}}, dst);
    return dst;
  };
  CHECK(merged({"STAT a 1\r\nEND\r\n", "STAT a 2\r\nSTAT b 3\r\nEND\r\n"}) ==
        "STAT a 1\r\nSTAT a 2\r\nSTAT b 3\r\nEND\r\n");
  CHECK(merged({"END\r\n", "END\r\n"}) == "END\r\n");
  CHECK(merged({"STAT a 1\r\nEND\r\n", "SERVER_ERROR backend down\r\n"}, {0, 1}) ==
        "SERVER_ERROR backend down\r\n");
}

TEST_CASE("memcache merge_answered_keys: per-key failover answers in key order") {
  const std::string first = item("a", "1") + item("c", "3") + "END\r\n";
  const std::string second = item("b", "2") + "END\r\n";
  const std::vector<std::string_view> replies{first, second};
  const size_t a_end = item("a", "1").size();
  const std::vector<uint16_t> attempt{0, 1, 0, mc::kNoAttempt};
  const std::vector<size_t> spans{
      0, a_end, 0, item("b", "2").size(), a_end, a_end + item("c", "3").size(), 0, 0};
  std::string dst;
  mc::merge_answered_keys(replies, attempt, spans, dst);
  CHECK(dst == item("a", "1") + item("b", "2") + item("c", "3") + "END\r\n");
}
