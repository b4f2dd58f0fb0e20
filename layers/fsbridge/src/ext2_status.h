// The one boundary between libext2fs error codes (errcode_t) and Status.
//
// Every errcode_t produced anywhere in fsbridge is converted here, so the
// mapping (which codes mean NoSpace, Corruption, NotFound...) lives in one
// place. Messages name the operation and the path inside the filesystem.
// Thread-safety: pure functions (the com_err table is registered once).
#pragma once

#include <ext2fs/ext2fs.h>

#include <string_view>

#include "block/status.h"

namespace stack::fsbridge {

// Converts err (non-zero) into a Status "what path: libext2fs message".
// When the failure came from the device below (the io_manager recorded
// `device_error`), the device's code and message are kept.
Status Ext2Status(errcode_t err, std::string_view what, std::string_view path,
                  const Status& device_error = Status::Ok());

// The errcode_t an io_manager callback returns for a failed device call.
errcode_t ErrcodeFromStatus(const Status& s);

}  // namespace stack::fsbridge
