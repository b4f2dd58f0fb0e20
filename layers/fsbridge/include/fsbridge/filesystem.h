// Filesystem: an ext4 filesystem held in any BlockDevice, formatted, filled,
// read and edited in process through libext2fs (no root, no kernel).
//
// Every I/O goes through fsbridge's own io_manager into the BlockDevice the
// object owns, so the same code runs on a plain file, a memory device or an
// encrypted pool volume. Paths inside the filesystem are absolute or
// relative to its root ("/etc/passwd" == "etc/passwd"); "." and ".." are
// rejected. Every error is a Status whose message names the path.
//
// Consistency: each public write method leaves the filesystem consistent
// (e2fsck -fn clean) when it returns, on success and on failure (a full
// filesystem is NoSpace naming the file, with nothing half-linked).
// Durability: writes reach the device at Close() (or Flush()).
// Space: blocks an edit frees (rm, overwrite or truncate by put, a failed
// put's partial data) are discarded on the device at Flush()/Close(), after
// the metadata that frees them was written, when the device takes discards
// (capabilities().discard_supported); Trim() discards every free block.
//
// Thread-safety: none; one thread at a time per object. Distinct objects
// (two images) may be used concurrently.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "block/block_device.h"
#include "block/status.h"
#include "fsbridge/types.h"

namespace stack::fsbridge {

class TarInput;

class Filesystem {
 public:
  // Formats `device` as ext4 (spec/fsbridge.md "Profile") and returns it
  // open for writing. The whole device is used. InvalidArgument for bad
  // options or a device too small for a journal (< 8 MiB).
  static Result<std::unique_ptr<Filesystem>> Mkfs(std::unique_ptr<BlockDevice> device,
                                                  const MkfsOptions& opts);
  // Opens an existing ext4 filesystem. Corruption if it is not one;
  // Unsupported if writable and the journal needs recovery.
  static Result<std::unique_ptr<Filesystem>> Open(std::unique_ptr<BlockDevice> device,
                                                  bool writable);

  // Closes (errors are lost; call Close() to see them).
  ~Filesystem();
  Filesystem(const Filesystem&) = delete;
  Filesystem& operator=(const Filesystem&) = delete;

  // Copies the content of host directory `src` into `dest_dir` (created
  // with parents if missing); dest_dir takes src's owner, mode and times.
  // Existing entries of the same name are replaced (directories merged).
  Result<PopulateStats> PopulateFromDirectory(const std::string& src, const std::string& dest_dir,
                                              const PopulateOptions& opts = {});
  // Same from a tar stream (file path or "-" for stdin); any format and
  // compression libarchive reads. Path rules in spec/fsbridge.md.
  Result<PopulateStats> PopulateFromTar(const std::string& tar_path_or_dash,
                                        const std::string& dest_dir,
                                        const PopulateOptions& opts = {});
  // Same from an uncompressed tar stream produced by `next`: each call returns the next bytes, valid
  // until the following call; an empty span ends the stream; an error
  // fails the populate with that status. `name` names the stream in
  // messages. For producers that assemble a tar on the fly (an OCI image's
  // merged layers) without a host file or a pipe.
  using TarStreamReader = std::function<Result<std::span<const uint8_t>>()>;
  Result<PopulateStats> PopulateFromTarStream(const std::string& name, const TarStreamReader& next,
                                              const std::string& dest_dir,
                                              const PopulateOptions& opts = {});

  // Entries of a directory, sorted by name, without "." and "..". Entries
  // whose name is unsafe (fsbridge/names.h) and later entries of a name
  // already listed are left out, each with a warning.
  Result<std::vector<DirEntryInfo>> List(const std::string& path);
  // Attributes of a path (symlinks are not followed).
  Result<InodeInfo> Stat(const std::string& path);
  // Streams a regular file's content to `sink` in order (holes as zeros).
  Status ReadFile(const std::string& path,
                  const std::function<Status(std::span<const uint8_t>)>& sink);
  Status ReadFile(const std::string& path, std::ostream& out);
  // Writes a regular file's content into `fd`, an empty regular host file
  // (named host_name in errors), at the same offsets: all-zero 4 KiB
  // blocks stay holes, so a sparse file stays sparse; the host file ends
  // at the file's size. Reading runs in large runs on a second thread,
  // beside the writing (the bulk data path; see data_reader.h).
  Status ReadFileTo(const std::string& path, int fd, const std::string& host_name);

  // Copies a host file (or, if a directory, the tree) to fs_path,
  // replacing a non-directory already there. Parents must exist. A regular
  // file over a regular file with hard links is written into that inode
  // (as cp does: every name sees the new content; owner and mode kept).
  Status PutFile(const std::string& host_path, const std::string& fs_path,
                 const PopulateOptions& opts = {});
  // Creates a directory (owner 0:0; parents made 0755). AlreadyExists if
  // present (unless parents and it is a directory).
  Status Mkdir(const std::string& path, bool parents, uint32_t mode = 0755);
  // Removes a file, symlink, special or empty directory; with recursive, a
  // whole tree. NotFound if absent; InvalidArgument for "/" or a non-empty
  // directory without recursive.
  Status Remove(const std::string& path, bool recursive);
  Status Chmod(const std::string& path, uint32_t mode);  // permission bits (07777)
  Status Chown(const std::string& path, uint32_t uid, uint32_t gid);
  // Removes every extended attribute of path (ACLs and security labels
  // too): for a directory re-declared with attributes of its own.
  Status ClearXattrs(const std::string& path);
  // Creates a symlink (owner 0:0) at link_path pointing to target (stored
  // verbatim). AlreadyExists if link_path exists.
  Status Symlink(const std::string& target, const std::string& link_path);

  // Extracts fs_path (a directory's content, or one file) into host_dir,
  // with modes, times, xattrs, hard links, and owners when running as root.
  // Everything is created beneath host_dir (see HostDir): an existing
  // non-directory where the image has a directory is replaced, never
  // followed. Device nodes that cannot be made (not root) are skipped and
  // reported as Unsupported after everything else was extracted; entries
  // skipped as hostile (unsafe or duplicate names, directory loops) are
  // warned about and reported as Corruption after everything else.
  Status ExtractToDirectory(const std::string& fs_path, const std::string& host_dir);
  // Writes fs_path (a tree or a file) as a pax tar to out_path ("-": stdout).
  // Hostile entries are skipped as by ExtractToDirectory (Corruption after
  // the archive was completed).
  Status ExtractToTar(const std::string& fs_path, const std::string& out_path_or_dash);

  Result<DfInfo> Df();
  // Grows the file system in place to new_size bytes of the device (0: the
  // whole device), as resize2fs does offline (spec/fsbridge.md "Growing"):
  // the last group is completed, new groups get descriptors, bitmaps and
  // zeroed inode tables (flex_bg placement, uninit flags and checksums),
  // backup superblocks and descriptors where sparse_super puts them, and
  // reserved GDT blocks (resize_inode) become descriptor blocks when the
  // groups need more. new_size is rounded down to whole blocks, and down to
  // the last whole group when the tail is too small to hold a group's
  // tables. Returns the new size in bytes (== the old one: nothing done).
  // Refused before any change: smaller than now (Unsupported: shrinking is
  // not supported), past the device (OutOfRange); more groups than the
  // descriptor blocks and reserved GDT blocks can describe, or more than
  // 2^32 inodes or (without 64bit) 2^32 blocks (Unsupported, naming the
  // largest size the layout takes); bigalloc, meta_bg, sparse_super2
  // (Unsupported); ReadOnly when opened read-only. Written at Flush/Close.
  Result<uint64_t> Grow(uint64_t new_size);
  // Discards every free block range (as fstrim does), after writing the
  // metadata. Unsupported when the device takes no discards (e.g. LUKS2
  // without allow-discards); ReadOnly when opened read-only.
  Result<TrimInfo> Trim();
  // Bytes of free blocks the device still holds data for (its
  // AllocatedExtents): what Trim() would give back. nullopt when the device
  // takes no discards (Trim would be refused). Reads the block bitmap.
  Result<std::optional<uint64_t>> TrimmableBytes();

  // Inode-level reading, for comparing two images of one file system
  // (stack diff --files). Ranges are byte ranges of the device; a block
  // counts when it overlaps one.
  //
  // The inode numbers whose inode lies in an inode table block overlapping
  // `ranges` (in use or not; the never-initialised tail of a group is left
  // out), ascending.
  Result<std::vector<uint32_t>> InodesStoredIn(const std::vector<ByteRange>& ranges);
  // Every inode number in use, ascending.
  Result<std::vector<uint32_t>> InodesInUse();
  // Inode `ino` (1 .. inode count; else OutOfRange) as stored.
  Result<InodeState> InodeAt(uint32_t ino);
  // True when a block holding `ino`'s data or its mapping (extent tree,
  // indirect blocks) overlaps `ranges`.
  Result<bool> InodeUsesBlocksIn(uint32_t ino, const std::vector<ByteRange>& ranges);
  // The names in directory `dir_ino` (no "." or ".."), sorted; hostile
  // entries are skipped as by List.
  Result<std::vector<std::string>> EntryNames(uint32_t dir_ino);
  // Every path ("/a/b") of each inode of `inos` (hard links give several;
  // an inode no directory names gets none). Found near them when that names
  // every one (a directory by its ".." chain, a one-link file in a directory
  // of `inos`), else by one walk of every directory from the root. Hostile
  // entries are skipped as by List.
  Result<std::map<uint32_t, std::vector<std::string>>> PathsOf(const std::set<uint32_t>& inos);

  // Receives one line per warning (no prefix, no newline), e.g. a hostile
  // directory entry a reader skipped (spec/fsbridge.md "Hostile images").
  // Default: "stack: warning: <line>" on stderr. Names in it are escaped.
  void SetWarningSink(std::function<void(const std::string&)> sink);

  // Writes everything cached to the device and flushes it.
  Status Flush();
  // Writes the superblock, descriptors and bitmaps, flushes the device and
  // releases libext2fs. Idempotent; the object holds only the device after.
  Status Close();
  // The device, after Close(). REQUIRES: Close() was called.
  std::unique_ptr<BlockDevice> Release();

  bool writable() const;

  struct Impl;

 private:
  explicit Filesystem(std::unique_ptr<Impl> impl);
  Result<PopulateStats> PopulateFromTarInput(TarInput& input, const std::string& dest_dir,
                                             const PopulateOptions& opts);
  std::unique_ptr<Impl> impl_;
};

}  // namespace stack::fsbridge
