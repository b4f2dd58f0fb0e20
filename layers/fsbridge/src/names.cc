// Entry-name safety and escaping (see fsbridge/names.h).
#include "fsbridge/names.h"


namespace stack::fsbridge {

bool IsSafeEntryName(std::string_view name) {
  if (name.empty() || name.size() > 255 || name == "." || name == "..") return false;
  return name.find('/') == std::string_view::npos && name.find('\0') == std::string_view::npos;
}

}  // namespace stack::fsbridge
