// TreeBuilder: every change to the namespace goes through one of these.
//
// Directories touched in a session are held in memory (their entries
// loaded once from disk, then appended to), and written in Finalize() as
// whole new directories by BuildDirectory: linear time, htree-indexed when
// large. Inodes and file data are written immediately (DataWriter).
//
// Consistency: inodes are allocated and written before their entry is
// added in memory; Finalize() must run (also after an error) so that every
// inode written is linked. DataWriter keeps enough free blocks in reserve
// for the directories Finalize() will write, so a full filesystem fails the
// file with NoSpace and Finalize() still succeeds.
//
// Thread-safety: none.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "data_writer.h"
#include "dir_writer.h"
#include "inode_util.h"
#include "manifest.h"

namespace stack::fsbridge {

class TreeBuilder {
 public:
  struct Dir {
    uint32_t ino = 0, parent = 0;
    std::string path;
    std::vector<DirEntry> entries;
    std::unordered_map<std::string, size_t> index;  // name -> position in entries
    uint64_t bytes = 0;  // directory-entry bytes, for the space reserve
    bool is_new = false, dirty = false;
    std::optional<Attrs> attrs;   // applied at Finalize
    std::vector<Xattr> xattrs;    // set at Finalize
  };

  // now: dtime for freed inodes. goal: shared allocation cursor.
  TreeBuilder(const FsContext& c, uint64_t* goal, Timespec now);

  Result<Dir*> Root();
  // The directory at comps (relative to the root). With create, missing
  // components are made with dir_attrs. NotFound / InvalidArgument (not a
  // directory) otherwise.
  Result<Dir*> OpenDir(const std::vector<std::string>& comps, bool create, const Attrs& dir_attrs);
  const DirEntry* Find(Dir* d, const std::string& name) const;
  std::string PathOf(const Dir* d, const std::string& name) const;

  // Each Add* replaces an existing non-directory of the same name (a
  // directory is merged by AddDir, and replaced recursively otherwise).
  Result<Dir*> AddDir(Dir* parent, const std::string& name, const Attrs& a,
                      std::vector<Xattr> xattrs);
  using Fill = std::function<Status(DataWriter&)>;
  Result<uint32_t> AddFile(Dir* parent, const std::string& name, const Attrs& a,
                           const std::vector<Xattr>& xattrs, uint64_t size, const Fill& fill);
  Result<uint32_t> AddSymlink(Dir* parent, const std::string& name, const std::string& target,
                              const Attrs& a, const std::vector<Xattr>& xattrs);
  Result<uint32_t> AddSpecial(Dir* parent, const std::string& name, const Attrs& a,
                              uint32_t major, uint32_t minor, const std::vector<Xattr>& xattrs);
  // Another name for an existing non-directory inode (nlink + 1). With
  // `override`, its fields (a manifest entry for this name) are applied to
  // the inode.
  Status AddHardLink(Dir* parent, const std::string& name, uint32_t ino,
                     const ManifestEntry* override = nullptr);
  // If `name` is a regular file with other names (hard links), writes
  // `size` bytes from `fill` into that inode in place, as cp does, so every
  // name sees them: its old blocks are freed, size, mtime and ctime set;
  // owner, mode, links and xattrs kept. Returns false (nothing done) when
  // `name` is absent, not a regular file, or its only name.
  Result<bool> RewriteLinkedFile(Dir* parent, const std::string& name, uint64_t size,
                                 const Timespec& mtime, const Fill& fill);
  // Removes a name; a directory needs recursive unless empty.
  Status RemoveName(Dir* parent, const std::string& name, bool recursive);
  // Replaces a directory's attributes (and adds xattrs) at Finalize.
  void SetDirAttrs(Dir* d, const Attrs& a, std::vector<Xattr> xattrs);

  // Writes every changed directory. Call once, also after an error.
  Status Finalize();

 private:
  Result<Dir*> LoadDir(uint32_t ino, uint32_t parent, std::string path);
  Result<uint32_t> NewInode(uint32_t parent, uint32_t mode, const std::string& path);
  Status FreeInode(uint32_t ino, InodeBuf* buf, const std::string& path);
  Status ReleaseTree(uint32_t ino, uint8_t ftype, const std::string& path);
  // Refuses (Corruption, before anything is freed) a tree that reaches one
  // directory inode twice: a loop or a directory linked from two places in a
  // hostile image would otherwise be walked forever or freed twice.
  Status CheckTree(uint32_t ino, uint8_t ftype, const std::string& path,
                   std::unordered_set<uint32_t>* dirs_seen);
  Status Prepare(Dir* parent, const std::string& name, bool is_dir, Dir** merge);
  void AddEntry(Dir* d, const std::string& name, uint32_t ino, uint8_t ftype);
  void Touch(Dir* d);
  uint64_t Reserve() const { return reserve_; }
  static uint64_t Estimate(const Dir& d, uint32_t bs);
  Status WriteDir(Dir* d);

  FsContext c_;
  uint64_t* goal_;
  Timespec now_;
  std::map<uint32_t, std::unique_ptr<Dir>> dirs_;
  uint64_t reserve_ = 0;  // blocks kept for dirty directories
  // AddFile's run buffer, reused from file to file (grows to one run once).
  std::vector<uint8_t> file_scratch_;
};

// Entries of a directory on disk, in on-disk order, without its own "."
// and ".." (the first two entries; *parent gets the latter's inode). Other
// entries named "." or ".." (hostile) are dropped unless keep_dot_names,
// which readers set so they can refuse them with a warning (dir_reader.h).
Result<std::vector<DirEntry>> ListDirEntries(const FsContext& c, uint32_t ino,
                                             std::string_view path, uint32_t* parent,
                                             bool keep_dot_names = false);

}  // namespace stack::fsbridge
