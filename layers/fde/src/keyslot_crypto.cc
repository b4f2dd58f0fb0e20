#include "keyslot_crypto.h"

#include <algorithm>
#include <chrono>
#include <thread>

#include "af_split.h"
#include "byte_io.h"
#include "crypto.h"
#include "fde/xts_cipher.h"

namespace stack::fde {
namespace {
std::function<void(const KdfChoice&)>& ChoiceSink() {
  static std::function<void(const KdfChoice&)> sink;
  return sink;
}
}  // namespace

void SetKdfChoiceSink(std::function<void(const KdfChoice&)> sink) { ChoiceSink() = std::move(sink); }

}  // namespace stack::fde

namespace stack::fde::internal {
namespace {

void Report(const KdfChoice& c) {
  if (ChoiceSink()) ChoiceSink()(c);
}

double Millis(const std::function<Status()>& f, Status* st) {
  auto t0 = std::chrono::steady_clock::now();
  *st = f();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

Result<Kdf> ResolveKdf(const KdfParams& p) {
  Kdf k;
  k.salt.resize(kSaltBytes);
  RandomFill(k.salt);
  uint8_t probe_out[32];
  const uint8_t probe_pw[8] = {'b', 'e', 'n', 'c', 'h', 'm', 'a', 'r'};
  if (p.type == KdfType::kPbkdf2) {
    k.type = "pbkdf2";
    k.hash = p.hash;
    if (HashSize(k.hash) == 0) return Status::InvalidArgument("unsupported pbkdf2 hash " + p.hash);
    if (p.time_ms == 0) {
      k.iterations = p.iterations;
    } else {
      const uint32_t trial = 20000;
      Status st;
      double ms = Millis([&] { return Pbkdf2(k.hash, probe_pw, k.salt, trial, probe_out); }, &st);
      RETURN_IF_ERROR(st);
      double iters = trial * double(p.time_ms) / std::max(ms, 0.01);
      k.iterations = uint32_t(std::clamp(iters, 1000.0, double(kMaxPbkdf2Iterations)));
      Report({.type = k.type, .target_ms = p.time_ms, .iterations = k.iterations,
              .floor_hit = iters < 1000.0});
    }
    if (k.iterations < 1 || k.iterations > kMaxPbkdf2Iterations) {
      return Status::InvalidArgument("pbkdf2 iterations out of range");
    }
    return k;
  }
  k.type = p.type == KdfType::kArgon2i ? "argon2i" : "argon2id";
  k.cpus = p.parallelism;
  if (k.cpus == 0) k.cpus = std::clamp(std::thread::hardware_concurrency(), 1u, 4u);
  k.memory_kib = p.memory_kib;
  if (k.cpus > kMaxKdfThreads || k.memory_kib < 8 * k.cpus || k.memory_kib > kMaxArgon2MemoryKib) {
    return Status::InvalidArgument("argon2 memory/parallelism out of range");
  }
  if (p.time_ms == 0) {
    k.time = p.time_cost;
  } else {
    Status st;
    double ms = Millis(
        [&] { return Argon2(k.type, probe_pw, k.salt, 1, k.memory_kib, k.cpus, probe_out); }, &st);
    RETURN_IF_ERROR(st);
    ms = std::max(ms, 0.01);
    KdfChoice c{.type = k.type, .target_ms = p.time_ms, .asked_memory_kib = k.memory_kib,
                .parallelism = k.cpus};
    if (4 * ms > p.time_ms) {
      // Even the minimum of 4 passes is too slow here: lower the memory (as
      // cryptsetup does), but not below 64 MiB or the requested memory.
      const double scaled = double(k.memory_kib) * p.time_ms / (4 * ms);
      const uint32_t floor_kib = std::min<uint32_t>(k.memory_kib, 64 * 1024);
      k.memory_kib = std::max(floor_kib, uint32_t(scaled) / 1024 * 1024);
      k.time = 4;
      c.memory_lowered = k.memory_kib < c.asked_memory_kib;
      c.floor_hit = scaled < floor_kib;
    } else {
      k.time = uint32_t(std::clamp(double(p.time_ms) / ms, 4.0, 1000.0));
    }
    c.time_cost = k.time;
    c.memory_kib = k.memory_kib;
    Report(c);
  }
  if (k.time == 0 || k.time > kMaxArgon2Time) return Status::InvalidArgument("argon2 time out of range");
  return k;
}

uint32_t ResolveDigestIterations(uint32_t explicit_iterations, uint32_t time_ms,
                                 const std::string& hash) {
  if (explicit_iterations != 0) return explicit_iterations;
  // No benchmark asked for (the keyslot's cost is fixed): the minimum, as
  // cryptsetup does. The digest only confirms a key that the keyslot's KDF
  // already had to be paid for; it adds no strength against guessing.
  if (time_ms == 0) return kMinDigestIterations;
  uint8_t out[32], salt[32] = {}, pw[8] = {};
  const uint32_t trial = 20000;
  auto t0 = std::chrono::steady_clock::now();
  if (!Pbkdf2(hash, pw, salt, trial, out).ok()) return 100000;
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  double iters = trial * (time_ms / 8.0) / std::max(ms, 0.01);
  return uint32_t(std::clamp(iters, double(kMinDigestIterations), 10000000.0));
}

Status DeriveKey(const Kdf& kdf, const Secret& passphrase, Secret* out) {
  if (kdf.type == "pbkdf2") {
    return Pbkdf2(kdf.hash, passphrase.bytes(), kdf.salt, kdf.iterations, out->mutable_bytes());
  }
  return Argon2(kdf.type, passphrase.bytes(), kdf.salt, kdf.time, kdf.memory_kib, kdf.cpus,
                out->mutable_bytes());
}

uint64_t AfMaterialBytes(uint32_t key_bytes, uint32_t stripes) {
  return (uint64_t(key_bytes) * stripes + 511) / 512 * 512;
}

Status SealKeyMaterial(BlockDevice& dev, uint64_t offset, const Secret& area_key,
                       const Secret& vk, uint32_t stripes, const std::string& af_hash) {
  const uint64_t af_len = uint64_t(vk.size()) * stripes;
  ASSIGN_OR_RETURN(Secret material, Secret::Zeroed(AfMaterialBytes(uint32_t(vk.size()), stripes)));
  RETURN_IF_ERROR(AfSplit(vk.bytes(), stripes, af_hash, material.mutable_bytes().first(af_len)));
  ASSIGN_OR_RETURN(auto xts, XtsCipher::Create(area_key.bytes()));
  std::vector<uint8_t> sealed(material.size());
  RETURN_IF_ERROR(xts->Encrypt(material.bytes(), sealed, 512, 0));
  RETURN_IF_ERROR(WriteAt(dev, offset, sealed));
  return dev.Flush();
}

Status UnsealKeyMaterial(BlockDevice& dev, uint64_t offset, const Secret& area_key,
                         uint32_t stripes, const std::string& af_hash, Secret* vk) {
  const uint64_t af_len = uint64_t(vk->size()) * stripes;
  std::vector<uint8_t> sealed(AfMaterialBytes(uint32_t(vk->size()), stripes));
  RETURN_IF_ERROR(ReadAt(dev, offset, sealed));
  ASSIGN_OR_RETURN(Secret material, Secret::Zeroed(sealed.size()));
  ASSIGN_OR_RETURN(auto xts, XtsCipher::Create(area_key.bytes()));
  RETURN_IF_ERROR(xts->Decrypt(sealed, material.mutable_bytes(), 512, 0));
  return AfMerge(material.bytes().first(af_len), stripes, af_hash, vk);
}

std::string RandomUuid() {
  uint8_t b[16];
  RandomFill(b);
  b[6] = uint8_t((b[6] & 0x0f) | 0x40);
  b[8] = uint8_t((b[8] & 0x3f) | 0x80);
  static const char* kHex = "0123456789abcdef";
  std::string s;
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) s.push_back('-');
    s.push_back(kHex[b[i] >> 4]);
    s.push_back(kHex[b[i] & 15]);
  }
  return s;
}

bool LooksLikeUuid(const std::string& s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash != (s[i] == '-')) return false;
    if (!dash && !std::isxdigit(static_cast<unsigned char>(s[i]))) return false;
  }
  return true;
}

}  // namespace stack::fde::internal
