#pragma once
// The memcached meta protocol (mg, ms, md, ma, mn, me; memcached 1.6's protocol.txt): what
// dproxy needs to know of a meta request to route it, and base64 keys (flag b).
//
// dproxy forwards a meta request as the client sent it: the server checks its flags and answers
// with its own replies and errors. dproxy reads only the key (to route it: a base64 key by its
// decoded bytes), the data length of ms (to frame it), and the flags that change where or how
// the request is sent (q: quiet, b: base64 key, C: compare-and-swap, and mg's T / N, which
// write). Pure functions: std only, no allocation beyond the caller's string.

#include <cstddef>
#include <string>
#include <string_view>

namespace dproxy::protocol::memcache::meta {

// memcached refuses a meta request of more than this many tokens (command, key, data length
// and flags together) with "options flags (are) too long".
inline constexpr size_t kMaxTokens = 19;

// What the flags of one meta request say (the tokens after the key, or after ms's data length).
struct FlagSummary {
  bool quiet = false;        // q: the server leaves out its nominal reply
  bool base64 = false;       // b: the key is base64 encoded
  bool compare_cas = false;  // C<cas>: compares a cas value
  bool writes = false;       // mg's T<ttl> (touch) or N<ttl> (vivify on miss)
  size_t count = 0;          // flag tokens
};

// Reads the space-separated flag tokens of `flags` (a flag is a token's first character, as
// memcached reads them; their validity is the server's to check).
FlagSummary summarize_flags(std::string_view flags);

// Decodes standard base64 (RFC 4648 alphabet, '=' padding, length a multiple of 4) as memcached
// decodes b keys: `out` is replaced by the decoded bytes. False (out unspecified) when `in` is
// not such an encoding or decodes to nothing.
bool base64_decode(std::string_view in, std::string& out);

// Appends the base64 encoding of `in` (with padding) to `out`.
void append_base64(std::string& out, std::string_view in);

}  // namespace dproxy::protocol::memcache::meta
