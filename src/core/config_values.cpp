// The JSON config's values: integers and strings with their ranges, listen addresses, server
// strings and objects, and the "unknown key" message with its hints.

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>

#include "core/config_parse.h"

namespace dproxy::core::config_parse {

std::string json_quote(const std::string& s) {
  return json(s).dump();
}

const char* type_name(const json& v) {
  return v.type_name();
}

bool parse_u64(std::string_view s, uint64_t& out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

uint64_t get_uint(const json& v, const std::string& path, uint64_t min, uint64_t max) {
  if (!v.is_number_integer() ||
      (v.is_number_integer() && !v.is_number_unsigned() && v.get<int64_t>() < 0))
    fail(path, std::string("expected a non-negative integer, got ") +
                   (v.is_number() ? v.dump() : type_name(v)));
  uint64_t n = v.get<uint64_t>();
  if (n < min || n > max)
    fail(path,
         v.dump() + " is out of range [" + std::to_string(min) + ", " + std::to_string(max) + "]");
  return n;
}

bool get_bool(const json& v, const std::string& path) {
  if (!v.is_boolean()) fail(path, std::string("expected true or false, got ") + type_name(v));
  return v.get<bool>();
}

const std::string& get_string(const json& v, const std::string& path) {
  if (!v.is_string()) fail(path, std::string("expected a string, got ") + type_name(v));
  return v.get_ref<const std::string&>();
}

namespace {

bool is_ip_address(const std::string& host) {
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

}  // namespace

// "ip:port", "[ipv6]:port" or "/path/to/socket".
ListenAddress parse_listen(const std::string& s, const std::string& path) {
  ListenAddress a;
  if (!s.empty() && s[0] == '/') {
    a.host = s;
    a.is_unix = true;
    // nutcracker's "/path/to/socket 0666": the socket file's permissions, in octal.
    auto space = s.rfind(' ');
    if (space != std::string::npos) {
      std::string mode = s.substr(space + 1);
      uint32_t m = 0;
      auto [end, ec] = std::from_chars(mode.data(), mode.data() + mode.size(), m, 8);
      if (mode.empty() || ec != std::errc() || end != mode.data() + mode.size() || m > 0777 ||
          m == 0)
        fail(path, json_quote(s) +
                       " is not a unix socket path optionally followed by an octal mode, e.g. "
                       "\"/run/dproxy.sock 0666\"");
      a.host = s.substr(0, space);
      a.mode = m;
    }
    return a;
  }
  const std::string bad =
      json_quote(s) + " is not ip:port, [ipv6]:port or an absolute unix socket path";
  auto colon = s.rfind(':');
  uint64_t port = 0;
  if (colon == std::string::npos || colon == 0 ||
      !parse_u64(std::string_view(s).substr(colon + 1), port) || port == 0 || port > 65535)
    fail(path, bad);
  a.host = s.substr(0, colon);
  if (a.host.size() > 2 && a.host.front() == '[' && a.host.back() == ']')
    a.host = a.host.substr(1, a.host.size() - 2);
  if (!is_ip_address(a.host))
    fail(path, json_quote(a.host) + " is not an IP address (listen takes a numeric address)");
  a.port = static_cast<uint16_t>(port);
  return a;
}

namespace {

// "host:port[:weight] [name]" or "/socket/path[:weight] [name]".
routing::ServerSpec parse_server_string(const std::string& s, const std::string& path) {
  const std::string bad = json_quote(s) + " is not host:port[:weight] [name]";
  routing::ServerSpec spec;
  std::string addr = s;
  auto space = s.find(' ');
  if (space != std::string::npos) {
    addr = s.substr(0, space);
    spec.name = s.substr(space + 1);
    if (spec.name.empty() || spec.name.find(' ') != std::string::npos) fail(path, bad);
  }
  std::vector<std::string> parts;
  size_t start = 0;
  std::string bracketed;  // an IPv6 literal: "[::1]:11211[:weight]"
  if (!addr.empty() && addr[0] == '[') {
    auto close = addr.find(']');
    if (close == std::string::npos || close + 1 >= addr.size() || addr[close + 1] != ':')
      fail(path, bad);
    bracketed = addr.substr(1, close - 1);
    unsigned char buf[sizeof(in6_addr)];
    if (inet_pton(AF_INET6, bracketed.c_str(), buf) != 1)
      fail(path, json_quote(s) + ": \"" + bracketed + "\" is not an IPv6 address");
    parts.push_back(bracketed);
    start = close + 2;
  }
  while (true) {
    auto c = addr.find(':', start);
    parts.push_back(addr.substr(start, c == std::string::npos ? std::string::npos : c - start));
    if (c == std::string::npos) break;
    start = c + 1;
  }
  uint64_t n = 0;
  if (!addr.empty() && addr[0] == '/') {
    if (parts.size() > 2) fail(path, bad);
    spec.host = parts[0];
    spec.port = 0;
    if (parts.size() == 2) {
      if (!parse_u64(parts[1], n) || n > 1000000) fail(path, bad);
      spec.weight = static_cast<uint32_t>(n);
    }
    return spec;
  }
  if (parts.size() < 2 || parts.size() > 3 || parts[0].empty()) fail(path, bad);
  spec.host = parts[0];
  if (!parse_u64(parts[1], n) || n == 0 || n > 65535) fail(path, bad);
  spec.port = static_cast<uint16_t>(n);
  if (parts.size() == 3) {
    if (!parse_u64(parts[2], n) || n > 1000000) fail(path, bad);
    spec.weight = static_cast<uint32_t>(n);
  }
  return spec;
}

}  // namespace

routing::ServerSpec parse_server(const json& v, const std::string& path) {
  if (v.is_string()) return parse_server_string(v.get<std::string>(), path);
  if (!v.is_object())
    fail(path, std::string("expected a server string or object, got ") + type_name(v));
  routing::ServerSpec spec;
  bool have_address = false;
  for (auto& [key, value] : v.items()) {
    std::string p = path + "." + key;
    if (key == "address") {
      const std::string& a = get_string(value, p);
      routing::ServerSpec parsed = parse_server_string(a, p);
      // Colons after an IPv6 literal's "]" (or in the whole address).
      auto bracket = a.find(']');
      long colons = a.empty() ? 0
                    : a[0] == '[' && bracket != std::string::npos
                        ? std::count(a.begin() + static_cast<long>(bracket), a.end(), ':')
                        : std::count(a.begin(), a.end(), ':');
      if (!parsed.name.empty() || colons != (a[0] == '/' ? 0 : 1))
        fail(p, json_quote(a) +
                    " is not host:port or a socket path (weight and name have keys of their own)");
      spec.host = parsed.host;
      spec.port = parsed.port;
      have_address = true;
    } else if (key == "weight") {
      spec.weight = static_cast<uint32_t>(get_uint(value, p, 0, 1000000));
    } else if (key == "name") {
      spec.name = get_string(value, p);
      if (spec.name.empty() || spec.name.find_first_of(" \t\r\n") != std::string::npos)
        fail(p, json_quote(spec.name) + " must be non-empty and contain no whitespace");
    } else {
      fail(p, "unknown key (expected address, weight, name)");
    }
  }
  if (!have_address) fail(path, "missing required key \"address\"");
  return spec;
}

namespace {

// Edits (insert, delete, replace, swap two neighbours) that turn a into b.
size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.size()][b.size()];
}

}  // namespace

// "unknown key" with a hint: nutcracker's name for a dproxy key, or the known key it is
// closest to (a typo), or else the list of known keys.
std::string unknown_key(const std::string& key, const std::vector<std::string>& known) {
  static const std::pair<const char*, const char*> kNutcracker[] = {
      {"distribution", "use \"policy\" (ketama, modula, random)"},
      {"timeout",
       "use \"timeout_ms\" (dproxy's default is 1000; 0 waits forever as nutcracker "
       "does without timeout)"},
      {"redis", "use \"protocol\": \"redis\""},
      {"redis_auth",
       "use \"client_password\" (clients must AUTH) and \"server_password\" "
       "(sent to every server); nutcracker's redis_auth is both"},
      {"redis_db", "use \"db\""},
      {"server_retry_timeout", "use \"server_retry_timeout_ms\""},
      {"tcpkeepalive", "use \"tcp_keepalive\""},
      {"servers_connections", "use \"server_connections\""},
  };
  for (const auto& [nc, hint] : kNutcracker)
    if (key == nc) return "unknown key: \"" + key + "\" is nutcracker's name; " + hint;
  for (const auto& k : known)  // a unit left out: "connect_timeout" for "connect_timeout_ms"
    if (k.starts_with(key + "_")) return "unknown key (did you mean \"" + k + "\"?)";
  std::string best;
  size_t best_d = 3;  // at most 2 edits, and fewer than half the key
  for (const auto& k : known) {
    size_t d = edit_distance(key, k);
    if (d < best_d && d * 2 < key.size()) {
      best_d = d;
      best = k;
    }
  }
  if (!best.empty()) return "unknown key (did you mean \"" + best + "\"?)";
  std::string list;
  for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
  return "unknown key (expected " + list + ")";
}

}  // namespace dproxy::core::config_parse
