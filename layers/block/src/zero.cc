#include "block/zero.h"

#include <cstring>

namespace stack {

bool IsAllZero(std::span<const uint8_t> data) {
  // First byte zero and every byte equal to its successor: memcmp against
  // the buffer itself, shifted by one, runs at libc's vectorised speed
  // without a zero buffer to compare with.
  if (data.empty()) return true;
  return data[0] == 0 && std::memcmp(data.data(), data.data() + 1, data.size() - 1) == 0;
}

}  // namespace stack
