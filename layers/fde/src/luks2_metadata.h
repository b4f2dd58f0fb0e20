// LUKS2 JSON metadata: typed views (keyslots, digests, segments, config) of
// the JSON document, validated against the header geometry, plus builders
// that edit the document in place.
//
// The nlohmann::json document is the source of truth: typed structs are
// parsed from it, and every change is made by editing it (SetKeyslot,
// EraseKeyslot...) and re-parsing. Objects, members and tokens we do not
// understand therefore survive a rewrite untouched.
//
// Parse checks, before anything is used: the five top-level objects exist;
// numbers stored as strings are decimal u64; base64 decodes; every keyslot
// area lies inside [2*hdr_size, 2*hdr_size + keyslots_size) and holds its
// AF material; areas do not overlap; keyslots_size + 2*hdr_size <= every
// segment offset; json_size == hdr_size - 4096; digests reference existing
// keyslots and segments; KDF parameters lie within sane bounds (kMax*).
// Anything else is Corruption with a message naming the field, except a
// well-formed luks2 keyslot whose af type/hash, area type, KDF or pbkdf2 hash
// this build lacks: it is kept with usable = false and unusable_why.
//
// Thread-safety: values.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "block/status.h"

namespace stack::fde::internal {

inline constexpr uint32_t kMaxArgon2MemoryKib = 4u * 1024 * 1024;  // 4 GiB, as cryptsetup
inline constexpr uint32_t kMaxArgon2Time = 1u << 20;
inline constexpr uint32_t kMaxKdfThreads = 64;
inline constexpr uint32_t kMaxPbkdf2Iterations = 1u << 30;
inline constexpr uint32_t kMaxKeySize = 128;
inline constexpr uint32_t kAfStripes = 4000;

struct Kdf {
  std::string type;  // "pbkdf2", "argon2i", "argon2id"
  std::string hash;  // pbkdf2 only
  uint32_t iterations = 0;  // pbkdf2
  uint32_t time = 0, memory_kib = 0, cpus = 0;  // argon2
  std::vector<uint8_t> salt;
};

struct Keyslot {
  int id = 0;
  std::string type;       // "luks2"; other types are kept but never used
  bool usable = false;    // a "luks2" keyslot we know how to open
  std::string unusable_why;  // a luks2 keyslot using what we lack: "af hash X", "kdf Y"...
  uint32_t key_size = 0;  // volume key bytes
  int priority = 1;       // 0 ignore, 1 normal, 2 high
  uint32_t stripes = 0;
  std::string af_hash;
  uint64_t area_offset = 0, area_size = 0;
  std::string area_encryption;
  uint32_t area_key_size = 0;
  Kdf kdf;
};

struct Segment {
  int id = 0;
  std::string type;  // "crypt"
  uint64_t offset = 0;
  bool dynamic = true;
  uint64_t size = 0;  // when !dynamic
  uint64_t iv_tweak = 0;
  std::string encryption;
  uint32_t sector_size = 512;
};

struct Digest {
  int id = 0;
  std::string type;  // "pbkdf2"
  std::vector<int> keyslots, segments;
  std::string hash;
  uint32_t iterations = 0;
  std::vector<uint8_t> salt, digest;
};

struct Metadata {
  nlohmann::json doc;
  std::map<int, Keyslot> keyslots;
  std::map<int, Segment> segments;
  std::map<int, Digest> digests;
  uint64_t json_size = 0, keyslots_size = 0;
  std::vector<std::string> flags;         // config.flags
  std::vector<std::string> requirements;  // config.requirements.mandatory
  size_t token_count = 0;
};

// Parses and validates. hdr_size from the binary header.
Result<Metadata> ParseMetadata(std::string_view text, uint64_t hdr_size);
// Re-parses md.doc (after an edit).
Status Reparse(Metadata* md, uint64_t hdr_size);
// Compact JSON text as written to disk.
std::string SerializeMetadata(const Metadata& md);

nlohmann::json KeyslotToJson(const Keyslot& k);
nlohmann::json SegmentToJson(const Segment& s);
nlohmann::json DigestToJson(const Digest& d);

std::string Base64Encode(std::span<const uint8_t> in);
Result<std::vector<uint8_t>> Base64Decode(std::string_view in);

}  // namespace stack::fde::internal
