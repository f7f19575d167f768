#include "core/log.h"

#include <fcntl.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <mutex>

namespace dproxy::core {
namespace {
std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
// Where lines go. A reopen dup2()s the new file onto this descriptor, so a thread writing a line
// at that moment writes to the old or the new file, never to a closed descriptor.
std::atomic<int> g_fd{STDERR_FILENO};
std::string g_path;  // guarded by g_path_mutex (open/reopen only, never on the logging path)
std::mutex g_path_mutex;

int open_append(const std::string& path, std::string& error) {
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) error = "cannot open log file " + path + ": " + std::strerror(errno);
  return fd;
}
const char* level_tag(LogLevel level) {
  switch (level) {
    case LogLevel::kError:
      return "ERROR";
    case LogLevel::kWarn:
      return "WARN";
    case LogLevel::kInfo:
      return "INFO";
    case LogLevel::kDebug:
      return "DEBUG";
  }
  return "?";
}
}  // namespace

const char* log_level_name(LogLevel level) {
  switch (level) {
    case LogLevel::kError:
      return "error";
    case LogLevel::kWarn:
      return "warn";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kDebug:
      return "debug";
  }
  return "?";
}

bool open_log_file(const std::string& path, std::string& error) {
  std::lock_guard<std::mutex> lock(g_path_mutex);
  int fd = open_append(path, error);
  if (fd < 0) return false;
  g_path = path;
  g_fd.store(fd);
  return true;
}

bool reopen_log_file(std::string& error) {
  std::lock_guard<std::mutex> lock(g_path_mutex);
  if (g_path.empty()) return true;
  int fd = open_append(g_path, error);
  if (fd < 0) return false;
  int current = g_fd.load();
  if (::dup2(fd, current) < 0) {
    error = std::string("cannot reopen log file: ") + std::strerror(errno);
    ::close(fd);
    return false;
  }
  ::close(fd);
  return true;
}

std::optional<LogLevel> parse_log_level(std::string_view name) {
  if (name == "error") return LogLevel::kError;
  if (name == "warn" || name == "warning") return LogLevel::kWarn;
  if (name == "info") return LogLevel::kInfo;
  if (name == "debug") return LogLevel::kDebug;
  return std::nullopt;
}

void set_log_level(LogLevel level) {
  g_level.store(static_cast<int>(level));
}
LogLevel log_level() {
  return static_cast<LogLevel>(g_level.load(std::memory_order_relaxed));
}
bool log_enabled(LogLevel level) {
  return static_cast<int>(level) <= g_level.load(std::memory_order_relaxed);
}

void log_message(LogLevel level, const char* fmt, ...) {
  char line[2048];
  timeval tv{};
  gettimeofday(&tv, nullptr);
  tm parts{};
  localtime_r(&tv.tv_sec, &parts);
  int n = static_cast<int>(strftime(line, sizeof line, "%Y-%m-%d %H:%M:%S", &parts));
  n += snprintf(line + n, sizeof line - static_cast<size_t>(n), ".%03ld [%s] ",
                static_cast<long>(tv.tv_usec / 1000), level_tag(level));
  va_list args;
  va_start(args, fmt);
  int m = vsnprintf(line + n, sizeof line - static_cast<size_t>(n) - 1, fmt, args);
  va_end(args);
  size_t len = static_cast<size_t>(n) + (m < 0 ? 0 : static_cast<size_t>(m));
  if (len > sizeof line - 2) len = sizeof line - 2;
  line[len++] = '\n';
  ssize_t ignored = write(g_fd.load(std::memory_order_relaxed), line, len);
  (void)ignored;
}

}  // namespace dproxy::core
