// TarInput: the decompressed bytes of a tar file (or stdin), with every
// compression's integrity check enforced, for the tar reader.
//
// libarchive alone is not enough: its gzip filter never checks the CRC-32
// and length trailer, and its tar reader stops at the end-of-archive blocks,
// so a stream's final check (gzip trailer, xz check, zstd checksum) may never
// be read. TarInput decodes gzip itself with zlib (which verifies each
// member's trailer), other compressions through libarchive's filters (raw
// format; liblzma, libzstd, libbz2 verify their checks), and Drain() reads
// to the end of the stream after the last tar entry so the final checks run.
// Any failure is Corruption naming the archive.
//
// Thread-safety: none.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "block/status.h"

namespace stack::fsbridge {

class TarInput {
 public:
  // Opens a file, or stdin for "-". NotFound for a missing file.
  static Result<std::unique_ptr<TarInput>> Open(const std::string& path_or_dash);
  // An uncompressed tar stream whose bytes `next` returns (empty: the end).
  static std::unique_ptr<TarInput> FromReader(
      std::string name, std::function<Result<std::span<const uint8_t>>()> next);
  virtual ~TarInput() = default;

  // The next decompressed bytes (valid until the next call); empty at the
  // end. Corruption naming the archive when a check fails.
  virtual Result<std::span<const uint8_t>> Next() = 0;
  // Reads and checks everything left, to the end of the stream.
  Status Drain();

  // The archive as named in messages ("<stdin>" for "-").
  const std::string& name() const { return name_; }

 protected:
  explicit TarInput(std::string name) : name_(std::move(name)) {}
  std::string name_;
};

}  // namespace stack::fsbridge
