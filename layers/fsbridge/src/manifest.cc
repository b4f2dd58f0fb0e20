#include "manifest.h"

#include <algorithm>
#include <fstream>
#include <sstream>

namespace stack::fsbridge {

void Manifest::Merge(const ManifestEntry& e, Attrs* a) {
  if (e.uid) a->uid = *e.uid;
  if (e.gid) a->gid = *e.gid;
  if (e.mode) a->mode = (a->mode & ~07777u) | (*e.mode & 07777u);
  if (e.mtime) a->mtime = *e.mtime;
}

namespace {

bool Unescape(const std::string& in, std::string* out) {
  out->clear();
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '\\') {
      out->push_back(in[i]);
      continue;
    }
    if (i + 1 < in.size() && in[i + 1] == '\\') {
      out->push_back('\\');
      ++i;
      continue;
    }
    if (i + 3 >= in.size()) return false;
    int v = 0;
    for (int k = 1; k <= 3; ++k) {
      char ch = in[i + size_t(k)];
      if (ch < '0' || ch > '7') return false;
      v = v * 8 + (ch - '0');
    }
    if (v > 255) return false;
    out->push_back(char(v));
    i += 3;
  }
  return true;
}

bool ParseUint(const std::string& s, int base, uint64_t max, uint64_t* v) {
  if (s.empty()) return false;
  uint64_t x = 0;
  for (char ch : s) {
    int d = ch - '0';
    if (d < 0 || d >= base) return false;
    x = x * uint64_t(base) + uint64_t(d);
    if (x > max) return false;
  }
  *v = x;
  return true;
}

}  // namespace

std::string NormalizeRel(const std::string& p) {
  std::string out;
  size_t i = 0;
  while (i < p.size()) {
    size_t j = p.find('/', i);
    if (j == std::string::npos) j = p.size();
    std::string comp = p.substr(i, j - i);
    if (!comp.empty() && comp != ".") {
      if (!out.empty()) out += "/";
      out += comp;
    }
    i = j + 1;
  }
  return out;
}

Result<Manifest> Manifest::Load(const std::string& path) {
  Manifest m;
  if (path.empty()) return m;
  m.path_ = path;
  std::ifstream in(path);
  if (!in) return Status::NotFound("manifest " + path + ": cannot open");
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    const std::string where = "manifest " + path + ":" + std::to_string(lineno);
    std::istringstream ss(line);
    std::string raw;
    if (!(ss >> raw) || raw[0] == '#') continue;
    std::string name;
    if (!Unescape(raw, &name)) return Status::InvalidArgument(where + ": bad escape in path");
    ManifestEntry e;
    std::string kv;
    while (ss >> kv) {
      size_t eq = kv.find('=');
      if (eq == std::string::npos) return Status::InvalidArgument(where + ": expected key=value");
      std::string k = kv.substr(0, eq), v = kv.substr(eq + 1);
      uint64_t x = 0;
      if (k == "uid" || k == "gid") {
        if (!ParseUint(v, 10, 0xffffffffull, &x)) return Status::InvalidArgument(where + ": bad " + k);
        (k == "uid" ? e.uid : e.gid) = uint32_t(x);
      } else if (k == "mode") {
        if (!ParseUint(v, 8, 07777, &x)) return Status::InvalidArgument(where + ": bad mode");
        e.mode = uint32_t(x);
      } else if (k == "mtime") {
        size_t dot = v.find('.');
        uint64_t sec = 0, nsec = 0;
        if (!ParseUint(v.substr(0, dot), 10, 0x3ffffffffull, &sec))
          return Status::InvalidArgument(where + ": bad mtime");
        if (dot != std::string::npos) {
          std::string frac = v.substr(dot + 1);
          if (frac.empty() || frac.size() > 9 || !ParseUint(frac, 10, 999999999, &nsec))
            return Status::InvalidArgument(where + ": bad mtime");
          for (size_t k2 = frac.size(); k2 < 9; ++k2) nsec *= 10;
        }
        e.mtime = Timespec{int64_t(sec), uint32_t(nsec)};
      } else {
        return Status::InvalidArgument(where + ": unknown key " + k);
      }
    }
    if (name == "*") {
      m.all_ = e;
    } else {
      if (name.find("/../") != std::string::npos || name == ".." || name.rfind("../", 0) == 0)
        return Status::InvalidArgument(where + ": '..' in path");
      m.entries_[NormalizeRel(name)] = e;
      m.lines_[NormalizeRel(name)] = lineno;
    }
  }
  return m;
}

const ManifestEntry* Manifest::Find(const std::string& rel) const {
  auto it = entries_.find(rel);
  if (it == entries_.end()) return nullptr;
  used_.insert(rel);
  return &it->second;
}

void Manifest::Apply(const std::string& rel, Attrs* a) const {
  if (all_) Merge(*all_, a);
  auto it = entries_.find(rel);
  if (it != entries_.end()) {
    used_.insert(rel);
    Merge(it->second, a);
  }
}

Status Manifest::CheckAllUsed(bool lenient, std::vector<std::string>* warnings) const {
  std::vector<std::pair<int, std::string>> unused;
  for (const auto& [rel, line] : lines_)
    if (!rel.empty() && !used_.count(rel)) unused.emplace_back(line, rel);
  std::sort(unused.begin(), unused.end());
  for (const auto& [line, rel] : unused) {
    const std::string what = "manifest " + path_ + ":" + std::to_string(line) + ": " + rel +
                             " is not in the source";
    if (!lenient)
      return Status::InvalidArgument(what + (unused.size() > 1 ? " (and " +
                                                 std::to_string(unused.size() - 1) + " more line(s))"
                                                           : "") +
                                     "; --lenient makes this a warning");
    if (warnings) warnings->push_back(what);
  }
  return Status::Ok();
}

}  // namespace stack::fsbridge
