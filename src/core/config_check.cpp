// --test-config's checks against the machine: server names resolve, listen addresses bind.

#include <netdb.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>

#include "core/config.h"
#include "core/tls_context.h"

namespace dproxy::core {
namespace {

// Binds a throw-away socket to `address`; "" when it can, otherwise why not. `warn_only`:
// the address may be fine when dproxy starts (in use by the running dproxy, or a socket
// directory that the service manager creates at start, e.g. systemd's RuntimeDirectory).
std::string try_bind(const ListenAddress& address, bool& warn_only) {
  warn_only = false;
  if (address.is_unix) {
    std::filesystem::path path(address.host);
    std::string dir = path.parent_path().string();
    if (dir.empty()) dir = "/";
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0) {
      warn_only = errno == ENOENT;
      return "directory " + dir + ": " + std::strerror(errno);
    }
    if (!S_ISDIR(st.st_mode)) return dir + " is not a directory";
    if (::access(dir.c_str(), W_OK | X_OK) != 0)
      return "cannot create a socket in " + dir + ": " + std::strerror(errno);
    if (::lstat(address.host.c_str(), &st) == 0 && !S_ISSOCK(st.st_mode))
      return address.host + " exists and is not a socket";
    if (address.host.size() >= sizeof(sockaddr_un::sun_path)) return "the path is too long";
    return "";
  }
  addrinfo hints{};
  hints.ai_flags = AI_NUMERICHOST | AI_PASSIVE;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  std::string port = std::to_string(address.port);
  if (int rc = ::getaddrinfo(address.host.c_str(), port.c_str(), &hints, &res); rc != 0)
    return ::gai_strerror(rc);
  std::string why;
  int fd = ::socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    why = std::strerror(errno);
  } else {
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd, res->ai_addr, res->ai_addrlen) != 0) {
      warn_only = errno == EADDRINUSE;
      why = std::strerror(errno);
    }
    ::close(fd);
  }
  ::freeaddrinfo(res);
  return why;
}

}  // namespace

bool check_config_environment(const Config& config, std::string& problems) {
  bool ok = true;
  auto check_listen = [&](const ListenAddress& a, const std::string& path) {
    bool warn_only = false;
    std::string why = try_bind(a, warn_only);
    if (why.empty()) return;
    if (warn_only) {
      problems += "warning: " + path + ": cannot listen on " + a.to_string() + " now: " + why +
                  (a.is_unix ? " (fine if it is created before dproxy starts)\n"
                             : " (fine if this config is for the dproxy that holds it)\n");
      return;
    }
    problems += path + ": cannot listen on " + a.to_string() + ": " + why + "\n";
    ok = false;
  };
  for (const auto& pool : config.pools) {
    check_listen(pool.listen, "pools." + pool.name + ".listen");
    std::shared_ptr<const PoolTls> tls;
    std::string tls_error;
    if (!load_pool_tls(pool, tls, tls_error)) {
      problems += tls_error + "\n";
      ok = false;
    }
    for (size_t i = 0; i < pool.servers.size(); ++i) {
      const auto& s = pool.servers[i];
      if (s.port == 0) continue;  // a unix socket path
      addrinfo hints{};
      hints.ai_socktype = SOCK_STREAM;
      addrinfo* res = nullptr;
      int rc = ::getaddrinfo(s.host.c_str(), std::to_string(s.port).c_str(), &hints, &res);
      if (rc != 0) {
        problems += pool.server_paths[i] + ": cannot resolve \"" + s.host +
                    "\": " + ::gai_strerror(rc) + "\n";
        ok = false;
      } else {
        ::freeaddrinfo(res);
      }
    }
  }
  // Only a configured stats listener must bind (the default one is given up with a warning).
  if (config.stats_enabled && config.stats_configured)
    check_listen(config.stats_listen, "stats.listen");
  return ok;
}

}  // namespace dproxy::core
