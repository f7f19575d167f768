#include "core/config.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "core/config_parse.h"

namespace dproxy::core {

using namespace config_parse;

std::string ListenAddress::to_string() const {
  if (is_unix) return host;
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

namespace {

// Parses `text` as JSON; a key given twice in one object is an error (with plain JSON parsing
// the last one would silently win).
json parse_without_duplicates(const std::string& text) {
  std::vector<std::pair<std::string, std::set<std::string>>> objects;  // (path, keys seen)
  std::string pending_key;
  json::parser_callback_t reject_duplicates = [&](int, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start: {
        std::string p = objects.empty() ? "" : objects.back().first;
        if (!pending_key.empty()) p = p.empty() ? pending_key : p + "." + pending_key;
        objects.push_back({p, {}});
        pending_key.clear();
        break;
      }
      case json::parse_event_t::object_end:
        objects.pop_back();
        break;
      case json::parse_event_t::key: {
        const std::string& k = parsed.get_ref<const std::string&>();
        auto& [p, seen] = objects.back();
        if (!seen.insert(k).second)
          fail(p.empty() ? std::string("(top level)") : p, "duplicate key " + json_quote(k));
        pending_key = k;
        break;
      }
      case json::parse_event_t::array_start:
        pending_key.clear();
        break;
      default:
        break;
    }
    return true;
  };
  return json::parse(text, reject_duplicates);
}

// "pools": every pool, each on a listen address of its own (collected in `listens`).
void parse_pools(const json& value, Config& out, std::set<std::string>& listens) {
  if (!value.is_object())
    fail("pools", std::string("expected an object keyed by pool name, got ") + type_name(value));
  if (value.empty()) fail("pools", "no pools defined");
  for (auto& [name, pool] : value.items()) {
    std::string p = "pools." + name;
    out.pools.push_back(parse_pool(name, pool, p));
    if (!listens.insert(out.pools.back().listen.to_string()).second)
      fail(p + ".listen",
           json_quote(out.pools.back().listen.to_string()) + " is already used by another pool");
  }
}

void parse_stats(const json& value, Config& out) {
  if (!value.is_object())
    fail("stats", std::string("expected an object like {\"listen\": \"127.0.0.1:22222\"}, got ") +
                      type_name(value));
  for (auto& [skey, svalue] : value.items()) {
    const std::string sp = "stats." + skey;
    if (skey == "listen") {
      out.stats_listen = parse_listen(get_string(svalue, sp), sp);
      if (out.stats_listen.is_unix) fail(sp, "the stats listener takes ip:port");
      out.stats_configured = true;
    } else if (skey == "enabled") {
      out.stats_enabled = get_bool(svalue, sp);
    } else {
      fail(sp, unknown_key(skey, {"listen", "enabled"}));
    }
  }
}

[[noreturn]] void unknown_top_level_key(const std::string& key, const json& value) {
  if (value.is_object() && (value.contains("listen") || value.contains("servers")))
    fail(key,
         "unknown top-level key: it looks like a pool; pools go inside \"pools\": "
         "{...} (a nutcracker YAML file is read as such when named *.yml or *.yaml)");
  std::string message =
      unknown_key(key, {"pools", "shutdown_timeout_ms", "resolve_interval_ms", "stats"});
  fail(key, "unknown top-level key" + message.substr(std::string("unknown key").size()));
}

void parse_document(const json& doc, Config& out) {
  if (!doc.is_object())
    fail("(top level)", std::string("expected an object, got ") + type_name(doc));
  bool have_pools = false;
  std::set<std::string> listens;
  for (auto& [key, value] : doc.items()) {
    if (key == "pools") {
      parse_pools(value, out, listens);
      have_pools = true;
    } else if (key == "shutdown_timeout_ms") {
      out.shutdown_timeout_ms = static_cast<uint32_t>(get_uint(value, key, 0, 3600 * 1000));
    } else if (key == "resolve_interval_ms") {
      out.resolve_interval_ms = static_cast<uint32_t>(get_uint(value, key, 0, 86400 * 1000));
    } else if (key == "stats") {
      parse_stats(value, out);
    } else {
      unknown_top_level_key(key, value);
    }
  }
  if (!have_pools) fail("(top level)", "missing required key \"pools\"");
  if (out.stats_enabled && listens.count(out.stats_listen.to_string()))
    fail(out.stats_configured ? "stats.listen" : "stats",
         json_quote(out.stats_listen.to_string()) + " is a pool's listen address" +
             (out.stats_configured ? "" : " (the stats listener's default)"));
}

}  // namespace

bool parse_config(const std::string& text, Config& out, std::string& error) {
  try {
    parse_document(parse_without_duplicates(text), out);
    return true;
  } catch (const ConfigError& e) {
    error = e.message;
  } catch (const nlohmann::json::exception& e) {
    error = std::string("invalid JSON: ") + e.what();
  }
  out = Config{};
  return false;
}

bool is_yaml_config(const std::string& path, const std::string& text) {
  std::string ext = std::filesystem::path(path).extension().string();
  if (ext == ".json") return false;
  if (ext == ".yml" || ext == ".yaml") return true;
  size_t first = text.find_first_not_of(" \t\r\n");
  // A UTF-8 byte order mark may precede a JSON document.
  if (first != std::string::npos && text.compare(first, 3, "\xEF\xBB\xBF") == 0)
    first = text.find_first_not_of(" \t\r\n", first + 3);
  return first != std::string::npos && text[first] != '{';
}

namespace {

bool read_file(const std::string& path, std::string& text, std::string& error) {
  std::error_code fs_error;
  if (std::filesystem::is_directory(path, fs_error)) {
    error = path + ": cannot read config file: " + std::strerror(EISDIR);
    return false;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = path + ": cannot read config file: " + std::strerror(errno);
    return false;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  text = ss.str();
  return true;
}

// Reads `path` as dproxy JSON text (YAML converted); errors are prefixed with the path.
bool read_as_json(const std::string& path, std::string& text, std::string& error,
                  bool* yaml = nullptr) {
  if (!read_file(path, text, error)) return false;
  if (yaml != nullptr) *yaml = false;
  if (!is_yaml_config(path, text)) return true;
  if (yaml != nullptr) *yaml = true;
  std::string converted;
  if (!nutcracker_yaml_to_json(text, converted, error)) {
    error = path + ": " + error;
    return false;
  }
  text = std::move(converted);
  return true;
}

}  // namespace

bool config_file_as_json(const std::string& path, std::string& json_out, std::string& error) {
  std::string text;
  bool yaml = false;
  if (!read_as_json(path, text, error, &yaml)) return false;
  Config check;
  if (!parse_config(text, check, error)) {
    error = path + ": " + (yaml ? yaml_error_path(error) : error);
    return false;
  }
  json_out = json::parse(text).dump(2) + "\n";
  return true;
}

void apply_overrides(Config& config, const ConfigOverrides& overrides) {
  for (auto& pool : config.pools) {
    if (pool.server_connections_per_process == 0) continue;
    unsigned threads = std::max(1u, overrides.threads);
    pool.server_connections =
        std::max<uint32_t>(1, (pool.server_connections_per_process + threads - 1) / threads);
  }
  if (!overrides.stats_addr.empty()) {
    config.stats_listen.host = overrides.stats_addr;
    config.stats_configured = true;
  }
  if (overrides.stats_port != 0) {
    config.stats_listen.port = static_cast<uint16_t>(overrides.stats_port);
    config.stats_configured = true;
  }
  if (!overrides.stats_addr.empty() || overrides.stats_port != 0) config.stats_enabled = true;
}

bool load_config(const std::string& path, Config& out, std::string& error) {
  std::string text;
  bool yaml = false;
  if (!read_as_json(path, text, error, &yaml)) return false;
  if (!parse_config(text, out, error)) {
    error = path + ": " + (yaml ? yaml_error_path(error) : error);
    return false;
  }
  return true;
}

std::string describe_config(const Config& config) {
  std::ostringstream os;
  if (config.stats_enabled)
    os << "stats: listen=" << config.stats_listen.to_string()
       << (config.stats_configured ? "" : " (default)") << "\n";
  else
    os << "stats: disabled\n";
  for (const auto& p : config.pools) {
    const std::string& policy = p.route.policy;
    os << "pool " << p.name
       << ": protocol=" << (p.protocol == Protocol::kMemcached ? "memcached" : "redis")
       << " listen=" << p.listen.to_string() << " policy=" << policy;
    if (policy != "redis_cluster") os << " hash=" << routing::hash_name(p.hash);
    if (!p.hash_tag.empty()) os << " hash_tag=" << p.hash_tag;
    os << " timeout_ms=" << p.timeout_ms << " connect_timeout_ms=" << p.connect_timeout_ms
       << " server_failure_limit=" << p.server_failure_limit
       << " server_retry_timeout_ms=" << p.server_retry_timeout_ms
       << " auto_eject_hosts=" << (p.auto_eject_hosts ? "true" : "false")
       << " client_connections=" << p.client_connections
       << " server_connections=" << p.server_connections;
    if (p.server_connections_per_process != 0)
      os << " (per worker thread, from server_connections_per_process="
         << p.server_connections_per_process << ")";
    os << " max_value_bytes=" << p.max_value_bytes << " servers=" << p.servers.size();
    if (p.backlog != 0) os << " backlog=" << p.backlog;
    if (p.preconnect) os << " preconnect=true";
    if (p.tcp_keepalive) os << " tcp_keepalive=true";
    if (p.listen.mode != 0) {
      char mode[16];
      std::snprintf(mode, sizeof mode, "%04o", p.listen.mode);
      os << " listen_mode=" << mode;
    }
    if (policy == "redis_cluster") {
      os << " cluster_refresh_ms=" << p.cluster_refresh_ms << " read_from="
         << (p.read_from == ReadFrom::kMaster    ? "master"
             : p.read_from == ReadFrom::kReplica ? "replica"
                                                 : "any");
    }
    os << "\n";
    auto server_line = [&](uint32_t i, const char* indent) {
      const auto& s = p.servers[i];
      os << indent << s.address() << " weight=" << s.weight;
      if (!s.name.empty()) os << " name=" << s.name;
      os << "\n";
    };
    if (p.route.children.empty()) {
      for (uint32_t i : p.route.servers) server_line(i, "  ");
      continue;
    }
    for (size_t c = 0; c < p.route.children.size(); ++c) {
      const auto& child = p.route.children[c];
      os << "  child[" << c << "]: " << child.policy << " hash=" << routing::hash_name(child.hash)
         << "\n";
      for (uint32_t i : child.servers) server_line(i, "    ");
    }
  }
  return os.str();
}

}  // namespace dproxy::core
