// Readers' view of a directory (see dir_reader.h).
#include "dir_reader.h"

#include <algorithm>

#include "filesystem_impl.h"
#include "fsbridge/names.h"

namespace stack::fsbridge {

std::string ChildShown(const std::string& dir_shown, const std::string& name) {
  const bool slash = !dir_shown.empty() && dir_shown.back() == '/';
  return dir_shown + (slash ? "" : "/") + EscapeText(name);
}

Result<std::vector<DirEntry>> ReadableEntries(const FsContext& c, uint32_t ino,
                                              const std::string& shown, const WarnFn& warn,
                                              uint64_t* skipped) {
  ASSIGN_OR_RETURN(auto entries, ListDirEntries(c, ino, shown, nullptr, true));
  auto drop = [&](const DirEntry& e, const char* why) {
    if (skipped) ++*skipped;
    if (warn) warn(shown + ": skipping entry '" + EscapeText(e.name) + "' (" + why + ")");
  };
  std::vector<DirEntry> out;
  out.reserve(entries.size());
  for (DirEntry& e : entries) {
    if (IsSafeEntryName(e.name)) out.push_back(std::move(e));
    else drop(e, "not a safe name: '.', '..', '/' or NUL");
  }
  // stable: among equal names the first on disk stays first and is kept.
  std::stable_sort(out.begin(), out.end(),
                   [](const DirEntry& a, const DirEntry& b) { return a.name < b.name; });
  std::vector<DirEntry> unique;
  unique.reserve(out.size());
  for (DirEntry& e : out) {
    if (!unique.empty() && unique.back().name == e.name) drop(e, "a second entry of that name");
    else unique.push_back(std::move(e));
  }
  return unique;
}

bool DirVisits::Enter(uint32_t ino, const std::string& shown, const WarnFn& warn,
                      uint64_t* skipped) {
  if (seen_.insert(ino).second) return true;
  if (skipped) ++*skipped;
  if (warn) warn(shown + ": skipping a directory already visited (inode " + std::to_string(ino) +
                 ": a directory hard link or a loop)");
  return false;
}

}  // namespace stack::fsbridge
