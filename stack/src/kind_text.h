// The container kind as reports and messages show it: "LUKS1", "LUKS2" or
// "none" (fde::ContainerKindName gives the lower-case spelling of the
// --type options). Pure; any thread.
#pragma once

#include <string>

#include "fde/crypt_device.h"

namespace stack::compose {

inline std::string KindText(fde::ContainerKind k) {
  switch (k) {
    case fde::ContainerKind::kLuks1: return "LUKS1";
    case fde::ContainerKind::kLuks2: return "LUKS2";
    default: return "none";
  }
}

}  // namespace stack::compose
