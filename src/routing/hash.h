#pragma once
// Key hash functions, bit-compatible with twemproxy 0.5 (nutcracker), including its quirks.

#include <cstdint>
#include <optional>
#include <string_view>

namespace dproxy::routing {

enum class HashKind : uint8_t {
  kOneAtATime,
  kMd5,
  kCrc16,
  kCrc32,
  kCrc32a,
  kFnv1_64,
  kFnv1a_64,
  kFnv1_32,
  kFnv1a_32,
  kHsieh,
  kMurmur,
  kJenkins,
};

// Config name ("fnv1a_64", ...) -> kind; nullopt for unknown names.
std::optional<HashKind> parse_hash_name(std::string_view name);
std::string_view hash_name(HashKind kind);
// Every accepted name, comma separated, for error messages.
std::string_view all_hash_names();

// The 32-bit value twemproxy's pool->key_hash returns for this key.
uint32_t hash_key(HashKind kind, std::string_view key);

// The hash twemproxy actually dispatches on for a (hash-tagged) key: 0 for the empty key, which
// twemproxy never hashes (e.g. Redis `GET ""`), else hash_key(kind, key).
uint32_t placement_hash(HashKind kind, std::string_view key);

// twemproxy's hash_tag rule: with tag "{}" and key "a{user1}b", returns "user1"; when the key
// has no non-empty tagged section (or tag is empty), returns the key itself.
std::string_view apply_hash_tag(std::string_view key, std::string_view tag);

}  // namespace dproxy::routing
