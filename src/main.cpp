// dproxy: composition root. Parses the command line, loads the config, runs the proxy.
//
// The command line takes dproxy's own options and nutcracker's (twemproxy 0.5), so that
// `nutcracker -c nutcracker.yml -s 22222 -d -p /run/nc.pid` works with `dproxy` in its place.

#include <arpa/inet.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "core/config.h"
#include "core/log.h"
#include "core/proxy.h"
#include "core/tls_memory.h"

namespace {

const char kUsage[] =
    "Usage: dproxy --config FILE [options]\n"
    "\n"
    "A memcached and Redis proxy: shards keys over pools of servers, placing them as\n"
    "twemproxy does. FILE is dproxy JSON or nutcracker YAML (*.yml, *.yaml).\n"
    "\n"
    "Options (a value may follow as `--opt value` or `--opt=value`):\n"
    "  -c, --config FILE          pools configuration; required (also --conf-file)\n"
    "  -t, --test-config          check the config (resolve every server host, try every\n"
    "                             listen address), print a summary, exit 0/1 (also --test-conf)\n"
    "      --print-config FILE    print FILE as the equivalent dproxy JSON and exit\n"
    "  -n, --threads N            worker threads (default: number of cores)\n"
    "  -l, --log-level LEVEL      error | warn | info | debug (default: info)\n"
    "  -v, --verbose N            nutcracker's log level 0..11: <=3 error, 4 warn,\n"
    "                             5-6 info, >=7 debug\n"
    "  -o, --log-file PATH        log to PATH instead of stderr (also --output)\n"
    "  -d, --daemonize            run in the background (returns once listening)\n"
    "  -p, --pid-file PATH        write the process id to PATH (removed at exit)\n"
    "  -s, --stats-port N         stats listener port (default 22222 or stats.listen)\n"
    "  -a, --stats-addr IP        stats listener address (default 127.0.0.1 or stats.listen)\n"
    "  -i, --stats-interval MS    accepted for nutcracker; no effect (stats are live)\n"
    "  -m, --mbuf-size N          accepted for nutcracker; no effect (buffers sized by dproxy)\n"
    "  -D, --describe-stats       print what each stats field means and exit\n"
    "  -V, --version              print the version and exit\n"
    "  -h, --help                 print this help and exit\n"
    "\n"
    "Signals: SIGHUP reloads the config file, SIGTERM/SIGINT drain and stop,\n"
    "SIGUSR1 reopens the log file, SIGTTIN/SIGTTOU raise/lower the log level.\n";

const char kStatsDescription[] =
    "pool stats:\n"
    "  client_eof          \"# eof on client connections\"\n"
    "  client_err          \"# errors on client connections\"\n"
    "  client_connections  \"# active client connections\"\n"
    "  server_ejects       \"# times backend server was ejected\"\n"
    "  forward_error       \"# times we encountered a forwarding error\"\n"
    "  fragments           \"# fragments created from a multi-vector request\"\n"
    "\n"
    "server stats:\n"
    "  server_eof          \"# eof on server connections\"\n"
    "  server_err          \"# errors on server connections\"\n"
    "  server_timedout     \"# timeouts on server connections\"\n"
    "  server_connections  \"# active server connections\"\n"
    "  server_ejected_at   \"timestamp when server was ejected in usec since epoch\"\n"
    "  requests            \"# requests\"\n"
    "  request_bytes       \"total request bytes\"\n"
    "  responses           \"# responses\"\n"
    "  response_bytes      \"total response bytes\"\n"
    "  in_queue            \"# requests in incoming queue\"\n"
    "  in_queue_bytes      \"current request bytes in incoming queue\"\n"
    "  out_queue           \"# requests in outgoing queue\"\n"
    "  out_queue_bytes     \"current request bytes in outgoing queue\"\n"
    "\n"
    "The same listener answers HTTP: GET /metrics (Prometheus), /stats (JSON),\n"
    "/healthz (alive), /readyz (every pool has a server up).\n";

int usage_error(const std::string& message) {
  std::fprintf(stderr, "dproxy: %s\nTry 'dproxy --help'.\n", message.c_str());
  return 2;
}

bool parse_number(std::string_view s, long min, long max, long& out) {
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return !s.empty() && ec == std::errc() && end == s.data() + s.size() && out >= min && out <= max;
}

// One option as written on the command line.
struct OptionSpec {
  char short_name;        // 0: none
  const char* long_name;  // without "--"
  const char* alias;      // another long name (nutcracker's), or nullptr
  bool takes_value;
};

constexpr OptionSpec kOptions[] = {
    {'c', "config", "conf-file", true}, {'t', "test-config", "test-conf", false},
    {0, "print-config", nullptr, true}, {'n', "threads", nullptr, true},
    {'l', "log-level", nullptr, true},  {'v', "verbose", nullptr, true},
    {'o', "log-file", "output", true},  {'d', "daemonize", nullptr, false},
    {'p', "pid-file", nullptr, true},   {'s', "stats-port", nullptr, true},
    {'a', "stats-addr", nullptr, true}, {'i', "stats-interval", nullptr, true},
    {'m', "mbuf-size", nullptr, true},  {'D', "describe-stats", nullptr, false},
    {'V', "version", nullptr, false},   {'h', "help", nullptr, false},
};

// Writes the pid file; false + error when it cannot.
bool write_pid_file(const std::string& path, std::string& error) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    error = "cannot write pid file " + path + ": " + std::strerror(errno);
    return false;
  }
  std::string text = std::to_string(::getpid()) + "\n";
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::close(fd);
  if (!ok) error = "cannot write pid file " + path + ": " + std::strerror(errno);
  return ok;
}

// Forks into the background. The parent waits on a pipe until the daemon reports that it is
// running (exit 0) or why it failed (message, exit 1); it never returns. The daemon gets the
// pipe's write end in `report_fd`.
[[noreturn]] void wait_for_daemon(int read_fd) {
  std::string message;
  char buf[512];
  ssize_t n;
  while ((n = ::read(read_fd, buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR))
    if (n > 0) message.append(buf, static_cast<size_t>(n));
  if (message == "ok") std::_Exit(0);
  if (message.empty()) message = "the daemon exited before it was running";
  std::fprintf(stderr, "dproxy: %s\n", message.c_str());
  std::_Exit(1);
}

bool daemonize(int& report_fd, std::string& error) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    error = std::string("cannot daemonize: pipe: ") + std::strerror(errno);
    return false;
  }
  pid_t pid = ::fork();
  if (pid < 0) {
    error = std::string("cannot daemonize: fork: ") + std::strerror(errno);
    return false;
  }
  if (pid > 0) {
    ::close(fds[1]);
    wait_for_daemon(fds[0]);
  }
  ::close(fds[0]);
  ::setsid();
  // A second fork: the daemon is no session leader, so it can never acquire a terminal.
  pid = ::fork();
  if (pid < 0) {
    error = std::string("cannot daemonize: fork: ") + std::strerror(errno);
    return false;
  }
  if (pid > 0) std::_Exit(0);
  // The umask is left as it was (files and sockets are created as without -d).
  if (::chdir("/") != 0) {
    error = std::string("cannot daemonize: chdir /: ") + std::strerror(errno);
    return false;
  }
  int null = ::open("/dev/null", O_RDWR);
  if (null >= 0) {
    ::dup2(null, STDIN_FILENO);
    ::dup2(null, STDOUT_FILENO);
    // stderr too, once the log has a place (main redirects it after opening the log).
    if (null > STDERR_FILENO) ::close(null);
  }
  report_fd = fds[1];
  return true;
}

void report(int fd, const std::string& message) {
  if (fd < 0) return;
  ssize_t ignored = ::write(fd, message.data(), message.size());
  (void)ignored;
  ::close(fd);
}

std::string absolute(const std::string& path) {
  std::error_code ec;
  auto p = std::filesystem::absolute(path, ec);
  return ec ? path : p.string();
}

// What the command line asks for.
struct Options {
  std::string config_path, log_file, pid_file, print_config;
  bool test_config = false, daemon = false;
  unsigned threads = std::max(1u, std::thread::hardware_concurrency());
  dproxy::core::ConfigOverrides overrides;
  std::vector<std::string> notes;  // printed once the options are all read
};

constexpr int kContinue = -1;  // an option handler's "go on" (anything else: exit with it)

// Finds the option argv[i] names and its value (taking argv[i + 1] when the value is not
// inline). `shown` is the option as the user wrote it, for messages. kContinue or an exit code.
int read_option(int argc, char** argv, int& i, const OptionSpec*& spec, std::string& value,
                std::string& shown) {
  std::string_view arg = argv[i];
  spec = nullptr;
  std::optional<std::string> inline_value;
  shown = std::string(arg);
  if (arg.starts_with("--") && arg.size() > 2) {
    std::string_view name = arg.substr(2);
    if (auto eq = name.find('='); eq != std::string_view::npos) {
      inline_value = std::string(name.substr(eq + 1));
      name = name.substr(0, eq);
      shown = "--" + std::string(name);
    }
    for (const auto& o : kOptions)
      if (name == o.long_name || (o.alias != nullptr && name == o.alias)) spec = &o;
  } else if (arg.size() >= 2 && arg[0] == '-' && arg[1] != '-') {
    for (const auto& o : kOptions)
      if (o.short_name == arg[1]) spec = &o;
    shown = std::string(arg.substr(0, 2));
    if (spec != nullptr && arg.size() > 2) {
      if (!spec->takes_value) {
        spec = nullptr;  // "-dt": combined flags are not taken, name the whole word
        shown = std::string(arg);
      } else {
        inline_value = std::string(arg.substr(2));  // getopt's "-s22222"
      }
    }
  }
  if (spec == nullptr) return usage_error("unknown option '" + shown + "'");
  if (!spec->takes_value) return inline_value ? usage_error(shown + " takes no value") : kContinue;
  if (inline_value) {
    value = *inline_value;
  } else if (i + 1 < argc) {
    value = argv[++i];
  } else {
    const std::string n = spec->long_name;
    bool file = n == "config" || n == "print-config" || n == "log-file" || n == "pid-file";
    return usage_error(shown + (file ? " needs a file name" : " needs a value"));
  }
  return kContinue;
}

// The options that print something and exit, and the flags. kContinue or an exit code.
int apply_simple_option(const std::string& name, Options& o) {
  if (name == "help") {
    std::fputs(kUsage, stdout);
    return 0;
  } else if (name == "version") {
    std::printf("dproxy %s\n", DPROXY_VERSION);
    return 0;
  } else if (name == "describe-stats") {
    std::fputs(kStatsDescription, stdout);
    return 0;
  } else if (name == "test-config") {
    o.test_config = true;
  } else if (name == "daemonize") {
    o.daemon = true;
  }
  return kContinue;
}

int apply_log_level(const std::string& name, const std::string& value, const std::string& shown) {
  using dproxy::core::LogLevel;
  long n = 0;
  if (name == "log-level") {
    auto level = dproxy::core::parse_log_level(value);
    if (!level)
      return usage_error("--log-level needs one of error, warn, info, debug, got '" + value + "'");
    dproxy::core::set_log_level(*level);
  } else {
    if (!parse_number(value, 0, 11, n))
      return usage_error(shown + " needs a level from 0 to 11, got '" + value + "'");
    dproxy::core::set_log_level(n <= 3   ? LogLevel::kError
                                : n == 4 ? LogLevel::kWarn
                                : n <= 6 ? LogLevel::kInfo
                                         : LogLevel::kDebug);
  }
  return kContinue;
}

int apply_stats_option(const std::string& name, const std::string& value, const std::string& shown,
                       Options& o) {
  long n = 0;
  if (name == "stats-port") {
    if (!parse_number(value, 1, 65535, n))
      return usage_error(shown + " needs a port from 1 to 65535, got '" + value + "'");
    o.overrides.stats_port = static_cast<uint32_t>(n);
  } else if (name == "stats-addr") {
    unsigned char buf[sizeof(in6_addr)];
    if (inet_pton(AF_INET, value.c_str(), buf) != 1 && inet_pton(AF_INET6, value.c_str(), buf) != 1)
      return usage_error(shown + " needs an IP address, got '" + value + "'");
    o.overrides.stats_addr = value;
  } else {  // stats-interval, mbuf-size: accepted for nutcracker
    if (!parse_number(value, 1, 1L << 31, n))
      return usage_error(shown + " needs a positive number, got '" + value + "'");
    o.notes.push_back(name == "stats-interval"
                          ? "--stats-interval has no effect: dproxy's stats are counted live"
                          : "--mbuf-size has no effect: dproxy sizes its buffers itself");
  }
  return kContinue;
}

// An option that takes a value. kContinue or an exit code.
int apply_value_option(const std::string& name, const std::string& value, const std::string& shown,
                       Options& o) {
  long n = 0;
  if (name == "config" || name == "print-config" || name == "log-file" || name == "pid-file") {
    if (value.empty()) return usage_error(shown + " needs a file name");
    (name == "config"         ? o.config_path
     : name == "print-config" ? o.print_config
     : name == "log-file"     ? o.log_file
                              : o.pid_file) = value;
  } else if (name == "threads") {
    if (!parse_number(value, 1, 256, n))
      return usage_error("--threads needs a number from 1 to 256, got '" + value + "'");
    o.threads = static_cast<unsigned>(n);
  } else if (name == "log-level" || name == "verbose") {
    return apply_log_level(name, value, shown);
  } else {
    return apply_stats_option(name, value, shown, o);
  }
  return kContinue;
}

int parse_command_line(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    const OptionSpec* spec = nullptr;
    std::string value, shown;
    int rc = read_option(argc, argv, i, spec, value, shown);
    if (rc == kContinue)
      rc = spec->takes_value ? apply_value_option(spec->long_name, value, shown, o)
                             : apply_simple_option(spec->long_name, o);
    if (rc != kContinue) return rc;
  }
  return kContinue;
}

int print_config_file(const std::string& path) {
  std::string json, error;
  if (!dproxy::core::config_file_as_json(path, json, error)) {
    std::fprintf(stderr, "dproxy: config error: %s\n", error.c_str());
    return 1;
  }
  std::fputs(json.c_str(), stdout);
  return 0;
}

// --test-config: the environment checks, one line per problem, then the summary.
int test_config(const dproxy::core::Config& config, const std::string& path) {
  std::string problems;
  bool ok = dproxy::core::check_config_environment(config, problems);
  size_t start = 0;
  while (start < problems.size()) {
    size_t end = problems.find('\n', start);
    std::string line = problems.substr(start, end - start);
    if (line.starts_with("warning: "))
      std::fprintf(stderr, "dproxy: warning: %s: %s\n", path.c_str(), line.c_str() + 9);
    else
      std::fprintf(stderr, "dproxy: config error: %s: %s\n", path.c_str(), line.c_str());
    start = end + 1;
  }
  if (!ok) return 1;
  std::printf("%s: OK\n%s", path.c_str(), dproxy::core::describe_config(config).c_str());
  return 0;
}

// Runs the proxy (in the background with -d) until it stops; the process's exit code.
int serve(Options& o, dproxy::core::Config config) {
  std::string error;
  int report_fd = -1;
  if (o.daemon) {
    // The daemon runs in "/": reloads and log reopening need absolute paths.
    o.config_path = absolute(o.config_path);
    if (!o.log_file.empty()) o.log_file = absolute(o.log_file);
    if (!o.pid_file.empty()) o.pid_file = absolute(o.pid_file);
    if (!daemonize(report_fd, error)) {
      std::fprintf(stderr, "dproxy: %s\n", error.c_str());
      return 1;
    }
  }
  auto fail = [&](const std::string& message) {
    // A daemon's waiting parent prints the message on the terminal it was started from.
    if (report_fd >= 0)
      report(report_fd, message);
    else
      std::fprintf(stderr, "dproxy: %s\n", message.c_str());
    return 1;
  };
  if (!o.log_file.empty() && !dproxy::core::open_log_file(o.log_file, error)) return fail(error);
  if (o.daemon) {
    // Until here errors went to the terminal (and the waiting parent); from now on to the log.
    int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null >= 0) {
      ::dup2(null, STDERR_FILENO);
      ::close(null);
    }
  }
  for (const auto& note : o.notes) LOG_INFO("note: %s", note.c_str());
  dproxy::core::Proxy proxy(std::move(config), o.threads, o.config_path, o.overrides);
  if (!proxy.start(error)) return fail(error);
  if (!o.pid_file.empty() && !write_pid_file(o.pid_file, error)) return fail(error);
  report(report_fd, "ok");
  int rc = proxy.run();
  if (!o.pid_file.empty()) ::unlink(o.pid_file.c_str());
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  // First, before anything can make OpenSSL allocate: its heap is counted for the stats.
  dproxy::core::install_tls_memory_accounting();
  Options o;
  if (int rc = parse_command_line(argc, argv, o); rc != kContinue) return rc;
  if (!o.print_config.empty()) return print_config_file(o.print_config);
  if (o.config_path.empty()) return usage_error("missing --config FILE");
  for (const auto& note : o.notes) std::fprintf(stderr, "dproxy: note: %s\n", note.c_str());

  dproxy::core::Config config;
  std::string error;
  if (!dproxy::core::load_config(o.config_path, config, error)) {
    std::fprintf(stderr, "dproxy: config error: %s\n", error.c_str());
    return 1;
  }
  o.overrides.threads = o.threads;
  dproxy::core::apply_overrides(config, o.overrides);
  if (o.test_config) return test_config(config, o.config_path);
  return serve(o, std::move(config));
}
