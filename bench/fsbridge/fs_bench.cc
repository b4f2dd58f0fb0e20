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

void WriteData(const std::string& path, uint64_t size, std::mt19937_64& rng) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) sb::Die("create " + path);
  std::vector<uint64_t> buf(size_t((std::min<uint64_t>(size, 1 << 20) + 7) / 8));
  uint64_t left = size;
  while (left) {
    for (auto& w : buf) w = rng();
    size_t n = size_t(std::min<uint64_t>(left, buf.size() * 8));
    if (::write(fd, buf.data(), n) != ssize_t(n)) sb::Die("write " + path);
    left -= n;
  }
  ::close(fd);
}

// File sizes following the quantiles of a Debian /usr/share (p50 1.4 KB,
// p90 17.5 KB, p99 ~120 KB, p99.9 900 KB, max a few MB), log-uniform
// inside each band: about 13.6 KB on average.
uint64_t PickSize(std::mt19937_64& rng) {
  const double u = double(rng() % 1000000) / 1e6;
  auto band = [&](double lo, double hi) {
    const double f = double(rng() % 1000000) / 1e6;
    return uint64_t(lo * std::pow(hi / lo, f));
  };
  if (u < 0.5) return band(100, 1400);
  if (u < 0.9) return band(1400, 17500);
  if (u < 0.99) return band(17500, 120000);
  if (u < 0.999) return band(120000, 900000);
  return band(900000, 4000000);
}

// A /usr/share-like tree (measured there: 4,470 directories holding a
// median of 3 entries, p90 18, p99 182, the largest 2,469 and 18,122;
// 4,000 symlinks). `files` files; the two largest directories and a few
// hundred-entry ones scale with it.
void MakeTree(const std::string& root, int files) {
  std::mt19937_64 rng(20240601);
  std::vector<std::string> dirs = {root};
  std::vector<int> depth = {0};
  std::filesystem::create_directories(root);
  const int ndirs = std::max(16, files * 4470 / 65000);
  for (int i = 1; i < ndirs; ++i) {
    // Parents biased to earlier, shallower directories; depth capped at 6.
    size_t p = std::min(rng() % dirs.size(), rng() % dirs.size());
    while (depth[p] >= 6) p = rng() % std::min<size_t>(dirs.size(), 64);
    dirs.push_back(dirs[p] + "/d" + std::to_string(i));
    depth.push_back(depth[p] + 1);
    std::filesystem::create_directory(dirs.back());
  }
  // Per-directory file counts: one giant (28 %), one large (3.8 %), 1 % of
  // directories with a few hundred, the rest geometric around 3-10.
  std::vector<int> count(dirs.size(), 0);
  int left = files;
  auto give = [&](size_t d, int n) {
    n = std::min(n, left);
    count[d] += n;
    left -= n;
  };
  give(dirs.size() / 3, files * 18122 / 65000);
  give(dirs.size() / 2, files * 2469 / 65000);
  for (size_t i = 0; i < dirs.size() / 100; ++i) give(rng() % dirs.size(), 150 + int(rng() % 600));
  while (left > 0) {
    const size_t d = std::min(rng() % dirs.size(), rng() % dirs.size());
    give(d, 1 + int(rng() % 3) + (rng() % 8 == 0 ? int(rng() % 30) : 0));
  }
  int n = 0;
  for (size_t d = 0; d < dirs.size(); ++d) {
    for (int k = 0; k < count[d]; ++k, ++n) {
      const std::string f = dirs[d] + "/file" + std::to_string(n) + ".dat";
      WriteData(f, PickSize(rng), rng);
      if (n % 16 == 0)  // ~6 % symlinks, like /usr/share
        std::filesystem::create_symlink("file" + std::to_string(n) + ".dat", f + ".lnk");
    }
  }
}

void MakeFlat(const std::string& root, int files) {
  std::mt19937_64 rng(7);
  std::filesystem::create_directories(root);
  for (int i = 0; i < files; ++i)
    WriteData(root + "/entry-" + std::to_string(i) + ".txt", 100 + rng() % 1900, rng);
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
  else MakeTree(tree, files);
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
