// LayerReader (oci_layer.h): two libarchive readers in a chain, the first
// undoing the compression (raw format, every filter), the second reading
// tar members from its output, with the uncompressed bytes hashed (and
// spooled) between, by a PlainSink on its own thread.
#include "oci_layer.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <vector>

#include "fsbridge/gzip_stream.h"
#include "oci_blob.h"

#include "sha256.h"

namespace stack::compose::oci {

LayerReader::LayerReader(std::unique_ptr<ByteSource> stored, Layer layer)
    : stored_(std::move(stored)), layer_(std::move(layer)) {}

LayerReader::~LayerReader() {
  if (tar_) archive_read_free(tar_);
  if (raw_) archive_read_free(raw_);
}

la_ssize_t LayerReader::ReadStored(archive* a, void* self, const void** out) {
  auto* r = static_cast<LayerReader*>(self);
  auto d = r->stored_->Next();
  if (!d.ok()) {
    r->source_error_ = d.status();
    archive_set_error(a, EIO, "%s", d.status().message().c_str());
    return -1;
  }
  *out = d->data();
  return la_ssize_t(d->size());
}

la_ssize_t LayerReader::ReadPlain(archive* a, void* self, const void** out) {
  auto* r = static_cast<LayerReader*>(self);
  if (r->plain_done_) return 0;
  const void* buf;
  size_t len;
  la_int64_t off;
  int rc = archive_read_data_block(r->raw_, &buf, &len, &off);
  if (rc == ARCHIVE_EOF) {
    r->plain_done_ = true;
    return 0;
  }
  if (rc != ARCHIVE_OK) {
    r->source_error_ = r->Error(r->raw_, "decompressing");
    archive_set_error(a, EIO, "%s", r->source_error_.message().c_str());
    return -1;
  }
  Status s = r->sink_->Push({static_cast<const uint8_t*>(buf), len});
  if (!s.ok()) {
    r->source_error_ = s;
    archive_set_error(a, EIO, "%s", s.message().c_str());
    return -1;
  }
  *out = buf;
  return la_ssize_t(len);
}

Status LayerReader::Error(archive* a, const std::string& what) {
  if (!source_error_.ok()) return source_error_;
  const char* m = archive_error_string(a);
  return Status::Corruption(layer_.label + ": " + what + ": " + (m ? m : "error"));
}

namespace {

// A layer's stored bytes, the first ones read ahead to tell gzip; gzip is
// decoded here (fsbridge::GzipStream checks every member's CRC-32 and
// length, which libarchive's gzip filter does not), anything else passed on.
class GzipChecked : public ByteSource {
 public:
  static Result<std::unique_ptr<GzipChecked>> Open(std::unique_ptr<ByteSource> in,
                                                  const std::string& label) {
    std::unique_ptr<GzipChecked> g(new GzipChecked(std::move(in)));
    while (g->head_.size() < 2) {
      ASSIGN_OR_RETURN(auto d, g->in_->Next());
      if (d.empty()) break;
      g->head_.insert(g->head_.end(), d.begin(), d.end());
    }
    if (fsbridge::IsGzip(g->head_))
      g->gz_ = std::make_unique<fsbridge::GzipStream>(label, [p = g.get()] { return p->Raw(); });
    return g;
  }
  Result<std::span<const uint8_t>> Next() override { return gz_ ? gz_->Next() : Raw(); }
  uint64_t SizeHint() const override { return in_->SizeHint(); }

 private:
  explicit GzipChecked(std::unique_ptr<ByteSource> in) : in_(std::move(in)) {}
  // The stored bytes: the ones read ahead, then the rest.
  Result<std::span<const uint8_t>> Raw() {
    if (!head_given_) {
      head_given_ = true;
      if (!head_.empty()) return std::span<const uint8_t>(head_);
    }
    return in_->Next();
  }
  std::unique_ptr<ByteSource> in_;
  std::vector<uint8_t> head_;
  bool head_given_ = false;
  std::unique_ptr<fsbridge::GzipStream> gz_;
};

}  // namespace

Result<std::unique_ptr<LayerReader>> LayerReader::Open(std::unique_ptr<ByteSource> stored,
                                                       const Layer& layer, Spool* spool) {
  if (!layer.digest.empty())
    stored = Verified(std::move(stored), layer.digest, layer.size, layer.label);
  ASSIGN_OR_RETURN(auto checked, GzipChecked::Open(std::move(stored), layer.label));
  std::unique_ptr<LayerReader> r(new LayerReader(std::move(checked), layer));
  r->sink_ = std::make_unique<PlainSink>(spool);
  r->raw_ = archive_read_new();
  r->tar_ = archive_read_new();
  if (!r->raw_ || !r->tar_) return Status::Internal("libarchive: out of memory");
  // Only the compressions the media types name: gzip is decoded already
  // (GzipChecked), zstd by libarchive (libzstd checks its checksum).
  archive_read_support_filter_zstd(r->raw_);
  archive_read_support_format_raw(r->raw_);
  archive_read_support_format_empty(r->raw_);
  if (archive_read_open(r->raw_, r.get(), nullptr, ReadStored, nullptr) != ARCHIVE_OK)
    return r->Error(r->raw_, "opening");
  archive_entry* e;
  int rc = archive_read_next_header(r->raw_, &e);
  if (rc == ARCHIVE_EOF) {
    r->plain_done_ = true;  // an empty blob: an empty layer, if its digests agree
  } else if (rc != ARCHIVE_OK) {
    return r->Error(r->raw_, "opening");
  }
  archive_read_support_format_tar(r->tar_);
  archive_read_support_format_gnutar(r->tar_);
  archive_read_support_format_empty(r->tar_);
  if (archive_read_open(r->tar_, r.get(), nullptr, ReadPlain, nullptr) != ARCHIVE_OK)
    return r->Error(r->tar_, "reading tar");
  return r;
}

Result<std::unique_ptr<LayerReader>> LayerReader::OpenSpooled(const Spool& spool,
                                                              const Layer& layer) {
  std::unique_ptr<LayerReader> r(new LayerReader(nullptr, layer));
  r->spooled_ = r->plain_done_ = true;
  r->tar_ = archive_read_new();
  if (!r->tar_) return Status::Internal("libarchive: out of memory");
  archive_read_support_format_tar(r->tar_);
  archive_read_support_format_gnutar(r->tar_);
  archive_read_support_format_empty(r->tar_);
  if (::lseek(spool.fd(), 0, SEEK_SET) < 0)
    return Status::FromErrno(layer.label + ": reading its spool", errno);
  // A regular file: libarchive skips unwanted member data with lseek.
  if (archive_read_open_fd(r->tar_, spool.fd(), 1 << 20) != ARCHIVE_OK)
    return r->Error(r->tar_, "reading tar");
  return r;
}

Result<archive_entry*> LayerReader::Next() {
  if (done_) return nullptr;
  archive_entry* e = nullptr;
  int rc = archive_read_next_header(tar_, &e);
  if (rc == ARCHIVE_OK || rc == ARCHIVE_WARN) {
    if (!source_error_.ok()) return source_error_;
    return e;
  }
  if (rc != ARCHIVE_EOF) return Error(tar_, "reading tar");
  if (spooled_) {
    done_ = true;
    return nullptr;
  }
  // The end of the tar: read what follows (padding, the compressed
  // stream's end) so both digests cover every byte.
  while (!plain_done_) {
    const void* out;
    if (ReadPlain(tar_, this, &out) < 0) return source_error_;
  }
  while (true) {  // Verified checks the digest at the end
    ASSIGN_OR_RETURN(auto d, stored_->Next());
    if (d.empty()) break;
  }
  ASSIGN_OR_RETURN(auto plain_digest, sink_->Finish());  // the spool complete, too
  if (!layer_.diff_id.empty()) {
    const std::string got = "sha256:" + Hex(plain_digest);
    if (got != layer_.diff_id)
      return Status::Corruption(layer_.label + ": uncompressed content does not match diff_id " +
                                layer_.diff_id + " (it hashes to " + got + ")");
  }
  done_ = true;
  return nullptr;
}

Result<LayerReader::Block> LayerReader::ReadData() {
  const void* buf;
  size_t len;
  la_int64_t off;
  int rc = archive_read_data_block(tar_, &buf, &len, &off);
  if (rc == ARCHIVE_EOF) return Block{};
  if (rc != ARCHIVE_OK && rc != ARCHIVE_WARN) return Error(tar_, "reading member data");
  return Block{{static_cast<const uint8_t*>(buf), len}, uint64_t(off)};
}

}  // namespace stack::compose::oci
