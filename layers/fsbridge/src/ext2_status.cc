#include "ext2_status.h"

#include <ext2fs/ext2_err.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <string>

namespace stack::fsbridge {

namespace {

std::string Message(errcode_t err) {
  static std::once_flag once;
  std::call_once(once, [] { initialize_ext2_error_table(); });
  if (err > 0 && err < 4096) return std::strerror(int(err));
  const char* m = error_message(err);
  return m ? m : ("libext2fs error " + std::to_string(err));
}

Code CodeFor(errcode_t err) {
  switch (err) {
    case EXT2_ET_BLOCK_ALLOC_FAIL:
    case EXT2_ET_INODE_ALLOC_FAIL:
    case EXT2_ET_DIR_NO_SPACE:
    case EXT2_ET_TOOSMALL:
    case EXT2_ET_RES_GDT_BLOCKS:
    case EXT2_ET_EA_NO_SPACE:
    case ENOSPC:
      return Code::kNoSpace;
    case EXT2_ET_FILE_NOT_FOUND:
    case ENOENT:
      return Code::kNotFound;
    case EXT2_ET_DIR_EXISTS:
    case EXT2_ET_FILE_EXISTS:
    case EEXIST:
      return Code::kAlreadyExists;
    case EXT2_ET_RO_FILSYS:
    case EROFS:
      return Code::kReadOnly;
    case EXT2_ET_UNSUPP_FEATURE:
    case EXT2_ET_RO_UNSUPP_FEATURE:
    case EXT2_ET_UNIMPLEMENTED:
    case EXT2_ET_OP_NOT_SUPPORTED:
    case EXT2_ET_FILE_TOO_BIG:
      return Code::kUnsupported;
    case EXT2_ET_INVALID_ARGUMENT:
    case EXT2_ET_NO_DIRECTORY:
    case ENOTDIR:
    case EINVAL:
    case ENAMETOOLONG:
      return Code::kInvalidArgument;
    case EXT2_ET_SHORT_READ:
    case EXT2_ET_SHORT_WRITE:
    case EXT2_ET_LLSEEK_FAILED:
    case EIO:
      return Code::kIoError;
    case EXT2_ET_NO_MEMORY:
    case ENOMEM:
      return Code::kInternal;
    default:
      break;
  }
  // Everything else libext2fs reports about on-disk content (bad magic:
  // not an ext2/3/4 filesystem, checksums, corrupt tables, bad block
  // numbers...) is corruption.
  if (err > 4096) return Code::kCorruption;
  return Code::kIoError;
}

}  // namespace

Status Ext2Status(errcode_t err, std::string_view what, std::string_view path,
                  const Status& device_error) {
  std::string msg(what);
  if (!path.empty()) {
    msg += " ";
    msg += path;
  }
  if (!device_error.ok()) {
    // The device failed underneath libext2fs: its code is the truth.
    return Status(device_error.code(), msg + ": " + device_error.message(),
                  device_error.sys_errno());
  }
  return Status(CodeFor(err), msg + ": " + Message(err), err > 0 && err < 4096 ? int(err) : 0);
}

errcode_t ErrcodeFromStatus(const Status& s) {
  switch (s.code()) {
    case Code::kOk: return 0;
    case Code::kNoSpace: return ENOSPC;
    case Code::kReadOnly: return EROFS;
    case Code::kOutOfRange: return EXT2_ET_LLSEEK_FAILED;
    case Code::kInvalidArgument: return EINVAL;
    default: return EIO;
  }
}

}  // namespace stack::fsbridge
