// Benchmarks of the filesystem bridge: building an ext4 image from a tree
// (ours, in process through the io_manager onto a plain file) against
// `mke2fs -t ext4 -d` of the same tree, in the same run.
//
//   fs.build_tree  a tree shaped like /usr/share (~65,000 files + 4,000 symlinks,
//                  ~850 MB, its measured fan-out and file-size quantiles)
//   fs.build_flat  one directory of 20,000 small files
// --quick shrinks both to seconds. Trees are generated once per run,
// deterministically, in a scratch directory.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "bench_util.h"
#include "block/file_device.h"
#include "fsbridge/filesystem.h"

namespace sb = stack::bench;

namespace {

void MakeFlat(const std::string& root, int files) {
  std::mt19937_64 rng(7);
  std::filesystem::create_directories(root);
  for (int i = 0; i < files; ++i)
    sb::WriteRandomFile(root + "/entry-" + std::to_string(i) + ".txt", 100 + rng() % 1900, rng);
}

uint64_t TreeBytes(const std::string& root) {
  uint64_t n = 0;
  for (auto& e : std::filesystem::recursive_directory_iterator(root))
    if (e.is_regular_file()) n += e.file_size();
  return n;
}

double Ours(const std::string& tree, const std::string& img, uint64_t bytes) {
  std::filesystem::remove(img);
  return sb::TimeIt([&] {
    auto dev = stack::FileDevice::Create(img, bytes);
    if (!dev.ok()) sb::Die(dev.status().ToString());
    auto fs = stack::fsbridge::Filesystem::Mkfs(std::move(dev).value(), {});
    if (!fs.ok()) sb::Die(fs.status().ToString());
    auto st = (*fs)->PopulateFromDirectory(tree, "/", {});
    if (!st.ok()) sb::Die(st.status().ToString());
    auto s = (*fs)->Close();
    if (!s.ok()) sb::Die(s.ToString());
  });
}

double Anchor(const std::string& tree, const std::string& img, uint64_t bytes) {
  std::filesystem::remove(img);
  return sb::TimeShell("mke2fs -q -F -t ext4 -d " + tree + " " + img + " " +
                       std::to_string(bytes >> 20) + "M");
}

void Run(const sb::Options& o, const std::string& name, bool flat) {
  const std::string dir = sb::ScratchDir("fsbridge");
  const std::string tree = dir + "/tree";
  const int files = flat ? (o.quick ? 2000 : 20000) : (o.quick ? 3000 : 65000);
  if (flat) MakeFlat(tree, files);
  else sb::MakeUsrShareTree(tree, files);
  const uint64_t data = TreeBytes(tree);
  const uint64_t img_bytes = flat ? (o.quick ? 256ull << 20 : 1ull << 30)
                                  : std::max<uint64_t>(256ull << 20, (data * 5 / 2) >> 20 << 20);
  std::vector<double> ours, anchor;
  for (int r = 0; r < o.reps; ++r) {
    ours.push_back(Ours(tree, dir + "/ours.img", img_bytes));
    anchor.push_back(Anchor(tree, dir + "/mke2fs.img", img_bytes));
  }
  // Both images must be clean (a fast wrong image is no result).
  sb::Shell("e2fsck -fn " + dir + "/ours.img >/dev/null");
  std::filesystem::remove_all(dir);
  sb::Metric m;
  m.name = name;
  m.ours = sb::Median(ours);
  m.anchor = sb::Median(anchor);
  m.unit = "s";
  m.anchor_desc = "mke2fs -t ext4 -d (e2fsprogs), same tree, same run";
  m.better = "lower";
  m.reps = o.reps;
  m.notes["files"] = std::to_string(files);
  m.notes["data_mb"] = std::to_string(data >> 20);
  m.notes["image_mb"] = std::to_string(img_bytes >> 20);
  sb::Emit(m);
}

}  // namespace

int main(int argc, char** argv) {
  return sb::BenchMain(argc, argv,
                       {{"fs.build_tree", [](const sb::Options& o) { Run(o, "fs.build_tree", false); }},
                        {"fs.build_flat", [](const sb::Options& o) { Run(o, "fs.build_flat", true); }}});
}
