// Spool: an anonymous temporary file (never linked into the host's file
// system, gone when closed) that holds one layer's uncompressed tar between
// the two passes of an image build (oci_apply.h), so the second pass reads
// it back instead of decompressing and hashing the blob again. It lives in
// $TMPDIR, by default /var/tmp (on disk, where /tmp may be memory); its
// size is the layer's uncompressed size.
// Thread-safety: none; one owner.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "block/status.h"

namespace stack::compose::oci {

class Spool {
 public:
  // A new empty spool. `what` names what it holds, for messages. Fails
  // (naming the directory) when no temporary file can be made there.
  static Result<Spool> Create(const std::string& what);
  Spool() = default;
  ~Spool();
  Spool(Spool&& o) noexcept : fd_(o.fd_), what_(std::move(o.what_)) { o.fd_ = -1; }
  Spool& operator=(Spool&& o) noexcept;
  Spool(const Spool&) = delete;
  Spool& operator=(const Spool&) = delete;

  // Appends bytes. NoSpace naming the spool's directory when it fills up.
  Status Append(std::span<const uint8_t> data);
  // The file, for reading back from offset 0 (the reader seeks as it likes).
  int fd() const { return fd_; }
  bool open() const { return fd_ >= 0; }

 private:
  Spool(int fd, std::string what) : fd_(fd), what_(std::move(what)) {}
  int fd_ = -1;
  std::string what_;
};

}  // namespace stack::compose::oci
