#pragma once
// Self-contained MD5 (RFC 1321). Used by the "md5" key hash and by the ketama continuum.

#include <array>
#include <cstdint>
#include <string_view>

namespace dproxy::routing {

using Md5Digest = std::array<uint8_t, 16>;

// MD5 digest of `data`. Does not allocate.
Md5Digest md5_digest(std::string_view data);

}  // namespace dproxy::routing
