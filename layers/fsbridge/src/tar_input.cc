// TarInput: checked decompression of a tar stream (see tar_input.h).
#include "tar_input.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "archive_util.h"
#include "fsbridge/gzip_stream.h"

namespace stack::fsbridge {

namespace {

constexpr size_t kChunk = 1 << 16;

// The bytes of a file or stdin, read in chunks, with the first bytes
// available for sniffing before anything is consumed.
class FdSource {
 public:
  FdSource(int fd, bool owned) : fd_(fd), owned_(owned), buf_(kChunk) {}
  ~FdSource() {
    if (owned_ && fd_ >= 0) ::close(fd_);
  }
  FdSource(const FdSource&) = delete;
  FdSource& operator=(const FdSource&) = delete;
  int fd() const { return fd_; }
  // Fills the buffer if empty. False with errno on a read error; an empty
  // view() after true means end of input.
  bool Fill() {
    if (pos_ < len_) return true;
    pos_ = len_ = 0;
    while (true) {
      ssize_t n = ::read(fd_, buf_.data(), buf_.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return false;
      len_ = size_t(n);
      return true;
    }
  }
  // Reads until at least n bytes are buffered or the input ends (for
  // sniffing magic; a pipe may deliver one byte at a time). Call first.
  bool FillPrefix(size_t n) {
    while (len_ < n) {
      ssize_t r = ::read(fd_, buf_.data() + len_, buf_.size() - len_);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return false;
      if (r == 0) return true;
      len_ += size_t(r);
    }
    return true;
  }
  std::span<const uint8_t> view() const { return {buf_.data() + pos_, len_ - pos_}; }
  void Consume(size_t n) { pos_ += n; }

 private:
  int fd_;
  bool owned_;
  std::vector<uint8_t> buf_;
  size_t pos_ = 0, len_ = 0;
};

// gzip through GzipStream (every member's trailer checked).
class GzipInput : public TarInput {
 public:
  GzipInput(std::string name, std::unique_ptr<FdSource> src)
      : TarInput(name), src_(std::move(src)), gz_("tar " + name, [this] { return Read(); }) {}

  Result<std::span<const uint8_t>> Next() override { return gz_.Next(); }

 private:
  Result<std::span<const uint8_t>> Read() {
    if (!src_->Fill()) return Status::FromErrno("reading " + name_, errno);
    auto v = src_->view();
    src_->Consume(v.size());  // valid until the next Fill
    return v;
  }
  std::unique_ptr<FdSource> src_;
  GzipStream gz_;  // after src_: it reads from it
};

// Anything else through libarchive's filters (none, xz, zstd, bzip2, lz4,
// ...) and its raw format, which hands out the decompressed stream.
class FilterInput : public TarInput {
 public:
  FilterInput(std::string name, std::unique_ptr<FdSource> src)
      : TarInput(std::move(name)), src_(std::move(src)) {}

  Status Start() {
    archive_read_support_filter_all(r_.a);
    archive_read_support_format_raw(r_.a);
    if (archive_read_open(r_.a, this, nullptr, &FilterInput::Read, nullptr) != ARCHIVE_OK)
      return Error("opening");
    archive_entry* e = nullptr;
    const int rc = archive_read_next_header(r_.a, &e);
    if (rc == ARCHIVE_EOF) done_ = true;
    else if (rc != ARCHIVE_OK) return Error("reading");
    return Status::Ok();
  }

  Result<std::span<const uint8_t>> Next() override {
    while (!done_) {
      const void* buf = nullptr;
      size_t len = 0;
      la_int64_t off = 0;
      const int rc = archive_read_data_block(r_.a, &buf, &len, &off);
      if (rc == ARCHIVE_EOF) {
        done_ = true;
        break;
      }
      // Every other code, ARCHIVE_WARN included, is a failed check.
      if (rc != ARCHIVE_OK) return Error("decompressing");
      if (len) return std::span<const uint8_t>(static_cast<const uint8_t*>(buf), len);
    }
    return std::span<const uint8_t>();
  }

 private:
  static la_ssize_t Read(archive* a, void* self, const void** out) {
    auto* me = static_cast<FilterInput*>(self);
    if (!me->src_->Fill()) {
      me->read_error_ = Status::FromErrno("reading " + me->name_, errno);
      archive_set_error(a, errno, "read error");
      return -1;
    }
    auto v = me->src_->view();
    *out = v.data();
    me->src_->Consume(v.size());
    return la_ssize_t(v.size());
  }
  Status Error(const char* what) {
    if (!read_error_.ok()) return read_error_;
    const char* m = archive_error_string(r_.a);
    return Status::Corruption("tar " + name_ + ": " + what + ": " + (m ? m : "corrupt stream"));
  }
  std::unique_ptr<FdSource> src_;
  ArchiveReader r_;
  Status read_error_;
  bool done_ = false;
};

// Bytes handed over by a producer, as they come (no decompression).
class ReaderInput : public TarInput {
 public:
  ReaderInput(std::string name, std::function<Result<std::span<const uint8_t>>()> next)
      : TarInput(std::move(name)), next_(std::move(next)) {}
  Result<std::span<const uint8_t>> Next() override {
    if (done_) return std::span<const uint8_t>();
    ASSIGN_OR_RETURN(auto d, next_());
    if (d.empty()) done_ = true;
    return d;
  }

 private:
  std::function<Result<std::span<const uint8_t>>()> next_;
  bool done_ = false;
};

}  // namespace

std::unique_ptr<TarInput> TarInput::FromReader(
    std::string name, std::function<Result<std::span<const uint8_t>>()> next) {
  return std::make_unique<ReaderInput>(std::move(name), std::move(next));
}

Result<std::unique_ptr<TarInput>> TarInput::Open(const std::string& path) {
  const bool in = path == "-";
  const std::string name = in ? "<stdin>" : path;
  int fd = in ? 0 : ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return Status::NotFound("tar " + name + ": no such file");
    return Status::FromErrno("opening tar " + name, errno);
  }
  auto src = std::make_unique<FdSource>(fd, !in);
  if (!src->FillPrefix(2)) return Status::FromErrno("reading " + name, errno);
  auto v = src->view();
  if (IsGzip(v))
    return std::unique_ptr<TarInput>(new GzipInput(name, std::move(src)));
  auto f = std::make_unique<FilterInput>(name, std::move(src));
  RETURN_IF_ERROR(f->Start());
  return std::unique_ptr<TarInput>(std::move(f));
}

Status TarInput::Drain() {
  while (true) {
    ASSIGN_OR_RETURN(auto d, Next());
    if (d.empty()) return Status::Ok();
  }
}

}  // namespace stack::fsbridge
