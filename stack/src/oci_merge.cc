// LayerMerge (oci_merge.h). Paths are keys of one sorted map, so a
// directory's descendants ("d/...") are one contiguous range.
#include "oci_merge.h"

#include <algorithm>

namespace stack::compose::oci {
namespace {

constexpr const char* kWhiteout = ".wh.";
constexpr const char* kOpaque = ".wh..wh..opq";

std::string Parent(const std::string& p) {
  const size_t s = p.rfind('/');
  return s == std::string::npos ? "" : p.substr(0, s);
}

std::string Leaf(const std::string& p) {
  const size_t s = p.rfind('/');
  return s == std::string::npos ? p : p.substr(s + 1);
}

std::string Child(const std::string& dir, const std::string& leaf) {
  return dir.empty() ? leaf : dir + "/" + leaf;
}

}  // namespace

std::string ResolveName(const std::string& name) {
  std::vector<std::string> comps;
  size_t i = 0;
  while (i <= name.size()) {
    size_t j = name.find('/', i);
    if (j == std::string::npos) j = name.size();
    std::string c = name.substr(i, j - i);
    if (c == "..") {
      if (!comps.empty()) comps.pop_back();  // at the root, ".." is the root
    } else if (!c.empty() && c != ".") {
      comps.push_back(std::move(c));
    }
    i = j + 1;
  }
  std::string out;
  for (const auto& c : comps) out += (out.empty() ? "" : "/") + c;
  return out;
}

void LayerMerge::BeginLayer() { layer_++; }

void LayerMerge::RemoveTree(const std::string& path, bool lower_only) {
  // The node itself, then "path/..." (every key in ["path/", "path0")).
  auto self = nodes_.find(path);
  bool kept_below = false;
  if (!path.empty()) {
    auto lo = nodes_.lower_bound(path + "/");
    auto hi = nodes_.lower_bound(path + "0");  // '0' follows '/'
    for (auto it = lo; it != hi;) {
      if (lower_only && it->second.by == layer_) {
        kept_below = true;
        ++it;
      } else {
        it = nodes_.erase(it);
      }
    }
  }
  if (self != nodes_.end() && !path.empty() && (!lower_only || self->second.by < layer_)) {
    // What this layer put beneath stays, in a directory of its own.
    if (kept_below)
      self->second = Implicit();
    else
      nodes_.erase(self);
  }
  if (kept_below) RestoreParents(path);
}

void LayerMerge::RestoreParents(const std::string& dir) {
  const std::string prefix = dir.empty() ? "" : dir + "/";
  std::vector<std::string> kept;
  for (auto it = nodes_.lower_bound(prefix);
       it != nodes_.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it)
    if (!it->first.empty()) kept.push_back(it->first);
  for (const auto& p : kept)
    for (std::string a = Parent(p); a.size() > dir.size(); a = Parent(a))
      if (!nodes_.count(a)) nodes_[a] = Implicit();
}

void LayerMerge::EnsureParents(const std::string& path) {
  size_t s = 0;
  while ((s = path.find('/', s)) != std::string::npos) {
    const std::string a = path.substr(0, s++);
    auto it = nodes_.find(a);
    if (it != nodes_.end() && it->second.dir) continue;
    // Missing, or a non-directory: a directory takes its place (the
    // member's path says there is one).
    if (it != nodes_.end()) nodes_.erase(it);
    nodes_[a] = Implicit();
  }
}

bool LayerMerge::Add(uint64_t member, const std::string& raw, Kind kind,
                     const std::string& hardlink) {
  const std::string path = ResolveName(raw);
  const std::string leaf = Leaf(path);
  if (leaf.rfind(kWhiteout, 0) == 0) {
    const std::string dir = Parent(path);
    if (leaf == kOpaque) {
      // Lower layers' content of dir goes; this layer's stays, in any order.
      EnsureParents(Child(dir, "x"));  // the directory is in this layer
      opaque_dirs_.push_back(dir);
      const std::string prefix = dir.empty() ? "" : dir + "/";
      for (auto it = nodes_.lower_bound(prefix);
           it != nodes_.end() && it->first.compare(0, prefix.size(), prefix) == 0;) {
        if (it->first != "" && it->first != dir && it->second.by < layer_)
          it = nodes_.erase(it);
        else
          ++it;
      }
      RestoreParents(dir);
      return true;
    }
    if (leaf.rfind(".wh..wh.", 0) == 0) return false;  // other AUFS metadata: not content
    const std::string target = Child(dir, leaf.substr(4));
    if (leaf.size() == 4) return false;  // ".wh." names nothing
    whiteouts_.push_back(target);
    if (!nodes_.count(target)) return false;  // nothing to delete: ignored
    RemoveTree(target, true);
    return true;
  }
  Node n{layer_, int64_t(member), kind == Kind::kDir, false, layer_};
  if (!hardlink.empty()) {
    auto t = nodes_.find(ResolveName(hardlink));
    if (t == nodes_.end() || t->second.member < 0 || t->second.dir) return false;
    n = t->second;  // the same inode: its (layer, member)
    n.link = true;
    n.by = layer_;  // a name this layer made
  }
  if (path.empty()) {  // the root's own attributes
    if (n.dir) nodes_[""] = n;
    return n.dir;
  }
  EnsureParents(path);
  auto it = nodes_.find(path);
  if (it != nodes_.end()) {
    // A directory over a directory merges; anything else replaces.
    if (!(it->second.dir && n.dir)) RemoveTree(path, false);
  }
  nodes_[path] = n;
  return true;
}

LayerMerge::Plan LayerMerge::Finish() const {
  Plan plan(size_t(std::max(layer_ + 1, 0)));
  for (const auto& [path, n] : nodes_) {
    if (n.member < 0) continue;
    auto& names = plan[size_t(n.layer)][uint64_t(n.member)];
    // The member's own name (not a link) comes first: it holds the data.
    if (!n.link)
      names.insert(names.begin(), path);
    else
      names.push_back(path);
  }
  return plan;
}

std::vector<std::string> LayerMerge::ImplicitDirs() const {
  std::vector<std::string> out;
  for (const auto& [path, n] : nodes_)
    if (n.member < 0 && !path.empty()) out.push_back(path);
  return out;
}

}  // namespace stack::compose::oci
