#include "core/reload_diff.h"

#include <map>
#include <vector>

namespace dproxy::core {

namespace {

// Servers by the name that places keys (ketama_name: the configured name, else host:port).
std::map<std::string, const routing::ServerSpec*> by_name(const PoolConfig& pool) {
  std::map<std::string, const routing::ServerSpec*> out;
  for (const auto& s : pool.servers) out.emplace(s.ketama_name(), &s);
  return out;
}

std::string label(const std::string& key, const routing::ServerSpec& s) {
  return s.name.empty() ? s.address() : key + " (" + s.address() + ")";
}

void append(std::string& out, const char* what, const std::vector<std::string>& items) {
  if (items.empty()) return;
  out += out.empty() ? "servers " : "; ";
  out += what;
  for (size_t i = 0; i < items.size(); ++i) out += (i == 0 ? " " : ", ") + items[i];
}

}  // namespace

std::string describe_server_changes(const PoolConfig& before, const PoolConfig& after) {
  const auto old_servers = by_name(before);
  const auto new_servers = by_name(after);
  std::vector<std::string> added, removed, moved, reweighted;
  for (const auto& [key, s] : new_servers) {
    auto it = old_servers.find(key);
    if (it == old_servers.end()) {
      added.push_back(label(key, *s));
      continue;
    }
    const auto& old = *it->second;
    if (old.address() != s->address())
      moved.push_back(key + " " + old.address() + " -> " + s->address());
    if (old.weight != s->weight)
      reweighted.push_back(key + " " + std::to_string(old.weight) + " -> " +
                           std::to_string(s->weight));
  }
  for (const auto& [key, s] : old_servers)
    if (!new_servers.count(key)) removed.push_back(label(key, *s));
  std::string out;
  append(out, "added", added);
  append(out, "removed", removed);
  append(out, "address changed", moved);
  append(out, "weight changed", reweighted);
  if (out.empty()) {
    bool same_order = before.servers.size() == after.servers.size();
    for (size_t i = 0; same_order && i < before.servers.size(); ++i)
      same_order = before.servers[i].ketama_name() == after.servers[i].ketama_name();
    out = same_order ? "servers unchanged" : "servers reordered";
  }
  return out;
}

namespace {

bool same_route(const routing::RouteSpec& a, const routing::RouteSpec& b) {
  if (a.policy != b.policy || a.hash != b.hash || a.hash_tag != b.hash_tag ||
      a.servers != b.servers || a.children.size() != b.children.size())
    return false;
  for (size_t i = 0; i < a.children.size(); ++i)
    if (!same_route(a.children[i], b.children[i])) return false;
  return true;
}

}  // namespace

bool same_placement(const PoolConfig& before, const PoolConfig& after) {
  if (before.servers.size() != after.servers.size() || before.hash != after.hash ||
      before.hash_tag != after.hash_tag || before.auto_eject_hosts != after.auto_eject_hosts ||
      !same_route(before.route, after.route))
    return false;
  for (size_t i = 0; i < before.servers.size(); ++i) {
    const routing::ServerSpec& a = before.servers[i];
    const routing::ServerSpec& b = after.servers[i];
    if (a.host != b.host || a.port != b.port || a.weight != b.weight || a.name != b.name)
      return false;
  }
  return true;
}

}  // namespace dproxy::core
