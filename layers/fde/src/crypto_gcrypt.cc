// libgcrypt's initialisation and AES-XTS. Its secure memory (where the key
// schedules live) is routed to the libsodium
// backend through SecureAlloc/SecureFree (crypto.h). Hashes and PBKDF2, the
// library's other job, are in crypto_gcrypt_hash.cc.
#include <gcrypt.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <unordered_set>

#include "crypto.h"

namespace stack::fde::internal {
namespace {

// libgcrypt's "secure memory" is where it keeps a handle opened with
// GCRY_CIPHER_SECURE, i.e. the AES key schedules (whose first round keys ARE
// the key). Its own pool is mlock'd but not excluded from core dumps, so we
// install allocation hooks that put secure allocations in libsodium secure
// memory (mlock'd, MADV_DONTDUMP, guard pages, wiped on free), like Secret.
// Ordinary allocations stay with malloc. The hooks must be installed before
// libgcrypt allocates anything, so only when we are the ones initialising it.
namespace gcry_secure {

constexpr size_t kHeader = 16;  // holds the user size; keeps 16-byte alignment

// Never destroyed: libgcrypt may free a secure block while the process
// exits (a handle closed by a static destructor), after a function-local
// static set would already be gone; a pointer not found there was then
// handed to free() although libsodium owns it (glibc aborted).
std::mutex& Mu() {
  static auto* mu = new std::mutex;
  return *mu;
}
std::unordered_set<const void*>& Live() {
  static auto* live = new std::unordered_set<const void*>;
  return *live;
}

void* AllocSecure(size_t n) {
  const size_t total = (n + kHeader + 15) / 16 * 16;  // SecureAlloc aligns the end
  auto* base = static_cast<uint8_t*>(SecureAlloc(total));
  if (base == nullptr) return nullptr;
  std::memcpy(base, &n, sizeof(n));
  void* user = base + kHeader;
  try {  // a C callback: nothing may escape
    std::lock_guard<std::mutex> lock(Mu());
    Live().insert(user);
  } catch (...) {
    SecureFree(base);
    return nullptr;
  }
  return user;
}

int IsSecure(const void* p) {
  if (p == nullptr) return 0;
  std::lock_guard<std::mutex> lock(Mu());
  return Live().count(p) != 0;
}

void Free(void* p) {
  if (p == nullptr) return;
  {
    std::lock_guard<std::mutex> lock(Mu());
    if (Live().erase(p) == 0) {
      std::free(p);
      return;
    }
  }
  SecureFree(static_cast<uint8_t*>(p) - kHeader);  // wipes before unmapping
}

void* Realloc(void* p, size_t n) {
  if (!IsSecure(p)) return std::realloc(p, n);
  size_t old = 0;
  std::memcpy(&old, static_cast<uint8_t*>(p) - kHeader, sizeof(old));
  void* q = AllocSecure(n);
  if (q == nullptr) return nullptr;
  std::memcpy(q, p, std::min(old, n));
  Free(p);
  return q;
}

}  // namespace gcry_secure

}  // namespace

// libgcrypt must be initialised once per process before use. If the program
// (or another library) already finished its initialisation we leave it as it
// is (handles are still opened GCRY_CIPHER_SECURE, in its own locked pool);
// otherwise we install the hooks above and finish the initialisation.
bool GcryptReady() {
  static const bool ready = [] {
    if (gcry_control(GCRYCTL_INITIALIZATION_FINISHED_P)) return true;
    if (!SecureMemoryReady()) return false;
    gcry_set_allocation_handler(nullptr, gcry_secure::AllocSecure, gcry_secure::IsSecure,
                                gcry_secure::Realloc, gcry_secure::Free);
    if (gcry_check_version(GCRYPT_VERSION) == nullptr) return false;
    return gcry_control(GCRYCTL_INITIALIZATION_FINISHED, 0) == 0;
  }();
  return ready;
}

namespace {

// One libgcrypt XTS handle keyed once; per sector only the tweak is reset.
// Why libgcrypt rather than OpenSSL EVP: its XTS uses VAES/AVX2 where the CPU
// has it (OpenSSL 3.0 has only the 128-bit AES-NI XTS), and setting a tweak is
// a plain copy, whereas EVP_CipherInit_ex2 queries the IV length through
// OSSL_PARAMs on every call. Measured with 4096-byte sectors, one IV each:
// 1.6-1.8x `openssl speed -evp aes-256-xts` (one IV per buffer) for the
// cipher alone, 1.4-1.7x through CryptDevice (bench fde.xts_*); with VAES
// disabled the cipher alone is still ~1.05x.
class GcryptLane final : public XtsLane {
 public:
  GcryptLane() = default;
  GcryptLane(const GcryptLane&) = delete;
  GcryptLane& operator=(const GcryptLane&) = delete;
  ~GcryptLane() override {
    if (h_ != nullptr) gcry_cipher_close(h_);
  }
  bool Init(int algo, const uint8_t* key, size_t key_len) {
    // SECURE: the handle, and so the key schedules, live in secure memory.
    return gcry_cipher_open(&h_, algo, GCRY_CIPHER_MODE_XTS, GCRY_CIPHER_SECURE) == 0 &&
           gcry_cipher_setkey(h_, key, key_len) == 0;
  }
  Status Crypt(bool encrypt, const uint8_t* in, uint8_t* out, size_t len, uint32_t sector_size,
               uint64_t iv) override {
    const uint64_t step = sector_size / 512;
    uint8_t tweak[16] = {};
    for (size_t off = 0; off < len; off += sector_size, iv += step) {
      for (int i = 0; i < 8; ++i) tweak[i] = uint8_t(iv >> (8 * i));
      if (gcry_cipher_setiv(h_, tweak, sizeof(tweak)) != 0) return Fail();
      // libgcrypt takes in == out as in-place; the API wants inlen == outsize.
      const gcry_error_t e =
          encrypt ? gcry_cipher_encrypt(h_, out + off, sector_size, in + off, sector_size)
                  : gcry_cipher_decrypt(h_, out + off, sector_size, in + off, sector_size);
      if (e != 0) return Fail();
    }
    return Status::Ok();
  }

 private:
  static Status Fail() { return Status::Internal("libgcrypt XTS failed"); }
  gcry_cipher_hd_t h_ = nullptr;
};

}  // namespace

Result<std::unique_ptr<XtsLane>> XtsLane::Create(std::span<const uint8_t> key) {
  int algo = 0;
  if (key.size() == 64) {
    algo = GCRY_CIPHER_AES256;
  } else if (key.size() == 32) {
    algo = GCRY_CIPHER_AES128;
  } else {
    return Status::InvalidArgument("XTS key must be 32 or 64 bytes");
  }
  if (!GcryptReady()) return Status::Internal("libgcrypt is too old or failed to initialise");
  auto lane = std::make_unique<GcryptLane>();
  if (!lane->Init(algo, key.data(), key.size())) {
    return Status::Internal("libgcrypt XTS init failed");
  }
  return std::unique_ptr<XtsLane>(std::move(lane));
}

}  // namespace stack::fde::internal
