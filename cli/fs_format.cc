#include "fs_format.h"
#include "fsbridge/names.h"
#include "stack/control.h"

#include <cstdio>
#include <cstdlib>
#include <ctime>

namespace stack::cli {
namespace {

const char* TypeName(fsbridge::FileType t) {
  switch (t) {
    case fsbridge::FileType::kRegular: return "file";
    case fsbridge::FileType::kDirectory: return "directory";
    case fsbridge::FileType::kCharDevice: return "char-device";
    case fsbridge::FileType::kBlockDevice: return "block-device";
    case fsbridge::FileType::kFifo: return "fifo";
    case fsbridge::FileType::kSocket: return "socket";
    case fsbridge::FileType::kSymlink: return "symlink";
    default: return "unknown";
  }
}

char TypeChar(fsbridge::FileType t) {
  switch (t) {
    case fsbridge::FileType::kDirectory: return 'd';
    case fsbridge::FileType::kCharDevice: return 'c';
    case fsbridge::FileType::kBlockDevice: return 'b';
    case fsbridge::FileType::kFifo: return 'p';
    case fsbridge::FileType::kSocket: return 's';
    case fsbridge::FileType::kSymlink: return 'l';
    default: return '-';
  }
}

std::string ModeString(const fsbridge::InodeInfo& st) {
  std::string s(10, '-');
  s[0] = TypeChar(st.type);
  const char* rwx = "rwxrwxrwx";
  for (int i = 0; i < 9; ++i)
    if (st.mode & (0400 >> i)) s[1 + i] = rwx[i];
  if (st.mode & 04000) s[3] = (st.mode & 0100) ? 's' : 'S';
  if (st.mode & 02000) s[6] = (st.mode & 010) ? 's' : 'S';
  if (st.mode & 01000) s[9] = (st.mode & 01) ? 't' : 'T';
  return s;
}

std::string TimeText(const fsbridge::Timespec& t, bool nanos) {
  std::time_t tt = static_cast<std::time_t>(t.sec);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  std::string s = buf;
  if (nanos) {
    char ns[16];
    std::snprintf(ns, sizeof ns, ".%09u", t.nsec);
    s += ns;
  }
  return s + " UTC";
}

nlohmann::json TimeJson(const fsbridge::Timespec& t) { return {{"sec", t.sec}, {"nsec", t.nsec}}; }

}  // namespace

std::optional<int64_t> ResolveTimestamp(int64_t flag) {
  if (flag >= 0) return flag;
  if (auto sde = compose::CommandEnv("SOURCE_DATE_EPOCH")) return std::atoll(sde->c_str());
  return std::nullopt;
}

Result<std::array<uint8_t, 16>> ParseUuid(const std::string& text) {
  std::array<uint8_t, 16> u{};
  std::string hex;
  for (char c : text)
    if (c != '-') hex += c;
  if (hex.size() != 32) return Status::InvalidArgument("\"" + text + "\" is not a UUID");
  for (size_t i = 0; i < 16; ++i) {
    unsigned v = 0;
    if (std::sscanf(hex.c_str() + 2 * i, "%2x", &v) != 1)
      return Status::InvalidArgument("\"" + text + "\" is not a UUID");
    u[i] = static_cast<uint8_t>(v);
  }
  return u;
}

Result<fsbridge::MkfsOptions> MkfsOptionsFrom(const std::string& label, const std::string& uuid,
                                              uint32_t block_size, uint32_t inode_size,
                                              uint32_t inode_ratio, double reserved_ratio,
                                              std::optional<int64_t> timestamp) {
  fsbridge::MkfsOptions o;
  if (label.size() > 16) return Status::InvalidArgument("label longer than 16 bytes");
  o.label = label;
  if (!uuid.empty()) {
    ASSIGN_OR_RETURN(o.uuid, ParseUuid(uuid));
  }
  o.block_size = block_size;
  o.inode_size = inode_size;
  o.inode_ratio = inode_ratio;
  if (reserved_ratio < 0 || reserved_ratio > 0.5)
    return Status::InvalidArgument("--reserved-ratio must be within 0..0.5");
  o.reserved_ratio = reserved_ratio;
  o.timestamp = timestamp;
  return o;
}

Result<uint32_t> ParseMode(const std::string& text) {
  if (text.empty() || text.size() > 5) return Status::InvalidArgument("bad mode \"" + text + "\"");
  uint32_t m = 0;
  for (char c : text) {
    if (c < '0' || c > '7') return Status::InvalidArgument("mode \"" + text + "\" is not octal");
    m = m * 8 + static_cast<uint32_t>(c - '0');
  }
  if (m > 07777) return Status::InvalidArgument("mode \"" + text + "\" is above 07777");
  return m;
}

Result<std::pair<uint32_t, uint32_t>> ParseOwner(const std::string& text) {
  auto num = [&](const std::string& s) -> Result<uint32_t> {
    if (s.empty() || s.size() > 10 || s.find_first_not_of("0123456789") != std::string::npos)
      return Status::InvalidArgument("owner \"" + text + "\" must be numeric UID[:GID]");
    unsigned long long v = std::stoull(s);
    if (v >= UINT32_MAX) return Status::InvalidArgument("id in \"" + text + "\" is too large");
    return static_cast<uint32_t>(v);
  };
  auto colon = text.find(':');
  ASSIGN_OR_RETURN(uint32_t uid, num(text.substr(0, colon)));
  uint32_t gid = UINT32_MAX;
  if (colon != std::string::npos) {
    ASSIGN_OR_RETURN(gid, num(text.substr(colon + 1)));
  }
  return std::make_pair(uid, gid);
}

nlohmann::json InodeJson(const fsbridge::InodeInfo& st) {
  nlohmann::json j = {{"ino", st.ino},       {"type", TypeName(st.type)},
                      {"mode", st.mode & 07777}, {"nlink", st.nlink},
                      {"uid", st.uid},       {"gid", st.gid},
                      {"size", st.size},     {"allocated_bytes", st.allocated_bytes},
                      {"atime", TimeJson(st.atime)}, {"mtime", TimeJson(st.mtime)},
                      {"ctime", TimeJson(st.ctime)}, {"crtime", TimeJson(st.crtime)}};
  if (st.type == fsbridge::FileType::kSymlink) j["target"] = st.symlink_target;
  if (st.type == fsbridge::FileType::kCharDevice || st.type == fsbridge::FileType::kBlockDevice)
    j["rdev"] = {{"major", st.rdev_major}, {"minor", st.rdev_minor}};
  if (!st.xattrs.empty()) {
    nlohmann::json x = nlohmann::json::object();
    for (auto& [k, v] : st.xattrs) {
      // Values may be binary: hex-encode.
      std::string hex;
      char b[3];
      for (unsigned char c : v) {
        std::snprintf(b, sizeof b, "%02x", c);
        hex += b;
      }
      x[k] = hex;
    }
    j["xattrs_hex"] = x;
  }
  return j;
}

nlohmann::json DfJson(const fsbridge::DfInfo& df) {
  return {{"block_size", df.block_size},     {"blocks_total", df.blocks_total},
          {"blocks_free", df.blocks_free},   {"blocks_reserved", df.blocks_reserved},
          {"inodes_total", df.inodes_total}, {"inodes_free", df.inodes_free},
          {"label", df.label},               {"uuid", df.uuid}};
}

nlohmann::json StatsJson(const fsbridge::PopulateStats& s) {
  nlohmann::json j = {{"files", s.files},         {"directories", s.directories},
                      {"symlinks", s.symlinks},   {"hardlinks", s.hardlinks},
                      {"specials", s.specials},   {"bytes", s.bytes}};
  if (!s.warnings.empty()) j["warnings"] = s.warnings;
  return j;
}

std::string StatsText(const fsbridge::PopulateStats& s) {
  return std::to_string(s.files) + " files, " + std::to_string(s.directories) +
         " directories, " + std::to_string(s.symlinks) + " symlinks, " +
         std::to_string(s.hardlinks) + " hard links, " + std::to_string(s.specials) +
         " special files, " + std::to_string(s.bytes) + " bytes";
}

std::string DfText(const fsbridge::DfInfo& df) {
  char buf[512];
  const uint64_t used = df.blocks_total - df.blocks_free;
  std::snprintf(buf, sizeof buf,
                "ext4 %s%s%s\n  blocks: %llu total, %llu used, %llu free (%llu reserved), "
                "%u B each\n  inodes: %llu total, %llu free\n",
                df.uuid.c_str(), df.label.empty() ? "" : " label ", df.label.c_str(),
                (unsigned long long)df.blocks_total, (unsigned long long)used,
                (unsigned long long)df.blocks_free, (unsigned long long)df.blocks_reserved,
                df.block_size, (unsigned long long)df.inodes_total,
                (unsigned long long)df.inodes_free);
  return buf;
}

std::string StatText(const std::string& path, const fsbridge::InodeInfo& st) {
  char buf[1024];
  std::snprintf(buf, sizeof buf,
                "  path: %s%s%s\n  type: %s  inode: %u  links: %u\n  mode: %04o (%s)  "
                "uid: %u  gid: %u\n  size: %llu  allocated: %llu\n",
                path.c_str(), st.symlink_target.empty() ? "" : " -> ",
                EscapeText(st.symlink_target).c_str(), TypeName(st.type), st.ino, st.nlink,
                st.mode & 07777, ModeString(st).c_str(), st.uid, st.gid,
                (unsigned long long)st.size, (unsigned long long)st.allocated_bytes);
  std::string s = buf;
  s += "  atime: " + TimeText(st.atime, true) + "\n";
  s += "  mtime: " + TimeText(st.mtime, true) + "\n";
  s += "  ctime: " + TimeText(st.ctime, true) + "\n";
  s += "  crtime: " + TimeText(st.crtime, true) + "\n";
  for (auto& [k, v] : st.xattrs) s += "  xattr: " + k + " (" + std::to_string(v.size()) + " B)\n";
  return s;
}

std::string LongLine(const std::string& name, const fsbridge::InodeInfo& st) {
  char buf[512];
  std::string size = (st.type == fsbridge::FileType::kCharDevice ||
                      st.type == fsbridge::FileType::kBlockDevice)
                         ? std::to_string(st.rdev_major) + ", " + std::to_string(st.rdev_minor)
                         : std::to_string(st.size);
  std::string t = TimeText(st.mtime, false);
  std::snprintf(buf, sizeof buf, "%s %3u %5u %5u %10s %s %s", ModeString(st).c_str(), st.nlink,
                st.uid, st.gid, size.c_str(), t.substr(0, 16).c_str(), name.c_str());
  std::string s = buf;
  if (st.type == fsbridge::FileType::kSymlink) s += " -> " + EscapeText(st.symlink_target);
  return s;
}

}  // namespace stack::cli
