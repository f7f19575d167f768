// Tests for the twemproxy-compatible key hashes and hash tags.

#include "routing/hash.h"

#include <doctest/doctest.h>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "routing/md5.h"

namespace {

using dproxy::routing::all_hash_names;
using dproxy::routing::apply_hash_tag;
using dproxy::routing::hash_key;
using dproxy::routing::hash_name;
using dproxy::routing::HashKind;
using dproxy::routing::md5_digest;
using dproxy::routing::parse_hash_name;
using dproxy::routing::placement_hash;

constexpr std::array<HashKind, 12> kAllKinds = {
    HashKind::kOneAtATime, HashKind::kMd5,     HashKind::kCrc16,    HashKind::kCrc32,
    HashKind::kCrc32a,     HashKind::kFnv1_64, HashKind::kFnv1a_64, HashKind::kFnv1_32,
    HashKind::kFnv1a_32,   HashKind::kHsieh,   HashKind::kMurmur,   HashKind::kJenkins,
};

std::string hex(const dproxy::routing::Md5Digest& digest) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (uint8_t byte : digest) {
    out.push_back(kDigits[byte >> 4]);
    out.push_back(kDigits[byte & 0xf]);
  }
  return out;
}

struct HashGolden {
  std::string key;
  // In kAllKinds order.
  std::array<uint32_t, 12> values;
};

// Full 32-bit hashes as computed by nutcracker 0.5.0 (Debian 0.5.0+dfsg-2, amd64). Recovered
// from its placement: for each hash, keys were stored through modula pools of 64, 63, 61, 59,
// 53 and 47 equal-weight memcached servers, giving hash % n for each n, and combined with the
// Chinese remainder theorem (the moduli's product exceeds 2^32).
// Regenerate or check: /usr/bin/python3 scripts/nutcracker_golden.py [--check] hashes
const std::vector<HashGolden>& nutcracker_hashes() {
  static const std::vector<HashGolden> kGolden = {
      {"abcdefghijkl",
       {0x605b0340, 0x06d6c99f, 0xa372b7ff, 0x00007678, 0xf6781b24, 0xda7a6075, 0xe05a5cb5,
        0x65adc2d5, 0xe8fb3e15, 0x5f624189, 0xb805134a, 0xfb8b49e3}},
      {"a",
       {0xca2e9442, 0xb975c10c, 0x00007c87, 0x000068b7, 0xe8b7be43, 0x8601b7be, 0x8601ec8c,
        0x050c5d7e, 0xe40c292c, 0x93642e87, 0x4b41757c, 0xe0a38690}},
      {"123456789",
       {0xc66b58c5, 0x94e7f925, 0x869031c3, 0x00004bf4, 0xcbf43926, 0x2bf916d6, 0x23c6cdfc,
        0x24148816, 0xbb86b11c, 0xe4fc1670, 0xb7760690, 0x19777af6}},
      {"abcd",
       {0xcd8b6206, 0x4c71fce2, 0x749da836, 0x00006d82, 0xed82cd11, 0xfb844f95, 0xee0724dd,
        0xb9de7375, 0xce3479bd, 0x3ab452d8, 0xef6a86af, 0xd512151a}},
      {std::string(250, 'k'),
       {0x64ea6c90, 0x7f7b2f93, 0x189a0b3e, 0x00000497, 0x04977bc1, 0xee19992f, 0x8cb408db,
        0x2c096bef, 0xdbece11b, 0x601dfad4, 0xd8b0adcb, 0x4afa8cb0}},
      {"ab",
       {0x45e61e58, 0x43f47e18, 0x007c74ff, 0x00001e83, 0x9e83486d, 0xb4eb37b8, 0xb545986a,
        0x70772d38, 0x4d2505ca, 0x5b8c0ec3, 0xe3b54dfb, 0xc1b5695b}},
      {"abc",
       {0xed131f5b, 0x98500190, 0x7c749dd6, 0x00003524, 0x352441c2, 0x6bafadcb, 0x0541574b,
        0x439c2f4b, 0x1a47e90b, 0xe5186b3a, 0x7b0cc428, 0x8f415600}},
      {"hello",
       {0xc8fd181b, 0x2a40415d, 0x6b4fc362, 0x00003610, 0x3610a686, 0xbdbdd4c7, 0x80aabd0b,
        0xb6fa7167, 0x4f9f2cab, 0x13842ac5, 0x521b0bff, 0x2e0cc8f3}},
      {"abcdefghijklm",
       {0x6d99f6dc, 0xd1bdae22, 0x72b79537, 0x00005df4, 0xddf46ea2, 0x3df1e6a2, 0x398bc308,
        0xe589b522, 0x3b8356e8, 0x70ce5414, 0x2987d8bb, 0xb621e85f}},
      {"caf\xc3\xa9",
       {0xd99c709e, 0xe47f1107, 0xf6269667, 0x000018ad, 0x98ad42b5, 0x8a06fef1, 0xcef6bb89,
        0xd682f171, 0x7572c049, 0xde3f8855, 0xda11981f, 0xcb6225ad}},
      {"\xff\xfe",
       {0xdb2cb862, 0x0157b2f3, 0x001e0d2e, 0x000008f8, 0x88f83096, 0xb4eb719e, 0xb4ee4fb0,
        0x1276995e, 0x35790f10, 0xcc30d943, 0x0693f8a9, 0x074533dd}},
      {"The_quick_brown_fox_jumps_over_the_lazy_dog",
       {0x0f7ca5a5, 0xa8f42af9, 0x13af4344, 0x00002951, 0x2951df5d, 0xe96781fa, 0x61c94634,
        0x04559c1a, 0xe4d787b4, 0x2fc30063, 0xe5beb4a1, 0xc9a1bb51}},
      {"\x80",
       {0xc31d4e27, 0x7edd398d, 0x00009188, 0x00003fba, 0x3fba6cad, 0x79fe485f, 0x79fdec5f,
        0xfaf3a29f, 0x04f3b29f, 0xd6f4cb32, 0x90556245, 0xb16fde48}},
      {"foo:bar:baz",
       {0x7358e4e9, 0x09a4f25b, 0x047d73e7, 0x000020bd, 0x20bd4479, 0x435ef423, 0xfa2713e7,
        0x578d7e03, 0xe08b1ac7, 0x70b9f58a, 0xac67de49, 0xe2d820d8}},
      {"\xe9t\xe9",
       {0x8c711b75, 0x306eb070, 0x6c94963a, 0x00004bf7, 0xcbf7d413, 0x6bd2a1ab, 0xb5281ffb,
        0x387cffeb, 0xfb67177b, 0x3a499135, 0xf7762cff, 0x1fc3862b}},
      {"!\x22#$%&'()*+,-./"
       "0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\x5c]^_`abcdefghijklmnopqrstuvwxyz{|}~"
       "\x80\x81\x82\x83\x84\x85\x86\x87\x88\x89\x8a\x8b\x8c\x8d\x8e\x8f\x90\x91\x92\x93\x94\x95"
       "\x96\x97\x98\x99\x9a\x9b\x9c\x9d\x9e\x9f\xa0\xa1\xa2\xa3\xa4\xa5\xa6\xa7\xa8\xa9\xaa\xab"
       "\xac\xad\xae\xaf\xb0\xb1\xb2\xb3\xb4\xb5\xb6\xb7\xb8\xb9\xba\xbb\xbc\xbd\xbe\xbf\xc0\xc1"
       "\xc2\xc3\xc4\xc5\xc6\xc7\xc8\xc9\xca\xcb\xcc\xcd\xce\xcf\xd0\xd1\xd2\xd3\xd4\xd5\xd6\xd7"
       "\xd8\xd9\xda\xdb\xdc\xdd\xde\xdf\xe0\xe1\xe2\xe3\xe4\xe5\xe6\xe7\xe8\xe9\xea\xeb\xec\xed"
       "\xee\xef\xf0\xf1\xf2\xf3\xf4\xf5\xf6\xf7\xf8\xf9\xfa\xfb\xfc\xfd\xfe\xff",
       {0x91639ab5, 0x9f0bd49f, 0xe117a226, 0x00001d22, 0x1d22db13, 0x8ab98ea8, 0xc2a1b7c2,
        0xd48a10e8, 0x2653a162, 0xb8bf3395, 0x1e2560a2, 0x79d28e2e}},
      {"user:{1000}:profile",
       {0x52ae3d3a, 0xc85afbd8, 0x8a368296, 0x00006955, 0xe9550092, 0x675a5212, 0x7226fdf0,
        0x3cb05f92, 0x8d734850, 0xdfea975a, 0xb714f7fe, 0x79eba5d8}},
      {"\x01\x02\x80\xff",
       {0x96c95a3c, 0xbfed70f3, 0x13c01dbc, 0x00000cfd, 0x8cfd1bd1, 0x98e0a087, 0x51e75e13,
        0xf0aa9887, 0x8142bf53, 0x64afb728, 0x629fd88d, 0x72cfba84}},
  };
  return kGolden;
}

}  // namespace

TEST_CASE("md5 matches the RFC 1321 test suite") {
  CHECK(hex(md5_digest("")) == "d41d8cd98f00b204e9800998ecf8427e");
  CHECK(hex(md5_digest("a")) == "0cc175b9c0f1b6a831c399e269772661");
  CHECK(hex(md5_digest("abc")) == "900150983cd24fb0d6963f7d28e17f72");
  CHECK(hex(md5_digest("message digest")) == "f96b697d7cb7938d525a2f31aaf161d0");
  CHECK(hex(md5_digest("abcdefghijklmnopqrstuvwxyz")) == "c3fcd3d76192e4007dfb496cca67e13b");
  CHECK(hex(md5_digest("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")) ==
        "d174ab98d277d9f5a5611c2c9f419d9f");
  CHECK(hex(md5_digest("1234567890123456789012345678901234567890123456789012345678901234567890"
                       "1234567890")) == "57edf4a22be3c955ac49da2e2107b67a");
}

TEST_CASE("md5 pads correctly around block boundaries") {
  // Lengths where the padding needs one or two final blocks.
  CHECK(hex(md5_digest(std::string(55, 'a'))) == "ef1772b6dff9a122358552954ad0df65");
  CHECK(hex(md5_digest(std::string(56, 'a'))) == "3b0c8ac703f828b04c6c197006d17218");
  CHECK(hex(md5_digest(std::string(64, 'a'))) == "014842d480b571495a4a0363793f7367");
  CHECK(hex(md5_digest(std::string(65, 'a'))) == "c743a45e0d2e6a95cb859adae0248435");
}

TEST_CASE("every hash matches nutcracker 0.5.0 on golden keys") {
  for (const HashGolden& golden : nutcracker_hashes()) {
    for (size_t i = 0; i < kAllKinds.size(); ++i) {
      CAPTURE(golden.key);
      CAPTURE(hash_name(kAllKinds[i]));
      CHECK(hash_key(kAllKinds[i], golden.key) == golden.values[i]);
    }
  }
}

TEST_CASE("hashes of the empty key follow from each algorithm's initial state") {
  // nutcracker never hashes an empty key (it dispatches on 0), so these come from the
  // algorithms themselves: offset bases, md5(""), jenkins' 0xdeadbeef + 0 + 13.
  CHECK(hash_key(HashKind::kOneAtATime, "") == 0u);
  CHECK(hash_key(HashKind::kMd5, "") == 0xd98c1dd4u);
  CHECK(hash_key(HashKind::kCrc16, "") == 0u);
  CHECK(hash_key(HashKind::kCrc32, "") == 0u);
  CHECK(hash_key(HashKind::kCrc32a, "") == 0u);
  CHECK(hash_key(HashKind::kFnv1_64, "") == 0x84222325u);
  CHECK(hash_key(HashKind::kFnv1a_64, "") == 0x84222325u);
  CHECK(hash_key(HashKind::kFnv1_32, "") == 0x811c9dc5u);
  CHECK(hash_key(HashKind::kFnv1a_32, "") == 0x811c9dc5u);
  CHECK(hash_key(HashKind::kHsieh, "") == 0u);
  CHECK(hash_key(HashKind::kMurmur, "") == 0u);
  CHECK(hash_key(HashKind::kJenkins, "") == 0xdeadbefcu);
}

TEST_CASE("placement_hash is 0 for the empty key and hash_key otherwise") {
  for (HashKind kind : kAllKinds) {
    CAPTURE(hash_name(kind));
    CHECK(placement_hash(kind, "") == 0u);
    CHECK(placement_hash(kind, "abc") == hash_key(kind, "abc"));
  }
}

TEST_CASE("hashes read embedded NUL bytes and the whole view only") {
  const std::string with_nul("a\0b", 3);
  const std::string buffer = "abcdef";
  for (HashKind kind : kAllKinds) {
    CAPTURE(hash_name(kind));
    CHECK(hash_key(kind, with_nul) != hash_key(kind, "a"));
    CHECK(hash_key(kind, std::string_view(buffer).substr(0, 3)) == hash_key(kind, "abc"));
  }
}

TEST_CASE("crc32 is libmemcached's 15-bit value, crc32a the real CRC-32") {
  CHECK(hash_key(HashKind::kCrc32a, "123456789") == 0xcbf43926u);  // CRC-32 check value
  CHECK(hash_key(HashKind::kCrc32, "123456789") == ((0xcbf43926u >> 16) & 0x7fffu));
}

TEST_CASE("hash names round-trip") {
  for (HashKind kind : kAllKinds) {
    const std::string_view name = hash_name(kind);
    CAPTURE(name);
    REQUIRE(parse_hash_name(name).has_value());
    CHECK(*parse_hash_name(name) == kind);
    CHECK(all_hash_names().find(name) != std::string_view::npos);
  }
  CHECK(parse_hash_name("fnv1a_64") == HashKind::kFnv1a_64);
  CHECK(parse_hash_name("one_at_a_time") == HashKind::kOneAtATime);
  CHECK_FALSE(parse_hash_name("MD5").has_value());  // names are case sensitive, as in twemproxy
  CHECK_FALSE(parse_hash_name("fnv1a").has_value());
  CHECK_FALSE(parse_hash_name("").has_value());
  CHECK_FALSE(parse_hash_name("md5 ").has_value());
}

TEST_CASE("apply_hash_tag follows twemproxy's rule") {
  CHECK(apply_hash_tag("a{user1}b", "{}") == "user1");
  CHECK(apply_hash_tag("{user1000}.following", "{}") == "user1000");
  CHECK(apply_hash_tag("plainkey", "{}") == "plainkey");
  // Empty tagged section: the whole key is hashed.
  CHECK(apply_hash_tag("a{}b", "{}") == "a{}b");
  CHECK(apply_hash_tag("{}", "{}") == "{}");
  // Only the first opening character counts, and the first closing one after it.
  CHECK(apply_hash_tag("a{}b{c}", "{}") == "a{}b{c}");
  CHECK(apply_hash_tag("a{b{c}d}", "{}") == "b{c");
  CHECK(apply_hash_tag("{{a}}", "{}") == "{a");
  CHECK(apply_hash_tag("}{a}", "{}") == "a");
  // Unterminated or unopened tags: whole key.
  CHECK(apply_hash_tag("{abc", "{}") == "{abc");
  CHECK(apply_hash_tag("abc}", "{}") == "abc}");
  CHECK(apply_hash_tag("}{", "{}") == "}{");
  // Other tag characters, including identical open and close characters.
  CHECK(apply_hash_tag("foo:bar:baz", "::") == "bar");
  CHECK(apply_hash_tag("user$42$x", "$$") == "42");
  // No tag configured.
  CHECK(apply_hash_tag("a{b}c", "") == "a{b}c");
  // The result is a view into the key.
  const std::string key = "x{tag}y";
  const std::string_view tagged = apply_hash_tag(key, "{}");
  CHECK(tagged.data() == key.data() + 2);
}
