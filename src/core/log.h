#pragma once
// Minimal leveled logger: one timestamped line per event, on stderr or in a log file.

#include <atomic>
#include <cstdarg>
#include <optional>
#include <string>
#include <string_view>

namespace dproxy::core {

enum class LogLevel : int { kError = 0, kWarn = 1, kInfo = 2, kDebug = 3 };

std::optional<LogLevel> parse_log_level(std::string_view name);
void set_log_level(LogLevel level);
LogLevel log_level();
bool log_enabled(LogLevel level);
const char* log_level_name(LogLevel level);  // "error", "warn", "info", "debug"

// Sends log lines to `path` (appending; created 0644 if missing) instead of stderr. False +
// error when the file cannot be opened.
bool open_log_file(const std::string& path, std::string& error);
// Opens the log file's path again (after logrotate moved it: SIGUSR1). No-op on stderr.
bool reopen_log_file(std::string& error);

// printf-style; appends a newline. Safe to call from any thread (one write(2) per line).
void log_message(LogLevel level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

}  // namespace dproxy::core

#define DPROXY_LOG(level, ...)                                                   \
  do {                                                                           \
    if (::dproxy::core::log_enabled(::dproxy::core::LogLevel::level))            \
      ::dproxy::core::log_message(::dproxy::core::LogLevel::level, __VA_ARGS__); \
  } while (0)
#define LOG_ERROR(...) DPROXY_LOG(kError, __VA_ARGS__)
#define LOG_WARN(...) DPROXY_LOG(kWarn, __VA_ARGS__)
#define LOG_INFO(...) DPROXY_LOG(kInfo, __VA_ARGS__)
#define LOG_DEBUG(...) DPROXY_LOG(kDebug, __VA_ARGS__)
