// The file-level diff of two entries of one pool (`stack diff --files`):
// files added, removed, renamed and modified (content, type, mode, owner,
// xattrs, link target, mtime, link count), read from the two ext4 images
// through fsbridge (decrypted with the passphrase when encrypted).
//
// Driven by the block diff: only inodes stored in inode table blocks that
// changed between the two entries are compared, so the cost follows the
// change, plus one walk of the directories to name what changed. That is
// sound for every change made through ext4 (a kernel, or our fs commands):
// writing, truncating, renaming, linking or unlinking a file, and changing
// its attributes all rewrite its inode. A change written below the file
// system (raw writes to the device) that leaves every inode alone is not
// seen; `full_scan` compares every inode in use instead (slower; the same
// answer for ext4 changes).
//
// Thread-safety: as the Pool.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "block/status.h"
#include "fsbridge/types.h"
#include "stack/volume_store.h"
#include "stack/unlock.h"

namespace stack::compose {

struct FileChange {
  enum class Kind { kAdded, kRemoved, kModified, kRenamed };
  Kind kind = Kind::kModified;
  std::string path;      // as stored (bytes); removed: the path in FROM
  std::string old_path;  // renamed: the path in FROM
  fsbridge::FileType type = fsbridge::FileType::kUnknown;
  // What differs (modified, or a renamed file that also changed): any of
  // "content", "type", "mode", "owner", "xattrs", "link", "mtime", "links";
  // "replaced" first when the path now names another inode.
  std::vector<std::string> what;
};

struct FileDiffOptions {
  bool full_scan = false;  // compare every inode, not only those in changed blocks
};

struct FileDiffReport {
  std::string from, to;
  std::vector<FileChange> changes;  // sorted by path
  uint64_t changed_bytes = 0;       // of the block diff (written + discarded)
  uint64_t inodes_examined = 0;
  bool full_scan = false;
  std::vector<std::string> warnings;  // hostile entries skipped, header notes
};

// InvalidArgument for a malformed address or an entry holding no ext4;
// NotFound naming a missing entry; AuthFailed for a wrong passphrase.
Result<FileDiffReport> DiffFiles(VolumeStore& pool, const std::string& from, const std::string& to,
                                 const SecretGetter& get_passphrase, bool key_given,
                                 const FileDiffOptions& options = {});

const char* FileChangeKindName(FileChange::Kind k);

}  // namespace stack::compose
