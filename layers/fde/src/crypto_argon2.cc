// Argon2 through libargon2, the reference implementation (cryptsetup's own
// on Debian): libargon2's one job in the tree. Lanes run on their own
// threads, as cryptsetup runs them (argon2id 256 MiB, t=4, 4 lanes on two
// cores: 0.87 s, against 1.32 s single-threaded in Botan).
#include <argon2.h>

#include <string>

#include "crypto.h"

namespace stack::fde::internal {

Status Argon2(std::string_view type, std::span<const uint8_t> password,
              std::span<const uint8_t> salt, uint32_t time, uint32_t memory_kib,
              uint32_t parallelism, std::span<uint8_t> out) {
  argon2_type y;
  if (type == "argon2i") {
    y = Argon2_i;
  } else if (type == "argon2id") {
    y = Argon2_id;
  } else {
    return Status::Unsupported("kdf " + std::string(type));
  }
  if (time == 0 || parallelism == 0 || memory_kib < 8 * parallelism) {
    return Status::InvalidArgument("argon2 parameters out of range");
  }
  // The library reads these through non-const pointers but does not write
  // them (no ARGON2_FLAG_CLEAR_* flags); an empty passphrase still needs a
  // valid pointer.
  static uint8_t empty = 0;
  argon2_context c{};
  c.out = out.data();
  c.outlen = static_cast<uint32_t>(out.size());
  c.pwd = password.empty() ? &empty : const_cast<uint8_t*>(password.data());
  c.pwdlen = static_cast<uint32_t>(password.size());
  c.salt = const_cast<uint8_t*>(salt.data());
  c.saltlen = static_cast<uint32_t>(salt.size());
  c.t_cost = time;
  c.m_cost = memory_kib;
  c.lanes = parallelism;
  c.threads = parallelism;
  c.version = ARGON2_VERSION_13;
  c.flags = ARGON2_DEFAULT_FLAGS;  // working memory is wiped before it is freed
  int rc = argon2_ctx(&c, y);
  if (rc == ARGON2_THREAD_FAIL) {
    // No threads to be had (a tight RLIMIT_NPROC, a seccomp sandbox): the
    // lanes are computed in turn on this thread, with the same result.
    c.threads = 1;
    rc = argon2_ctx(&c, y);
  }
  switch (rc) {
    case ARGON2_OK:
      return Status::Ok();
    case ARGON2_MEMORY_ALLOCATION_ERROR:
      return Status::NoSpace("argon2: cannot allocate " + std::to_string(memory_kib) + " KiB");
    default:
      return Status::InvalidArgument(std::string("argon2: ") + argon2_error_message(rc));
  }
}

}  // namespace stack::fde::internal
