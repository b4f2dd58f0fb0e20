// LayerMerge: the merged tree of an image's layers, from their member
// headers alone (spec/oci.md "Layers"): which member of which layer
// supplies each path of the final tree.
// Thread-safety: none.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace stack::compose::oci {

// A member name resolved inside the root: "" for the root, else
// "a/b/c" with no empty, "." or ".." component ("../x", "/x" -> "x").
std::string ResolveName(const std::string& name);

class LayerMerge {
 public:
  enum class Kind { kDir, kOther };
  // Starts the next layer (the first call starts layer 0).
  void BeginLayer();
  // Member `member` (its ordinal in the layer) named `name`: a whiteout,
  // an opaque marker, or an entry of `kind`; `hardlink` is a hard link's
  // target name ("" for other members). A hard link whose target is not in
  // the tree is ignored (false returned), as is a whiteout of a missing path.
  bool Add(uint64_t member, const std::string& name, Kind kind, const std::string& hardlink);

  // What the second pass writes: per layer, member -> the paths it
  // supplies. The first path gets the member's content; the others are hard
  // links to it.
  using Plan = std::vector<std::map<uint64_t, std::vector<std::string>>>;
  Plan Finish() const;
  // Directories the tree needs that no surviving member supplies (made
  // 0755 root:root), sorted.
  std::vector<std::string> ImplicitDirs() const;

  // For applying one layer onto a tree that holds the lower ones (the
  // merge then holds that layer alone): the paths its whiteouts name and
  // the directories it makes opaque, in member order, whether or not the
  // merge holds them.
  const std::vector<std::string>& whiteouts() const { return whiteouts_; }
  const std::vector<std::string>& opaque_dirs() const { return opaque_dirs_; }

  struct Node {
    int layer = 0;
    int64_t member = -1;  // -1: an implicit directory
    bool dir = true;
    bool link = false;  // a hard link to (layer, member)
    // The layer that put this path in the tree: whiteouts and opaque
    // markers delete lower layers' paths only. Not `layer`: a hard link
    // this layer makes to a lower file holds that file's (layer, member).
    int by = 0;
  };
  const std::map<std::string, Node>& nodes() const { return nodes_; }

 private:
  void RemoveTree(const std::string& path, bool lower_only);
  void EnsureParents(const std::string& path);
  // Gives every path beneath `dir` that survived a removal of lower paths
  // its parents again, as this layer's implicit directories (a lower
  // directory this layer only wrote into went with the lower layers).
  void RestoreParents(const std::string& dir);
  Node Implicit() const { return Node{layer_, -1, true, false, layer_}; }

  std::map<std::string, Node> nodes_;
  std::vector<std::string> whiteouts_, opaque_dirs_;
  int layer_ = -1;
};

}  // namespace stack::compose::oci
