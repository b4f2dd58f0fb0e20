// Secure memory, the CSPRNG and constant-time compare through libsodium:
// libsodium's one job in the tree (Secret and libgcrypt's secure allocations
// both land here).
#include <sodium.h>

#include <cstdlib>

#include "crypto.h"

namespace stack::fde::internal {

bool SecureMemoryReady() {
  static const bool ok = sodium_init() >= 0;
  return ok;
}

void* SecureAlloc(size_t n) {
  if (n == 0 || !SecureMemoryReady()) return nullptr;
  return sodium_malloc(n);  // mlock'd, guard pages, canary, MADV_DONTDUMP
}

void SecureFree(void* p) {
  if (p != nullptr) sodium_free(p);  // wipes before unmapping
}

void SecureWipe(std::span<uint8_t> bytes) {
  if (!bytes.empty()) sodium_memzero(bytes.data(), bytes.size());
}

void RandomFill(std::span<uint8_t> out) {
  if (!SecureMemoryReady()) std::abort();  // no CSPRNG: never continue with weak keys
  if (!out.empty()) randombytes_buf(out.data(), out.size());
}

bool ConstantTimeEqual(std::span<const uint8_t> a, std::span<const uint8_t> b) {
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  return sodium_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace stack::fde::internal
