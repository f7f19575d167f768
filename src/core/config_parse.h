#pragma once
// Internal to the JSON config loader (config*.cpp): the parsed document's type, the error
// helpers and the parsers of values, routes and pools. Not part of core's interface.

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.h"

namespace dproxy::core::config_parse {

// ordered_json keeps pools in file order (they are listed and started in that order).
using json = nlohmann::ordered_json;

// Thrown only inside config loading (never on the data path) and turned into `error`.
struct ConfigError {
  std::string message;
};

[[noreturn]] inline void fail(const std::string& path, const std::string& what) {
  throw ConfigError{path + ": " + what};
}

// config_values.cpp: scalars, addresses, servers, messages.
std::string json_quote(const std::string& s);
const char* type_name(const json& v);
bool parse_u64(std::string_view s, uint64_t& out);
uint64_t get_uint(const json& v, const std::string& path, uint64_t min, uint64_t max);
const std::string& get_string(const json& v, const std::string& path);
bool get_bool(const json& v, const std::string& path);
// "ip:port", "[ipv6]:port" or "/path/to/socket[ mode]".
ListenAddress parse_listen(const std::string& s, const std::string& path);
// A server string ("host:port[:weight] [name]") or object ({"address": ..., ...}).
routing::ServerSpec parse_server(const json& v, const std::string& path);
// "unknown key" with a hint: nutcracker's name for a dproxy key, or the known key it is
// closest to (a typo), or else the list of known keys.
std::string unknown_key(const std::string& key, const std::vector<std::string>& known);

// config_route.cpp: the route tree of a pool.
bool is_route_key(const std::string& key);
// Reads the route keys of a pool (root) or of a nested route object into `spec`; servers go
// into the pool's flat list. A nested route object takes only route keys.
void parse_route(const json& obj, const std::string& path, PoolConfig& pool,
                 routing::RouteSpec& spec, bool root);

// config_pool.cpp: one pool object.
PoolConfig parse_pool(const std::string& name, const json& v, const std::string& path);

}  // namespace dproxy::core::config_parse
