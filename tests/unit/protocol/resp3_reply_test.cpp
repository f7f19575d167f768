// Unit tests for the replies dproxy composes for RESP3 clients: the RESP3 writers and the
// COMMAND INFO / DOCS re-encoding (command_reply3.h). The expected bytes are what redis-server
// 7.0 sends a client that said HELLO 3 (tests/integration/test_redis_resp3.py compares the whole
// table against a real server).

#include <doctest/doctest.h>

#include <string>
#include <string_view>

#include "protocol/resp/command_reply3.h"
#include "protocol/resp/command_table.h"
#include "protocol/resp/reply_parser.h"
#include "protocol/resp/reply_writer.h"

namespace {

namespace resp = dproxy::protocol::resp;
using dproxy::protocol::ParseStatus;

// One complete reply, as the backend scanner reads it.
bool one_reply(std::string_view bytes) {
  const auto r = resp::scan_reply(bytes);
  return r.status == ParseStatus::kOk && r.consumed == bytes.size();
}

TEST_CASE("resp3 writer: null, map, set, push, verbatim, with their RESP2 forms") {
  std::string out;
  resp::append_null(out, true);
  resp::append_null(out, false);
  CHECK(out == "_\r\n$-1\r\n");
  out.clear();
  resp::append_map_header(out, 7, true);
  resp::append_map_header(out, 7, false);
  resp::append_set_header(out, 2, true);
  resp::append_set_header(out, 2, false);
  resp::append_push_header(out, 3, true);
  resp::append_push_header(out, 3, false);
  CHECK(out == "%7\r\n*14\r\n~2\r\n*2\r\n>3\r\n*3\r\n");
  out.clear();
  resp::append_verbatim_text(out, "a:1\r\n", true);
  CHECK(out == "=9\r\ntxt:a:1\r\n\r\n");
  CHECK(one_reply(out));
  out.clear();
  resp::append_verbatim_text(out, "a:1\r\n", false);
  CHECK(out == "$5\r\na:1\r\n\r\n");
}

TEST_CASE("resp3 HELLO reply shape: a map of seven pairs") {
  // What RedisFrontEnd::hello writes (field values aside), read back by the scanner.
  std::string out;
  resp::append_map_header(out, 7, true);
  for (const char* key : {"server", "version", "proto", "id", "mode", "role"}) {
    resp::append_bulk(out, key);
    resp::append_bulk(out, "x");
  }
  resp::append_bulk(out, "modules");
  resp::append_array_header(out, 0);
  CHECK(one_reply(out));
  resp::ArrayReader map(out);
  CHECK(map.size() == 14);
}

TEST_CASE("resp3 COMMAND INFO: flags, categories, tips and key specs become sets and maps") {
  // GET's entry, RESP2 (the table) and RESP3 (redis-server 7.0.15 after HELLO 3).
  const resp::CommandInfo* get = resp::find_command("get");
  REQUIRE(get != nullptr);
  std::string out;
  REQUIRE(resp::append_command_info_resp3(out, get->info_reply));
  CHECK(out ==
        "*10\r\n$3\r\nget\r\n:2\r\n~2\r\n+readonly\r\n+fast\r\n:1\r\n:1\r\n:1\r\n~3\r\n+@read\r\n"
        "+@string\r\n+@fast\r\n~0\r\n~1\r\n%3\r\n$5\r\nflags\r\n~2\r\n+RO\r\n+access\r\n"
        "$12\r\nbegin_search\r\n%2\r\n$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n%1\r\n"
        "$5\r\nindex\r\n:1\r\n$9\r\nfind_keys\r\n%2\r\n$4\r\ntype\r\n$5\r\nrange\r\n$4\r\nspec\r\n"
        "%3\r\n$7\r\nlastkey\r\n:0\r\n$7\r\nkeystep\r\n:1\r\n$5\r\nlimit\r\n:0\r\n~0\r\n");
  CHECK(one_reply(out));
  // A container: its subcommands stay an array of entries.
  const resp::CommandInfo* client = resp::find_command("client");
  REQUIRE(client != nullptr);
  out.clear();
  REQUIRE(resp::append_command_info_resp3(out, client->info_reply));
  CHECK(
      out.starts_with("*10\r\n$6\r\nclient\r\n:-2\r\n~0\r\n:0\r\n:0\r\n:0\r\n~1\r\n+@slow\r\n"
                      "~0\r\n~0\r\n*"));
  CHECK(one_reply(out));
  // Every entry of the table converts and stays one reply.
  for (const auto& c : resp::all_commands()) {
    CAPTURE(c.name);
    out.clear();
    CHECK(resp::append_command_info_resp3(out, c.info_reply));
    CHECK(one_reply(out));
    out.clear();
    CHECK(resp::append_command_docs_resp3(out, c.docs_reply));
    CHECK(one_reply(std::string_view(out).substr(out.find("\r\n%") + 2)));
  }
  // Malformed input: false, nothing appended.
  out = "x";
  CHECK(!resp::append_command_info_resp3(out, "*2\r\n:1\r\n:2\r\n"));
  CHECK(!resp::append_command_docs_resp3(out, ":1\r\n"));
  CHECK(out == "x");
}

TEST_CASE("resp3 COMMAND DOCS: docs and arguments are maps, history and flags sets") {
  const resp::CommandInfo* get = resp::find_command("get");
  REQUIRE(get != nullptr);
  std::string out;
  REQUIRE(resp::append_command_docs_resp3(out, get->docs_reply));
  CHECK(out ==
        "$3\r\nget\r\n%5\r\n$7\r\nsummary\r\n$22\r\nGet the value of a key\r\n$5\r\nsince\r\n"
        "$5\r\n1.0.0\r\n$5\r\ngroup\r\n$6\r\nstring\r\n$10\r\ncomplexity\r\n$4\r\nO(1)\r\n"
        "$9\r\narguments\r\n*1\r\n%3\r\n$4\r\nname\r\n$3\r\nkey\r\n$4\r\ntype\r\n$3\r\nkey\r\n"
        "$14\r\nkey_spec_index\r\n:0\r\n");
  const resp::CommandInfo* set = resp::find_command("set");
  REQUIRE(set != nullptr);
  out.clear();
  REQUIRE(resp::append_command_docs_resp3(out, set->docs_reply));
  CHECK(out.find("$7\r\nhistory\r\n~4\r\n*2\r\n$6\r\n2.6.12\r\n") != std::string::npos);
  CHECK(out.find("$5\r\nflags\r\n~1\r\n+optional\r\n") != std::string::npos);
}

}  // namespace
