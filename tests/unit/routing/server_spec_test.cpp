// Tests for ServerSpec naming (the ketama input string) and addresses.

#include "routing/server_spec.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using dproxy::routing::duplicate_ketama_name;
using dproxy::routing::ServerSpec;

TEST_CASE("ketama_name uses the configured name when there is one") {
  CHECK(ServerSpec{"127.0.0.1", 11311, 1, "alpha"}.ketama_name() == "alpha");
  CHECK(ServerSpec{"127.0.0.1", 11211, 1, "alpha"}.ketama_name() == "alpha");
  CHECK(ServerSpec{"/var/run/mc.sock", 0, 2, "sock"}.ketama_name() == "sock");
}

TEST_CASE("ketama_name of an unnamed TCP server is host:port, or host alone on 11211") {
  CHECK(ServerSpec{"127.0.0.1", 11311, 1, ""}.ketama_name() == "127.0.0.1:11311");
  CHECK(ServerSpec{"127.0.0.1", 11211, 1, ""}.ketama_name() == "127.0.0.1");
  CHECK(ServerSpec{"cache-1.example.com", 11212, 3, ""}.ketama_name() ==
        "cache-1.example.com:11212");
  CHECK(ServerSpec{"cache-1.example.com", 11211, 3, ""}.ketama_name() == "cache-1.example.com");
  // The weight never takes part.
  CHECK(ServerSpec{"10.0.0.1", 6379, 7, ""}.ketama_name() == "10.0.0.1:6379");
}

TEST_CASE("ketama_name of an unnamed unix socket keeps twemproxy's trailing colon") {
  // nutcracker 0.5.0 names "/path/sock:1" servers "/path/sock:" (verified by placement).
  CHECK(ServerSpec{"/var/run/memcached.sock", 0, 1, ""}.ketama_name() ==
        "/var/run/memcached.sock:");
}

TEST_CASE("address is host:port or the socket path") {
  CHECK(ServerSpec{"127.0.0.1", 11211, 1, "alpha"}.address() == "127.0.0.1:11211");
  CHECK(ServerSpec{"cache-1", 22122, 1, ""}.address() == "cache-1:22122");
  CHECK(ServerSpec{"/var/run/mc.sock", 0, 1, "x"}.address() == "/var/run/mc.sock");
  CHECK(ServerSpec{"::1", 11211, 1, ""}.address() == "[::1]:11211");
}

TEST_CASE("duplicate_ketama_name finds servers twemproxy would reject") {
  const std::vector<ServerSpec> distinct = {
      {"10.0.0.1", 11211, 1, ""}, {"10.0.0.1", 11212, 1, ""}, {"10.0.0.2", 11211, 1, "b"}};
  CHECK_FALSE(duplicate_ketama_name(distinct).has_value());
  // Same name on different hosts.
  const std::vector<ServerSpec> same_name = {{"10.0.0.1", 11211, 1, "a"},
                                             {"10.0.0.2", 11211, 2, "a"}};
  CHECK(duplicate_ketama_name(same_name) == "a");
  // A name equal to another server's host:port.
  const std::vector<ServerSpec> clash = {{"10.0.0.1", 11212, 1, ""},
                                         {"10.0.0.9", 11211, 1, "10.0.0.1:11212"}};
  CHECK(duplicate_ketama_name(clash) == "10.0.0.1:11212");
  CHECK_FALSE(duplicate_ketama_name({}).has_value());
}
