// Where an image's files are: a directory on the host, or the members of a
// tar archive (oci-archive, docker-archive) read in place with libarchive.
// Thread-safety: none; one owner. Sources opened from a store may outlive it.
#pragma once

#include <memory>
#include <string>

#include "block/unique_fd.h"
#include "stack/oci_image.h"

namespace stack::compose::oci {

class BlobStore {
 public:
  virtual ~BlobStore() = default;
  // A directory (`oci:`) or a tar archive (`*-archive:`), as the user
  // named it (symlinks to it followed). NotFound if missing; InvalidArgument
  // for the wrong kind (a file given as a directory, a directory given as
  // an archive: `dir_hint`, "oci:DIR", says what reads it; a FIFO...).
  // Every file of a directory is opened with OpenBeneath.
  static Result<std::unique_ptr<BlobStore>> OpenDirectory(const std::string& dir);
  static Result<std::unique_ptr<BlobStore>> OpenArchive(const std::string& file,
                                                        const std::string& dir_hint = "");

  // The file at `path` (relative, '/'-separated; "./" prefixes ignored in
  // an archive). NotFound naming it when absent. Its bytes end at its size
  // when opened (a file's, or an archive member's), whatever is appended.
  virtual Result<std::unique_ptr<ByteSource>> Open(const std::string& path) = 0;
  // The whole file, at most `limit` bytes (InvalidArgument beyond).
  Result<std::string> ReadAll(const std::string& path, size_t limit);
  // "<dir>" or "<file>", for messages.
  virtual const std::string& name() const = 0;
};

// Opens `path` (relative, '/'-separated, no empty, "." or ".." component)
// of the directory `dir` (a descriptor, O_PATH will do) for reading, never
// leaving it and never blocking: openat2(RESOLVE_BENEATH |
// RESOLVE_NO_MAGICLINKS), so a symlink is followed only while it stays
// beneath `dir`. Where the kernel has no openat2 (ENOSYS) or a seccomp
// filter refuses it (EPERM), and when `walk` (tests), one component at a
// time with O_NOFOLLOW: any symlink is then Unsupported. Only a regular
// file is opened for reading (a FIFO or device is looked at with O_PATH,
// never opened): Corruption naming what it is otherwise, and for a path
// that leads outside; NotFound when missing. `name` is the store's, for
// messages.
Result<UniqueFd> OpenBeneath(int dir, const std::string& path, const std::string& name,
                             bool walk = false);

// What ImageSource::Open does once the reference is split into a store and
// a tag: kLayout reads oci-layout and index.json (oci:, oci-archive:),
// kDockerArchive reads manifest.json (docker-archive:). `reference` is
// kept as the image's. Separate so a fuzzer can give documents from memory.
enum class StoreKind { kLayout, kDockerArchive };
Result<std::unique_ptr<ImageSource>> OpenImage(std::unique_ptr<BlobStore> store, StoreKind kind,
                                               const std::string& tag, const Platform& platform,
                                               const std::string& reference);

// Wraps a source and checks, at its end, that the bytes hash to `digest`
// ("sha256:<hex>"; other algorithms are Unsupported) and, when size > 0,
// that there were `size` of them: Corruption naming `what` otherwise
// (`what` names the blob, its digest included).
std::unique_ptr<ByteSource> Verified(std::unique_ptr<ByteSource> in, std::string digest,
                                     uint64_t size, std::string what);
// "sha256:<64 lowercase hex>" or InvalidArgument/Unsupported.
Status CheckDigestSyntax(const std::string& digest, const std::string& what);
// "sha256:<hex>" of bytes.
std::string DigestOf(std::span<const uint8_t> bytes);

}  // namespace stack::compose::oci
