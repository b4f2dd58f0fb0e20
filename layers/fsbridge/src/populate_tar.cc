// PopulateFromTar: a tar stream (any format and filter libarchive reads)
// into the filesystem through a TreeBuilder.
#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "archive_util.h"
#include "filesystem_impl.h"
#include "fsbridge/names.h"
#include "manifest.h"
#include "tar_input.h"

namespace stack::fsbridge {

Result<std::vector<std::string>> TarPathComponents(const std::string& name) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i <= name.size()) {
    size_t j = name.find('/', i);
    if (j == std::string::npos) j = name.size();
    std::string comp = name.substr(i, j - i);
    if (comp == "..")
      return Status::InvalidArgument("tar entry '" + EscapeText(name) + "': '..' is not allowed");
    if (comp.size() > EXT2_NAME_LEN)
      return Status::InvalidArgument("tar entry '" + EscapeText(name) +
                                     "': name longer than 255 bytes");
    if (!comp.empty() && comp != ".") out.push_back(std::move(comp));
    i = j + 1;
  }
  return out;
}

namespace {

Timespec Ts(int64_t s, long ns) { return Timespec{s, uint32_t(ns)}; }

std::string Join(const std::vector<std::string>& c) {
  std::string s;
  for (const auto& x : c) s += (s.empty() ? "" : "/") + x;
  return s;
}

}  // namespace

Result<PopulateStats> Filesystem::PopulateFromTar(const std::string& tar, const std::string& dest_dir,
                                                  const PopulateOptions& opts) {
  RETURN_IF_ERROR(impl_->CheckWritable("populate " + dest_dir));
  ASSIGN_OR_RETURN(std::unique_ptr<TarInput> input, TarInput::Open(tar));
  return PopulateFromTarInput(*input, dest_dir, opts);
}

Result<PopulateStats> Filesystem::PopulateFromTarStream(const std::string& name,
                                                        const TarStreamReader& next,
                                                        const std::string& dest_dir,
                                                        const PopulateOptions& opts) {
  RETURN_IF_ERROR(impl_->CheckWritable("populate " + dest_dir));
  std::unique_ptr<TarInput> input = TarInput::FromReader(name, next);
  return PopulateFromTarInput(*input, dest_dir, opts);
}

Result<PopulateStats> Filesystem::PopulateFromTarInput(TarInput& in, const std::string& dest_dir,
                                                       const PopulateOptions& opts) {
  ASSIGN_OR_RETURN(Manifest manifest, Manifest::Load(opts.manifest_path));
  ASSIGN_OR_RETURN(auto dest, SplitPath(dest_dir));
  TarInput* input = &in;
  const std::string src = input->name();
  // The tar reader takes the checked, decompressed stream (no filters of
  // its own); a failed check is remembered to be returned as is.
  Status input_error;
  struct Feed {
    TarInput* in;
    Status* error;
  } feed{input, &input_error};
  ArchiveReader r;
  archive_read_support_format_tar(r.a);
  archive_read_support_format_gnutar(r.a);
  // Tar formats only: libarchive's cpio reader allocates a symlink's body
  // from a 32-bit header field before reading it (4 GiB from a 781-byte
  // hostile file, found by fuzz_fsbridge_tar), and nothing here needs cpio.
  auto read_cb = [](archive* a, void* self, const void** out) -> la_ssize_t {
    auto* f = static_cast<Feed*>(self);
    auto d = f->in->Next();
    if (!d.ok()) {
      *f->error = d.status();
      archive_set_error(a, EIO, "%s", d.status().message().c_str());
      return -1;
    }
    *out = d->data();
    return la_ssize_t(d->size());
  };
  int rc = archive_read_open(r.a, &feed, nullptr, read_cb, nullptr);
  if (rc != ARCHIVE_OK) {
    if (!input_error.ok()) return input_error;
    const char* m = archive_error_string(r.a);
    return Status::InvalidArgument("tar " + src + ": " + (m ? m : "cannot open"));
  }
  const Timespec now = impl_->Now(opts.timestamp);
  if (opts.timestamp) impl_->fs->now = time_t(*opts.timestamp ? *opts.timestamp : 1);
  PopulateStats stats;
  TreeBuilder tb(impl_->ctx(), &impl_->goal, now);
  auto tar_error = [&](const std::string& what) {
    if (!input_error.ok()) return input_error;
    const char* m = archive_error_string(r.a);
    return Status::Corruption("tar " + src + ": " + what + ": " + (m ? m : "error"));
  };
  Status s = [&]() -> Status {
    ASSIGN_OR_RETURN(TreeBuilder::Dir * root, tb.OpenDir(dest, true, DefaultDirAttrs(now)));
    (void)root;
    archive_entry* e = nullptr;
    while (true) {
      rc = archive_read_next_header(r.a, &e);
      if (rc == ARCHIVE_EOF) break;
      if (rc < ARCHIVE_WARN) return tar_error("reading header");
      if (rc == ARCHIVE_WARN) {  // e.g. a name not convertible to the locale: said, not fatal
        if (!input_error.ok()) return input_error;
        const char* m = archive_error_string(r.a);
        impl_->warn("tar " + src + ": " + EscapeText(m ? m : "warning"));
      }
      const char* pn = archive_entry_pathname(e);
      if (!pn) return tar_error("entry without a name");
      const std::string name = pn;
      ASSIGN_OR_RETURN(auto comps, TarPathComponents(name));
      const std::string rel = Join(comps);
      std::vector<std::string> parent_comps = dest;
      parent_comps.insert(parent_comps.end(), comps.begin(), comps.empty() ? comps.end() : comps.end() - 1);

      Attrs a;
      a.mode = archive_entry_mode(e);
      if (opts.keep_owners) {
        a.uid = uint32_t(archive_entry_uid(e));
        a.gid = uint32_t(archive_entry_gid(e));
      }
      a.mtime = Ts(archive_entry_mtime(e), archive_entry_mtime_nsec(e));
      if (opts.timestamp) {
        a.atime = a.ctime = a.crtime = now;
      } else {
        a.atime = archive_entry_atime_is_set(e) ? Ts(archive_entry_atime(e), archive_entry_atime_nsec(e)) : a.mtime;
        a.ctime = archive_entry_ctime_is_set(e) ? Ts(archive_entry_ctime(e), archive_entry_ctime_nsec(e)) : a.mtime;
        a.crtime = archive_entry_birthtime_is_set(e)
                       ? Ts(archive_entry_birthtime(e), archive_entry_birthtime_nsec(e))
                       : a.ctime;
      }
      manifest.Apply(rel, &a);
      std::vector<Xattr> xs;
      archive_entry_xattr_reset(e);
      const char* xn;
      const void* xv;
      size_t xl;
      while (archive_entry_xattr_next(e, &xn, &xv, &xl) == ARCHIVE_OK)
        xs.push_back(Xattr{xn, std::string(static_cast<const char*>(xv), xl)});

      if (comps.empty()) {  // the destination itself ("./")
        if (S_ISDIR(a.mode)) {
          ASSIGN_OR_RETURN(TreeBuilder::Dir * d, tb.OpenDir(dest, true, DefaultDirAttrs(now)));
          tb.SetDirAttrs(d, a, std::move(xs));
        }
        continue;
      }
      ASSIGN_OR_RETURN(TreeBuilder::Dir * parent, tb.OpenDir(parent_comps, true, DefaultDirAttrs(now)));
      const std::string& leaf = comps.back();

      if (const char* hl = archive_entry_hardlink(e)) {
        ASSIGN_OR_RETURN(auto tcomps, TarPathComponents(hl));
        if (tcomps.empty())
          return Status::InvalidArgument("tar entry '" + EscapeText(name) + "': bad link target");
        std::vector<std::string> tparent = dest;
        tparent.insert(tparent.end(), tcomps.begin(), tcomps.end() - 1);
        ASSIGN_OR_RETURN(TreeBuilder::Dir * td, tb.OpenDir(tparent, false, DefaultDirAttrs(now)));
        const DirEntry* target = tb.Find(td, tcomps.back());
        if (!target)
          return Status::NotFound("tar entry '" + EscapeText(name) + "': link target '" +
                                  EscapeText(hl) + "' not found");
        RETURN_IF_ERROR(tb.AddHardLink(parent, leaf, target->ino, manifest.Find(rel)));
        stats.hardlinks++;
        continue;
      }
      switch (archive_entry_filetype(e)) {
        case AE_IFDIR: {
          RETURN_IF_ERROR(tb.AddDir(parent, leaf, a, std::move(xs)).status());
          stats.directories++;
          break;
        }
        case AE_IFREG: {
          const uint64_t size = uint64_t(archive_entry_size(e));
          RETURN_IF_ERROR(tb.AddFile(parent, leaf, a, xs, size, [&](DataWriter& dw) -> Status {
            const void* buf;
            size_t len;
            la_int64_t off;
            while (true) {
              int dr = archive_read_data_block(r.a, &buf, &len, &off);
              if (dr == ARCHIVE_EOF) return Status::Ok();
              if (dr != ARCHIVE_OK) return tar_error("reading data of '" + EscapeText(name) + "'");
              if (uint64_t(off) + len > size)
                return Status::Corruption("tar " + src + ": data of '" + EscapeText(name) +
                                          "' beyond its size");
              RETURN_IF_ERROR(dw.Write(uint64_t(off), std::span<const uint8_t>(
                                                          static_cast<const uint8_t*>(buf), len)));
            }
          }).status());
          stats.files++;
          stats.bytes += size;
          if (opts.on_file) opts.on_file(size);
          break;
        }
        case AE_IFLNK: {
          const char* t = archive_entry_symlink(e);
          RETURN_IF_ERROR(tb.AddSymlink(parent, leaf, t ? t : "", a, xs).status());
          stats.symlinks++;
          break;
        }
        case AE_IFCHR:
        case AE_IFBLK:
        case AE_IFIFO:
        case AE_IFSOCK: {
          RETURN_IF_ERROR(tb.AddSpecial(parent, leaf, a, uint32_t(archive_entry_rdevmajor(e)),
                                        uint32_t(archive_entry_rdevminor(e)), xs)
                              .status());
          stats.specials++;
          break;
        }
        default:
          return Status::Unsupported("tar entry '" + EscapeText(name) + "': unsupported file type");
      }
    }
    // The stream's end: trailers and final checksums are verified only
    // once everything after the end-of-archive blocks was read.
    RETURN_IF_ERROR(input->Drain());
    return manifest.CheckAllUsed(opts.lenient_manifest, &stats.warnings);
  }();
  Status f = tb.Finalize();
  RETURN_IF_ERROR(s);
  RETURN_IF_ERROR(f);
  return stats;
}

}  // namespace stack::fsbridge
