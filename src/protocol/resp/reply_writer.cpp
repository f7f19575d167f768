// RESP2 and RESP3 writers. See reply_writer.h for the contract.

#include "protocol/resp/reply_writer.h"

#include <charconv>

namespace dproxy::protocol::resp {
namespace {

constexpr std::string_view kCrlf = "\r\n";

// The longest decimal form of an int64 or a size_t ("-9223372036854775808" is 20 characters).
constexpr size_t kMaxDigits = 24;

// Appends `marker`, then the decimal `v`, then "\r\n".
template <typename Int>
void append_number_line(std::string& out, char marker, Int v) {
  char buf[kMaxDigits + 3];
  buf[0] = marker;
  char* end = std::to_chars(buf + 1, buf + 1 + kMaxDigits, v).ptr;
  *end++ = '\r';
  *end++ = '\n';
  out.append(buf, static_cast<size_t>(end - buf));
}

// Appends "<marker><line>\r\n" with any '\r' / '\n' of `line` replaced by ' '.
void append_line(std::string& out, char marker, std::string_view line) {
  const size_t at = out.size() + 1;
  out.reserve(out.size() + line.size() + 3);
  out.push_back(marker);
  out.append(line);
  for (size_t i = at; i < out.size(); ++i) {
    if (out[i] == '\r' || out[i] == '\n') out[i] = ' ';
  }
  out.append(kCrlf);
}

size_t decimal_size(size_t v) {
  size_t n = 1;
  while (v >= 10) {
    v /= 10;
    ++n;
  }
  return n;
}

}  // namespace

void append_simple(std::string& out, std::string_view s) {
  append_line(out, '+', s);
}

void append_error(std::string& out, std::string_view message) {
  append_line(out, '-', message);
}

void append_integer(std::string& out, int64_t v) {
  append_number_line(out, ':', v);
}

void append_bulk(std::string& out, std::string_view bytes) {
  out.reserve(out.size() + bytes.size() + decimal_size(bytes.size()) + 5);
  append_number_line(out, '$', bytes.size());
  out.append(bytes);
  out.append(kCrlf);
}

void append_null_bulk(std::string& out) {
  out.append("$-1\r\n");
}

void append_null_array(std::string& out) {
  out.append("*-1\r\n");
}

void append_array_header(std::string& out, size_t n) {
  append_number_line(out, '*', n);
}

void append_null(std::string& out, bool resp3) {
  out.append(resp3 ? std::string_view("_\r\n") : std::string_view("$-1\r\n"));
}

void append_map_header(std::string& out, size_t n, bool resp3) {
  if (resp3) {
    append_number_line(out, '%', n);
  } else {
    append_number_line(out, '*', 2 * n);
  }
}

void append_set_header(std::string& out, size_t n, bool resp3) {
  append_number_line(out, resp3 ? '~' : '*', n);
}

void append_push_header(std::string& out, size_t n, bool resp3) {
  append_number_line(out, resp3 ? '>' : '*', n);
}

void append_verbatim_text(std::string& out, std::string_view text, bool resp3) {
  if (!resp3) {
    append_bulk(out, text);
    return;
  }
  append_number_line(out, '=', text.size() + 4);
  out.append("txt:");
  out.append(text);
  out.append(kCrlf);
}

void append_command(std::string& out, std::span<const std::string_view> args) {
  size_t total = decimal_size(args.size()) + 3;
  for (std::string_view a : args) total += decimal_size(a.size()) + a.size() + 5;
  out.reserve(out.size() + total);
  append_number_line(out, '*', args.size());
  for (std::string_view a : args) {
    append_number_line(out, '$', a.size());
    out.append(a);
    out.append(kCrlf);
  }
}

void append_upper_name(std::string& out, std::string_view name) {
  for (char c : name) {
    if (c == '|') c = ' ';
    out.push_back(c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c);
  }
}

}  // namespace dproxy::protocol::resp
