// The composition layer's SHA-256 is the fde layer's (fde/sha256.h: the
// one owner of cryptography), plus the hex spelling digests are shown in.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "fde/sha256.h"

namespace stack::compose {

using Sha256 = stack::fde::Sha256;

// A digest as lowercase hex (64 characters).
std::string Hex(const std::array<uint8_t, 32>& digest);

}  // namespace stack::compose
