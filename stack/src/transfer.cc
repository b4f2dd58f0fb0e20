#include "stack/transfer.h"

#include <sys/stat.h>
#include <unistd.h>

#include <fcntl.h>

#include <algorithm>
#include <cerrno>
#include <optional>
#include <span>

#include "block/file_device.h"
#include "block/unique_fd.h"
#include "pool/pool.h"
#include "stack/bulk_data.h"
#include "stack/output_file.h"
#include "stack/control.h"
#include "stack/open_pool.h"
#include "stack/publish.h"
#include "stack/stored_copy.h"
#include "kind_text.h"

namespace stack::compose {
namespace {

// The export's bytes go into out's temporary file, sized (sparse) first.
Result<std::unique_ptr<FileDevice>> NewOutput(OutputFile& out, uint64_t size, bool sync) {
  if (::ftruncate(out.fd(), static_cast<off_t>(size)) != 0)
    return Status::FromErrno("size " + out.temp_path(), errno);
  FileDeviceOptions o;
  o.block_size = 512;
  // An export streams out: when it must be durable, overlap the writeback
  // with the copy so the final fdatasync has little left to wait for.
  o.write_behind_bytes = sync ? 1 : 0;
  return FileDevice::Open(out.temp_path(), o);
}

uint64_t AllocatedOnDisk(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 0;
  return static_cast<uint64_t>(st.st_blocks) * 512;
}

// CopySparse into a new output file, reading (and verifying or decrypting)
// on this thread while the file is written on another (stack/bulk_data.h).
Status CopyToOutput(BlockDevice& src, std::unique_ptr<BlockDevice> out, const CopyOptions& co,
                    ExportReport* rep) {
  const uint64_t size = out->size_bytes();
  ASSIGN_OR_RETURN(rep->copy, CopySparseBehind(src, std::move(out), co));
  rep->file_size = size;
  return Status::Ok();
}

Status ExportInto(const ExportOptions& o, Target& target, OutputFile& out_file, ExportReport* rep) {
  std::unique_ptr<BlockDevice> raw = target.TakeDevice();
  const bool offload = o.method != CopyMethod::kReadWrite;
  if (offload && o.method != CopyMethod::kAuto && o.format != ExportFormat::kStored) {
    return Status::InvalidArgument(std::string("--method ") + CopyMethodName(o.method) +
                                   " copies stored bytes: it needs --format stored (luks1 "
                                   "and plain re-encode every block)");
  }
  if (o.format == ExportFormat::kStored) {
    ASSIGN_OR_RETURN(fde::ContainerKind kind, fde::Probe(*raw));
    rep->source_encryption = KindText(kind);
    ASSIGN_OR_RETURN(auto out, NewOutput(out_file, raw->size_bytes(), o.sync));
    std::string why_not;
    std::shared_ptr<pool::Pool> file_pool = target.pool() ? target.pool()->file_pool() : nullptr;
    if (offload && file_pool == nullptr) {
      if (o.method != CopyMethod::kAuto)
        return Status::Unsupported("--method " + std::string(CopyMethodName(o.method)) +
                                   " needs an entry of a pool file as the source");
      why_not = target.pool() ? "the source is not in a pool file" : "the source is an image file";
    } else if (offload) {
      auto r = CopyStoredRuns(*file_pool, o.source.entry, raw->size_bytes(), out->fd(),
                              o.method, o.sync, o.progress, &why_not);
      if (r.ok()) {
        rep->copy = std::move(r).value();
        rep->copy.method_note = why_not;
        rep->file_size = out->size_bytes();
        return Status::Ok();
      }
      // Only auto falls back (reflink not offered; nothing was written).
      if (o.method != CopyMethod::kAuto || !r.status().Is(Code::kUnsupported)) return r.status();
    }
    CopyOptions co;
    co.progress = o.progress;
    co.flush = o.sync;
    RETURN_IF_ERROR(CopyToOutput(*raw, std::move(out), co, rep));
    rep->copy.method_note = why_not;
    return Status::Ok();
  }
  ASSIGN_OR_RETURN(Unlocked u, Unlock(std::move(raw), o.passphrase, false));
  rep->source_encryption = KindText(u.kind);
  BlockDevice& plain = *u.device;
  CopyOptions co;
  co.progress = o.progress;
  co.flush = o.sync;
  if (o.format == ExportFormat::kPlain) {
    ASSIGN_OR_RETURN(auto out, NewOutput(out_file, plain.size_bytes(), o.sync));
    return CopyToOutput(plain, std::move(out), co, rep);
  }
  // LUKS1: a header area in front (at most 4 MiB for a 512-bit key), then
  // the plaintext size exactly (the file is trimmed after formatting).
  fde::Secret newpass;
  if (o.new_passphrase) {
    ASSIGN_OR_RETURN(newpass, o.new_passphrase());
  } else {
    ASSIGN_OR_RETURN(newpass, o.passphrase());
  }
  const uint64_t slack = 4u << 20;
  ASSIGN_OR_RETURN(auto out, NewOutput(out_file, plain.size_bytes() + slack, o.sync));
  fde::FormatOptions fo;
  fo.version = 1;
  fo.sector_size = 512;
  fo.kdf = o.luks1_kdf;
  fo.kdf.type = fde::KdfType::kPbkdf2;
  ASSIGN_OR_RETURN(auto crypt, fde::Format(std::move(out), newpass, fo));
  const uint64_t data_offset = crypt->data_offset();
  if (crypt->size_bytes() < plain.size_bytes())
    return Status::Internal("LUKS1 header larger than the reserved slack");
  ASSIGN_OR_RETURN(rep->copy, CopySparse(plain, *crypt, co));
  auto lower = crypt->ReleaseLower();
  auto* file = static_cast<FileDevice*>(lower.get());
  RETURN_IF_ERROR(file->Resize(data_offset + plain.size_bytes()));
  if (o.sync) RETURN_IF_ERROR(file->Flush());
  rep->file_size = data_offset + plain.size_bytes();
  return Status::Ok();
}

}  // namespace

int OutputDescriptor(const std::string& path) {
  if (path == "-" || path == "/dev/stdout") return STDOUT_FILENO;
  if (path == "/dev/stderr") return STDERR_FILENO;
  for (const char* prefix : {"/dev/fd/", "/proc/self/fd/"}) {
    const std::string p(prefix);
    if (path.size() <= p.size() || path.compare(0, p.size(), p) != 0 || path.size() > p.size() + 9)
      continue;
    const std::string n = path.substr(p.size());
    if (n.find_first_not_of("0123456789") != std::string::npos) return -1;
    return std::stoi(n);
  }
  return -1;
}

namespace {

// A stream target: a descriptor's name (above), or a pipe, socket or
// character device (/dev/null) named as itself: nothing to rename over and
// nothing to seek in, so the export writes every byte in order (no holes).
// A symbolic link is never followed to one (it is a name that exists: the
// output file's rules apply), and a FIFO or socket of another user is not
// written into (a planted one would receive the image; as the kernel's
// protected_fifos).
Result<std::optional<UniqueFd>> OpenStream(const std::string& path) {
  if (const int n = OutputDescriptor(path); n >= 0) {
    const int fd = ::fcntl(n, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) return Status::FromErrno(path, errno);
    return std::optional<UniqueFd>(UniqueFd(fd));
  }
  auto stream = [](const struct stat& st) {
    return S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode) || S_ISSOCK(st.st_mode);
  };
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0 || !stream(st)) return std::optional<UniqueFd>();
  if (!S_ISCHR(st.st_mode) && st.st_uid != ::geteuid() && st.st_uid != 0)
    return Status::InvalidArgument(path + " is a " + (S_ISFIFO(st.st_mode) ? "FIFO" : "socket") +
                                   " of user " + std::to_string(st.st_uid) +
                                   ": not written into");
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW));
  if (!fd.valid()) return Status::FromErrno("open " + path, errno);
  struct stat now {};
  if (::fstat(fd.get(), &now) != 0) return Status::FromErrno("stat " + path, errno);
  if (now.st_dev != st.st_dev || now.st_ino != st.st_ino)
    return Status::IoError(path + " was replaced while it was opened");
  return std::optional<UniqueFd>(std::move(fd));
}

// Every byte of src, in order, to fd.
Status StreamOut(BlockDevice& src, int fd, const std::string& what, Progress* progress,
                 CopyReport* rep) {
  constexpr uint64_t kChunk = 1 << 20;
  std::vector<uint8_t> buf(kChunk);
  const uint64_t size = src.size_bytes();
  if (progress) progress->SetTotal(size);
  // Only the extents the source holds are read; the rest is zeros, as in a
  // sparse export (a decrypted block the volume never wrote is noise).
  ASSIGN_OR_RETURN(std::vector<Extent> extents, src.AllocatedExtents(0, size));
  size_t next = 0;
  for (uint64_t off = 0; off < size;) {
    while (next < extents.size() && extents[next].offset + extents[next].length <= off) ++next;
    const bool data = next < extents.size() && extents[next].offset <= off;
    const uint64_t run_end = data ? extents[next].offset + extents[next].length
                             : next < extents.size() ? extents[next].offset
                                                     : size;
    const size_t n = static_cast<size_t>(std::min({kChunk, size - off, run_end - off}));
    if (data) {
      RETURN_IF_ERROR(src.Read(off, std::span<uint8_t>(buf.data(), n)));
      rep->allocated_bytes += n;
    } else {
      std::fill_n(buf.begin(), n, uint8_t{0});
    }
    for (size_t done = 0; done < n;) {
      const ssize_t w = ::write(fd, buf.data() + done, n - done);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) return Status::FromErrno("write " + what, errno);
      done += static_cast<size_t>(w);
    }
    off += n;
    if (progress) progress->Advance(n);
  }
  if (progress) progress->Finish();
  rep->method = "stream";
  rep->size_bytes = size;
  rep->written_bytes = size;
  return Status::Ok();
}

// An export to a stream (see OpenStream): stored and plain only.
Result<ExportReport> ExportToStream(const ExportOptions& o, int fd) {
  if (o.format == ExportFormat::kLuks1)
    return Status::Unsupported("--format luks1 writes its header after the data: it needs a "
                               "file, not the stream " + o.out_path);
  if (o.method != CopyMethod::kAuto && o.method != CopyMethod::kReadWrite)
    return Status::InvalidArgument(std::string("--method ") + CopyMethodName(o.method) +
                                   " needs a file: " + o.out_path + " is a stream");
  TargetSpec spec = o.source;
  spec.writable = false;
  ASSIGN_OR_RETURN(auto target, Target::Open(spec));
  ExportReport rep;
  rep.format = o.format == ExportFormat::kStored ? "stored" : "plain";
  std::unique_ptr<BlockDevice> raw = target->TakeDevice();
  if (o.format == ExportFormat::kStored) {
    ASSIGN_OR_RETURN(fde::ContainerKind kind, fde::Probe(*raw));
    rep.source_encryption = KindText(kind);
    RETURN_IF_ERROR(StreamOut(*raw, fd, o.out_path, o.progress, &rep.copy));
  } else {
    ASSIGN_OR_RETURN(Unlocked u, Unlock(std::move(raw), o.passphrase, false));
    rep.source_encryption = KindText(u.kind);
    RETURN_IF_ERROR(StreamOut(*u.device, fd, o.out_path, o.progress, &rep.copy));
  }
  rep.copy.method_note = "the output is a stream: every byte written, no holes";
  rep.file_size = rep.copy.size_bytes;
  return rep;
}

}  // namespace

Result<ExportFormat> ParseExportFormat(const std::string& text) {
  if (text == "stored" || text == "luks2" || text == "raw") return ExportFormat::kStored;
  if (text == "luks1" || text == "qemu") return ExportFormat::kLuks1;
  if (text == "plain" || text == "decrypted") return ExportFormat::kPlain;
  return Status::InvalidArgument("unknown export format \"" + text +
                                 "\" (stored, luks1, plain)");
}

Result<ExportReport> ExportImage(const ExportOptions& o) {
  ASSIGN_OR_RETURN(std::optional<UniqueFd> stream, OpenStream(o.out_path));
  if (stream) return ExportToStream(o, stream->get());
  TargetSpec spec = o.source;
  spec.writable = false;
  OutputFileOptions fo;
  fo.overwrite = o.overwrite;
  fo.sync = o.sync;
  fo.mode = 0644;
  fo.inputs = {o.source.pool_path, o.source.image_path};  // never the pool file itself
  // Before the source opens: an existing OUT without --force changes nothing.
  ASSIGN_OR_RETURN(auto file, OutputFile::Create(o.out_path, fo));
  ASSIGN_OR_RETURN(auto target, Target::Open(spec));
  ExportReport rep;
  rep.format = o.format == ExportFormat::kStored  ? "stored"
               : o.format == ExportFormat::kLuks1 ? "luks1"
                                                   : "plain";
  // On failure `file` unlinks its temporary file: OUT keeps its old bytes.
  RETURN_IF_ERROR(ExportInto(o, *target, *file, &rep));
  RETURN_IF_ERROR(file->Commit());
  rep.file_allocated = AllocatedOnDisk(o.out_path);
  return rep;
}

Result<ImportReport> ImportImage(const ImportOptions& o) {
  FileDeviceOptions fo;
  fo.block_size = 512;
  fo.read_only = true;
  fo.zero_pad_tail = true;  // the volume is the image rounded up to whole blocks
  ASSIGN_OR_RETURN(auto in, FileDevice::Open(o.in_path, fo));
  // A volume of no size cannot exist (volume create --size 0 is refused);
  // an empty name here is a mistake, or a file that only says it is empty
  // (/proc).
  if (in->size_bytes() == 0) {
    return Status::InvalidArgument(o.in_path + " is empty (0 bytes): there is no image to import");
  }
  ASSIGN_OR_RETURN(fde::ContainerKind kind, fde::Probe(*in));
  ImportReport rep;
  rep.volume = o.volume;
  rep.detected = kind == fde::ContainerKind::kNone ? "plain" : KindText(kind);
  if (kind != fde::ContainerKind::kNone) {
    // A container we could never open would be imported only to fail later.
    if (Status st = fde::CheckOpenable(*in); !st.ok()) {
      const std::string why = o.in_path + " holds a " + rep.detected +
                              " container this build cannot open: " + st.message();
      if (st.Is(Code::kIoError) || !o.force) {
        return Status(st.code(), why + (st.Is(Code::kIoError) ? "" : " (--force imports it as is)"));
      }
      rep.warnings.push_back(why + " (imported as is: --force)");
    }
  }
  ASSIGN_OR_RETURN(auto pool, OpenOrCreatePool(o.pool_path, o.new_pool, 0, &rep.created_pool));
  CreatedPoolUndo undo;  // a failed import leaves no pool it made
  if (rep.created_pool) undo.Arm(o.pool_path);
  auto server = ServeWhileHolding(pool, o.pool_path);  // until the import returns
  const uint64_t unit = pool->block_size();
  rep.size_bytes = (in->size_bytes() + unit - 1) / unit * unit;
  RETURN_IF_ERROR(PublishVolume(*pool, o.volume, rep.size_bytes, pool::EntryMeta{o.note, o.tags},
                                [&](const std::string& hidden) -> Status {
                                  ASSIGN_OR_RETURN(auto vol, pool->OpenVolume(hidden, false));
                                  CopyOptions co;
                                  co.progress = o.progress;
                                  // Reading the file overlaps storing it.
                                  ASSIGN_OR_RETURN(rep.copy,
                                                   CopySparseBehind(*in, std::move(vol), co));
                                  return Status::Ok();
                                }));
  undo.Keep();
  return rep;
}

}  // namespace stack::compose
