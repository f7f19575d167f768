// dproxy: composition root. Parses the command line, loads the config, runs the proxy.

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "core/config.h"
#include "core/log.h"
#include "core/proxy.h"

namespace {

const char kUsage[] =
    "Usage: dproxy --config FILE [options]\n"
    "\n"
    "A memcached and Redis proxy: shards keys over pools of servers, placing them as\n"
    "twemproxy does.\n"
    "\n"
    "Options:\n"
    "  -c, --config FILE      pools configuration (JSON); required\n"
    "  -t, --test-config      validate the config, print a summary of the pools, exit 0/1\n"
    "  -n, --threads N        worker threads (default: number of cores)\n"
    "  -l, --log-level LEVEL  error | warn | info | debug (default: info);\n"
    "                         SIGTTIN raises it, SIGTTOU lowers it at run time\n"
    "  -o, --log-file PATH    log to PATH instead of stderr (reopened on SIGUSR1)\n"
    "\n"
    "Signals: SIGHUP reloads the config file, SIGTERM/SIGINT drain and stop.\n"
    "  -V, --version          print the version and exit\n"
    "  -h, --help             print this help and exit\n";

int usage_error(const std::string& message) {
  std::fprintf(stderr, "dproxy: %s\nTry 'dproxy --help'.\n", message.c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_path;
  std::string log_file;
  bool test_config = false;
  unsigned threads = std::max(1u, std::thread::hardware_concurrency());
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&](const char* name) -> const char* {
      if (i + 1 >= argc) return nullptr;
      (void)name;
      return argv[++i];
    };
    if (arg == "-h" || arg == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (arg == "-V" || arg == "--version") {
      std::printf("dproxy %s\n", DPROXY_VERSION);
      return 0;
    } else if (arg == "-t" || arg == "--test-config") {
      test_config = true;
    } else if (arg == "-c" || arg == "--config") {
      const char* v = value("--config");
      if (!v) return usage_error(arg + " needs a file name");
      config_path = v;
    } else if (arg == "-n" || arg == "--threads") {
      const char* v = value("--threads");
      char* end = nullptr;
      long n = v ? std::strtol(v, &end, 10) : 0;
      if (!v || *end != '\0' || n < 1 || n > 256)
        return usage_error(std::string("--threads needs a number from 1 to 256, got '") +
                           (v ? v : "") + "'");
      threads = static_cast<unsigned>(n);
    } else if (arg == "-o" || arg == "--log-file") {
      const char* v = value("--log-file");
      if (!v || *v == '\0') return usage_error(arg + " needs a file name");
      log_file = v;
    } else if (arg == "-l" || arg == "--log-level") {
      const char* v = value("--log-level");
      auto level = v ? dproxy::core::parse_log_level(v) : std::nullopt;
      if (!level)
        return usage_error(std::string("--log-level needs one of error, warn, info, debug, got '") +
                           (v ? v : "") + "'");
      dproxy::core::set_log_level(*level);
    } else {
      return usage_error("unknown option '" + arg + "'");
    }
  }
  if (config_path.empty()) return usage_error("missing --config FILE");

  dproxy::core::Config config;
  std::string error;
  if (!dproxy::core::load_config(config_path, config, error)) {
    std::fprintf(stderr, "dproxy: config error: %s\n", error.c_str());
    return 1;
  }
  if (test_config) {
    std::printf("%s: OK\n%s", config_path.c_str(), dproxy::core::describe_config(config).c_str());
    return 0;
  }
  if (!log_file.empty() && !dproxy::core::open_log_file(log_file, error)) {
    std::fprintf(stderr, "dproxy: %s\n", error.c_str());
    return 1;
  }
  dproxy::core::Proxy proxy(std::move(config), threads, config_path);
  if (!proxy.start(error)) {
    std::fprintf(stderr, "dproxy: %s\n", error.c_str());
    return 1;
  }
  return proxy.run();
}
