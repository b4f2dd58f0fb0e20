// HostImporter: copies files and trees from the host filesystem into a
// TreeBuilder (used by PopulateFromDirectory and PutFile).
//
// Traversal is sorted by name (bytewise), so the same tree always gives the
// same inode numbers and block layout. Regular files are read with
// SEEK_DATA/SEEK_HOLE so holes stay holes; hard links within the copy are
// kept (by source device and inode); xattrs are copied when asked.
// Thread-safety: none.
#pragma once

#include <sys/stat.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "fsbridge/types.h"
#include "manifest.h"
#include "tree_builder.h"

namespace stack::fsbridge {

class HostImporter {
 public:
  HostImporter(TreeBuilder* tb, const Manifest* manifest, const PopulateOptions& opts,
               Timespec now, PopulateStats* stats)
      : tb_(tb), manifest_(manifest), opts_(opts), now_(now), stats_(stats) {}

  // Copies host_path (any type) as `name` in `parent`; rel is its manifest
  // path. A directory is copied recursively.
  Status CopyEntry(TreeBuilder::Dir* parent, const std::string& name, const std::string& host_path,
                   const std::string& rel);
  // Copies the content of host directory host_dir into d, giving d the
  // attributes of host_dir (manifest path rel).
  Status CopyContents(TreeBuilder::Dir* d, const std::string& host_dir, const std::string& rel,
                      const struct stat& st);
  Attrs AttrsOf(const struct stat& st, const std::string& rel) const;
  // PutFile over an existing file: a regular host file over a regular file
  // with hard links is written into that inode (TreeBuilder::
  // RewriteLinkedFile); false when that does not apply (copy with
  // CopyEntry, which replaces the name).
  Result<bool> RewriteLinked(TreeBuilder::Dir* parent, const std::string& name,
                             const std::string& host_path);

 private:
  Result<std::vector<Xattr>> Xattrs(const std::string& host_path) const;

  TreeBuilder* tb_;
  const Manifest* manifest_;
  PopulateOptions opts_;
  Timespec now_;
  PopulateStats* stats_;
  std::map<std::pair<dev_t, ino_t>, uint32_t> links_;
  std::vector<uint8_t> buf_;  // read buffer shared by every file
};

}  // namespace stack::fsbridge
