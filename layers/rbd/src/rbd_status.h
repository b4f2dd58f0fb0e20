// The one boundary where librados/librbd error numbers become Status codes.
#pragma once

#include <string>

#include "block/status.h"

namespace stack::rbd {

// `what` names the operation and object ("create image rbd:stack/vm");
// `r` is librbd's negative errno. OK for r >= 0.
Status FromRbd(const std::string& what, int r);

}  // namespace stack::rbd
