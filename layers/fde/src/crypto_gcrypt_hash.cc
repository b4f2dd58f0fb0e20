// Hashes and PBKDF2 through libgcrypt (its other job besides AES-XTS; the
// library is initialised by GcryptReady in crypto_gcrypt.cc, which routes
// its secure memory to SecureAlloc). The HMAC state of PBKDF2 and the hash
// states are libgcrypt's, in ordinary memory, wiped when it releases them.
#include <gcrypt.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "crypto.h"
#include "fde/sha256.h"

namespace stack::fde::internal {
namespace {

int Algo(std::string_view hash) {
  if (hash == "sha1") return GCRY_MD_SHA1;
  if (hash == "sha256") return GCRY_MD_SHA256;
  if (hash == "sha384") return GCRY_MD_SHA384;
  if (hash == "sha512") return GCRY_MD_SHA512;
  return 0;
}

}  // namespace

size_t HashSize(std::string_view hash) {
  const int algo = Algo(hash);
  if (algo == 0 || !GcryptReady()) return 0;
  return gcry_md_get_algo_dlen(algo);
}

Status Hash(std::string_view hash, std::initializer_list<std::span<const uint8_t>> parts,
            std::span<uint8_t> out) {
  const int algo = Algo(hash);
  if (algo == 0) return Status::Unsupported("hash " + std::string(hash));
  if (!GcryptReady()) return Status::Internal("libgcrypt is too old or failed to initialise");
  if (out.size() != gcry_md_get_algo_dlen(algo)) return Status::Internal("hash output size");
  // One call over the parts: no handle to open (AF diffusion makes
  // thousands of these calls per keyslot).
  std::vector<gcry_buffer_t> iov;
  iov.reserve(parts.size());
  static uint8_t nothing = 0;  // hashed as zero bytes when every part is empty
  for (const auto& part : parts) {
    if (part.empty()) continue;
    gcry_buffer_t b{};
    b.size = b.len = part.size();
    b.data = const_cast<uint8_t*>(part.data());
    iov.push_back(b);
  }
  if (iov.empty()) {
    gcry_buffer_t b{};
    b.data = &nothing;
    iov.push_back(b);
  }
  const gcry_error_t err =
      gcry_md_hash_buffers(algo, 0, out.data(), iov.data(), static_cast<int>(iov.size()));
  if (err != 0) {
    return Status::Internal(std::string("libgcrypt digest failed: ") + gcry_strerror(err));
  }
  return Status::Ok();
}

Status Pbkdf2(std::string_view hash, std::span<const uint8_t> password,
              std::span<const uint8_t> salt, uint32_t iterations, std::span<uint8_t> out) {
  const int algo = Algo(hash);
  if (algo == 0) return Status::Unsupported("pbkdf2 hash " + std::string(hash));
  if (iterations == 0 || iterations > 0x7fffffffu) {
    return Status::InvalidArgument("pbkdf2 iterations out of range");
  }
  if (salt.empty() || out.empty()) return Status::InvalidArgument("pbkdf2 without salt or output");
  if (!GcryptReady()) return Status::Internal("libgcrypt is too old or failed to initialise");
  static const uint8_t kEmpty = 0;  // an empty passphrase still needs a pointer
  const void* pw = password.empty() ? &kEmpty : password.data();
  const gcry_error_t err = gcry_kdf_derive(pw, password.size(), GCRY_KDF_PBKDF2, algo, salt.data(),
                                           salt.size(), iterations, out.size(), out.data());
  if (gcry_err_code(err) == GPG_ERR_ENOMEM) return Status::NoSpace("pbkdf2: out of memory");
  if (err != 0) {
    return Status::Internal(std::string("libgcrypt PBKDF2 failed: ") + gcry_strerror(err));
  }
  return Status::Ok();
}

}  // namespace stack::fde::internal

namespace stack::fde {

namespace {
gcry_md_hd_t H(void* h) { return static_cast<gcry_md_hd_t>(h); }
}  // namespace

Sha256::Sha256() : h_(nullptr) {
  gcry_md_hd_t h = nullptr;
  if (!internal::GcryptReady() || gcry_md_open(&h, GCRY_MD_SHA256, 0) != 0) std::abort();
  h_ = h;
}

Sha256::~Sha256() { gcry_md_close(H(h_)); }

void Sha256::Update(std::span<const uint8_t> data) {
  if (!data.empty()) gcry_md_write(H(h_), data.data(), data.size());
}

std::array<uint8_t, 32> Sha256::Final() {
  std::array<uint8_t, 32> out{};
  const unsigned char* d = gcry_md_read(H(h_), GCRY_MD_SHA256);
  if (d == nullptr) std::abort();
  std::memcpy(out.data(), d, out.size());
  return out;
}

std::array<uint8_t, 32> Sha256::Peek() const {
  gcry_md_hd_t copy = nullptr;
  if (gcry_md_copy(&copy, H(h_)) != 0) std::abort();
  std::array<uint8_t, 32> out{};
  const unsigned char* d = gcry_md_read(copy, GCRY_MD_SHA256);
  if (d == nullptr) std::abort();
  std::memcpy(out.data(), d, out.size());
  gcry_md_close(copy);
  return out;
}

}  // namespace stack::fde
