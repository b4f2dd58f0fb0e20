// Extraction: a tree (or one file) to a host directory or a pax tar.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <set>

#include "archive_util.h"
#include "data_reader.h"
#include "filesystem_impl.h"
#include "fsbridge/names.h"
#include "host_tree.h"

namespace stack::fsbridge {

namespace {

std::string Base(const std::string& p) {
  auto comps = SplitPath(p);
  if (!comps.ok() || comps->empty()) return "";
  return comps->back();
}

// Walks a tree in sorted order: pre(entry) before children, post after.
// Only readable entries (dir_reader.h) are visited; `shown` paths are for
// messages (names escaped), `rel` is the raw relative name. Skipped
// hostile entries are counted in `skipped`.
struct Walker {
  const FsContext& c;
  const WarnFn& warn;
  std::function<Status(const std::string& shown, const std::string& rel, const InodeInfo&)> pre;
  std::function<Status(const std::string& shown, const std::string& rel, const InodeInfo&)> post;
  DirVisits visits;
  uint64_t skipped = 0;

  Status Walk(const std::string& shown, const std::string& rel, const InodeInfo& info) {
    if (info.type == FileType::kDirectory && !visits.Enter(info.ino, shown, warn, &skipped))
      return Status::Ok();
    RETURN_IF_ERROR(pre(shown, rel, info));
    if (info.type == FileType::kDirectory) {
      ASSIGN_OR_RETURN(auto entries, ReadableEntries(c, info.ino, shown, warn, &skipped));
      for (const DirEntry& e : entries) {
        const std::string child = ChildShown(shown, e.name);
        ASSIGN_OR_RETURN(InodeInfo ci, LoadInfo(c, e.ino, child));
        RETURN_IF_ERROR(Walk(child, rel.empty() ? e.name : rel + "/" + e.name, ci));
      }
    }
    if (post) RETURN_IF_ERROR(post(shown, rel, info));
    return Status::Ok();
  }
};

// The report for entries a walk left out as hostile (after the rest).
Status SkippedHostile(const char* what, uint64_t n) {
  return Status::Corruption(std::string(what) + ": " + std::to_string(n) +
                            " hostile entr" + (n == 1 ? "y" : "ies") +
                            " skipped (unsafe or duplicate names, directory loops; see warnings)");
}

// ExtractToDirectory's recursion: every host entry is made by name inside
// an open HostDir (host_tree.h), never through a host path.
struct DirExtractor {
  DirExtractor(const FsContext& ctx, const WarnFn& w, const HostDir* dest)
      : c(ctx), warn(w), top(dest), budget(ctx) {}
  const FsContext& c;
  const WarnFn& warn;
  const HostDir* top;  // the destination (hard links are found from it)
  DataBudget budget;
  bool root = geteuid() == 0;
  DirVisits visits;
  uint64_t skipped = 0;       // hostile entries
  uint64_t nodes_skipped = 0;  // device nodes without the right to make them
  std::string first_node;
  // First name of each multiply-linked inode: its directory (components
  // below the destination) and name.
  struct LinkSource {
    std::vector<std::string> dir;
    std::string name;
  };
  std::map<uint32_t, LinkSource> links;

  HostDir::Attrs AttrsOf(const InodeInfo& i) const {
    HostDir::Attrs a;
    a.chown = root;
    a.uid = i.uid;
    a.gid = i.gid;
    a.mode = i.mode;
    a.is_symlink = i.type == FileType::kSymlink;
    a.atime = {time_t(i.atime.sec), long(i.atime.nsec)};
    a.mtime = {time_t(i.mtime.sec), long(i.mtime.nsec)};
    a.xattrs = &i.xattrs;
    return a;
  }

  // The content of directory inode `ino` into `host`.
  Status Children(const HostDir& host, const std::vector<std::string>& comps, const std::string& shown,
                  uint32_t ino) {
    ASSIGN_OR_RETURN(auto entries, ReadableEntries(c, ino, shown, warn, &skipped));
    for (const DirEntry& e : entries) {
      const std::string child = ChildShown(shown, e.name);
      ASSIGN_OR_RETURN(InodeInfo ci, LoadInfo(c, e.ino, child));
      RETURN_IF_ERROR(Entry(host, comps, e.name, child, ci));
    }
    return Status::Ok();
  }

  // One entry `name` of the image (printed `shown`) into `parent`.
  Status Entry(const HostDir& parent, const std::vector<std::string>& comps, const std::string& name,
               const std::string& shown, const InodeInfo& i) {
    switch (i.type) {
      case FileType::kDirectory: {
        if (!visits.Enter(i.ino, shown, warn, &skipped)) return Status::Ok();
        ASSIGN_OR_RETURN(HostDir d, parent.Descend(name));
        std::vector<std::string> sub = comps;
        sub.push_back(name);
        RETURN_IF_ERROR(Children(d, sub, shown, i.ino));
        return HostDir::SetAttrsFd(d.fd(), d.shown(), AttrsOf(i));  // after the children
      }
      case FileType::kRegular: {
        if (i.nlink > 1) {
          auto it = links.find(i.ino);
          if (it != links.end()) {
            ASSIGN_OR_RETURN(HostDir from, top->Walk(it->second.dir));
            return parent.Link(from, it->second.name, name);
          }
          links[i.ino] = LinkSource{comps, name};
        }
        ASSIGN_OR_RETURN(UniqueFd fd, parent.CreateFile(name));
        const std::string hs = parent.Shown(name);
        // Zero blocks become holes, so sparse files stay sparse.
        RETURN_IF_ERROR(WriteInodeToFd(c, i.ino, shown, fd.get(), hs, &budget));
        return HostDir::SetAttrsFd(fd.get(), hs, AttrsOf(i));
      }
      case FileType::kSymlink:
        RETURN_IF_ERROR(parent.CreateSymlink(i.symlink_target, name));
        return parent.SetAttrs(name, AttrsOf(i));
      default: {
        Status s = parent.CreateNode(name, i.mode, makedev(i.rdev_major, i.rdev_minor));
        if (!s.ok() && s.sys_errno() == EPERM) {
          if (!nodes_skipped++) first_node = parent.Shown(name);
          return Status::Ok();
        }
        RETURN_IF_ERROR(s);
        return parent.SetAttrs(name, AttrsOf(i));
      }
    }
  }
};

}  // namespace

Status Filesystem::ExtractToDirectory(const std::string& fs_path, const std::string& host_dir) {
  ASSIGN_OR_RETURN(uint32_t top_ino, impl_->Lookup(fs_path));
  const FsContext c = impl_->ctx();
  const std::string shown = EscapeText(fs_path);
  ASSIGN_OR_RETURN(InodeInfo top, LoadInfo(c, top_ino, shown));
  ASSIGN_OR_RETURN(HostDir dest, HostDir::OpenRoot(host_dir));
  DirExtractor x(c, impl_->warn, &dest);
  if (top.type == FileType::kDirectory) {
    // The top directory's content goes into host_dir, which takes its
    // attributes.
    (void)x.visits.Enter(top.ino, shown, nullptr, nullptr);
    RETURN_IF_ERROR(x.Children(dest, {}, shown, top.ino));
    RETURN_IF_ERROR(HostDir::SetAttrsFd(dest.fd(), dest.shown(), x.AttrsOf(top)));
  } else {
    RETURN_IF_ERROR(x.Entry(dest, {}, Base(fs_path), shown, top));
  }
  if (x.skipped) return SkippedHostile("extract", x.skipped);
  if (x.nodes_skipped)
    return Status::Unsupported("extract: " + std::to_string(x.nodes_skipped) +
                               " device node(s) not created (needs root), first " + x.first_node);
  return Status::Ok();
}

Status Filesystem::ExtractToTar(const std::string& fs_path, const std::string& out) {
  ASSIGN_OR_RETURN(uint32_t top_ino, impl_->Lookup(fs_path));
  const FsContext c = impl_->ctx();
  ASSIGN_OR_RETURN(InodeInfo top, LoadInfo(c, top_ino, fs_path));
  UniqueFd file;
  if (out != "-") {
    file = UniqueFd(::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666));
    if (!file.valid()) return Status::FromErrno("tar " + out, errno);
  }
  ArchiveWriter w;  // after the file: closed before it
  archive_write_set_format_pax(w.a);
  if (w.OpenFd(out == "-" ? 1 : file.get()) != ARCHIVE_OK)
    return Status::IoError("tar " + out + ": " + archive_error_string(w.a));
  auto werr = [&](const std::string& what) {
    const char* m = archive_error_string(w.a);
    return Status::IoError("tar " + out + ": " + what + ": " + (m ? m : "error"));
  };
  std::map<uint32_t, std::string> links;
  DataBudget budget(c);
  Walker walk{c, impl_->warn, nullptr, nullptr, {}, 0};
  walk.pre = [&](const std::string& fp, const std::string& rel, const InodeInfo& i) -> Status {
    if (i.type == FileType::kSocket) return Status::Ok();  // tar cannot hold sockets
    std::string name = top.type == FileType::kDirectory ? (rel.empty() ? "." : "./" + rel) : Base(fs_path);
    Entry e;
    archive_entry_set_pathname(e.e, (i.type == FileType::kDirectory ? name + "/" : name).c_str());
    archive_entry_set_mode(e.e, i.mode);
    archive_entry_set_uid(e.e, i.uid);
    archive_entry_set_gid(e.e, i.gid);
    archive_entry_set_mtime(e.e, i.mtime.sec, long(i.mtime.nsec));
    archive_entry_set_atime(e.e, i.atime.sec, long(i.atime.nsec));
    archive_entry_set_ctime(e.e, i.ctime.sec, long(i.ctime.nsec));
    for (const auto& [n, v] : i.xattrs) archive_entry_xattr_add_entry(e.e, n.c_str(), v.data(), v.size());
    bool data = false;
    switch (i.type) {
      case FileType::kRegular:
        if (i.nlink > 1) {
          auto it = links.find(i.ino);
          if (it != links.end()) {
            archive_entry_set_hardlink(e.e, it->second.c_str());
            archive_entry_set_size(e.e, 0);
            break;
          }
          links[i.ino] = name;
        }
        archive_entry_set_size(e.e, la_int64_t(i.size));
        data = true;
        {  // holes: a sparse entry (pax GNU.sparse 1.0), from the map itself
          ASSIGN_OR_RETURN(auto ranges, DataRanges(c, i.ino, fp));
          uint64_t held = 0;
          for (const auto& r : ranges) held += r.second;
          RETURN_IF_ERROR(budget.Charge(held, fp));
          if (held < i.size) {
            for (const auto& r : ranges)
              archive_entry_sparse_add_entry(e.e, la_int64_t(r.first), la_int64_t(r.second));
            if (ranges.empty() || ranges.back().first + ranges.back().second < i.size)
              archive_entry_sparse_add_entry(e.e, la_int64_t(i.size), 0);
          }
        }
        break;
      case FileType::kSymlink:
        archive_entry_set_symlink(e.e, i.symlink_target.c_str());
        break;
      case FileType::kCharDevice:
      case FileType::kBlockDevice:
        archive_entry_set_rdevmajor(e.e, i.rdev_major);
        archive_entry_set_rdevminor(e.e, i.rdev_minor);
        break;
      default:
        break;
    }
    if (archive_write_header(w.a, e.e) < ARCHIVE_WARN) return werr("writing header of " + fp);
    if (data) {
      RETURN_IF_ERROR(ReadInodeData(c, i.ino, fp, [&](std::span<const uint8_t> d) -> Status {
        if (archive_write_data(w.a, d.data(), d.size()) < 0) return werr("writing data of " + fp);
        return Status::Ok();
      }));
    }
    return Status::Ok();
  };
  RETURN_IF_ERROR(walk.Walk(EscapeText(fs_path), "", top));
  if (archive_write_close(w.a) != ARCHIVE_OK) return werr("closing");
  if (walk.skipped) return SkippedHostile("tar export", walk.skipped);
  return Status::Ok();
}

}  // namespace stack::fsbridge
