// Blob stores (oci_blob.h): files of a directory, members of a tar archive.
#include "oci_blob.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <vector>

#include "block/unique_fd.h"
#include "sha256.h"

namespace stack::compose::oci {
namespace {

constexpr size_t kChunk = 1 << 16;


// A regular file's bytes, at most `size` of them (its size when opened):
// a file that grows while it is read ends where it ended then, so every
// read of a blob is bounded whether or not its descriptor declares a size.
class FileSource : public ByteSource {
 public:
  FileSource(UniqueFd fd, uint64_t size, std::string name)
      : fd_(std::move(fd)), left_(size), size_(size), name_(std::move(name)), buf_(kChunk) {}
  uint64_t SizeHint() const override { return size_; }
  Result<std::span<const uint8_t>> Next() override {
    while (left_ > 0) {
      ssize_t n = ::read(fd_.get(), buf_.data(), size_t(std::min<uint64_t>(buf_.size(), left_)));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Status::FromErrno("reading " + name_, errno);
      left_ -= uint64_t(n);
      if (n == 0) left_ = 0;
      return std::span<const uint8_t>(buf_.data(), size_t(n));
    }
    return std::span<const uint8_t>();
  }

 private:
  UniqueFd fd_;
  uint64_t left_, size_;
  std::string name_;
  std::vector<uint8_t> buf_;
};

// What a file that is not a regular file is, for messages.
const char* KindOf(mode_t m) {
  if (S_ISDIR(m)) return "a directory";
  if (S_ISFIFO(m)) return "a FIFO";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  if (S_ISSOCK(m)) return "a socket";
  if (S_ISLNK(m)) return "a symlink";
  return "not a regular file";
}

// openat2(2) beneath `dir`; -1 with errno set. glibc 2.36 has no wrapper.
int Openat2Beneath(int dir, const std::string& path, int flags) {
  struct open_how how = {};
  how.flags = uint64_t(flags);
  // Symlinks are followed while they stay beneath `dir`; an absolute one,
  // ".." above it or a /proc magic link fails with EXDEV/ELOOP.
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  long fd = -1;
  for (int tries = 0; tries < 8; tries++) {  // EAGAIN: a rename raced a ".." lookup
    fd = ::syscall(SYS_openat2, dir, path.c_str(), &how, sizeof how);
    if (fd >= 0 || errno != EAGAIN) break;
  }
  return int(fd);
}

// The fallback where openat2 is missing (Linux < 5.6: ENOSYS) or filtered
// (seccomp: EPERM, ENOSYS): one component at a time, never following a
// symlink (ELOOP). It cannot tell a symlink that stays beneath from one
// that leaves, so it refuses both.
int WalkBeneath(int dir, const std::string& path, int flags) {
  UniqueFd cur;
  size_t start = 0;
  while (true) {
    const size_t slash = path.find('/', start);
    const std::string comp = path.substr(start, slash == std::string::npos ? slash : slash - start);
    const int at = cur.valid() ? cur.get() : dir;
    if (slash == std::string::npos) return ::openat(at, comp.c_str(), flags | O_NOFOLLOW);
    UniqueFd next(::openat(at, comp.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
    if (!next.valid()) return -1;
    struct stat st;
    if (::fstat(next.get(), &st) != 0) return -1;
    if (!S_ISDIR(st.st_mode)) {
      errno = S_ISLNK(st.st_mode) ? ELOOP : ENOTDIR;
      return -1;
    }
    cur = std::move(next);
    start = slash + 1;
  }
}

}  // namespace

Result<UniqueFd> OpenBeneath(int dir, const std::string& path, const std::string& name,
                             bool walk) {
  // Paths come from the image's own JSON: plain names, '/'-separated.
  bool ok = !path.empty() && path.back() != '/';
  for (size_t start = 0; ok && start < path.size();) {
    const size_t slash = std::min(path.find('/', start), path.size());
    const std::string comp = path.substr(start, slash - start);
    ok = !comp.empty() && comp != "." && comp != "..";
    start = slash + 1;
  }
  if (!ok) return Status::Corruption("image " + name + ": bad blob path '" + path + "'");
  // Once openat2 is known missing or filtered, the walk, without asking again.
  static std::atomic<bool> no_openat2{false};
  auto open = [&](int flags) {
    if (!walk && !no_openat2.load(std::memory_order_relaxed)) {
      const int fd = Openat2Beneath(dir, path, flags);
      if (fd >= 0 || (errno != ENOSYS && errno != EPERM)) return fd;
      no_openat2.store(true, std::memory_order_relaxed);
    }
    walk = true;
    return WalkBeneath(dir, path, flags);
  };
  const std::string what = "image " + name + ": " + path;
  // The walk cannot tell a symlink that stays inside from one that leaves.
  auto walked_symlink = [&](const char* how) {
    return Status::Unsupported(what + " " + how +
                               " a symlink, which only openat2 (Linux 5.6) keeps inside the "
                               "layout: refused");
  };
  auto fail = [&](int err) -> Status {
    if (err == ENOENT) return Status::NotFound(what + " is missing");
    if (err == EXDEV) return Status::Corruption(what + " leads outside the image: refused");
    if (err == ELOOP && walk) return walked_symlink("goes through");
    if (err == ELOOP)
      return Status::Corruption(what + " goes through too many symlinks or a /proc link: refused");
    return Status::FromErrno("opening " + what, err);
  };
  // O_PATH first: a FIFO or a device is looked at, never opened (opening
  // one can block or act on the device).
  UniqueFd where(open(O_PATH | O_CLOEXEC));
  if (!where.valid()) return fail(errno);
  struct stat st;
  if (::fstat(where.get(), &st) != 0) return fail(errno);
  if (S_ISLNK(st.st_mode)) return walked_symlink("is");
  if (!S_ISREG(st.st_mode))
    return Status::Corruption(what + " is " + KindOf(st.st_mode) + ", not a file");
  // O_NONBLOCK: if the name was swapped for a FIFO meanwhile, no hang.
  UniqueFd fd(open(O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
  if (!fd.valid()) return fail(errno);
  if (::fstat(fd.get(), &st) != 0) return fail(errno);
  if (!S_ISREG(st.st_mode))
    return Status::Corruption(what + " is " + KindOf(st.st_mode) + ", not a file");
  return fd;
}

namespace {

class DirStore : public BlobStore {
 public:
  DirStore(UniqueFd dir, std::string name) : dir_(std::move(dir)), name_(std::move(name)) {}
  Result<std::unique_ptr<ByteSource>> Open(const std::string& path) override {
    ASSIGN_OR_RETURN(UniqueFd fd, OpenBeneath(dir_.get(), path, name_));
    struct stat st;
    if (::fstat(fd.get(), &st) != 0)
      return Status::FromErrno("image " + name_ + ": " + path, errno);
    return std::unique_ptr<ByteSource>(
        new FileSource(std::move(fd), uint64_t(st.st_size), name_ + "/" + path));
  }
  const std::string& name() const override { return name_; }

 private:
  UniqueFd dir_;  // O_PATH: every file is opened beneath it
  std::string name_;
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
  MemberSource(archive* a, UniqueFd fd, std::string name, uint64_t size)
      : a_(a), fd_(std::move(fd)), name_(std::move(name)), size_(size) {}
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
  UniqueFd fd_;  // what a_ reads (libarchive does not close it)
  std::string name_;
  uint64_t size_;
  uint64_t pos_ = 0;
};

// Opens the archive the user named (a symlink to it is the user's) for
// reading: a regular file only, never blocking (a FIFO would hang, and
// every member is read by opening the archive again). `dir_hint` is the
// reference that reads a directory of that name.
Result<UniqueFd> OpenArchiveFile(const std::string& file, const std::string& dir_hint,
                                 struct stat* st) {
  UniqueFd fd(::open(file.c_str(), O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
  if (!fd.valid() && errno == ENOENT)
    return Status::NotFound("archive " + file + " does not exist");
  if (!fd.valid()) return Status::FromErrno("opening archive " + file, errno);
  if (::fstat(fd.get(), st) != 0) return Status::FromErrno("archive " + file, errno);
  if (S_ISDIR(st->st_mode))
    return Status::InvalidArgument("archive " + file + " is a directory" +
                                   (dir_hint.empty() ? ", not a tar file" : ": use " + dir_hint));
  if (!S_ISREG(st->st_mode))
    return Status::InvalidArgument("archive " + file + " is " + KindOf(st->st_mode) +
                                   ", not a file");
  return fd;
}

// Where a symlink member `target` found at member `at` points, as a member
// name (resolved lexically from at's directory; an absolute target from the
// archive's root); "" when it climbs out of the archive.
std::string ResolveMemberLink(const std::string& at, const std::string& target) {
  std::vector<std::string> parts;
  if (target.empty() || target[0] != '/') {
    for (size_t b = 0, e; (e = at.find('/', b)) != std::string::npos; b = e + 1)
      parts.push_back(at.substr(b, e - b));
  }
  for (size_t b = 0; b <= target.size();) {
    size_t e = target.find('/', b);
    if (e == std::string::npos) e = target.size();
    const std::string c = target.substr(b, e - b);
    b = e + 1;
    if (c.empty() || c == ".") continue;
    if (c != "..") {
      parts.push_back(c);
    } else if (parts.empty()) {
      return "";
    } else {
      parts.pop_back();
    }
  }
  std::string out;
  for (const auto& c : parts) out += (out.empty() ? "" : "/") + c;
  return out;
}

class ArchiveStore : public BlobStore {
 public:
  ArchiveStore(std::string file, const struct stat& st)
      : file_(std::move(file)), dev_(st.st_dev), ino_(st.st_ino) {}

  // A member may be a link to another: docker save before v25 stores a
  // layer shared by several images once and links the others to it, and
  // skopeo's docker-archive writer links duplicates. Links are followed
  // inside the archive only, a few hops at most.
  Result<std::unique_ptr<ByteSource>> Open(const std::string& path) override {
    constexpr int kMaxHops = 8;
    std::string want = CleanMemberName(path);
    for (int hop = 0; hop <= kMaxHops; hop++) {
      std::string next;
      ASSIGN_OR_RETURN(auto src, Find(want, &next));
      if (src) return src;
      if (next.empty())
        return Status::Corruption("image " + file_ + ": " + want +
                                  " is a link to nothing inside the archive");
      want = std::move(next);
    }
    return Status::Corruption("image " + file_ + ": " + CleanMemberName(path) +
                              ": more than " + std::to_string(kMaxHops) +
                              " links to follow (a loop?)");
  }
  const std::string& name() const override { return file_; }

 private:
  // The first member named `want` that is a file (its data) or a link (null,
  // and *next the member it names; "" if that is outside the archive).
  Result<std::unique_ptr<ByteSource>> Find(const std::string& want, std::string* next) {
    struct stat st;
    ASSIGN_OR_RETURN(UniqueFd fd, OpenArchiveFile(file_, "", &st));
    if (st.st_dev != dev_ || st.st_ino != ino_)
      return Status::IoError("archive " + file_ + " was replaced while it was read");
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
    if (archive_read_open_fd(a, fd.get(), kChunk) != ARCHIVE_OK) return fail("opening");
    archive_entry* e;
    while (true) {
      int rc = archive_read_next_header(a, &e);
      if (rc == ARCHIVE_EOF) break;
      if (rc < ARCHIVE_WARN) return fail("reading");
      const char* pn = archive_entry_pathname(e);
      if (!pn || CleanMemberName(pn) != want) continue;
      if (const char* hl = archive_entry_hardlink(e); hl && *hl) {
        *next = CleanMemberName(hl);  // tar names a hard link's target from the root
      } else if (archive_entry_filetype(e) == AE_IFLNK) {
        const char* t = archive_entry_symlink(e);
        *next = ResolveMemberLink(want, t ? t : "");
      } else if (archive_entry_filetype(e) == AE_IFREG) {
        return std::unique_ptr<ByteSource>(
            new MemberSource(a, std::move(fd), file_ + ":" + want,
                             uint64_t(std::max<la_int64_t>(archive_entry_size(e), 0))));
      } else {
        continue;
      }
      archive_read_free(a);
      return std::unique_ptr<ByteSource>();
    }
    archive_read_free(a);
    return Status::NotFound("image " + file_ + ": " + want + " is missing");
  }

  std::string file_;
  dev_t dev_;
  ino_t ino_;
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
  // The directory the user named (a symlink to it is the user's); every
  // file of it is then opened beneath this descriptor (OpenBeneath).
  UniqueFd fd(::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) {
    const int err = errno;
    struct stat st;
    if (err == ENOENT) return Status::NotFound("image " + dir + " does not exist");
    if (err == ENOTDIR && ::stat(dir.c_str(), &st) == 0)
      return Status::InvalidArgument(
          "image " + dir + " is " +
          (S_ISREG(st.st_mode) ? "a file: use oci-archive:" + dir
                               : std::string(KindOf(st.st_mode)) + ", not a directory"));
    return Status::FromErrno("opening image " + dir, err);
  }
  return std::unique_ptr<BlobStore>(new DirStore(std::move(fd), dir));
}

Result<std::unique_ptr<BlobStore>> BlobStore::OpenArchive(const std::string& file,
                                                          const std::string& dir_hint) {
  struct stat st;
  ASSIGN_OR_RETURN(UniqueFd fd, OpenArchiveFile(file, dir_hint, &st));
  return std::unique_ptr<BlobStore>(new ArchiveStore(file, st));
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
