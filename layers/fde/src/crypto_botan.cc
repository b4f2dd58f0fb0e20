// Argon2 through Botan: Botan's one job in the tree. Every Botan call made by
// the fde layer happens here, and every Botan exception becomes a Status here.
#include <botan/argon2.h>
#include <botan/exceptn.h>

#include <new>
#include <string>

#include "crypto.h"

namespace stack::fde::internal {

Status Argon2(std::string_view type, std::span<const uint8_t> password,
              std::span<const uint8_t> salt, uint32_t time, uint32_t memory_kib,
              uint32_t parallelism, std::span<uint8_t> out) {
  uint8_t y;
  if (type == "argon2i") {
    y = 1;
  } else if (type == "argon2id") {
    y = 2;
  } else {
    return Status::Unsupported("kdf " + std::string(type));
  }
  if (time == 0 || parallelism == 0 || memory_kib < 8 * parallelism) {
    return Status::InvalidArgument("argon2 parameters out of range");
  }
  try {
    Botan::argon2(out.data(), out.size(), reinterpret_cast<const char*>(password.data()),
                  password.size(), salt.data(), salt.size(), nullptr, 0, nullptr, 0, y,
                  parallelism, memory_kib, time);
  } catch (const std::bad_alloc&) {
    return Status::NoSpace("argon2: cannot allocate " + std::to_string(memory_kib) + " KiB");
  } catch (const Botan::Invalid_Argument& e) {
    return Status::InvalidArgument(std::string("argon2: ") + e.what());
  } catch (const std::exception& e) {
    return Status::Internal(std::string("argon2 (Botan): ") + e.what());
  }
  return Status::Ok();
}

}  // namespace stack::fde::internal
