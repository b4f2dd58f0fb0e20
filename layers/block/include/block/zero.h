// IsAllZero: whether a buffer holds only zero bytes. Every layer that turns
// zero blocks into holes (pool writes, fsbridge file data, sparse copies)
// uses this one function. Thread-safety: pure function.
#pragma once

#include <cstdint>
#include <span>

namespace stack {

bool IsAllZero(std::span<const uint8_t> data);

}  // namespace stack
