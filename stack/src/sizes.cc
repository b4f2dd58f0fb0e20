#include "stack/sizes.h"

#include <limits>

namespace stack::compose {

Status RequireWholeBlocks(uint64_t bytes, uint64_t unit, const std::string& what) {
  if (bytes == 0) return Status::InvalidArgument(what + " must be positive");
  if (bytes % unit == 0) return Status::Ok();
  const uint64_t below = bytes / unit * unit;
  std::string msg = what + " " + std::to_string(bytes) + " is not a multiple of the " +
                    std::to_string(unit) + "-byte block size: use ";
  if (below > 0) msg += std::to_string(below) + " or ";
  if (below <= std::numeric_limits<uint64_t>::max() - unit) msg += std::to_string(below + unit);
  return Status::InvalidArgument(msg);
}

}  // namespace stack::compose
