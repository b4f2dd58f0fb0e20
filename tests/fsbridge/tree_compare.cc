#include "tree_compare.h"

#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <vector>

#include "test_util.h"

namespace stack::testing {

namespace {

std::map<std::string, std::string> Xattrs(const std::string& p) {
  std::map<std::string, std::string> out;
  char names[65536];
  ssize_t n = ::llistxattr(p.c_str(), names, sizeof names);
  for (ssize_t i = 0; i < n;) {
    std::string name(names + i);
    i += ssize_t(name.size()) + 1;
    char v[65536];
    ssize_t vn = ::lgetxattr(p.c_str(), name.c_str(), v, sizeof v);
    if (vn >= 0) out[name] = std::string(v, size_t(vn));
  }
  return out;
}

std::vector<std::string> Names(const std::string& d) {
  std::vector<std::string> v;
  for (auto& e : std::filesystem::directory_iterator(d)) v.push_back(e.path().filename().string());
  std::sort(v.begin(), v.end());
  return v;
}

std::string Cmp(const std::string& a, const std::string& b, const std::string& rel) {
  struct stat sa, sb;
  if (::lstat(a.c_str(), &sa) != 0) return rel + ": missing in first";
  if (::lstat(b.c_str(), &sb) != 0) return rel + ": missing in second";
  auto diff = [&](const char* what, auto x, auto y) {
    std::ostringstream o;
    o << rel << ": " << what << " " << x << " != " << y;
    return o.str();
  };
  if (sa.st_mode != sb.st_mode) return diff("mode", sa.st_mode, sb.st_mode);
  if (sa.st_uid != sb.st_uid) return diff("uid", sa.st_uid, sb.st_uid);
  if (sa.st_gid != sb.st_gid) return diff("gid", sa.st_gid, sb.st_gid);
  if (!S_ISDIR(sa.st_mode) && sa.st_nlink != sb.st_nlink) return diff("nlink", sa.st_nlink, sb.st_nlink);
  if (sa.st_mtim.tv_sec != sb.st_mtim.tv_sec || sa.st_mtim.tv_nsec != sb.st_mtim.tv_nsec)
    return diff("mtime", sa.st_mtim.tv_sec * 1000000000ll + sa.st_mtim.tv_nsec,
                sb.st_mtim.tv_sec * 1000000000ll + sb.st_mtim.tv_nsec);
  if (Xattrs(a) != Xattrs(b)) return rel + ": xattrs differ";
  if (S_ISREG(sa.st_mode)) {
    if (sa.st_size != sb.st_size) return diff("size", sa.st_size, sb.st_size);
    if (Slurp(a) != Slurp(b)) return rel + ": content differs";
  } else if (S_ISLNK(sa.st_mode)) {
    if (std::filesystem::read_symlink(a) != std::filesystem::read_symlink(b)) return rel + ": link target";
  } else if (S_ISCHR(sa.st_mode) || S_ISBLK(sa.st_mode)) {
    if (sa.st_rdev != sb.st_rdev) return diff("rdev", sa.st_rdev, sb.st_rdev);
  } else if (S_ISDIR(sa.st_mode)) {
    auto na = Names(a), nb = Names(b);
    if (na != nb) return rel + ": directory entries differ";
    for (const auto& n : na) {
      std::string r = Cmp(a + "/" + n, b + "/" + n, rel + "/" + n);
      if (!r.empty()) return r;
    }
  }
  return "";
}

}  // namespace

std::string CompareTrees(const std::string& a, const std::string& b) { return Cmp(a, b, "."); }

}  // namespace stack::testing
