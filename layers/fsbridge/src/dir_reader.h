// What every reader of an image's directories sees: the entries of one
// directory that are safe to use, and a guard against directory cycles.
//
// A hostile image may hold names like "../x", "a/b", "." or names with NUL,
// several entries of one name in one directory, or a directory entry that
// points back at an ancestor. Readers (List, ExtractToDirectory,
// ExtractToTar) take entries only from ReadableEntries and descend only
// through DirVisits, so they all skip the same entries with the same
// warnings (spec/fsbridge.md "Hostile images").
//
// Thread-safety: none.
#pragma once

#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "dir_writer.h"
#include "inode_util.h"

namespace stack::fsbridge {

using WarnFn = std::function<void(const std::string&)>;

// The entries of directory `ino` (printed as `shown`), sorted bytewise by
// name, without "." / ".." and without: names that fail IsSafeEntryName,
// and every entry after the first (in on-disk order, the one lookups find)
// of a name. Each dropped entry is reported through `warn` and counted in
// *skipped (if not null).
Result<std::vector<DirEntry>> ReadableEntries(const FsContext& c, uint32_t ino,
                                              const std::string& shown, const WarnFn& warn,
                                              uint64_t* skipped);

// Directory inodes already entered by one walk: a directory reached a second
// time (a hard-linked directory or a loop back to an ancestor) is refused
// with a warning, so walks end and visit each directory once.
class DirVisits {
 public:
  // True the first time `ino` is seen; else warns and counts a skip.
  bool Enter(uint32_t ino, const std::string& shown, const WarnFn& warn, uint64_t* skipped);

 private:
  std::set<uint32_t> seen_;
};

// "dir/name" for messages: dir as given, name escaped.
std::string ChildShown(const std::string& dir_shown, const std::string& name);

}  // namespace stack::fsbridge
