// Secret over the crypto backend's secure memory (crypto.h: libsodium).
#include "fde/secret.h"

#include <sys/prctl.h>
#include <sys/resource.h>

#include <cerrno>
#include <cstring>

#include "crypto.h"

namespace stack::fde {
namespace {

Status DoHarden() {
  // Dumps first: once non-dumpable the kernel writes no core whatever the
  // limit; RLIMIT_CORE 0 also covers a later PR_SET_DUMPABLE 1 (e.g. by a
  // setuid transition) and tools that only read the limit.
  if (::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
    return Status::Internal(std::string("prctl(PR_SET_DUMPABLE, 0) failed: ") +
                            std::strerror(errno));
  }
  const struct rlimit none = {0, 0};
  if (::setrlimit(RLIMIT_CORE, &none) != 0) {
    return Status::Internal(std::string("setrlimit(RLIMIT_CORE, 0) failed: ") +
                            std::strerror(errno));
  }
  return Status::Ok();
}

}  // namespace

Status HardenProcess() {
  static const Status result = DoHarden();
  return result;
}

Secret::Secret(Secret&& other) noexcept
    : data_(other.data_), size_(other.size_), capacity_(other.capacity_) {
  other.data_ = nullptr;
  other.size_ = other.capacity_ = 0;
}

Secret& Secret::operator=(Secret&& other) noexcept {
  if (this != &other) {
    Release();
    data_ = other.data_;
    size_ = other.size_;
    capacity_ = other.capacity_;
    other.data_ = nullptr;
    other.size_ = other.capacity_ = 0;
  }
  return *this;
}

Secret::~Secret() { Release(); }

void Secret::Release() noexcept {
  internal::SecureFree(data_);  // wipes before freeing
  data_ = nullptr;
  size_ = capacity_ = 0;
}

Result<Secret> Secret::Zeroed(size_t n) {
  RETURN_IF_ERROR(HardenProcess());
  if (!internal::SecureMemoryReady()) {
    return Status::Internal("secure memory (libsodium) failed to initialise");
  }
  Secret s;
  if (n == 0) return s;
  void* p = internal::SecureAlloc(n);
  if (p == nullptr) return Status::Internal("secure memory exhausted (sodium_malloc)");
  s.data_ = static_cast<uint8_t*>(p);
  s.size_ = s.capacity_ = n;
  internal::SecureWipe(s.mutable_bytes());
  return s;
}

Result<Secret> Secret::Random(size_t n) {
  ASSIGN_OR_RETURN(Secret s, Zeroed(n));
  internal::RandomFill(s.mutable_bytes());
  return s;
}

Result<Secret> Secret::Copy(std::span<const uint8_t> bytes) {
  ASSIGN_OR_RETURN(Secret s, Zeroed(bytes.size()));
  if (!bytes.empty()) std::memcpy(s.data_, bytes.data(), bytes.size());
  return s;
}

Result<Secret> Secret::FromString(std::string_view text) {
  return Copy({reinterpret_cast<const uint8_t*>(text.data()), text.size()});
}

Result<Secret> Secret::Clone() const { return Copy(bytes()); }

void Secret::Truncate(size_t n) {
  if (n >= size_) return;
  internal::SecureWipe({data_ + n, size_ - n});
  size_ = n;
}

bool Secret::Equals(std::span<const uint8_t> other) const {
  return internal::ConstantTimeEqual(bytes(), other);
}

}  // namespace stack::fde
