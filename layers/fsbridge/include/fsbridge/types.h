// Value types of the fsbridge API: mkfs and populate options, and what the
// read side reports (inode attributes, directory entries, free space).
//
// Plain structs, no behaviour; safe to copy between threads.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace stack::fsbridge {

// Options for Filesystem::Mkfs. Zero means "the default" for numbers.
struct MkfsOptions {
  std::string label;                              // up to 16 bytes
  std::optional<std::array<uint8_t, 16>> uuid;    // random when unset
  // Directory-hash seed. When unset: derived from the uuid if the uuid was
  // given (reproducible), random otherwise.
  std::optional<std::array<uint8_t, 16>> hash_seed;
  uint32_t block_size = 0;     // 0: 4096 (whatever the device block)
  uint32_t inode_size = 0;     // 0: 256
  uint32_t inode_ratio = 0;    // bytes per inode; 0: 16384
  double reserved_ratio = 0.05;  // fraction of blocks reserved for root
  // Seconds since the epoch stamped into the superblock, the root directory,
  // lost+found and the journal inode (SOURCE_DATE_EPOCH). Unset: now.
  std::optional<int64_t> timestamp;
  // The device is new (a volume created for this file system) and holds no
  // earlier file system: the journal's blocks are allocated but not zeroed
  // (mke2fs -E lazy_journal_init). Safe there: jbd2 replays only after an
  // unclean unmount, and only blocks carrying its magic, the expected
  // sequence number and (metadata_csum) a checksum seeded by this file
  // system's UUID; a new volume's unwritten blocks (zeros, or decrypted
  // zeros under encryption) carry none of them. Not for reused devices:
  // an old journal's blocks could pass.
  bool fresh_device = false;
  // Bytes of the device the file system covers (whole blocks): 0 = all of
  // it. Less leaves room to grow in place (Filesystem::Grow, tests).
  uint64_t size_bytes = 0;
};

// Options for PopulateFrom*, PutFile and the other writers.
struct PopulateOptions {
  // A manifest (spec/fsbridge.md "Manifest") overriding owner, mode and
  // times per path. Empty: none.
  std::string manifest_path;
  // A manifest line naming a path the source does not hold fails the
  // populate (InvalidArgument naming the line); with lenient_manifest it
  // becomes a warning in PopulateStats::warnings.
  bool lenient_manifest = false;
  // Reproducible mode: atime, ctime and crtime of every inode written are
  // this value; mtimes come from the source (or the manifest).
  std::optional<int64_t> timestamp;
  // Keep uid/gid from the source; when false every new inode is 0:0
  // (before the manifest applies).
  bool keep_owners = true;
  // Copy extended attributes (directory sources; tar xattrs are always read).
  bool xattrs = true;
  // Called after each regular file is written, with its logical size
  // (progress reporting). May be empty.
  std::function<void(uint64_t)> on_file;
};

struct PopulateStats {
  uint64_t files = 0;        // regular files (each hard link counted once)
  uint64_t directories = 0;
  uint64_t symlinks = 0;
  uint64_t hardlinks = 0;    // extra names for an inode already written
  uint64_t specials = 0;     // devices, fifos, sockets
  uint64_t bytes = 0;        // regular-file bytes (logical size)
  std::vector<std::string> warnings;  // e.g. unused manifest lines (lenient_manifest)
};

struct Timespec {
  int64_t sec = 0;
  uint32_t nsec = 0;
  bool operator==(const Timespec&) const = default;
};

// File types, as in the ext4 directory entry.
enum class FileType : uint8_t {
  kUnknown = 0, kRegular, kDirectory, kCharDevice, kBlockDevice, kFifo, kSocket, kSymlink
};

struct InodeInfo {
  uint32_t ino = 0;
  FileType type = FileType::kUnknown;
  uint32_t mode = 0;      // full st_mode: type bits | permission bits
  uint32_t nlink = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t size = 0;
  uint64_t allocated_bytes = 0;  // blocks actually held (sparse files hold less)
  Timespec atime, mtime, ctime, crtime;
  uint32_t rdev_major = 0, rdev_minor = 0;  // devices only
  std::string symlink_target;               // symlinks only
  std::vector<std::pair<std::string, std::string>> xattrs;  // name -> value, sorted
};

// A byte range of the device under the file system.
struct ByteRange {
  uint64_t offset = 0;
  uint64_t length = 0;
};

// One inode as stored, for comparing two images of one file system
// (Filesystem::InodeAt).
struct InodeState {
  bool in_use = false;        // set in the inode bitmap
  uint32_t generation = 0;    // i_generation: a reused inode number differs
  uint32_t flags = 0;         // i_flags
  std::array<uint8_t, 60> block_map{};  // i_block: extent root, inline data or fast link
  InodeInfo info;             // when in_use
};

struct DirEntryInfo {
  std::string name;
  InodeInfo info;
};

struct DfInfo {
  uint32_t block_size = 0;
  uint64_t blocks_total = 0;
  uint64_t blocks_free = 0;
  uint64_t blocks_reserved = 0;  // for root
  uint64_t inodes_total = 0;
  uint64_t inodes_free = 0;
  std::string label;
  std::string uuid;  // canonical text form
};

// What Filesystem::Trim did.
struct TrimInfo {
  uint64_t ranges = 0;       // free block ranges passed down
  uint64_t trimmed_bytes = 0;  // their total size (as fstrim reports)
};

}  // namespace stack::fsbridge
