// Blob stores (oci_blob.h): files of a directory, members of a tar archive.
#include "oci_blob.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <vector>

#include "sha256.h"

namespace stack::compose::oci {
namespace {

constexpr size_t kChunk = 1 << 16;


class FileSource : public ByteSource {
 public:
  FileSource(int fd, std::string name) : fd_(fd), name_(std::move(name)), buf_(kChunk) {}
  uint64_t SizeHint() const override {
    struct stat st;
    return ::fstat(fd_, &st) == 0 && st.st_size > 0 ? uint64_t(st.st_size) : 0;
  }
  ~FileSource() override { ::close(fd_); }
  FileSource(const FileSource&) = delete;
  FileSource& operator=(const FileSource&) = delete;
  Result<std::span<const uint8_t>> Next() override {
    while (true) {
      ssize_t n = ::read(fd_, buf_.data(), buf_.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Status::FromErrno("reading " + name_, errno);
      return std::span<const uint8_t>(buf_.data(), size_t(n));
    }
  }

 private:
  int fd_;
  std::string name_;
  std::vector<uint8_t> buf_;
};

class DirStore : public BlobStore {
 public:
  explicit DirStore(std::string dir) : dir_(std::move(dir)) {}
  Result<std::unique_ptr<ByteSource>> Open(const std::string& path) override {
    // Paths come from the image's own JSON: keep them inside the layout.
    if (path.empty() || path[0] == '/' || path.find("..") != std::string::npos)
      return Status::Corruption("image " + dir_ + ": bad blob path '" + path + "'");
    const std::string full = dir_ + "/" + path;
    int fd = ::open(full.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT) return Status::NotFound("image " + dir_ + ": " + path + " is missing");
      return Status::FromErrno("opening " + full, errno);
    }
    return std::unique_ptr<ByteSource>(new FileSource(fd, full));
  }
  const std::string& name() const override { return dir_; }

 private:
  std::string dir_;
};

std::string CleanMemberName(std::string n) {
  while (n.rfind("./", 0) == 0) n.erase(0, 2);
  while (!n.empty() && n[0] == '/') n.erase(0, 1);
  return n;
}

// One member of an archive: the archive is opened for this member alone
// and scanned to it (libarchive skips other members' data by seeking).
class MemberSource : public ByteSource {
 public:
  MemberSource(archive* a, std::string name, uint64_t size)
      : a_(a), name_(std::move(name)), size_(size) {}
  uint64_t SizeHint() const override { return size_; }
  ~MemberSource() override { archive_read_free(a_); }
  MemberSource(const MemberSource&) = delete;
  MemberSource& operator=(const MemberSource&) = delete;
  Result<std::span<const uint8_t>> Next() override {
    const void* buf;
    size_t len;
    la_int64_t off;
    int rc = archive_read_data_block(a_, &buf, &len, &off);
    if (rc == ARCHIVE_EOF) return std::span<const uint8_t>();
    if (rc != ARCHIVE_OK) {
      const char* m = archive_error_string(a_);
      return Status::Corruption("reading " + name_ + ": " + (m ? m : "error"));
    }
    // Sparse members are not blobs any tool writes; refuse rather than guess.
    if (uint64_t(off) != pos_) return Status::Corruption("reading " + name_ + ": sparse member");
    pos_ += len;
    return std::span<const uint8_t>(static_cast<const uint8_t*>(buf), len);
  }

 private:
  archive* a_;
  std::string name_;
  uint64_t size_;
  uint64_t pos_ = 0;
};

class ArchiveStore : public BlobStore {
 public:
  explicit ArchiveStore(std::string file) : file_(std::move(file)) {}
  Result<std::unique_ptr<ByteSource>> Open(const std::string& path) override {
    archive* a = archive_read_new();
    if (!a) return Status::Internal("libarchive: out of memory");
    archive_read_support_format_tar(a);
    archive_read_support_format_gnutar(a);
    archive_read_support_filter_all(a);
    auto fail = [&](const std::string& what) {
      const char* m = archive_error_string(a);
      Status s = Status::Corruption("archive " + file_ + ": " + what + ": " + (m ? m : "error"));
      archive_read_free(a);
      return s;
    };
    if (archive_read_open_filename(a, file_.c_str(), kChunk) != ARCHIVE_OK) {
      if (::access(file_.c_str(), F_OK) != 0) {
        archive_read_free(a);
        return Status::NotFound("archive " + file_ + " does not exist");
      }
      return fail("opening");
    }
    const std::string want = CleanMemberName(path);
    archive_entry* e;
    while (true) {
      int rc = archive_read_next_header(a, &e);
      if (rc == ARCHIVE_EOF) break;
      if (rc < ARCHIVE_WARN) return fail("reading");
      const char* pn = archive_entry_pathname(e);
      if (pn && CleanMemberName(pn) == want && archive_entry_filetype(e) == AE_IFREG)
        return std::unique_ptr<ByteSource>(new MemberSource(
            a, file_ + ":" + want, uint64_t(std::max<la_int64_t>(archive_entry_size(e), 0))));
    }
    archive_read_free(a);
    return Status::NotFound("image " + file_ + ": " + want + " is missing");
  }
  const std::string& name() const override { return file_; }

 private:
  std::string file_;
};

class VerifiedSource : public ByteSource {
 public:
  VerifiedSource(std::unique_ptr<ByteSource> in, std::string digest, uint64_t size,
                 std::string what)
      : in_(std::move(in)), digest_(std::move(digest)), size_(size), what_(std::move(what)) {}
  Result<std::span<const uint8_t>> Next() override {
    if (done_) return std::span<const uint8_t>();
    ASSIGN_OR_RETURN(auto d, in_->Next());
    if (!d.empty()) {
      hash_.Update(d);
      n_ += d.size();
      if (size_ && n_ > size_) return Mismatch();
      return d;
    }
    done_ = true;
    const std::string got = "sha256:" + Hex(hash_.Final());
    if (got != digest_ || (size_ && n_ != size_)) return Mismatch(got);
    return d;
  }

 private:
  Status Mismatch(const std::string& got = "") const {
    std::string m = what_ + ": content does not match its digest";
    if (!got.empty() && got != digest_)
      m += " (it hashes to " + got + ")";
    else
      m += " (" + std::to_string(n_) + (size_ && n_ > size_ ? "+" : "") + " bytes, " +
           std::to_string(size_) + " expected)";
    return Status::Corruption(m);
  }
  std::unique_ptr<ByteSource> in_;
  std::string digest_;
  uint64_t size_;
  std::string what_;
  Sha256 hash_;
  uint64_t n_ = 0;
  bool done_ = false;
};

}  // namespace

Result<std::unique_ptr<BlobStore>> BlobStore::OpenDirectory(const std::string& dir) {
  if (::access(dir.c_str(), F_OK) != 0) return Status::NotFound("image " + dir + " does not exist");
  return std::unique_ptr<BlobStore>(new DirStore(dir));
}

Result<std::unique_ptr<BlobStore>> BlobStore::OpenArchive(const std::string& file) {
  if (::access(file.c_str(), F_OK) != 0)
    return Status::NotFound("archive " + file + " does not exist");
  return std::unique_ptr<BlobStore>(new ArchiveStore(file));
}

Result<std::string> BlobStore::ReadAll(const std::string& path, size_t limit) {
  ASSIGN_OR_RETURN(auto src, Open(path));
  std::string out;
  while (true) {
    ASSIGN_OR_RETURN(auto d, src->Next());
    if (d.empty()) return out;
    if (out.size() + d.size() > limit)
      return Status::InvalidArgument("image " + name() + ": " + path + " is larger than " +
                                     std::to_string(limit) + " bytes");
    out.append(reinterpret_cast<const char*>(d.data()), d.size());
  }
}

std::unique_ptr<ByteSource> Verified(std::unique_ptr<ByteSource> in, std::string digest,
                                     uint64_t size, std::string what) {
  return std::make_unique<VerifiedSource>(std::move(in), std::move(digest), size, std::move(what));
}

Status CheckDigestSyntax(const std::string& digest, const std::string& what) {
  const size_t c = digest.find(':');
  if (c == std::string::npos)
    return Status::Corruption(what + ": malformed digest '" + digest + "'");
  if (digest.substr(0, c) != "sha256")
    return Status::Unsupported(what + ": digest algorithm '" + digest.substr(0, c) + "'");
  const std::string hex = digest.substr(c + 1);
  bool ok = hex.size() == 64;
  for (char ch : hex) ok = ok && ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f'));
  if (!ok) return Status::Corruption(what + ": malformed digest '" + digest + "'");
  return Status::Ok();
}

std::string DigestOf(std::span<const uint8_t> bytes) {
  Sha256 h;
  h.Update(bytes);
  return "sha256:" + Hex(h.Final());
}

}  // namespace stack::compose::oci
