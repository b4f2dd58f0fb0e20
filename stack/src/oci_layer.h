// LayerReader: one layer's tar members, read from its stored bytes through
// libarchive, with both of its digests checked: the stored blob against
// the manifest's digest, the uncompressed tar against the config's diff_id.
// Compression (none, gzip, zstd) is recognised from the bytes. The checks
// complete when Next() reports the end (after the rest of the stream was
// read), so a caller publishes nothing before then.
//
// A reader may copy the uncompressed tar into a Spool as it goes; once it
// reported the end, OpenSpooled reads the layer back from there, without
// decompressing or hashing again (the spool is this process's own
// anonymous file, written from the bytes just checked), and skips the data
// of members it is not asked for by seeking.
// Thread-safety: none; one owner (a reader that checks runs a PlainSink
// thread of its own).
#pragma once

#include <archive.h>
#include <archive_entry.h>

#include <memory>
#include <vector>

#include "oci_plain_sink.h"
#include "oci_spool.h"
#include "sha256.h"
#include "stack/oci_image.h"

namespace stack::compose::oci {

class LayerReader {
 public:
  // `stored` gives the blob as stored; `layer` says what it must hash to.
  // With `spool`, the uncompressed tar is appended to it as it is read.
  static Result<std::unique_ptr<LayerReader>> Open(std::unique_ptr<ByteSource> stored,
                                                   const Layer& layer, Spool* spool = nullptr);
  // The layer again from the spool a reader of it filled (to its end).
  static Result<std::unique_ptr<LayerReader>> OpenSpooled(const Spool& spool, const Layer& layer);
  ~LayerReader();
  LayerReader(const LayerReader&) = delete;
  LayerReader& operator=(const LayerReader&) = delete;

  // The next member's header (owned by the reader, valid until the next
  // call), or nullptr at the end of the layer once every check passed.
  // Corruption naming the layer for a bad tar, a bad compressed stream or
  // a digest mismatch.
  Result<archive_entry*> Next();
  // The current member's data: the next block and its offset in the file;
  // an empty block at its end.
  struct Block {
    std::span<const uint8_t> data;
    uint64_t offset = 0;
  };
  Result<Block> ReadData();
  // Bytes of the uncompressed tar consumed so far: after a member's data
  // was read to its end, a multiple of 512 when the data (as its map
  // says) filled the member's stored size.
  uint64_t position() const { return uint64_t(archive_filter_bytes(tar_, 0)); }
  const Layer& layer() const { return layer_; }

 private:
  LayerReader(std::unique_ptr<ByteSource> stored, Layer layer);
  Status Error(archive* a, const std::string& what);
  static la_ssize_t ReadStored(archive* a, void* self, const void** out);
  static la_ssize_t ReadPlain(archive* a, void* self, const void** out);

  std::unique_ptr<ByteSource> stored_;
  Layer layer_;
  archive* raw_ = nullptr;  // stored bytes -> uncompressed bytes
  archive* tar_ = nullptr;  // uncompressed bytes -> members
  std::unique_ptr<PlainSink> sink_;  // the diff_id hash and the spool copy
  bool spooled_ = false;    // reading back a spool: checked already
  Status source_error_;  // a failure inside a read callback, returned as is
  bool plain_done_ = false;
  bool done_ = false;
};

}  // namespace stack::compose::oci
