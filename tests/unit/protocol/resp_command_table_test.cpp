// Unit tests for the generated Redis command table and the key finder.

#include <doctest/doctest.h>

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/resp/command_table.h"

namespace {

namespace resp = dproxy::protocol::resp;
namespace reasons = dproxy::protocol::resp::reasons;
using resp::CommandInfo;
using resp::KeyStatus;
using resp::Routing;

const CommandInfo& command(std::string_view name) {
  const CommandInfo* cmd = resp::find_command(name);
  REQUIRE_MESSAGE(cmd != nullptr, name);
  return *cmd;
}

const CommandInfo& subcommand(std::string_view container, std::string_view sub) {
  const CommandInfo* cmd = resp::find_subcommand(command(container), sub);
  REQUIRE_MESSAGE(cmd != nullptr, container, " ", sub);
  return *cmd;
}

struct KeysResult {
  KeyStatus status = KeyStatus::kOk;
  std::vector<uint32_t> indices;
};

// find_keys on a request given as words; resolves the subcommand when the command has some.
KeysResult keys_of(std::initializer_list<std::string_view> words) {
  std::vector<std::string_view> args(words);
  const CommandInfo* cmd = &command(args[0]);
  if (cmd->has_subcommands && args.size() >= 2) cmd = &subcommand(args[0], args[1]);
  KeysResult result;
  result.status = resp::find_keys(*cmd, args, result.indices);
  return result;
}

std::vector<uint32_t> ok_keys(std::initializer_list<std::string_view> words) {
  KeysResult r = keys_of(words);
  CHECK(r.status == KeyStatus::kOk);
  return r.indices;
}

using Indices = std::vector<uint32_t>;

}  // namespace

TEST_CASE("command table: generated from redis 7.0, sorted, complete") {
  CHECK(resp::redis_version().substr(0, 4) == "7.0.");
  // redis-server 7.0.15 answers COMMAND COUNT with 240: the top-level commands. It also has 126
  // subcommands (CLIENT SETNAME...), which COMMAND COUNT does not count.
  CHECK(resp::all_commands().size() == 240);
  std::size_t subcommands = 0;
  std::string_view previous;
  for (const CommandInfo& c : resp::all_commands()) {
    CHECK(previous < c.name);
    previous = c.name;
    CHECK(c.name.find('|') == std::string_view::npos);
    CHECK(c.has_subcommands == !c.subcommands.empty());
    CHECK(c.arity != 0);
    CHECK(!c.info_reply.empty());
    for (const CommandInfo& s : c.subcommands) {
      ++subcommands;
      CHECK(s.name.substr(0, c.name.size() + 1) == std::string(c.name) + "|");
      CHECK(!s.has_subcommands);
      CHECK(resp::find_subcommand(c, s.name.substr(c.name.size() + 1)) == &s);
    }
    CHECK(resp::find_command(c.name) == &c);
    // Every rejected entry says why; no other entry has a reason.
    CHECK((c.routing == Routing::kRejected) == !c.reject_reason.empty());
  }
  CHECK(subcommands == 126);
}

TEST_CASE("find_command: case-insensitive, exact names only") {
  CHECK(resp::find_command("get") == &command("GET"));
  CHECK(resp::find_command("GeT") == &command("get"));
  CHECK(command("GET").name == "get");
  CHECK(command("georadiusbymember_ro").name == "georadiusbymember_ro");
  CHECK(command("RESTORE-ASKING").name == "restore-asking");
  CHECK(resp::find_command("") == nullptr);
  CHECK(resp::find_command("ge") == nullptr);
  CHECK(resp::find_command("gett") == nullptr);
  CHECK(resp::find_command("nosuchcommand") == nullptr);
  CHECK(resp::find_command(std::string(1000, 'a')) == nullptr);
  CHECK(resp::find_command("client|setname") == nullptr);  // not a top-level name
  CHECK(resp::find_command(std::string_view("get\0", 4)) == nullptr);
}

TEST_CASE("find_subcommand: case-insensitive, only in its container") {
  const CommandInfo& client = command("client");
  CHECK(client.has_subcommands);
  CHECK(client.subcommands.size() == 16);
  CHECK(subcommand("CLIENT", "SetName").name == "client|setname");
  CHECK(subcommand("object", "ENCODING").name == "object|encoding");
  CHECK(subcommand("xinfo", "stream").name == "xinfo|stream");
  CHECK(subcommand("memory", "usage").name == "memory|usage");
  CHECK(subcommand("config", "get").name == "config|get");
  CHECK(subcommand("script", "load").name == "script|load");
  CHECK(resp::find_subcommand(client, "nosuch") == nullptr);
  CHECK(resp::find_subcommand(client, "") == nullptr);
  CHECK(resp::find_subcommand(client, "encoding") == nullptr);
  CHECK(resp::find_subcommand(client, "client|setname") == nullptr);
  CHECK(resp::find_subcommand(command("get"), "x") == nullptr);
  CHECK(!command("get").has_subcommands);
}

TEST_CASE("find_command_by_full_name and all_subcommands") {
  CHECK(resp::find_command_by_full_name("GET") == &command("get"));
  CHECK(resp::find_command_by_full_name("Client|SetName") == &subcommand("client", "setname"));
  CHECK(resp::find_command_by_full_name("client") == &command("client"));
  CHECK(resp::find_command_by_full_name("client|") == nullptr);
  CHECK(resp::find_command_by_full_name("client|nosuch") == nullptr);
  CHECK(resp::find_command_by_full_name("get|x") == nullptr);
  CHECK(resp::find_command_by_full_name("nosuch|x") == nullptr);
  CHECK(resp::find_command_by_full_name("|") == nullptr);
  // COMMAND LIST of redis-server 7.0.15 names 366 commands: 240 + 126 subcommands.
  CHECK(resp::all_commands().size() + resp::all_subcommands().size() == 366);
  for (const CommandInfo& s : resp::all_subcommands()) {
    CHECK(resp::find_command_by_full_name(s.name) == &s);
  }
}

TEST_CASE("command fields come from COMMAND INFO / COMMAND DOCS") {
  const CommandInfo& get = command("get");
  CHECK(get.arity == 2);
  CHECK(get.has(resp::kCmdReadonly));
  CHECK(get.has(resp::kCmdFast));
  CHECK(!get.has(resp::kCmdWrite));
  CHECK(get.in_category(resp::kAclRead));
  CHECK(get.in_category(resp::kAclString));
  CHECK(get.first_key == 1);
  CHECK(get.last_key == 1);
  CHECK(get.step == 1);
  REQUIRE(get.key_specs.size() == 1);
  CHECK(get.key_specs[0].begin_search == resp::BeginSearch::kIndex);
  CHECK(get.key_specs[0].index == 1);
  CHECK(get.key_specs[0].find_keys == resp::FindKeys::kRange);
  CHECK(get.key_specs[0].lastkey == 0);
  CHECK(get.group == "string");
  CHECK(get.since == "1.0.0");
  CHECK(get.summary == "Get the value of a key");

  const CommandInfo& mset = command("mset");
  CHECK(mset.arity == -3);
  CHECK(mset.step == 2);
  CHECK(mset.has(resp::kCmdWrite));
  CHECK(mset.has(resp::kCmdDenyoom));

  const CommandInfo& blpop = command("blpop");
  CHECK(blpop.has(resp::kCmdBlocking));
  CHECK(blpop.in_category(resp::kAclBlocking));
  CHECK(command("subscribe").has(resp::kCmdPubsub));
  CHECK(command("multi").in_category(resp::kAclTransaction));
  CHECK(command("eval").in_category(resp::kAclScripting));
  CHECK(command("eval").has(resp::kCmdNoMandatoryKeys));
  CHECK(command("flushall").in_category(resp::kAclDangerous));
  CHECK(command("auth").has(resp::kCmdNoAuth));
  CHECK(subcommand("config", "set").has(resp::kCmdAdmin));

  const CommandInfo& xread = command("xread");
  REQUIRE(xread.key_specs.size() == 1);
  CHECK(xread.key_specs[0].begin_search == resp::BeginSearch::kKeyword);
  CHECK(xread.key_specs[0].keyword == "STREAMS");
  CHECK(xread.key_specs[0].limit == 2);
  CHECK(xread.key_finder == resp::KeyFinder::kStreams);
  CHECK(command("sort").key_finder == resp::KeyFinder::kSort);
  CHECK(command("migrate").key_finder == resp::KeyFinder::kMigrate);
  const CommandInfo& eval = command("eval");
  REQUIRE(eval.key_specs.size() == 1);
  CHECK(eval.key_specs[0].find_keys == resp::FindKeys::kKeynum);
  CHECK(eval.key_specs[0].index == 2);
  CHECK(eval.key_specs[0].firstkey == 1);
  CHECK((eval.key_specs[0].flags & resp::kKeyRW) != 0);
}

TEST_CASE("info_reply and docs_reply are the RESP2 entries of COMMAND INFO / COMMAND DOCS") {
  const CommandInfo& get = command("get");
  CHECK(get.info_reply.substr(0, 18) == "*10\r\n$3\r\nget\r\n:2\r\n");
  CHECK(get.info_reply.find("+readonly\r\n") != std::string_view::npos);
  CHECK(get.info_reply.find("+@read\r\n") != std::string_view::npos);
  CHECK(get.info_reply.ends_with("\r\n"));
  CHECK(get.docs_reply.starts_with("$3\r\nget\r\n*"));
  CHECK(get.docs_reply.find("Get the value of a key") != std::string_view::npos);

  // A container's entry nests its subcommands' entries (element 10) in name order.
  const CommandInfo& client = command("client");
  const CommandInfo& setname = subcommand("client", "setname");
  CHECK(setname.info_reply.starts_with("*10\r\n$14\r\nclient|setname\r\n:3\r\n"));
  CHECK(setname.info_reply.ends_with("*0\r\n"));  // no subcommands of its own
  CHECK(client.info_reply.find(setname.info_reply) != std::string_view::npos);
  CHECK(client.info_reply.ends_with(client.subcommands.back().info_reply));
  CHECK(client.docs_reply.find("$11\r\nsubcommands\r\n") != std::string_view::npos);
  CHECK(setname.docs_reply.starts_with("$14\r\nclient|setname\r\n*"));

  // Every info_reply is exactly one well-formed RESP2 value (array of 10 elements).
  for (const CommandInfo& c : resp::all_commands()) {
    CHECK(c.info_reply.starts_with("*10\r\n"));
    CHECK(c.info_reply.find(std::string(1, '$') + std::to_string(c.name.size()) + "\r\n" +
                            std::string(c.name) + "\r\n") == 5);
  }
}

TEST_CASE("find_keys: arity is checked first, with Redis's rule") {
  CHECK(keys_of({"get"}).status == KeyStatus::kWrongArity);
  CHECK(keys_of({"get", "a", "b"}).status == KeyStatus::kWrongArity);
  CHECK(keys_of({"mget"}).status == KeyStatus::kWrongArity);      // arity -2
  CHECK(keys_of({"set", "k"}).status == KeyStatus::kWrongArity);  // arity -3
  CHECK(keys_of({"ping"}).status == KeyStatus::kOk);
  CHECK(keys_of({"ping", "hello"}).status == KeyStatus::kOk);
  CHECK(keys_of({"ping", "a", "b"}).status == KeyStatus::kOk);  // arity -1: Redis's PING errors
  // Subcommand arity counts the container name too.
  CHECK(keys_of({"object", "encoding"}).status == KeyStatus::kWrongArity);
  CHECK(keys_of({"object", "encoding", "k", "x"}).status == KeyStatus::kWrongArity);
  CHECK(keys_of({"object"}).status == KeyStatus::kWrongArity);  // the container: arity -2
  // MSET needs key value pairs: "wrong number of arguments", as Redis says.
  CHECK(keys_of({"mset", "k1", "v1", "k2"}).status == KeyStatus::kWrongArity);
  CHECK(keys_of({"msetnx", "k1", "v1", "k2"}).status == KeyStatus::kWrongArity);
}

TEST_CASE("find_keys: single and fixed multi-key commands") {
  CHECK(ok_keys({"GET", "k"}) == Indices{1});
  CHECK(ok_keys({"set", "k", "v", "EX", "10"}) == Indices{1});
  CHECK(ok_keys({"hset", "h", "f", "v"}) == Indices{1});
  CHECK(ok_keys({"rename", "a", "b"}) == Indices{1, 2});
  CHECK(ok_keys({"lmove", "a", "b", "LEFT", "RIGHT"}) == Indices{1, 2});
  CHECK(ok_keys({"smove", "a", "b", "m"}) == Indices{1, 2});
  CHECK(ok_keys({"lcs", "a", "b"}) == Indices{1, 2});
  CHECK(ok_keys({"bitop", "AND", "dest", "a", "b"}) == Indices{2, 3, 4});
  CHECK(ok_keys({"sinterstore", "dest", "a", "b"}) == Indices{1, 2, 3});
  CHECK(ok_keys({"pfmerge", "dest"}) == Indices{1});
  CHECK(ok_keys({"pfmerge", "dest", "a"}) == Indices{1, 2});
  CHECK(ok_keys({"object", "encoding", "k"}) == Indices{2});
  CHECK(ok_keys({"OBJECT", "Encoding", "k"}) == Indices{2});
  CHECK(ok_keys({"xinfo", "stream", "s", "FULL"}) == Indices{2});
  CHECK(ok_keys({"memory", "usage", "k", "SAMPLES", "5"}) == Indices{2});
  CHECK(ok_keys({"xgroup", "create", "s", "g", "$"}) == Indices{2});
  CHECK(ok_keys({"ping"}).empty());
  CHECK(ok_keys({"time"}).empty());
}

TEST_CASE("find_keys: split commands") {
  CHECK(ok_keys({"mget", "a"}) == Indices{1});
  CHECK(ok_keys({"mget", "a", "b", "c"}) == Indices{1, 2, 3});
  CHECK(ok_keys({"mset", "k1", "v1", "k2", "v2"}) == Indices{1, 3});
  CHECK(ok_keys({"msetnx", "k1", "v1"}) == Indices{1});
  CHECK(ok_keys({"del", "a", "b"}) == Indices{1, 2});
  CHECK(ok_keys({"unlink", "a"}) == Indices{1});
  CHECK(ok_keys({"exists", "a", "a"}) == (Indices{1, 2}));  // duplicates kept
  CHECK(ok_keys({"touch", "a", "b"}) == Indices{1, 2});
  CHECK(ok_keys({"blpop", "a", "b", "0"}) == Indices{1, 2});  // lastkey -2: not the timeout
}

TEST_CASE("find_keys: numkeys forms") {
  // EVAL script numkeys key... arg...
  CHECK(ok_keys({"eval", "return 1", "0"}).empty());
  CHECK(ok_keys({"eval", "return 1", "0", "arg1"}).empty());
  CHECK(ok_keys({"eval", "return 1", "2", "k1", "k2", "arg1"}) == Indices{3, 4});
  CHECK(ok_keys({"EVALSHA", "abc", "1", "k1"}) == Indices{3});
  CHECK(ok_keys({"eval_ro", "s", "1", "k"}) == Indices{3});
  CHECK(ok_keys({"fcall", "f", "2", "a", "b"}) == Indices{3, 4});
  CHECK(ok_keys({"fcall_ro", "f", "0"}).empty());
  // ZUNIONSTORE dest numkeys key... [WEIGHTS ...]: destination first.
  CHECK(ok_keys({"zunionstore", "dest", "2", "a", "b", "WEIGHTS", "1", "2"}) == Indices{1, 3, 4});
  CHECK(ok_keys({"zinterstore", "dest", "1", "a"}) == Indices{1, 3});
  CHECK(ok_keys({"zdiffstore", "dest", "2", "a", "b"}) == Indices{1, 3, 4});
  CHECK(ok_keys({"zunion", "2", "a", "b", "WITHSCORES"}) == Indices{2, 3});
  CHECK(ok_keys({"zintercard", "2", "a", "b", "LIMIT", "10"}) == Indices{2, 3});
  CHECK(ok_keys({"sintercard", "3", "a", "b", "c"}) == Indices{2, 3, 4});
  CHECK(ok_keys({"lmpop", "2", "a", "b", "LEFT", "COUNT", "3"}) == Indices{2, 3});
  CHECK(ok_keys({"zmpop", "1", "z", "MIN"}) == Indices{2});
}

TEST_CASE("find_keys: bad numkeys") {
  CHECK(keys_of({"eval", "s", "-1"}).status == KeyStatus::kBadNumkeys);
  CHECK(keys_of({"eval", "s", "x"}).status == KeyStatus::kBadNumkeys);
  CHECK(keys_of({"eval", "s", ""}).status == KeyStatus::kBadNumkeys);
  CHECK(keys_of({"eval", "s", "01"}).status == KeyStatus::kBadNumkeys);
  CHECK(keys_of({"eval", "s", "+1", "k"}).status == KeyStatus::kBadNumkeys);
  CHECK(keys_of({"eval", "s", "2", "k"}).status == KeyStatus::kBadNumkeys);  // too big
  CHECK(keys_of({"eval", "s", "99999999999999999999999", "k"}).status == KeyStatus::kBadNumkeys);
  CHECK(keys_of({"zunionstore", "d", "3", "a", "b"}).status == KeyStatus::kBadNumkeys);
  CHECK(keys_of({"zintercard", "x", "a"}).status == KeyStatus::kBadNumkeys);
  // numkeys 0 where Redis needs a key: the command could never succeed.
  CHECK(keys_of({"lmpop", "0", "a", "LEFT"}).status == KeyStatus::kBadNumkeys);
  CHECK(keys_of({"sintercard", "0", "a"}).status == KeyStatus::kBadNumkeys);
  CHECK(keys_of({"zunion", "0", "a"}).status == KeyStatus::kBadNumkeys);
  CHECK(keys_of({"zunionstore", "d", "0", "a"}).status == KeyStatus::kBadNumkeys);
  CHECK(keys_of({"zdiffstore", "d", "0", "a"}).status == KeyStatus::kBadNumkeys);
}

TEST_CASE("find_keys: XREAD / XREADGROUP") {
  CHECK(ok_keys({"xread", "STREAMS", "s1", "0"}) == Indices{2});
  CHECK(ok_keys({"xread", "COUNT", "10", "streams", "s1", "s2", "0", "$"}) == Indices{4, 5});
  CHECK(ok_keys({"xreadgroup", "GROUP", "g", "c", "COUNT", "1", "STREAMS", "s1", "s2", ">", ">"}) ==
        Indices{7, 8});
  // A key named like an option, and a group named STREAMS: the search starts after them.
  CHECK(ok_keys({"xread", "STREAMS", "block", "streams", "0", "0"}) == Indices{2, 3});
  CHECK(ok_keys({"xreadgroup", "GROUP", "streams", "c", "STREAMS", "s", ">"}) == Indices{5});
  // BLOCK makes it blocking (any case), before or after other options; keys still found.
  CHECK(keys_of({"xread", "BLOCK", "0", "STREAMS", "s", "$"}).status == KeyStatus::kBlockOption);
  CHECK(keys_of({"xread", "count", "1", "block", "100", "streams", "s", "$"}).status ==
        KeyStatus::kBlockOption);
  CHECK(keys_of({"xreadgroup", "GROUP", "g", "c", "BLOCK", "0", "STREAMS", "s", ">"}).status ==
        KeyStatus::kBlockOption);
  CHECK(keys_of({"xread", "BLOCK", "0", "STREAMS", "s1", "s2", "$", "$"}).indices == Indices{4, 5});
  // A malformed one is malformed first, whatever its options (the server's own error).
  CHECK(keys_of({"xread", "BLOCK", "0", "STREAMS", "s1", "s2", "$"}).status ==
        KeyStatus::kBadNumkeys);
  // Unbalanced or missing STREAMS list.
  CHECK(keys_of({"xread", "STREAMS", "s1", "s2", "0"}).status == KeyStatus::kBadNumkeys);
  CHECK(keys_of({"xread", "COUNT", "1", "s1", "0"}).status == KeyStatus::kBadNumkeys);
  CHECK(keys_of({"xread", "COUNT", "1", "STREAMS"}).status == KeyStatus::kBadNumkeys);
}

TEST_CASE("find_keys: SORT, GEORADIUS STORE, MIGRATE") {
  CHECK(ok_keys({"sort", "k"}) == Indices{1});
  CHECK(ok_keys({"sort", "k", "ALPHA", "DESC"}) == Indices{1});
  CHECK(ok_keys({"sort", "k", "BY", "w_*", "LIMIT", "0", "10", "GET", "#", "STORE", "dest"}) ==
        Indices{1, 10});
  CHECK(ok_keys({"sort", "k", "store", "d1", "STORE", "d2"}) == Indices{1, 5});  // last wins
  CHECK(ok_keys({"sort", "k", "GET", "store", "ALPHA"}) == Indices{1});  // a pattern, not STORE
  CHECK(ok_keys({"sort", "k", "STORE"}) == Indices{1});                  // no destination
  CHECK(ok_keys({"sort_ro", "k", "STORE", "d"}) == Indices{1});          // SORT_RO cannot store

  CHECK(ok_keys({"georadius", "g", "15", "37", "200", "km"}) == Indices{1});
  CHECK(ok_keys({"georadius", "g", "15", "37", "200", "km", "ASC", "STORE", "dest"}) ==
        Indices{1, 8});
  CHECK(ok_keys({"georadius", "g", "15", "37", "200", "km", "COUNT", "3", "STOREDIST", "dd"}) ==
        Indices{1, 9});
  CHECK(ok_keys({"georadiusbymember", "g", "m", "10", "km", "STORE", "dest"}) == Indices{1, 6});
  CHECK(ok_keys({"geosearchstore", "dest", "src", "FROMMEMBER", "m", "BYRADIUS", "1", "km"}) ==
        Indices{1, 2});

  CHECK(ok_keys({"migrate", "h", "6379", "k", "0", "5000"}) == Indices{3});
  CHECK(ok_keys({"migrate", "h", "6379", "", "0", "5000", "COPY", "AUTH", "keys", "KEYS", "a",
                 "b"}) == Indices{10, 11});
  CHECK(ok_keys({"migrate", "h", "6379", "", "0", "5000", "AUTH2", "u", "keys", "KEYS", "a"}) ==
        Indices{10});
  CHECK(keys_of({"migrate", "h", "6379", "k", "0", "5000", "KEYS", "a"}).status ==
        KeyStatus::kBadNumkeys);
}

TEST_CASE("find_keys: key flags and vector reuse") {
  const CommandInfo& zunionstore = command("zunionstore");
  std::vector<std::string_view> args = {"zunionstore", "d", "2", "a", "b"};
  std::vector<uint32_t> indices = {99, 98};
  std::vector<uint32_t> flags;
  REQUIRE(resp::find_keys(zunionstore, args, indices, &flags) == KeyStatus::kOk);
  CHECK(indices == Indices{1, 3, 4});
  REQUIRE(flags.size() == 3);
  CHECK((flags[0] & resp::kKeyOW) != 0);
  CHECK((flags[1] & resp::kKeyRO) != 0);
  CHECK((flags[2] & resp::kKeyRO) != 0);
  args = {"get", "x"};
  REQUIRE(resp::find_keys(command("get"), args, indices, &flags) == KeyStatus::kOk);
  CHECK(indices == Indices{1});
  CHECK(flags.size() == 1);
}

TEST_CASE("routing classes") {
  auto routing = [](std::string_view name) { return command(name).routing; };
  auto sub_routing = [](std::string_view c, std::string_view s) {
    return subcommand(c, s).routing;
  };
  // Single key.
  for (std::string_view n : {"get", "set", "incr", "hset", "lpush", "zadd", "xadd", "expire",
                             "georadius_ro", "bitfield", "restore"}) {
    CHECK_MESSAGE(routing(n) == Routing::kSingleKey, n);
  }
  CHECK(sub_routing("object", "encoding") == Routing::kSingleKey);
  CHECK(sub_routing("xinfo", "stream") == Routing::kSingleKey);
  CHECK(sub_routing("xgroup", "create") == Routing::kSingleKey);
  CHECK(sub_routing("memory", "usage") == Routing::kSingleKey);

  // Split per server and merged.
  for (std::string_view n : {"mget", "mset", "del", "unlink", "exists", "touch"}) {
    CHECK_MESSAGE(routing(n) == Routing::kMultiKeySplit, n);
  }

  // Several keys that must live on one server.
  for (std::string_view n :
       {"sinter",         "sunionstore", "sdiff",     "smove",       "rename",
        "renamenx",       "lmove",       "rpoplpush", "zunionstore", "zinterstore",
        "zdiffstore",     "zunion",      "zinter",    "zdiff",       "zrangestore",
        "pfmerge",        "pfcount",     "bitop",     "copy",        "msetnx",
        "eval",           "evalsha",     "eval_ro",   "evalsha_ro",  "fcall",
        "fcall_ro",       "sort",        "sort_ro",   "georadius",   "georadiusbymember",
        "geosearchstore", "lmpop",       "zmpop",     "sintercard",  "zintercard",
        "xread",          "xreadgroup",  "lcs"}) {
    CHECK_MESSAGE(routing(n) == Routing::kSameServer, n);
  }

  // Answered by dproxy.
  for (std::string_view n :
       {"ping", "echo", "quit", "auth", "hello", "select", "command", "info"}) {
    CHECK_MESSAGE(routing(n) == Routing::kLocal, n);
  }
  for (std::string_view s : {"count", "info", "docs", "list", "getkeys"}) {
    CHECK_MESSAGE(sub_routing("command", s) == Routing::kLocal, s);
  }
  for (std::string_view s : {"setname", "getname", "id"}) {
    CHECK_MESSAGE(sub_routing("client", s) == Routing::kLocal, s);
  }

  // No key, any server.
  CHECK(routing("time") == Routing::kNoKeyForward);
  CHECK(sub_routing("object", "help") == Routing::kNoKeyForward);

  // Rejected, with the reason.
  auto reason = [](std::string_view name) {
    const CommandInfo& c = command(name);
    CHECK_MESSAGE(c.routing == Routing::kRejected, name);
    return c.reject_reason;
  };
  for (std::string_view n : {"subscribe", "psubscribe", "ssubscribe", "unsubscribe", "punsubscribe",
                             "sunsubscribe", "publish", "spublish", "pubsub"}) {
    CHECK_MESSAGE(reason(n) == reasons::kPubSub, n);
  }
  // PUBSUB introspection is broadcast and merged; HELP from any server.
  for (std::string_view n : {"channels", "shardchannels", "numsub", "shardnumsub", "numpat"}) {
    CHECK_MESSAGE(sub_routing("pubsub", n) == Routing::kBroadcast, n);
  }
  CHECK(sub_routing("pubsub", "help") == Routing::kNoKeyForward);
  for (std::string_view n : {"blpop", "brpop", "brpoplpush", "blmove", "blmpop", "bzpopmin",
                             "bzpopmax", "bzmpop", "wait"}) {
    CHECK_MESSAGE(reason(n) == reasons::kBlocking, n);
  }
  for (std::string_view n : {"multi", "exec", "discard", "watch", "unwatch"}) {
    CHECK_MESSAGE(reason(n) == reasons::kTransaction, n);
  }
  CHECK(reason("monitor") == reasons::kMonitor);
  for (std::string_view n :
       {"config", "shutdown", "debug", "replicaof", "slaveof", "save", "bgsave", "bgrewriteaof",
        "lastsave", "acl", "failover", "module", "latency", "slowlog", "memory", "migrate", "sync",
        "psync", "replconf"}) {
    CHECK_MESSAGE(reason(n) == reasons::kAdmin, n);
  }
  CHECK(subcommand("config", "get").reject_reason == reasons::kAdmin);
  CHECK(subcommand("memory", "stats").reject_reason == reasons::kAdmin);
  CHECK(subcommand("client", "kill").reject_reason == reasons::kAdmin);
  CHECK(subcommand("client", "tracking").reject_reason == reasons::kConnection);
  for (std::string_view n : {"cluster", "readonly", "readwrite", "asking"}) {
    CHECK_MESSAGE(reason(n) == reasons::kCluster, n);
  }
  CHECK(subcommand("cluster", "nodes").reject_reason == reasons::kCluster);
  CHECK(subcommand("cluster", "addslots").reject_reason == reasons::kCluster);  // admin, too
  // Broadcast: sent to every server and merged (SCAN walks them one by one).
  for (std::string_view n : {"keys", "scan", "randomkey", "dbsize", "flushall", "flushdb"}) {
    CHECK_MESSAGE(command(n).routing == Routing::kBroadcast, n);
  }
  for (std::string_view n : {"load", "exists", "flush"}) {
    CHECK_MESSAGE(subcommand("script", n).routing == Routing::kBroadcast, n);
  }
  for (std::string_view n : {"script", "function"}) {
    CHECK_MESSAGE(reason(n) == reasons::kNotRouted, n);
  }
  CHECK(subcommand("script", "debug").reject_reason == reasons::kNotRouted);
  // Functions live on every server; KILL goes to every server; the rest asks one.
  for (std::string_view n : {"load", "delete", "flush", "restore", "kill"}) {
    CHECK_MESSAGE(subcommand("function", n).routing == Routing::kBroadcast, n);
  }
  CHECK(subcommand("script", "kill").routing == Routing::kBroadcast);
  for (std::string_view n : {"list", "dump", "stats", "help"}) {
    CHECK_MESSAGE(subcommand("function", n).routing == Routing::kNoKeyForward, n);
  }
  CHECK(reason("swapdb") == reasons::kMultiDb);
  CHECK(reason("reset") == reasons::kConnection);
  // A container whose subcommands differ answers unknown subcommands.
  CHECK(reason("object") == reasons::kUnknownSubcommand);

  // Every class is used, and every routed command has what its class needs.
  std::set<Routing> seen;
  for (const CommandInfo& c : resp::all_commands()) {
    seen.insert(c.routing);
    for (const CommandInfo& s : c.subcommands) seen.insert(s.routing);
    if (c.routing == Routing::kSingleKey || c.routing == Routing::kSameServer ||
        c.routing == Routing::kMultiKeySplit) {
      CHECK_MESSAGE(!c.key_specs.empty(), c.name);
    }
  }
  CHECK(seen.size() == 7);
}
