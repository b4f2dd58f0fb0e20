// Whole-pipeline benchmarks: the `stack` binary against the tool chains
// people use today, on the same inputs, in the same run.
//   stack.build_golden  stack build (pool + LUKS2 + ext4 + populate + snapshot)
//                       vs mke2fs -d + qemu-img convert -O luks
//   stack.clone         stack clone of a snapshot vs cp --sparse=always of the image
//   stack.export_luks1  stack export --format luks1 vs qemu-img convert -O luks
// Both sides use the cheapest key derivation they allow (PBKDF2, minimal
// iterations/time) so the figures compare data paths, not KDF settings.
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "bench_util.h"

namespace sb = stack::bench;
namespace fs = std::filesystem;

namespace {

const std::string kStack = STACK_BIN_PATH;

// A deterministic tree: dirs x files of mixed sizes (mostly small, some large).
void MakeTree(const std::string& root, int dirs, int files_per_dir) {
  std::mt19937_64 rng(1);
  std::vector<char> buf(1 << 20);
  for (auto& c : buf) c = static_cast<char>(rng());
  for (int d = 0; d < dirs; ++d) {
    std::string dir = root + "/d" + std::to_string(d);
    fs::create_directories(dir);
    for (int f = 0; f < files_per_dir; ++f) {
      size_t size = (f % 50 == 0) ? (256 << 10) + rng() % (768 << 10) : rng() % 16384;
      std::ofstream o(dir + "/f" + std::to_string(f), std::ios::binary);
      o.write(buf.data() + rng() % 1024, static_cast<std::streamsize>(size));
    }
  }
}

struct Fixture {
  std::string dir, tree, key;
  Fixture(const sb::Options& o) {
    dir = sb::ScratchDir("stack");
    tree = dir + "/tree";
    MakeTree(tree, o.quick ? 10 : 100, o.quick ? 50 : 200);
    key = dir + "/pass";
    std::ofstream(key) << "bench passphrase";
  }
  ~Fixture() { fs::remove_all(dir); }
  std::string size() const { return "2G"; }
};

const char* kFastKdf = " --kdf pbkdf2 --pbkdf2-iterations 1000";

// Builds the golden image g@golden in f.dir/p.stk (setup, not timed).
void BuildBase(const Fixture& f) {
  sb::Shell(kStack + " build -p " + f.dir + "/p.stk g --from " + f.tree + " --size " + f.size() +
            " -k " + f.key + kFastKdf + " >/dev/null");
}

void BuildGolden(const sb::Options& o) {
  Fixture f(o);
  std::vector<double> ours, anchor;
  for (int r = 0; r < o.reps; ++r) {
    fs::remove(f.dir + "/p.stk");
    fs::remove(f.dir + "/plain.img");
    fs::remove(f.dir + "/enc.img");
    ours.push_back(sb::TimeShell(kStack + " build -p " + f.dir + "/p.stk g --from " + f.tree +
                                 " --size " + f.size() + " -k " + f.key + kFastKdf +
                                 " >/dev/null"));
    anchor.push_back(sb::TimeShell(
        "mke2fs -q -t ext4 -d " + f.tree + " " + f.dir + "/plain.img " + f.size() +
        " && qemu-img convert -O luks --object secret,id=s0,file=" + f.key +
        " -o key-secret=s0,iter-time=10 " + f.dir + "/plain.img " + f.dir + "/enc.img"));
  }
  sb::EmitMedianSeconds("stack.build_golden", ours, anchor,
                        "mke2fs -t ext4 -d + qemu-img convert -O luks (LUKS1), 2 GiB image");
}

void Clone(const sb::Options& o) {
  Fixture f(o);
  BuildBase(f);
  sb::Shell(kStack + " export -p " + f.dir + "/p.stk g@golden " + f.dir +
            "/img --format stored >/dev/null");
  std::vector<double> ours, anchor;
  for (int r = 0; r < o.reps; ++r) {
    std::string n = "c" + std::to_string(r);
    ours.push_back(sb::TimeShell(kStack + " clone -p " + f.dir + "/p.stk g@golden " + n +
                                 " >/dev/null"));
    anchor.push_back(sb::TimeShell("cp --sparse=always " + f.dir + "/img " + f.dir + "/" + n));
  }
  sb::EmitMedianSeconds("stack.clone", ours, anchor,
                        "cp --sparse=always of the same encrypted image");
}

void ExportLuks1(const sb::Options& o) {
  Fixture f(o);
  BuildBase(f);
  sb::Shell(kStack + " export -p " + f.dir + "/p.stk g@golden " + f.dir +
            "/plain.img --format plain -k " + f.key + " >/dev/null");
  std::vector<double> ours, anchor;
  for (int r = 0; r < o.reps; ++r) {
    fs::remove(f.dir + "/o.img");
    fs::remove(f.dir + "/q.img");
    ours.push_back(sb::TimeShell(kStack + " export -p " + f.dir + "/p.stk g@golden " + f.dir +
                                 "/o.img --format luks1 -k " + f.key + kFastKdf +
                                 " >/dev/null"));
    anchor.push_back(sb::TimeShell("qemu-img convert -O luks --object secret,id=s0,file=" +
                                   f.key + " -o key-secret=s0,iter-time=10 " + f.dir +
                                   "/plain.img " + f.dir + "/q.img"));
  }
  sb::EmitMedianSeconds("stack.export_luks1", ours, anchor,
                        "qemu-img convert -O luks of the decrypted image");
}

}  // namespace

int main(int argc, char** argv) {
  return sb::BenchMain(argc, argv,
                       {{"stack.build_golden", BuildGolden},
                        {"stack.clone", Clone},
                        {"stack.export_luks1", ExportLuks1}});
}
