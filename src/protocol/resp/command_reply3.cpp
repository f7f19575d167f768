// COMMAND INFO / DOCS in RESP3. See command_reply3.h.

#include "protocol/resp/command_reply3.h"

#include "protocol/resp/reply_parser.h"
#include "protocol/resp/reply_writer.h"

namespace dproxy::protocol::resp {

namespace {

// How an aggregate of the RESP2 entry is re-encoded.
enum class Shape : uint8_t {
  kSet,      // a set of scalars (flags, categories, tips)
  kKeySpec,  // a map; its "flags" value a set, every other aggregate a map like it
  kDoc,      // a doc map (history, arguments, subcommands, doc_flags)
  kArg,      // an argument map (flags, nested arguments)
  kArgs,     // an array of argument maps
  kDocs,     // a map of name -> doc (subcommands)
  kHistory,  // a set of [version, text] arrays, kept as arrays
};

bool is_aggregate(std::string_view v) {
  return !v.empty() && v[0] == '*';
}

// The text of a bulk string element ("$5\r\nflags\r\n" -> "flags"); empty for anything else.
std::string_view bulk_text(std::string_view v) {
  if (v.size() < 4 || v[0] != '$') return {};
  const size_t eol = v.find("\r\n");
  if (eol == std::string_view::npos || v.size() < eol + 4) return {};
  return v.substr(eol + 2, v.size() - eol - 4);
}

bool convert(std::string& out, std::string_view v, Shape shape);

// A map's pairs: each value re-encoded by the shape its key calls for.
bool convert_map(std::string& out, ArrayReader& reader, Shape shape) {
  if (reader.size() < 0 || reader.size() % 2 != 0) return false;
  append_map_header(out, static_cast<size_t>(reader.size() / 2), true);
  std::string_view key, value;
  while (reader.next(key)) {
    if (!reader.next(value)) return false;
    out.append(key);
    if (!is_aggregate(value)) {
      out.append(value);
      continue;
    }
    const std::string_view name = bulk_text(key);
    Shape inner = shape;  // kKeySpec: nested maps
    if (shape == Shape::kDocs) {
      inner = Shape::kDoc;
    } else if (name == "flags" || name == "doc_flags") {
      inner = Shape::kSet;
    } else if (shape == Shape::kDoc || shape == Shape::kArg) {
      if (name == "arguments") {
        inner = Shape::kArgs;
      } else if (name == "subcommands") {
        inner = Shape::kDocs;
      } else if (name == "history") {
        inner = Shape::kHistory;
      } else {
        inner = Shape::kSet;
      }
    }
    if (!convert(out, value, inner)) return false;
  }
  return reader.ok();
}

bool convert(std::string& out, std::string_view v, Shape shape) {
  ArrayReader reader(v);
  if (!reader.ok() || reader.size() < 0) return false;
  const auto n = static_cast<size_t>(reader.size());
  std::string_view element;
  switch (shape) {
    case Shape::kSet:
    case Shape::kHistory:
      append_set_header(out, n, true);
      while (reader.next(element)) out.append(element);
      return reader.ok();
    case Shape::kArgs:
      append_array_header(out, n);
      while (reader.next(element)) {
        if (!convert(out, element, Shape::kArg)) return false;
      }
      return reader.ok();
    case Shape::kKeySpec:
    case Shape::kDoc:
    case Shape::kArg:
    case Shape::kDocs:
      return convert_map(out, reader, shape);
  }
  return false;
}

bool info_entry(std::string& out, std::string_view entry) {
  // name, arity, flags, first key, last key, step, ACL categories, tips, key specs, subcommands
  ArrayReader reader(entry);
  if (!reader.ok() || reader.size() != 10) return false;
  append_array_header(out, 10);
  std::string_view e;
  for (int i = 0; i < 10; ++i) {
    if (!reader.next(e)) return false;
    switch (i) {
      case 2:
      case 6:
      case 7:
        if (!convert(out, e, Shape::kSet)) return false;
        break;
      case 8: {
        ArrayReader specs(e);
        if (!specs.ok() || specs.size() < 0) return false;
        append_set_header(out, static_cast<size_t>(specs.size()), true);
        std::string_view spec;
        while (specs.next(spec)) {
          if (!convert(out, spec, Shape::kKeySpec)) return false;
        }
        break;
      }
      case 9: {
        ArrayReader subs(e);
        if (!subs.ok() || subs.size() < 0) return false;
        if (subs.size() == 0) {
          append_set_header(out, 0, true);  // Redis: no subcommands is an empty set
          break;
        }
        append_array_header(out, static_cast<size_t>(subs.size()));
        std::string_view sub;
        while (subs.next(sub)) {
          if (!info_entry(out, sub)) return false;
        }
        break;
      }
      default:
        out.append(e);
    }
  }
  return true;
}

}  // namespace

bool append_command_info_resp3(std::string& out, std::string_view entry) {
  const size_t start = out.size();
  if (info_entry(out, entry)) return true;
  out.resize(start);
  return false;
}

bool append_command_docs_resp3(std::string& out, std::string_view pair) {
  const size_t start = out.size();
  const ParseResult name = scan_reply(pair);
  if (name.status != ParseStatus::kOk || pair[0] != '$') return false;
  out.append(pair.substr(0, name.consumed));
  if (convert(out, pair.substr(name.consumed), Shape::kDoc)) return true;
  out.resize(start);
  return false;
}

}  // namespace dproxy::protocol::resp
