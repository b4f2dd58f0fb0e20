// Secret: a fixed-size buffer of key material in locked, guarded memory.
//
// The bytes live in secure memory (libsodium's sodium_malloc, reached
// through the fde crypto backend, src/crypto.h: guard pages,
// mlock'd so they are never swapped, canary-checked) and are wiped when the
// Secret is destroyed or overwritten. A Secret is move-only; copying key
// material must be explicit (Clone). Nothing here ever logs or formats the
// bytes. Volume keys, derived keys and passphrases all travel as Secrets.
//
// sodium_malloc also marks the pages MADV_DONTDUMP, so a Secret's bytes are
// left out of any core dump. Creating the first Secret of a process (every
// key, derived key and passphrase is one) also hardens the process with
// HardenProcess(): that is the one place it happens.
//
// Thread-safety: a value type; distinct objects may be used from distinct
// threads, one object needs external synchronisation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "block/status.h"

namespace stack::fde {

// Makes the process unfit to leak secrets through a crash dump, once per
// process (later calls return the first result): prctl(PR_SET_DUMPABLE, 0)
// (no core, no ptrace by unprivileged processes of the same user, /proc/PID
// files owned by root) and RLIMIT_CORE 0 (soft and hard). Internal if either
// fails; Secret allocation then fails too (we never hold a key unhardened).
// Thread-safe.
Status HardenProcess();

class Secret {
 public:
  // An empty secret (size 0, no allocation).
  Secret() noexcept = default;
  Secret(Secret&& other) noexcept;
  Secret& operator=(Secret&& other) noexcept;
  Secret(const Secret&) = delete;
  Secret& operator=(const Secret&) = delete;
  ~Secret();

  // n zero bytes in secure memory. Internal if secure memory is exhausted or
  // the process cannot be hardened (HardenProcess).
  static Result<Secret> Zeroed(size_t n);
  // n bytes from the system CSPRNG.
  static Result<Secret> Random(size_t n);
  // A copy of bytes. The caller remains responsible for wiping its source.
  static Result<Secret> Copy(std::span<const uint8_t> bytes);
  // Convenience for tests and literals: the bytes of text (no terminator).
  static Result<Secret> FromString(std::string_view text);

  Result<Secret> Clone() const;

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  const uint8_t* data() const { return data_; }
  uint8_t* data() { return data_; }
  std::span<const uint8_t> bytes() const { return {data_, size_}; }
  std::span<uint8_t> mutable_bytes() { return {data_, size_}; }

  // Shortens the visible length (the tail is wiped). REQUIRES: n <= size().
  void Truncate(size_t n);

  // Constant-time equality of content (sizes compared first; they are public).
  bool Equals(std::span<const uint8_t> other) const;

 private:
  void Release() noexcept;
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
  size_t capacity_ = 0;
};

}  // namespace stack::fde
