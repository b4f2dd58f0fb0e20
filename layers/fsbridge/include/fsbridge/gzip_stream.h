// GzipStream: a gzip stream (RFC 1952, one or more members) decoded with
// every member's CRC-32 and length trailer checked. libarchive's gzip filter
// never checks them; zlib's gzip wrapping does. Used for tar input (a
// `.tar.gz` build) and for OCI layers, so both refuse a damaged stream alike.
// After the last member only zero bytes may follow (padding some writers
// add); anything else, a truncated member or a bad trailer is Corruption
// "<name>: gzip stream: <why>".
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

class GzipStream {
 public:
  // `next` returns the compressed bytes in order, each span valid until its
  // next call (empty: the end); its errors are passed on as they are.
  GzipStream(std::string name, std::function<Result<std::span<const uint8_t>>()> next);
  ~GzipStream();
  GzipStream(const GzipStream&) = delete;
  GzipStream& operator=(const GzipStream&) = delete;

  // The next decompressed bytes (valid until the next call); empty at the end.
  Result<std::span<const uint8_t>> Next();

 private:
  struct Impl;  // zlib stays out of this header
  std::unique_ptr<Impl> impl_;
};

// True when `head` begins with gzip's magic bytes.
bool IsGzip(std::span<const uint8_t> head);

}  // namespace stack::fsbridge
