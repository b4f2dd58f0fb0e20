// HeaderInfo: what `Dump` reports about a container (like cryptsetup
// luksDump, never a secret), and its renderings as text and as JSON.
// Thread-safety: values and pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "fde/crypt_device.h"

namespace stack::fde {

struct KeyslotInfo {
  int id = 0;
  std::string type;  // "luks2" (or another LUKS2 type we keep but do not use), "luks1"
  bool usable = false;
  int priority = 1;
  uint32_t key_bytes = 0;
  std::string kdf;  // "argon2id", "argon2i", "pbkdf2"
  uint32_t time_cost = 0, memory_kib = 0, parallelism = 0;  // argon2
  uint32_t iterations = 0;                                  // pbkdf2
  std::string hash;                                         // pbkdf2 hash
  std::string af_hash;
  uint32_t stripes = 0;
  uint64_t area_offset = 0, area_size = 0;
  std::string area_cipher;
};

struct HeaderInfo {
  ContainerKind kind = ContainerKind::kNone;
  int version = 0;
  std::string uuid, label, subsystem;
  uint64_t seqid = 0;
  uint64_t hdr_size = 0, keyslots_size = 0;  // LUKS2
  uint64_t data_offset = 0;
  uint32_t sector_size = 512;
  uint64_t iv_tweak = 0;
  std::string cipher;  // "aes-xts-plain64"
  uint32_t key_bytes = 0;
  bool allow_discards = false;
  std::vector<std::string> flags, requirements;
  std::string digest_hash;
  uint32_t digest_iterations = 0;
  // The volume key's digest (salt, value): two headers with the same pair
  // hold the same volume key.
  std::vector<uint8_t> digest_salt, digest_value;
  std::vector<KeyslotInfo> keyslots;
  size_t tokens = 0;
  std::vector<std::string> warnings;
};

std::string DumpText(const HeaderInfo& info);
std::string DumpJson(const HeaderInfo& info);

}  // namespace stack::fde
