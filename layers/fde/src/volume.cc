// Probe, Format and Open for LUKS2 and LUKS1.
#include <algorithm>
#include <cstring>

#include "byte_io.h"
#include "crypto.h"
#include "fde/container.h"
#include "fde/luks.h"
#include "keyslot_crypto.h"
#include "unlock.h"

namespace stack::fde {

using namespace internal;  // NOLINT: this file is the implementation of internal/*

KdfParams KdfParams::Fast(KdfType type) {
  KdfParams p;
  p.type = type;
  p.time_ms = 0;
  p.time_cost = 4;
  p.memory_kib = 64;
  p.parallelism = 2;
  p.iterations = 1000;
  return p;
}

Result<ContainerKind> Probe(BlockDevice& dev) {
  if (dev.size_bytes() < 4096) return ContainerKind::kNone;
  std::vector<uint8_t> head(4096);
  RETURN_IF_ERROR(ReadAt(dev, 0, head));
  static const uint8_t kLuks[6] = {'L', 'U', 'K', 'S', 0xba, 0xbe};
  static const uint8_t kSkul[6] = {'S', 'K', 'U', 'L', 0xba, 0xbe};
  if (std::memcmp(head.data(), kLuks, 6) == 0) {
    const uint16_t v = uint16_t((head[6] << 8) | head[7]);
    if (v == 1) return ContainerKind::kLuks1;
    if (v == 2) return ContainerKind::kLuks2;
  }
  for (uint64_t at : Luks2SecondaryCandidates()) {
    if (at + 4096 > dev.size_bytes()) break;
    RETURN_IF_ERROR(ReadAt(dev, at, head));
    if (std::memcmp(head.data(), kSkul, 6) == 0 && head[6] == 0 && head[7] == 2) {
      return ContainerKind::kLuks2;
    }
  }
  return ContainerKind::kNone;
}

Status CheckKeyslotNumber(ContainerKind kind, int keyslot) {
  const bool v1 = kind == ContainerKind::kLuks1;
  const int n = v1 ? int(kLuks1Slots) : kLuks2MaxKeyslots;
  if (keyslot < 0 || keyslot >= n) {
    return Status::InvalidArgument("keyslot " + std::to_string(keyslot) + " out of range: " +
                                   (v1 ? "LUKS1" : "LUKS2") + " keyslots are 0.." +
                                   std::to_string(n - 1));
  }
  return Status::Ok();
}

Status CheckOpenable(BlockDevice& dev, std::optional<int> keyslot) {
  ASSIGN_OR_RETURN(auto c, Container::Read(dev));
  RETURN_IF_ERROR(c->CheckOpenable(keyslot));
  // A device cut short before its data segment (a truncated image) opens
  // nowhere: cryptsetup says the device is too small, Open says Corruption.
  if (c->DataOffset() > dev.size_bytes())
    return Status::Corruption("the data segment starts at " + std::to_string(c->DataOffset()) +
                              ", past the end of the device (" +
                              std::to_string(dev.size_bytes()) + " bytes): truncated?");
  return Status::Ok();
}

namespace {

Status CheckCommonOptions(const FormatOptions& o) {
  if (o.key_bytes != 32 && o.key_bytes != 64) {
    return Status::InvalidArgument("key size must be 256 or 512 bits");
  }
  if (!o.uuid.empty() && !LooksLikeUuid(o.uuid)) {
    return Status::InvalidArgument("uuid '" + o.uuid + "' is not of the form 8-4-4-4-12");
  }
  return Status::Ok();
}

Result<std::unique_ptr<CryptDevice>> FormatLuks2(std::unique_ptr<BlockDevice> dev,
                                                 const Secret& pass, const FormatOptions& o) {
  if (o.sector_size != 512 && o.sector_size != 4096) {
    return Status::InvalidArgument("LUKS2 sector size must be 512 or 4096");
  }
  if (o.label.size() >= kLuks2LabelLen || o.subsystem.size() >= kLuks2SubsystemLen) {
    return Status::InvalidArgument("label and subsystem must be shorter than 48 bytes");
  }
  const uint64_t hdr_size = kLuks2DefaultHdrSize;
  const uint64_t keyslots_size = kLuks2DefaultKeyslotsSize;
  const uint64_t data_offset = kLuks2DefaultDataOffset;
  if (dev->size_bytes() < data_offset + o.sector_size) {
    return Status::InvalidArgument("device too small for LUKS2: needs more than " +
                                   std::to_string(data_offset >> 20) + " MiB");
  }
  if (data_offset % dev->block_size() != 0) {
    return Status::InvalidArgument("device block size does not divide the data offset");
  }
  ASSIGN_OR_RETURN(Secret vk, Secret::Random(o.key_bytes));
  ASSIGN_OR_RETURN(Kdf kdf, ResolveKdf(o.kdf));

  // Wipe whatever header and keyslots were there.
  RETURN_IF_ERROR(dev->WriteZeroes(0, data_offset));

  Keyslot k;
  k.id = 0;
  k.type = "luks2";
  k.key_size = o.key_bytes;
  k.stripes = kAfStripes;
  k.af_hash = "sha256";
  k.area_offset = 2 * hdr_size;
  k.area_size = Luks2AreaSize(o.key_bytes);
  k.area_encryption = "aes-xts-plain64";
  k.area_key_size = o.key_bytes;
  k.kdf = kdf;
  ASSIGN_OR_RETURN(Secret area_key, Secret::Zeroed(k.area_key_size));
  RETURN_IF_ERROR(DeriveKey(kdf, pass, &area_key));
  RETURN_IF_ERROR(SealKeyMaterial(*dev, k.area_offset, area_key, vk, k.stripes, k.af_hash));

  Digest d;
  d.id = 0;
  d.type = "pbkdf2";
  d.keyslots = {0};
  d.segments = {0};
  d.hash = "sha256";
  d.iterations = ResolveDigestIterations(o.digest_iterations, o.kdf.time_ms, d.hash);
  d.salt.resize(kSaltBytes);
  RandomFill(d.salt);
  d.digest.resize(HashSize(d.hash));
  RETURN_IF_ERROR(Pbkdf2(d.hash, vk.bytes(), d.salt, d.iterations, d.digest));

  Segment s;
  s.id = 0;
  s.type = "crypt";
  s.offset = data_offset;
  s.dynamic = true;
  s.iv_tweak = 0;
  s.encryption = "aes-xts-plain64";
  s.sector_size = o.sector_size;

  Luks2Header hdr;
  hdr.bin.hdr_size = hdr_size;
  hdr.bin.seqid = 0;
  hdr.bin.label = o.label;
  hdr.bin.subsystem = o.subsystem;
  hdr.bin.uuid = o.uuid.empty() ? RandomUuid() : o.uuid;
  nlohmann::json config = {{"json_size", std::to_string(hdr_size - kLuks2BinarySize)},
                           {"keyslots_size", std::to_string(keyslots_size)}};
  if (o.allow_discards) config["flags"] = nlohmann::json::array({"allow-discards"});
  hdr.md.doc = {{"keyslots", {{"0", KeyslotToJson(k)}}},
                {"tokens", nlohmann::json::object()},
                {"segments", {{"0", SegmentToJson(s)}}},
                {"digests", {{"0", DigestToJson(d)}}},
                {"config", config}};
  RETURN_IF_ERROR(WriteLuks2Header(*dev, &hdr));

  CryptDevice::Params p;
  p.kind = ContainerKind::kLuks2;
  p.data_offset = data_offset;
  p.sector_size = o.sector_size;
  p.allow_discards = o.allow_discards;
  p.keyslot = 0;
  return CryptDevice::Create(std::move(dev), std::move(vk), p);
}

Result<std::unique_ptr<CryptDevice>> FormatLuks1(std::unique_ptr<BlockDevice> dev,
                                                 const Secret& pass, const FormatOptions& o) {
  if (o.kdf.type != KdfType::kPbkdf2) {
    return Status::InvalidArgument("LUKS1 keyslots use pbkdf2 only");
  }
  if (o.sector_size != 512 && o.sector_size != 4096) {
    return Status::InvalidArgument("sector size must be 512 or 4096");
  }
  Luks1Header h;
  h.key_bytes = o.key_bytes;
  h.hash_spec = o.kdf.hash;
  if (HashSize(h.hash_spec) == 0) return Status::InvalidArgument("unsupported hash " + h.hash_spec);
  uint32_t offsets[8];
  Luks1Layout(h.key_bytes, offsets, &h.payload_offset);
  const uint64_t data_offset = uint64_t(h.payload_offset) * 512;
  if (dev->size_bytes() < data_offset + 512) {
    return Status::InvalidArgument("device too small for LUKS1: needs more than " +
                                   std::to_string(data_offset >> 20) + " MiB");
  }
  if (data_offset % dev->block_size() != 0) {
    return Status::InvalidArgument("device block size does not divide the payload offset");
  }
  for (size_t i = 0; i < kLuks1Slots; ++i) {
    h.slots[i].active = kLuks1Disabled;
    h.slots[i].iterations = 0;
    h.slots[i].key_material_offset = offsets[i];
    h.slots[i].stripes = kAfStripes;
  }
  h.uuid = o.uuid.empty() ? RandomUuid() : o.uuid;
  ASSIGN_OR_RETURN(Secret vk, Secret::Random(o.key_bytes));
  h.mk_digest_iterations = ResolveDigestIterations(o.digest_iterations, o.kdf.time_ms, h.hash_spec);
  RandomFill(h.mk_digest_salt);
  RETURN_IF_ERROR(Pbkdf2(h.hash_spec, vk.bytes(), h.mk_digest_salt, h.mk_digest_iterations,
                         h.mk_digest));
  ASSIGN_OR_RETURN(Kdf kdf, ResolveKdf(o.kdf));
  h.slots[0].active = kLuks1Active;
  h.slots[0].iterations = kdf.iterations;
  std::copy_n(kdf.salt.begin(), kLuks1SaltSize, h.slots[0].salt.begin());

  RETURN_IF_ERROR(dev->WriteZeroes(0, data_offset));
  ASSIGN_OR_RETURN(Secret area_key, Secret::Zeroed(h.key_bytes));
  RETURN_IF_ERROR(DeriveKey(kdf, pass, &area_key));
  RETURN_IF_ERROR(SealKeyMaterial(*dev, uint64_t(offsets[0]) * 512, area_key, vk, kAfStripes,
                                  h.hash_spec));
  std::vector<uint8_t> raw(kLuks1HeaderSize);
  RETURN_IF_ERROR(EncodeLuks1(h, raw));
  RETURN_IF_ERROR(WriteAt(*dev, 0, raw));
  RETURN_IF_ERROR(dev->Flush());

  CryptDevice::Params p;
  p.kind = ContainerKind::kLuks1;
  p.data_offset = data_offset;
  p.sector_size = 512;
  p.keyslot = 0;
  return CryptDevice::Create(std::move(dev), std::move(vk), p);
}

}  // namespace

Result<std::unique_ptr<CryptDevice>> Format(std::unique_ptr<BlockDevice> dev,
                                            const Secret& passphrase, const FormatOptions& opts) {
  if (dev == nullptr) return Status::InvalidArgument("no device");
  if (dev->capabilities().read_only) return Status::ReadOnly("cannot format " + dev->describe());
  if (passphrase.empty()) return Status::InvalidArgument("empty passphrase");
  RETURN_IF_ERROR(CheckCommonOptions(opts));
  if (opts.version == 2) return FormatLuks2(std::move(dev), passphrase, opts);
  if (opts.version == 1) return FormatLuks1(std::move(dev), passphrase, opts);
  return Status::InvalidArgument("LUKS version must be 1 or 2");
}

Result<int> TestPassphrase(BlockDevice& dev, const Secret& passphrase,
                           std::optional<int> keyslot) {
  ASSIGN_OR_RETURN(auto c, Container::Read(dev));
  ASSIGN_OR_RETURN(UnlockedKey key, c->Unlock(passphrase, keyslot));
  return key.keyslot;
}

Result<std::unique_ptr<CryptDevice>> Open(std::unique_ptr<BlockDevice> dev,
                                          const Secret& passphrase, const OpenOptions& opts) {
  if (dev == nullptr) return Status::InvalidArgument("no device");
  ASSIGN_OR_RETURN(auto c, Container::Read(*dev));
  ASSIGN_OR_RETURN(UnlockedKey key, c->Unlock(passphrase, opts.keyslot));
  return c->Open(std::move(dev), std::move(key), opts);
}

}  // namespace stack::fde
