#include "stack/diff_files.h"

#include <algorithm>
#include <array>
#include <map>
#include <optional>
#include <tuple>
#include <set>

#include "fde/crypt_device.h"
#include "fsbridge/filesystem.h"
#include "stack/diff.h"
#include "sha256.h"

namespace stack::compose {
namespace {

// One side of the diff: the entry's file system, opened read-only.
struct Side {
  std::unique_ptr<fsbridge::Filesystem> fs;
  uint64_t data_offset = 0;  // where the file system starts on the stored volume
};

Result<Side> OpenSide(VolumeStore& pool, const std::string& name, const SecretGetter& get,
                      bool key_given, std::vector<std::string>* warnings) {
  ASSIGN_OR_RETURN(auto dev, pool.OpenVolume(name, /*read_only=*/true, "stack diff --files"));
  ASSIGN_OR_RETURN(Unlocked u, Unlock(std::move(dev), get, false, key_given));
  for (auto& w : u.warnings) warnings->push_back(name + ": " + w);
  Side s;
  if (auto* crypt = dynamic_cast<fde::CryptDevice*>(u.device.get())) {
    s.data_offset = crypt->data_offset();
  }
  auto fs = fsbridge::Filesystem::Open(std::move(u.device), /*writable=*/false);
  if (!fs.ok()) return fs.status().WithContext(name);
  s.fs = std::move(fs).value();
  s.fs->SetWarningSink([warnings, name](const std::string& w) {
    warnings->push_back(name + ": " + w);
  });
  return s;
}

// The changed stored ranges as ranges of the file system's device.
std::vector<fsbridge::ByteRange> FsRanges(const std::vector<pool::DiffRange>& ranges,
                                          uint64_t data_offset) {
  std::vector<fsbridge::ByteRange> out;
  for (const pool::DiffRange& r : ranges) {
    const uint64_t end = r.offset + r.length;
    if (end <= data_offset) continue;  // the LUKS header, not the file system
    const uint64_t start = std::max(r.offset, data_offset);
    out.push_back({start - data_offset, end - start});
  }
  return out;
}

// content_changed: for a file, its data; for a directory, its names (an
// entry pointing at another inode under the same name is the change of
// that name's file, not of the directory).
std::vector<std::string> Differences(const fsbridge::InodeState& a, const fsbridge::InodeState& b,
                                     bool content_changed) {
  const fsbridge::InodeInfo &x = a.info, &y = b.info;
  std::vector<std::string> what;
  if (x.type != y.type) what.push_back("type");
  if (content_changed) what.push_back("content");
  if ((x.mode & 07777) != (y.mode & 07777)) what.push_back("mode");
  if (x.uid != y.uid || x.gid != y.gid) what.push_back("owner");
  if (x.xattrs != y.xattrs) what.push_back("xattrs");
  if (x.symlink_target != y.symlink_target) what.push_back("link");
  if (x.mtime.sec != y.mtime.sec || x.mtime.nsec != y.mtime.nsec) what.push_back("mtime");
  if (x.nlink != y.nlink) what.push_back("links");
  return what;
}

// The digest of a regular file's content (size included).
Result<std::array<uint8_t, 32>> ContentDigest(fsbridge::Filesystem& fs, const std::string& path) {
  Sha256 h;
  RETURN_IF_ERROR(fs.ReadFile(path, [&](std::span<const uint8_t> data) {
    h.Update(data);
    return Status::Ok();
  }));
  return h.Final();
}

}  // namespace

const char* FileChangeKindName(FileChange::Kind k) {
  switch (k) {
    case FileChange::Kind::kAdded: return "added";
    case FileChange::Kind::kRemoved: return "removed";
    case FileChange::Kind::kModified: return "modified";
    case FileChange::Kind::kRenamed: return "renamed";
  }
  return "?";
}

Result<FileDiffReport> DiffFiles(VolumeStore& pool, const std::string& from, const std::string& to,
                                 const SecretGetter& get_passphrase, bool key_given,
                                 const FileDiffOptions& options) {
  ASSIGN_OR_RETURN(BlockDiffReport blocks, DiffEntries(pool, from, to));
  FileDiffReport r;
  r.from = blocks.from;
  r.to = blocks.to;
  r.full_scan = options.full_scan;
  r.changed_bytes = blocks.stats.written_bytes + blocks.stats.discarded_bytes;
  // One passphrase for both sides (snapshots of a volume share its key):
  // asked once.
  std::optional<fde::Secret> secret;
  SecretGetter once = [&]() -> Result<fde::Secret> {
    if (!secret) {
      ASSIGN_OR_RETURN(fde::Secret s, get_passphrase());
      secret = std::move(s);
    }
    return secret->Clone();
  };
  ASSIGN_OR_RETURN(Side a, OpenSide(pool, r.from, once, key_given, &r.warnings));
  ASSIGN_OR_RETURN(Side b, OpenSide(pool, r.to, once, key_given, &r.warnings));
  const auto ranges_a = FsRanges(blocks.ranges, a.data_offset);
  const auto ranges_b = FsRanges(blocks.ranges, b.data_offset);

  std::set<uint32_t> candidates;
  if (options.full_scan) {
    ASSIGN_OR_RETURN(auto ua, a.fs->InodesInUse());
    ASSIGN_OR_RETURN(auto ub, b.fs->InodesInUse());
    candidates.insert(ua.begin(), ua.end());
    candidates.insert(ub.begin(), ub.end());
  } else {
    ASSIGN_OR_RETURN(auto ca, a.fs->InodesStoredIn(ranges_a));
    ASSIGN_OR_RETURN(auto cb, b.fs->InodesStoredIn(ranges_b));
    candidates.insert(ca.begin(), ca.end());
    candidates.insert(cb.begin(), cb.end());
  }

  // Load each candidate on both sides; name them afterwards (one walk of
  // the directories a side), then report by path.
  std::map<uint32_t, fsbridge::InodeState> st_a, st_b;
  std::map<uint32_t, std::vector<std::string>> what;  // same-file inodes that changed
  std::set<uint32_t> name_a, name_b;
  auto same_file = [&](uint32_t ino) {
    auto ia = st_a.find(ino), ib = st_b.find(ino);
    if (ia == st_a.end() || ib == st_b.end()) return false;
    const fsbridge::InodeInfo &x = ia->second.info, &y = ib->second.info;
    // A reused inode number: another generation, type or creation time.
    return ia->second.generation == ib->second.generation && x.type == y.type &&
           x.crtime.sec == y.crtime.sec && x.crtime.nsec == y.crtime.nsec;
  };
  for (uint32_t ino : candidates) {
    // Reserved inodes (journal, resize, ...) are not files; the root is.
    if (ino != 2 && ino < 11) continue;
    ++r.inodes_examined;
    auto sa = a.fs->InodeAt(ino);
    auto sb = b.fs->InodeAt(ino);
    // An inode number past one side's count (a grown file system) is free there.
    if (!sa.ok() && sa.status().code() != Code::kOutOfRange) return sa.status().WithContext(r.from);
    if (!sb.ok() && sb.status().code() != Code::kOutOfRange) return sb.status().WithContext(r.to);
    if (sa.ok() && sa->in_use) {
      st_a[ino] = std::move(*sa);
      name_a.insert(ino);
    }
    if (sb.ok() && sb->in_use) {
      st_b[ino] = std::move(*sb);
      name_b.insert(ino);
    }
    if (same_file(ino)) {
      const fsbridge::InodeState &x = st_a[ino], &y = st_b[ino];
      bool content = false;
      if (x.info.type == fsbridge::FileType::kDirectory) {
        ASSIGN_OR_RETURN(auto names_a, a.fs->EntryNames(ino));
        ASSIGN_OR_RETURN(auto names_b, b.fs->EntryNames(ino));
        content = names_a != names_b;
      } else {
        // Data rewritten in place changes the inode (mtime) but perhaps not
        // its block map.
        content = x.info.size != y.info.size || x.block_map != y.block_map;
        if (!content) {
          ASSIGN_OR_RETURN(content, b.fs->InodeUsesBlocksIn(ino, ranges_b));
        }
      }
      auto w = Differences(x, y, content);
      if (!w.empty()) what[ino] = std::move(w);
    }
  }
  ASSIGN_OR_RETURN(auto paths_a, a.fs->PathsOf(name_a));
  ASSIGN_OR_RETURN(auto paths_b, b.fs->PathsOf(name_b));
  std::map<std::string, uint32_t> at_a, at_b;  // path -> inode
  for (auto& [ino, ps] : paths_a)
    for (auto& p : ps) at_a[p] = ino;
  for (auto& [ino, ps] : paths_b)
    for (auto& p : ps) at_b[p] = ino;
  auto what_of = [&](uint32_t ino) {
    auto it = what.find(ino);
    return it == what.end() ? std::vector<std::string>{} : it->second;
  };
  std::set<std::string> told_a, told_b;  // paths a rename or link change explained
  // Names a file lost and gained: renames (paired in order), then links
  // removed or made.
  for (auto& [ino, pa] : paths_a) {
    if (!same_file(ino)) continue;
    auto it = paths_b.find(ino);
    const std::vector<std::string> pb = it == paths_b.end() ? std::vector<std::string>{} : it->second;
    std::vector<std::string> gone, fresh;
    std::set_difference(pa.begin(), pa.end(), pb.begin(), pb.end(), std::back_inserter(gone));
    std::set_difference(pb.begin(), pb.end(), pa.begin(), pa.end(), std::back_inserter(fresh));
    const size_t moved = std::min(gone.size(), fresh.size());
    const auto type = st_b[ino].info.type;
    for (size_t i = 0; i < moved; ++i)
      r.changes.push_back({FileChange::Kind::kRenamed, fresh[i], gone[i], type, what_of(ino)});
    for (size_t i = moved; i < gone.size(); ++i)
      r.changes.push_back({FileChange::Kind::kRemoved, gone[i], "", type, {}});
    for (size_t i = moved; i < fresh.size(); ++i)
      r.changes.push_back({FileChange::Kind::kAdded, fresh[i], "", type, {}});
    told_a.insert(gone.begin(), gone.end());
    told_b.insert(fresh.begin(), fresh.end());
  }
  for (auto& [p, ib] : at_b) {
    if (told_b.count(p)) continue;
    auto ia = at_a.find(p);
    if (ia == at_a.end()) {
      r.changes.push_back({FileChange::Kind::kAdded, p, "", st_b[ib].info.type, {}});
      continue;
    }
    if (ia->second == ib && same_file(ib)) {
      auto w = what_of(ib);
      if (!w.empty()) r.changes.push_back({FileChange::Kind::kModified, p, "", st_b[ib].info.type, w});
      continue;
    }
    // Another file now has this name: say so, and what else differs (the
    // content of two regular files of one size is read and compared).
    const fsbridge::InodeState &x = st_a[ia->second], &y = st_b[ib];
    bool content = x.info.type != y.info.type || x.info.size != y.info.size ||
                   x.info.symlink_target != y.info.symlink_target;
    if (!content && x.info.type == fsbridge::FileType::kRegular) {
      ASSIGN_OR_RETURN(auto da, ContentDigest(*a.fs, p));
      ASSIGN_OR_RETURN(auto db, ContentDigest(*b.fs, p));
      content = da != db;
    }
    auto w = Differences(x, y, content);
    w.insert(w.begin(), "replaced");
    r.changes.push_back({FileChange::Kind::kModified, p, "", st_b[ib].info.type, w});
  }
  for (auto& [p, ia] : at_a) {
    if (told_a.count(p) || at_b.count(p)) continue;
    r.changes.push_back({FileChange::Kind::kRemoved, p, "", st_a[ia].info.type, {}});
  }
  std::sort(r.changes.begin(), r.changes.end(), [](const FileChange& x, const FileChange& y) {
    return std::tie(x.path, x.kind) < std::tie(y.path, y.kind);
  });
  return r;
}

}  // namespace stack::compose
