// Unit tests for the Redis merge units and the command table's merge column: byte strings in,
// the client's reply out (no sockets, no session).

#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/resp/command_table.h"
#include "protocol/resp/merge.h"
#include "protocol/resp/reply_parser.h"

namespace {

namespace resp = dproxy::protocol::resp;
using dproxy::protocol::Fragments;
using dproxy::protocol::MergeScratch;
using resp::Merge;

// The replies of a split or broadcast request as the session hands them over: each with its
// error flag and (with `marked`) the marks its scan left.
struct Replies {
  std::vector<std::string> bytes;
  std::vector<uint8_t> errors;
  std::vector<std::vector<size_t>> marks;
  std::vector<std::string_view> views;
  std::vector<std::span<const size_t>> mark_views;

  Replies(std::vector<std::string> replies, std::vector<uint8_t> failed = {}, bool marked = false)
      : bytes(std::move(replies)), errors(std::move(failed)) {
    errors.resize(bytes.size(), 0);
    marks.resize(bytes.size());
    for (size_t f = 0; f < bytes.size(); ++f) {
      bool is_error = false;
      resp::ReplyScanState state;
      const auto r = resp::scan_reply(bytes[f], state, &is_error, &marks[f]);
      REQUIRE(r.status == dproxy::protocol::ParseStatus::kOk);
      views.push_back(bytes[f]);
      mark_views.push_back(marks[f]);
    }
    if (!marked) mark_views.clear();
  }
  Fragments fragments() const { return {views, errors, mark_views}; }
};

std::string merged(Merge merge, const Replies& replies, resp::MergeContext ctx = {}) {
  MergeScratch scratch;
  std::string dst;
  resp::append_merged(merge, replies.fragments(), ctx, scratch, dst);
  return dst;
}

std::string mget(const Replies& replies, std::vector<uint16_t> key_frag) {
  return merged(Merge::kArrayInKeyOrder, replies, {key_frag, 0, 0});
}

}  // namespace

TEST_CASE("resp merge column: every split or broadcast command names its merge") {
  auto merge_of = [](std::string_view full_name) {
    const resp::CommandInfo* cmd = resp::find_command_by_full_name(full_name);
    REQUIRE(cmd != nullptr);
    return cmd->merge;
  };
  CHECK(merge_of("mget") == Merge::kArrayInKeyOrder);
  CHECK(merge_of("mset") == Merge::kAllOk);
  CHECK(merge_of("del") == Merge::kSum);
  CHECK(merge_of("unlink") == Merge::kSum);
  CHECK(merge_of("exists") == Merge::kSum);
  CHECK(merge_of("touch") == Merge::kSum);
  CHECK(merge_of("dbsize") == Merge::kSum);
  CHECK(merge_of("keys") == Merge::kConcat);
  CHECK(merge_of("scan") == Merge::kScanCursor);
  CHECK(merge_of("randomkey") == Merge::kAnyKey);
  CHECK(merge_of("flushall") == Merge::kAllOk);
  CHECK(merge_of("flushdb") == Merge::kAllOk);
  CHECK(merge_of("script|load") == Merge::kAllSame);
  CHECK(merge_of("script|exists") == Merge::kAndArray);
  CHECK(merge_of("script|flush") == Merge::kAllOk);
  CHECK(merge_of("script|kill") == Merge::kAnyOk);
  CHECK(merge_of("function|load") == Merge::kAllSame);
  CHECK(merge_of("function|delete") == Merge::kAllOk);
  CHECK(merge_of("function|kill") == Merge::kAnyOk);
  CHECK(merge_of("pubsub|channels") == Merge::kConcat);
  CHECK(merge_of("pubsub|numsub") == Merge::kPairSum);
  CHECK(merge_of("pubsub|numpat") == Merge::kMax);
  CHECK(merge_of("get") == Merge::kNone);
  auto check = [](const resp::CommandInfo& c) {
    const bool merging =
        c.routing == resp::Routing::kMultiKeySplit || c.routing == resp::Routing::kBroadcast;
    INFO(c.name);
    CHECK(merging == (c.merge != Merge::kNone));
  };
  for (const auto& c : resp::all_commands()) check(c);
  for (const auto& c : resp::all_subcommands()) check(c);
  // The split sends MSET's values with their keys; the others' keys alone.
  CHECK(resp::key_value_pairs(*resp::find_command("mset")));
  CHECK_FALSE(resp::key_value_pairs(*resp::find_command("mget")));
  CHECK_FALSE(resp::key_value_pairs(*resp::find_command("del")));
}

TEST_CASE("resp merge kArrayInKeyOrder (MGET): elements in key order, marked or not") {
  for (const bool marked : {true, false}) {
    CAPTURE(marked);
    // keys a c -> fragment 0, b d -> fragment 1; c and d are misses.
    const Replies replies({"*2\r\n$1\r\n1\r\n$-1\r\n", "*2\r\n$2\r\n22\r\n$-1\r\n"}, {}, marked);
    CHECK(mget(replies, {0, 1, 0, 1}) == "*4\r\n$1\r\n1\r\n$2\r\n22\r\n$-1\r\n$-1\r\n");
    // Every key on one fragment, the other's element first: order follows the keys.
    const Replies three({"*1\r\n$1\r\nx\r\n", "*1\r\n$1\r\ny\r\n", "*1\r\n:5\r\n"}, {}, marked);
    CHECK(mget(three, {2, 1, 0}) == "*3\r\n:5\r\n$1\r\ny\r\n$1\r\nx\r\n");
    // No key (not sent by a session, but well-defined).
    CHECK(mget(three, {}) == "*0\r\n");
  }
}

TEST_CASE("resp merge kArrayInKeyOrder (MGET): a failed fragment, a wrong shape") {
  const Replies failed({"*1\r\n$1\r\n1\r\n", "-ERR dproxy: backend timeout\r\n"}, {0, 1}, true);
  CHECK(mget(failed, {0, 1}) == "-ERR dproxy: backend timeout\r\n");
  for (const bool marked : {true, false}) {
    CAPTURE(marked);
    // Fragment 1 answers one element for two keys.
    const Replies shorter({"*1\r\n$1\r\n1\r\n", "*1\r\n$1\r\n2\r\n"}, {}, marked);
    CHECK(mget(shorter, {0, 1, 1}) ==
          "-ERR dproxy: backend sent an MGET reply of the wrong shape\r\n");
    const Replies not_array({"*1\r\n$1\r\n1\r\n", "+OK\r\n"}, {}, marked);
    CHECK(mget(not_array, {0, 1}) ==
          "-ERR dproxy: backend sent an MGET reply of the wrong shape\r\n");
  }
}

TEST_CASE("resp merge kAllOk (MSET, FLUSHALL): +OK when every fragment says +OK") {
  CHECK(merged(Merge::kAllOk, Replies({"+OK\r\n", "+OK\r\n"})) == "+OK\r\n");
  CHECK(merged(Merge::kAllOk, Replies({"+OK\r\n", "+QUEUED\r\n", ":1\r\n"})) == "+QUEUED\r\n");
  CHECK(merged(Merge::kAllOk, Replies({"+OK\r\n", "-OOM no\r\n", "-ERR b\r\n"}, {0, 1, 1})) ==
        "-OOM no\r\n");
}

TEST_CASE("resp merge kSum (DEL, EXISTS, DBSIZE): the integers added") {
  CHECK(merged(Merge::kSum, Replies({":1\r\n", ":2\r\n", ":0\r\n"})) == ":3\r\n");
  CHECK(merged(Merge::kSum, Replies({":-4\r\n", ":1\r\n"})) == ":-3\r\n");
  CHECK(merged(Merge::kSum, Replies({":1\r\n", "$1\r\n2\r\n"})) ==
        "-ERR dproxy: backend sent a non-integer reply to a counting command\r\n");
  CHECK(merged(Merge::kSum, Replies({":1\r\n", "-LOADING busy\r\n"}, {0, 1})) ==
        "-LOADING busy\r\n");
}

TEST_CASE("resp merge kConcat (KEYS): the arrays concatenated") {
  CHECK(merged(Merge::kConcat,
               Replies({"*2\r\n$1\r\na\r\n$1\r\nb\r\n", "*0\r\n", "*1\r\n$1\r\nc\r\n"})) ==
        "*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n");
  CHECK(merged(Merge::kConcat, Replies({"*0\r\n", "*0\r\n"})) == "*0\r\n");
  CHECK(merged(Merge::kConcat, Replies({"*0\r\n", "*-1\r\n"})) ==
        "-ERR dproxy: backend sent a KEYS reply of the wrong shape\r\n");
  CHECK(merged(Merge::kConcat, Replies({"*0\r\n", "-ERR x\r\n"}, {0, 1})) == "-ERR x\r\n");
}

TEST_CASE("resp merge kAllSame (SCRIPT LOAD): the first reply unless one failed") {
  const std::string sha = "$40\r\n" + std::string(40, 'a') + "\r\n";
  CHECK(merged(Merge::kAllSame, Replies({sha, sha})) == sha);
  CHECK(merged(Merge::kAllSame, Replies({"$1\r\na\r\n", "$1\r\nb\r\n"})) == "$1\r\na\r\n");
  CHECK(merged(Merge::kAllSame, Replies({sha, "-NOSCRIPT x\r\n"}, {0, 1})) == "-NOSCRIPT x\r\n");
}

TEST_CASE("resp merge kAndArray (SCRIPT EXISTS): 1 only where every server says 1") {
  CHECK(
      merged(Merge::kAndArray, Replies({"*3\r\n:1\r\n:1\r\n:0\r\n", "*3\r\n:1\r\n:0\r\n:1\r\n"})) ==
      "*3\r\n:1\r\n:0\r\n:0\r\n");
  // A shorter answer elsewhere: the missing elements count as 0.
  CHECK(merged(Merge::kAndArray, Replies({"*2\r\n:1\r\n:1\r\n", "*1\r\n:1\r\n"})) ==
        "*2\r\n:1\r\n:0\r\n");
  CHECK(merged(Merge::kAndArray, Replies({"*0\r\n", "*0\r\n"})) == "*0\r\n");
  CHECK(merged(Merge::kAndArray, Replies({"*1\r\n:1\r\n", "-ERR x\r\n"}, {0, 1})) == "-ERR x\r\n");
}

TEST_CASE("resp merge kScanCursor (SCAN): the cursor names the server") {
  const std::string keys = "*1\r\n$1\r\nk\r\n";
  auto scan = [&](std::string cursor, uint32_t position, uint32_t servers) {
    const Replies replies(
        {"*2\r\n$" + std::to_string(cursor.size()) + "\r\n" + cursor + "\r\n" + keys});
    return merged(Merge::kScanCursor, replies, {{}, position, servers});
  };
  // A backend cursor c on server p of n: c * n + p.
  CHECK(scan("17", 1, 3) == "*2\r\n$2\r\n52\r\n" + keys);
  // This server is done: the next server from its start, or 0 after the last.
  CHECK(scan("0", 0, 3) == "*2\r\n$1\r\n1\r\n" + keys);
  CHECK(scan("0", 2, 3) == "*2\r\n$1\r\n0\r\n" + keys);
  // A 64-bit backend cursor does not overflow.
  CHECK(scan("18446744073709551615", 1, 2) == "*2\r\n$20\r\n36893488147419103231\r\n" + keys);
  CHECK(merged(Merge::kScanCursor, Replies({"*1\r\n$1\r\n0\r\n"}), {{}, 0, 2}) ==
        "-ERR dproxy: backend sent a SCAN reply of the wrong shape\r\n");
  CHECK(merged(Merge::kScanCursor, Replies({"*2\r\n:0\r\n*0\r\n"}), {{}, 0, 2}) ==
        "-ERR dproxy: backend sent a SCAN reply of the wrong shape\r\n");
  CHECK(merged(Merge::kScanCursor, Replies({"-ERR x\r\n"}, {1}), {{}, 0, 2}) == "-ERR x\r\n");
}

TEST_CASE("resp merge kAnyKey (RANDOMKEY): a key from the first server that has one") {
  const Replies replies({"$1\r\na\r\n", "$-1\r\n", "$1\r\nc\r\n"});
  CHECK(merged(Merge::kAnyKey, replies, {{}, 0, 0}) == "$1\r\na\r\n");
  CHECK(merged(Merge::kAnyKey, replies, {{}, 1, 0}) == "$1\r\nc\r\n");
  CHECK(merged(Merge::kAnyKey, replies, {{}, 2, 0}) == "$1\r\nc\r\n");
  CHECK(merged(Merge::kAnyKey, Replies({"$-1\r\n", "$-1\r\n"}), {{}, 1, 0}) == "$-1\r\n");
  CHECK(merged(Merge::kAnyKey, Replies({"$-1\r\n", "-ERR x\r\n"}, {0, 1})) == "-ERR x\r\n");
}

TEST_CASE("resp merge_answered_keys: per-key failover answers, nil for a miss") {
  const std::string first = "*2\r\n$1\r\n1\r\n$-1\r\n";  // a hit, b missed
  const std::string second = "*1\r\n$1\r\n2\r\n";        // b asked again
  const std::vector<std::string_view> replies{first, second};
  const std::vector<uint16_t> attempt{0, 1, resp::kNoAttempt};
  const std::vector<size_t> spans{4, 11, 4, 11, 0, 0};
  std::string dst = "+before\r\n";
  resp::merge_answered_keys(replies, attempt, spans, dst);
  CHECK(dst == "+before\r\n*3\r\n$1\r\n1\r\n$1\r\n2\r\n$-1\r\n");
}

TEST_CASE("resp merge kMax (PUBSUB NUMPAT): the largest integer") {
  CHECK(merged(Merge::kMax, Replies({":1\r\n", ":3\r\n", ":0\r\n"})) == ":3\r\n");
  CHECK(merged(Merge::kMax, Replies({":0\r\n"})) == ":0\r\n");
  CHECK(merged(Merge::kMax, Replies({":1\r\n", "+OK\r\n"})) ==
        "-ERR dproxy: backend sent a non-integer reply to a counting command\r\n");
  CHECK(merged(Merge::kMax, Replies({":1\r\n", "-ERR x\r\n"}, {0, 1})) == "-ERR x\r\n");
}

TEST_CASE("resp merge kPairSum (PUBSUB NUMSUB): each count summed, names kept") {
  const Replies two(
      {"*4\r\n$1\r\na\r\n:1\r\n$1\r\nb\r\n:0\r\n", "*4\r\n$1\r\na\r\n:0\r\n$1\r\nb\r\n:2\r\n"});
  CHECK(merged(Merge::kPairSum, two) == "*4\r\n$1\r\na\r\n:1\r\n$1\r\nb\r\n:2\r\n");
  CHECK(merged(Merge::kPairSum, Replies({"*0\r\n", "*0\r\n"})) == "*0\r\n");
  // Names that differ, an odd length, a length that differs: the wrong shape.
  const std::string wrong =
      "-ERR dproxy: backend sent a PUBSUB NUMSUB reply of the wrong shape\r\n";
  CHECK(merged(Merge::kPairSum, Replies({"*2\r\n$1\r\na\r\n:1\r\n", "*2\r\n$1\r\nz\r\n:1\r\n"})) ==
        wrong);
  CHECK(merged(Merge::kPairSum, Replies({"*1\r\n$1\r\na\r\n"})) == wrong);
  CHECK(merged(Merge::kPairSum, Replies({"*2\r\n$1\r\na\r\n:1\r\n", "*0\r\n"})) == wrong);
}

TEST_CASE("resp merge kAnyOk (SCRIPT KILL): +OK from any server, else the first reply") {
  const std::string notbusy = "-NOTBUSY No scripts in execution right now.\r\n";
  CHECK(merged(Merge::kAnyOk, Replies({notbusy, "+OK\r\n", notbusy}, {1, 0, 1})) == "+OK\r\n");
  CHECK(merged(Merge::kAnyOk, Replies({notbusy, notbusy}, {1, 1})) == notbusy);
}

TEST_CASE("resp3 merges: fragments from RESP3 connections") {
  // MGET: RESP3 nulls are "_", passed on as the elements they are.
  for (const bool marked : {true, false}) {
    CAPTURE(marked);
    const Replies replies({"*2\r\n$1\r\n1\r\n_\r\n", "*1\r\n_\r\n"}, {}, marked);
    CHECK(mget(replies, {0, 1, 0}) == "*3\r\n$1\r\n1\r\n_\r\n_\r\n");
  }
  // RANDOMKEY: "_" is nil; all nil answers RESP3's nil.
  CHECK(merged(Merge::kAnyKey, Replies({"_\r\n", "$1\r\nk\r\n"}), {{}, 0, 0}) == "$1\r\nk\r\n");
  CHECK(merged(Merge::kAnyKey, Replies({"_\r\n", "_\r\n", "_\r\n"}), {{}, 1, 0}) == "_\r\n");
  // DEL / EXISTS / DBSIZE: integers are the same in RESP3.
  CHECK(merged(Merge::kSum, Replies({":1\r\n", ":2\r\n"})) == ":3\r\n");
  // KEYS: arrays, as RESP3 sends them.
  CHECK(merged(Merge::kConcat, Replies({"*1\r\n$1\r\na\r\n", "*0\r\n"})) == "*1\r\n$1\r\na\r\n");
  // A blob error from a server is the whole reply, as any failed fragment.
  CHECK(merged(Merge::kSum, Replies({":1\r\n", "!5\r\nERR x\r\n"}, {0, 1})) == "!5\r\nERR x\r\n");
  // merge_answered_keys: a miss is RESP3's null.
  const std::string first = "*2\r\n$1\r\n1\r\n_\r\n";
  const std::vector<std::string_view> replies{first};
  const std::vector<uint16_t> attempt{0, resp::kNoAttempt};
  const std::vector<size_t> spans{4, 11, 0, 0};
  std::string dst;
  resp::merge_answered_keys(replies, attempt, spans, dst, true);
  CHECK(dst == "*2\r\n$1\r\n1\r\n_\r\n");
}
