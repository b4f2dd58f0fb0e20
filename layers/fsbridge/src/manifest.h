// Manifest: per-path overrides of owner, mode and mtime applied while
// populating, so images with root-owned files are built without root.
//
// Format (spec/fsbridge.md "Manifest"): one entry per line,
//   <path> key=value [key=value...]
// keys uid, gid, mode (octal permission bits), mtime (SEC or SEC.NSEC).
// <path> is relative to the populated directory ("." is that directory,
// "*" applies to every entry before its own line); octal escapes \NNN and
// "\\" as in mtree. '#' starts a comment line. Unknown keys are errors.
//
// Thread-safety: one populate at a time (Apply and Find note the paths
// they met, for CheckAllUsed).
#pragma once

#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "block/status.h"
#include "inode_util.h"

namespace stack::fsbridge {

struct ManifestEntry {
  std::optional<uint32_t> uid, gid, mode;
  std::optional<Timespec> mtime;
};

class Manifest {
 public:
  // An empty manifest when path is empty. NotFound / InvalidArgument
  // (naming file and line) on errors.
  static Result<Manifest> Load(const std::string& path);
  // Applies "*" then the entry for rel ("" for the root). Mode keeps the
  // file type bits of a->mode.
  void Apply(const std::string& rel, Attrs* a) const;
  // The entry for exactly rel (no "*"), or null.
  const ManifestEntry* Find(const std::string& rel) const;
  // Applies one entry's fields to a (mode keeps the type bits).
  static void Merge(const ManifestEntry& e, Attrs* a);
  size_t size() const { return entries_.size(); }
  // After a populate: every line naming a path that Apply or Find never
  // met (a typo, a path missing from the source) is an InvalidArgument
  // naming the file and line, or with `lenient` a warning appended to
  // `warnings`. "." and "*" always count as met.
  Status CheckAllUsed(bool lenient, std::vector<std::string>* warnings) const;

 private:
  std::optional<ManifestEntry> all_;
  std::unordered_map<std::string, ManifestEntry> entries_;
  std::unordered_map<std::string, int> lines_;  // entry -> its (last) line number
  std::string path_;
  mutable std::unordered_set<std::string> used_;
};

// Normalises a relative path: strips "./", leading and doubled slashes;
// "." -> "". Used for manifest keys and tar names.
std::string NormalizeRel(const std::string& p);

}  // namespace stack::fsbridge
