#pragma once
// memcached ASCII commands known to dproxy.

#include <cstdint>
#include <string_view>

namespace dproxy::protocol::memcache {

enum class Command : uint16_t {
  kGet,
  kGets,
  kGat,
  kGats,
  kSet,
  kAdd,
  kReplace,
  kAppend,
  kPrepend,
  kCas,
  kDelete,
  kIncr,
  kDecr,
  kTouch,
  kVersion,
  kQuit,
  kFlushAll,
  kVerbosity,
  kStats,        // plain "stats": answered by dproxy with its own figures
  kStatsGroup,   // "stats settings|items|slabs|sizes|conns|cachedump ...|detail dump": every
                 // server's lines, concatenated, then one END
  kStatsReset,   // "stats reset": sent to every server, RESET when all say so
  kStatsDetail,  // "stats detail on|off": sent to every server, OK when all say so
  // The meta protocol (memcached 1.6): forwarded as sent, routed by the key (a base64 key, flag
  // b, by its decoded bytes); mn is answered by dproxy.
  kMetaGet,      // mg
  kMetaSet,      // ms
  kMetaDelete,   // md
  kMetaArith,    // ma
  kMetaNoop,     // mn
  kMetaDebug,    // me
  kUnsupported,  // a real memcached command dproxy does not proxy (stats, meta commands, ...)
};

// The command's name as clients spell it ("get", "flush_all"; the stats forms dproxy sends to
// every server have names of their own: "stats_group", ...); "" for kUnsupported.
inline std::string_view command_name(Command c) {
  switch (c) {
    case Command::kGet:
      return "get";
    case Command::kGets:
      return "gets";
    case Command::kGat:
      return "gat";
    case Command::kGats:
      return "gats";
    case Command::kSet:
      return "set";
    case Command::kAdd:
      return "add";
    case Command::kReplace:
      return "replace";
    case Command::kAppend:
      return "append";
    case Command::kPrepend:
      return "prepend";
    case Command::kCas:
      return "cas";
    case Command::kDelete:
      return "delete";
    case Command::kIncr:
      return "incr";
    case Command::kDecr:
      return "decr";
    case Command::kTouch:
      return "touch";
    case Command::kVersion:
      return "version";
    case Command::kQuit:
      return "quit";
    case Command::kFlushAll:
      return "flush_all";
    case Command::kVerbosity:
      return "verbosity";
    case Command::kStats:
      return "stats";
    // The stats forms sent to the servers: names of their own, for per-command figures.
    case Command::kStatsGroup:
      return "stats_group";
    case Command::kStatsReset:
      return "stats_reset";
    case Command::kStatsDetail:
      return "stats_detail";
    case Command::kMetaGet:
      return "mg";
    case Command::kMetaSet:
      return "ms";
    case Command::kMetaDelete:
      return "md";
    case Command::kMetaArith:
      return "ma";
    case Command::kMetaNoop:
      return "mn";
    case Command::kMetaDebug:
      return "me";
    case Command::kUnsupported:
      return "";
  }
  return "";
}

// The shape of the backend reply a command expects.
enum class ReplyKind : uint8_t {
  kRetrieval,  // zero or more "VALUE ..." items then "END", or one error line
  kLine,       // exactly one line of any content (only where nothing stricter applies)
  kStorage,    // STORED, NOT_STORED, EXISTS, NOT_FOUND, or an error line
  kDelete,     // DELETED, NOT_FOUND, or an error line
  kArith,      // a decimal number, NOT_FOUND, or an error line
  kTouch,      // TOUCHED, NOT_FOUND, or an error line
  kOk,         // OK, or an error line (flush_all, verbosity)
  kVersion,    // VERSION <anything>, or an error line
  kReset,      // RESET, or an error line (stats reset)
  kStats,      // lines (STAT, ITEM, PREFIX ...) then END, or an error line as the first line
  kMeta,       // a meta reply (mg / ms / md / ma, sent for binary clients): "VA <size> <flags>*"
          // and a data block, or one line (HD, EN, NF, NS, EX, ME with flags), or an error line
  kMetaQuiet,  // a quiet meta request (flag q) followed by dproxy's "mn": whatever the server
               // answers (nothing, or a meta reply, or an error line), then "MN"
};

inline ReplyKind reply_kind(Command c) {
  switch (c) {
    case Command::kGet:
    case Command::kGets:
    case Command::kGat:
    case Command::kGats:
      return ReplyKind::kRetrieval;
    case Command::kSet:
    case Command::kAdd:
    case Command::kReplace:
    case Command::kAppend:
    case Command::kPrepend:
    case Command::kCas:
      return ReplyKind::kStorage;
    case Command::kDelete:
      return ReplyKind::kDelete;
    case Command::kIncr:
    case Command::kDecr:
      return ReplyKind::kArith;
    case Command::kTouch:
      return ReplyKind::kTouch;
    case Command::kFlushAll:
    case Command::kVerbosity:
    case Command::kStatsDetail:
      return ReplyKind::kOk;
    case Command::kStatsReset:
      return ReplyKind::kReset;
    case Command::kStatsGroup:
      return ReplyKind::kStats;
    case Command::kVersion:
      return ReplyKind::kVersion;
    case Command::kMetaGet:
    case Command::kMetaSet:
    case Command::kMetaDelete:
    case Command::kMetaArith:
    case Command::kMetaDebug:
      return ReplyKind::kMeta;
    default:
      return ReplyKind::kLine;
  }
}

}  // namespace dproxy::protocol::memcache
