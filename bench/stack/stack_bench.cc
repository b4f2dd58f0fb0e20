// Whole-pipeline benchmarks: the `stack` binary against the tool chains
// people use today, on the same inputs, in the same run.
//   stack.build_encrypted  stack build (pool + LUKS2 + ext4 + populate + snapshot)
//                          vs mke2fs -d + qemu-img convert -O luks (goal: ratio
//                          <= 0.1); our build ends durable, the anchor leaves
//                          its image in the page cache, so the notes also give
//                          the anchor followed by sync, and both outputs' sizes
//                          on disk (ours sparse, theirs dense)
//   stack.build_floor      the same build vs the physical floor measured in the
//                          same run: reading the tree's bytes (tar to a pipe)
//                          plus writing the pool's allocated bytes with
//                          fdatasync (dd) (goal: ratio <= 1.5)
//   fs.put_1g              stack fs put of a 1 GiB file into an encrypted
//                          volume (durable: the command commits) vs cp + sync
//                          of the same file to a plain file (goal: <= 1.2)
//   stack.export_sparse    stack export (stored, defaults) of a 2 GiB volume
//                          holding 1 GiB vs cp --sparse=always of a plain 2 GiB
//                          file holding the same data (neither syncs; the
//                          --sync figure is in the notes)
//   stack.clone_edit       stack clone of the golden snapshot + fs put of one
//                          small file vs cp --sparse=always of the exported image
//   stack.export_luks1     stack export --format luks1 vs qemu-img convert -O luks
//   pool.trim_reclaim      after deleting 1 GiB of files from a 2 GiB encrypted
//                          image (fs rm -r) and fs trim: bytes the pool still
//                          maps vs bytes ext4 still uses (goal: ratio <= 1.05);
//                          notes give the ratio after rm alone and the pool
//                          file's allocated bytes
//   send.incremental       incremental stack send of 64 MiB changed (64 x 1 MiB)
//                          in a volume holding 4 GiB, to a file, vs cat of a
//                          64 MiB file to a file (goal: ratio <= 2); notes give
//                          stream bytes / changed bytes (goal <= 1.02)
//   send.full              stack send | stack receive of a 1 GiB image into a
//                          second pool vs cp --sparse=always of its stored
//                          export (goal: ratio <= 1.5); notes give the copy
//                          made durable (sync --data) and the ratio to it
//   import.delta           stack import --into (plain, encrypted volume) of a
//                          4 GiB plain export holding 1 GiB in which 16 MiB
//                          changed vs cp --sparse=always of that file (goal:
//                          ratio <= 1.5); notes give pool bytes added / changed
//                          bytes (goal <= 1.1)
//   diff.files             stack diff --files of two snapshots of an encrypted
//                          image of the fs.build_tree tree (65,000 files), one
//                          file put between them, vs
//                          diff -r of the two trees extracted to the host
//                          (page cache warm for both; goal: ratio <= 0.05)
//   oci.build              stack build --from oci: of a generated three-layer
//                          image (~500 MB; layers 2 and 3 delete and replace
//                          parts of layer 1) vs umoci unpack + mke2fs -d +
//                          qemu-img convert -O luks of the same image (goal:
//                          ratio <= 0.1)
//   oci.layer_reuse        build --layer-snapshots of a second image sharing
//                          the first two layers, vs the first image's build in
//                          the same pool: time (ratio) and pool bytes added
//                          (notes; goal <= 0.2 for both)
// Both sides use the cheapest key derivation they allow (PBKDF2, minimal
// iterations/time) so the figures compare data paths, not KDF settings.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
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

void BuildEncrypted(const sb::Options& o) {
  Fixture f(o);
  std::vector<double> ours, anchor, synced;
  const std::string anchor_cmd =
      "mke2fs -q -t ext4 -d " + f.tree + " " + f.dir + "/plain.img " + f.size() +
      " && qemu-img convert -O luks --object secret,id=s0,file=" + f.key +
      " -o key-secret=s0,iter-time=10 " + f.dir + "/plain.img " + f.dir + "/enc.img";
  for (int r = 0; r < o.reps; ++r) {
    fs::remove(f.dir + "/p.stk");
    fs::remove(f.dir + "/plain.img");
    fs::remove(f.dir + "/enc.img");
    ::sync();  // each side starts with no writeback pending (the anchor leaves GiBs dirty)
    ours.push_back(sb::TimeShell(kStack + " build -p " + f.dir + "/p.stk g --from " + f.tree +
                                 " --size " + f.size() + " -k " + f.key + kFastKdf +
                                 " >/dev/null"));
    ::sync();
    const std::string reset = "rm -f " + f.dir + "/plain.img " + f.dir + "/enc.img";
    anchor.push_back(sb::TimeShellRetry(anchor_cmd, reset));
    // The anchor again, made durable as our build is (its image written
    // back), so the disk's speed shows in both.
    fs::remove(f.dir + "/plain.img");
    fs::remove(f.dir + "/enc.img");
    ::sync();
    synced.push_back(sb::TimeShellRetry(anchor_cmd + " && sync", reset));
  }
  sb::Metric m = sb::MedianSecondsMetric(
      "stack.build_encrypted", ours, anchor,
      "mke2fs -t ext4 -d + qemu-img convert -O luks (LUKS1), 2 GiB image, left in the page cache");
  m.notes["goal"] = "ratio <= 0.1 (against the anchor as is)";
  m.notes["anchor_with_sync_s"] = std::to_string(sb::Median(synced));
  m.notes["ratio_vs_anchor_with_sync"] = std::to_string(sb::Median(ours) / sb::Median(synced));
  m.notes["ours_on_disk_MiB"] = std::to_string(sb::AllocatedBytes(f.dir + "/p.stk") >> 20);
  m.notes["anchor_on_disk_MiB"] = std::to_string(sb::AllocatedBytes(f.dir + "/enc.img") >> 20);
  m.notes["anchor_intermediate_MiB"] =
      std::to_string(sb::AllocatedBytes(f.dir + "/plain.img") >> 20);
  sb::Emit(m);
}

// The build against what the hardware needs for the same work, measured
// back to back: reading the tree's bytes (tar into a pipe: GNU tar skips
// reading files when its output is /dev/null) plus writing as many bytes
// as the build's pool file holds, with fdatasync.
void BuildFloor(const sb::Options& o) {
  Fixture f(o);
  const std::string pool = f.dir + "/p.stk", out = f.dir + "/floor.bin";
  std::vector<double> ours, floor, reading, writing;
  for (int r = 0; r < o.reps; ++r) {
    fs::remove(pool);
    ::sync();
    ours.push_back(sb::TimeShell(kStack + " build -p " + pool + " g --from " + f.tree +
                                 " --size " + f.size() + " -k " + f.key + kFastKdf +
                                 " >/dev/null"));
    const uint64_t mib = (sb::AllocatedBytes(pool) + (1 << 20) - 1) >> 20;
    ::sync();
    const double rd = sb::TimeShell("tar cf - -C " + f.tree + " . | cat >/dev/null");
    fs::remove(out);
    ::sync();
    const double wr = sb::TimeShell("dd if=/dev/zero of=" + out + " bs=1M count=" +
                                    std::to_string(mib) + " conv=fdatasync status=none");
    reading.push_back(rd);
    writing.push_back(wr);
    floor.push_back(rd + wr);
  }
  fs::remove(out);
  sb::Metric m = sb::MedianSecondsMetric(
      "stack.build_floor", ours, floor,
      "physical floor: tar of the tree into a pipe + dd conv=fdatasync of the pool's allocated bytes");
  m.notes["goal"] = "ratio <= 1.5";
  m.notes["floor_read_s"] = std::to_string(sb::Median(reading));
  m.notes["floor_write_s"] = std::to_string(sb::Median(writing));
  m.notes["pool_on_disk_MiB"] = std::to_string(sb::AllocatedBytes(pool) >> 20);
  sb::Emit(m);
}

// A file of random bytes (setup, not timed).
void RandomFile(const std::string& path, uint64_t bytes, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint64_t> buf((4u << 20) / 8);
  std::ofstream out(path, std::ios::binary);
  for (uint64_t done = 0; done < bytes; done += buf.size() * 8) {
    for (auto& w : buf) w = rng();
    out.write(reinterpret_cast<const char*>(buf.data()),
              std::streamsize(std::min<uint64_t>(buf.size() * 8, bytes - done)));
  }
}

void Put1G(const sb::Options& o) {
  const std::string dir = sb::ScratchDir("stack-put");
  const std::string pool = dir + "/p.stk", key = dir + "/pass", src = dir + "/big";
  const std::string k = " -k " + key;
  std::ofstream(key) << "bench passphrase";
  fs::create_directories(dir + "/empty");
  RandomFile(src, o.quick ? (64ull << 20) : (1ull << 30), 5);
  std::vector<double> ours, anchor;
  for (int r = 0; r < o.reps; ++r) {
    // A fresh empty volume each time: the put allocates, encrypts and
    // commits the whole file, as the first put of it would.
    fs::remove(pool);
    fs::remove(dir + "/copy");
    sb::Shell(kStack + " build -p " + pool + " v --snapshot '' --from " + dir + "/empty --size " +
              (o.quick ? "256M" : "2G") + k + kFastKdf + " >/dev/null");
    ::sync();
    ours.push_back(sb::TimeShell(kStack + " fs put -p " + pool + " v" + k + " " + src + " /big"));
    ::sync();
    anchor.push_back(sb::TimeShell("cp " + src + " " + dir + "/copy && sync " + dir + "/copy"));
  }
  sb::Metric m = sb::MedianSecondsMetric("fs.put_1g", ours, anchor,
                                         "cp + sync (the copy's fsync) to a plain file");
  m.notes["goal"] = "ratio <= 1.2";
  m.notes["file_MiB"] = std::to_string(fs::file_size(src) >> 20);
  sb::Emit(m);
  fs::remove_all(dir);
}

void CloneEdit(const sb::Options& o) {
  Fixture f(o);
  BuildBase(f);
  sb::Shell(kStack + " export -p " + f.dir + "/p.stk g@golden " + f.dir +
            "/img --format stored >/dev/null");
  std::ofstream(f.dir + "/small.txt") << "hostname=task-7\n";
  std::vector<double> ours, anchor;
  for (int r = 0; r < o.reps; ++r) {
    std::string n = "c" + std::to_string(r);
    ::sync();
    ours.push_back(sb::TimeShell(kStack + " clone -p " + f.dir + "/p.stk g@golden " + n +
                                 " >/dev/null && " + kStack + " fs put -p " + f.dir +
                                 "/p.stk " + n + " " + f.dir + "/small.txt /task.txt -k " +
                                 f.key + " >/dev/null"));
    ::sync();
    anchor.push_back(sb::TimeShell("cp --sparse=always " + f.dir + "/img " + f.dir + "/" + n));
  }
  sb::EmitMedianSeconds("stack.clone_edit", ours, anchor,
                        "cp --sparse=always of the exported golden image (no CoW)");
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
    ::sync();
    ours.push_back(sb::TimeShell(kStack + " export -p " + f.dir + "/p.stk g@golden " + f.dir +
                                 "/o.img --format luks1 -k " + f.key + kFastKdf +
                                 " >/dev/null"));
    ::sync();
    anchor.push_back(sb::TimeShellRetry("qemu-img convert -O luks --object secret,id=s0,file=" +
                                            f.key + " -o key-secret=s0,iter-time=10 " + f.dir +
                                            "/plain.img " + f.dir + "/q.img",
                                        "rm -f " + f.dir + "/q.img"));
  }
  sb::EmitMedianSeconds("stack.export_luks1", ours, anchor,
                        "qemu-img convert -O luks of the decrypted image");
}

// A 2 GiB raw file holding 1 GiB of data: 64 MiB data, 64 MiB hole, ...
void MakeHalfFullImage(const std::string& path) {
  const uint64_t chunk = 64ull << 20, total = 2ull << 30;
  std::mt19937_64 rng(7);
  std::vector<uint64_t> buf(chunk / 8);
  std::ofstream out(path, std::ios::binary);
  for (uint64_t off = 0; off < total; off += 2 * chunk) {
    for (auto& w : buf) w = rng();
    out.seekp(static_cast<std::streamoff>(off));
    out.write(reinterpret_cast<const char*>(buf.data()), static_cast<std::streamsize>(chunk));
  }
  out.close();
  fs::resize_file(path, total);
}

void ExportSparse(const sb::Options& o) {
  const std::string dir = sb::ScratchDir("stack-export");
  const std::string raw = dir + "/raw.img", pool = dir + "/p.stk";
  MakeHalfFullImage(raw);
  sb::Shell(kStack + " pool create " + pool + " --max-size 4G >/dev/null && " + kStack +
            " import -p " + pool + " " + raw + " v >/dev/null");
  std::vector<double> ours, anchor, synced;
  for (int r = 0; r < o.reps; ++r) {
    fs::remove(dir + "/o.img");
    fs::remove(dir + "/c.img");
    fs::remove(dir + "/s.img");
    ::sync();  // each side starts with no writeback pending
    ours.push_back(sb::TimeShell(kStack + " export -p " + pool + " v " + dir + "/o.img >" +
                                 dir + "/method.txt"));
    ::sync();
    anchor.push_back(sb::TimeShell("cp --sparse=always " + raw + " " + dir + "/c.img"));
    ::sync();
    synced.push_back(
        sb::TimeShell(kStack + " export -p " + pool + " v " + dir + "/s.img --sync >/dev/null"));
  }
  sb::Metric m = sb::MedianSecondsMetric(
      "stack.export_sparse", ours, anchor,
      "cp --sparse=always of a 2 GiB file holding the same 1 GiB");
  std::ifstream mt(dir + "/method.txt");
  std::string line;
  std::getline(mt, line);
  const auto at = line.find("method ");
  m.notes["method"] = at == std::string::npos ? line : line.substr(at + 7, line.size() - at - 8);
  m.notes["with_sync_s"] = std::to_string(sb::Median(synced));
  m.notes["with_sync_ratio"] = std::to_string(sb::Median(synced) / sb::Median(anchor));
  m.notes["export_on_disk_MiB"] = std::to_string(sb::AllocatedBytes(dir + "/o.img") >> 20);
  m.notes["cp_on_disk_MiB"] = std::to_string(sb::AllocatedBytes(dir + "/c.img") >> 20);
  sb::Emit(m);
  fs::remove_all(dir);
}

// Runs a command and returns its stdout (aborts if it fails).
std::string Capture(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) sb::Die("popen " + cmd);
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  if (::pclose(p) != 0) sb::Die("failed: " + cmd);
  return out;
}

// The first number after "key": in a JSON text (the bench has no JSON library).
uint64_t JsonNumber(const std::string& json, const std::string& key) {
  const auto at = json.find("\"" + key + "\":");
  if (at == std::string::npos) sb::Die("no " + key + " in: " + json);
  return std::stoull(json.substr(json.find_first_of("0123456789", at + key.size() + 3)));
}

void TrimReclaim(const sb::Options& o) {
  const std::string dir = sb::ScratchDir("stack-trim");
  const std::string pool = dir + "/p.stk", key = dir + "/pass";
  std::ofstream(key) << "bench passphrase";
  // 1 GiB to delete and 512 MiB to keep, in 32 MiB files of random data
  // (1/16 with --quick), in a 2 GiB volume without a snapshot (one would
  // keep the deleted files' blocks, as it should).
  const int file_mib = o.quick ? 2 : 32;
  std::mt19937_64 rng(3);
  std::vector<uint64_t> buf((size_t(file_mib) << 20) / 8);
  for (const auto& [sub, count] : {std::pair<std::string, int>{"del", 32}, {"keep", 16}}) {
    fs::create_directories(dir + "/tree/" + sub);
    for (int i = 0; i < count; ++i) {
      for (auto& w : buf) w = rng();
      std::ofstream out(dir + "/tree/" + sub + "/f" + std::to_string(i), std::ios::binary);
      out.write(reinterpret_cast<const char*>(buf.data()), std::streamsize(buf.size() * 8));
    }
  }
  const std::string k = " -k " + key;
  std::vector<double> mapped, used, after_rm, host;
  for (int r = 0; r < o.reps; ++r) {
    fs::remove(pool);
    sb::Shell(kStack + " build -p " + pool + " g --snapshot '' --from " + dir + "/tree --size " +
              (o.quick ? "128M" : "2G") + k + kFastKdf + " >/dev/null");
    sb::Shell(kStack + " fs rm -p " + pool + " g -r /del" + k);
    const std::string list = " --json volume list -p " + pool;
    after_rm.push_back(double(JsonNumber(Capture(kStack + list), "mapped_bytes")));
    sb::Shell(kStack + " fs trim -p " + pool + " g" + k + " >/dev/null");
    mapped.push_back(double(JsonNumber(Capture(kStack + list), "mapped_bytes")));
    const std::string df = Capture(kStack + " --json fs df -p " + pool + " g" + k);
    used.push_back(double((JsonNumber(df, "blocks_total") - JsonNumber(df, "blocks_free")) *
                          JsonNumber(df, "block_size")));
    host.push_back(double(sb::AllocatedBytes(pool)));
  }
  sb::Metric m;
  m.name = "pool.trim_reclaim";
  m.ours = sb::Median(mapped) / double(1 << 20);
  m.anchor = sb::Median(used) / double(1 << 20);
  m.unit = "MiB";
  m.anchor_desc = "bytes ext4 still uses (fs df) after deleting 1 GiB of 1.5 GiB and fs trim";
  m.better = "lower";
  m.reps = o.reps;
  m.notes["goal"] = "ratio <= 1.05";
  m.notes["after_rm_ratio"] = std::to_string(sb::Median(after_rm) / sb::Median(used));
  m.notes["pool_file_on_disk_MiB"] = std::to_string(uint64_t(sb::Median(host)) >> 20);
  sb::Emit(m);
  fs::remove_all(dir);
}

// Overwrites `pieces` 1 MiB pieces of `path` (size `bytes`), evenly spread,
// with new random data; appends each piece to `changes` if given.
void ChangePieces(const std::string& path, uint64_t bytes, int pieces, uint64_t seed,
                  const std::string& changes = "") {
  std::mt19937_64 rng(seed);
  std::vector<uint64_t> buf((1u << 20) / 8);
  std::fstream f(path, std::ios::binary | std::ios::in | std::ios::out);
  std::ofstream c;
  if (!changes.empty()) c.open(changes, std::ios::binary);
  const uint64_t stride = bytes / uint64_t(pieces) / (1u << 20) * (1u << 20);
  for (int i = 0; i < pieces; ++i) {
    for (auto& w : buf) w = rng();
    f.seekp(std::streamoff(uint64_t(i) * stride + (stride / 2) / (1u << 20) * (1u << 20)));
    f.write(reinterpret_cast<const char*>(buf.data()), std::streamsize(1u << 20));
    if (c.is_open()) c.write(reinterpret_cast<const char*>(buf.data()), std::streamsize(1u << 20));
  }
  if (!f) sb::Die("could not change " + path);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void SendIncremental(const sb::Options& o) {
  const std::string dir = sb::ScratchDir("stack-send-inc");
  const std::string raw = dir + "/raw.img", pool = dir + "/p.stk";
  const uint64_t bytes = o.quick ? (256ull << 20) : (4ull << 30);
  const int pieces = o.quick ? 4 : 64;
  const uint64_t changed = uint64_t(pieces) << 20;
  RandomFile(raw, bytes, 11);
  sb::Shell(kStack + " pool create " + pool + " --size 64M --max-size " + std::to_string(3 * bytes) +
            " >/dev/null && " + kStack + " import -p " + pool + " " + raw + " v >/dev/null && " +
            kStack + " snapshot create -p " + pool + " v@a >/dev/null");
  ChangePieces(raw, bytes, pieces, 12, dir + "/changes.bin");
  sb::Shell(kStack + " import -p " + pool + " " + raw + " --into v >/dev/null && " + kStack +
            " snapshot create -p " + pool + " v@b >/dev/null");
  fs::remove(raw);
  std::vector<double> ours, anchor;
  for (int r = 0; r < o.reps; ++r) {
    ::sync();
    ours.push_back(sb::TimeShell(kStack + " --json send -p " + pool + " v@b --from v@a -o " +
                                 dir + "/s.stream --force >" + dir + "/rep.json"));
    ::sync();
    anchor.push_back(sb::TimeShell("cat " + dir + "/changes.bin >" + dir + "/c.out"));
  }
  sb::Metric m = sb::MedianSecondsMetric(
      "send.incremental", ours, anchor,
      "cat of a file holding the changed bytes to a file");
  const uint64_t stream = JsonNumber(ReadFile(dir + "/rep.json"), "stream_bytes");
  m.notes["goal"] = "ratio <= 2; stream_over_changed <= 1.02";
  m.notes["volume_MiB"] = std::to_string(bytes >> 20);
  m.notes["changed_MiB"] = std::to_string(changed >> 20);
  m.notes["stream_over_changed"] = std::to_string(double(stream) / double(changed));
  sb::Emit(m);
  fs::remove_all(dir);
}

void SendFull(const sb::Options& o) {
  const std::string dir = sb::ScratchDir("stack-send-full");
  const std::string raw = dir + "/raw.img", a = dir + "/a.stk", b = dir + "/b.stk";
  const uint64_t bytes = o.quick ? (64ull << 20) : (1ull << 30);
  RandomFile(raw, bytes, 21);
  const std::string max = " --size 64M --max-size " + std::to_string(2 * bytes) + " >/dev/null";
  sb::Shell(kStack + " pool create " + a + max + " && " + kStack + " import -p " + a + " " + raw +
            " v >/dev/null && " + kStack + " snapshot create -p " + a + " v@s >/dev/null && " +
            kStack + " export -p " + a + " v@s " + dir + "/exp.img >/dev/null");
  fs::remove(raw);
  std::vector<double> ours, anchor, synced;
  const std::string cp = "cp --sparse=always " + dir + "/exp.img " + dir + "/c.img";
  for (int r = 0; r < o.reps; ++r) {
    fs::remove(b);
    fs::remove(dir + "/c.img");
    sb::Shell(kStack + " pool create " + b + max);
    ::sync();
    ours.push_back(sb::TimeShell(kStack + " send -p " + a + " v@s 2>/dev/null | " + kStack +
                                 " receive -p " + b + " >/dev/null"));
    ::sync();
    anchor.push_back(sb::TimeShell(cp));
    ::sync();
    fs::remove(dir + "/c.img");
    ::sync();
    // The receive ends durable (it commits before it publishes); cp leaves
    // the copy in the page cache, so its time follows the kernel's
    // writeback thresholds. The same copy made durable is the like-for-like
    // figure.
    synced.push_back(sb::TimeShell(cp + " && sync --data " + dir + "/c.img"));
  }
  sb::Metric m = sb::MedianSecondsMetric(
      "send.full", ours, anchor, "cp --sparse=always of the snapshot's stored export");
  m.notes["goal"] = "ratio <= 1.5";
  m.notes["anchor_with_sync_s"] = std::to_string(sb::Median(synced));
  m.notes["ratio_vs_anchor_with_sync"] = std::to_string(sb::Median(ours) / sb::Median(synced));
  m.notes["image_MiB"] = std::to_string(bytes >> 20);
  sb::Emit(m);
  fs::remove_all(dir);
}

void ImportDelta(const sb::Options& o) {
  const std::string dir = sb::ScratchDir("stack-import-delta");
  const std::string pool = dir + "/p.stk", key = dir + "/pass", img = dir + "/plain.img";
  std::ofstream(key) << "bench passphrase";
  // 1 GiB of files (32 MiB each) in a 4 GiB encrypted volume; 1/16 with --quick.
  const int files = 32, file_mib = o.quick ? 2 : 32;
  const int pieces = o.quick ? 2 : 16;
  const uint64_t changed = uint64_t(pieces) << 20;
  fs::create_directories(dir + "/tree");
  for (int i = 0; i < files; ++i)
    RandomFile(dir + "/tree/f" + std::to_string(i), uint64_t(file_mib) << 20, 100 + i);
  const std::string k = " -k " + key;
  sb::Shell(kStack + " build -p " + pool + " v --snapshot golden --from " + dir + "/tree --size " +
            (o.quick ? "256M" : "4G") + k + kFastKdf + " >/dev/null && " + kStack +
            " export -p " + pool + " v " + img + " --format plain" + k + " >/dev/null");
  fs::remove_all(dir + "/tree");
  const uint64_t bytes = fs::file_size(img);
  ChangePieces(img, bytes, pieces, 31);
  std::vector<double> ours, anchor, added;
  for (int r = 0; r < o.reps; ++r) {
    fs::remove(dir + "/c.img");
    sb::Shell(kStack + " snapshot rollback -p " + pool + " v@golden >/dev/null");
    ::sync();
    ours.push_back(sb::TimeShell(kStack + " --json import -p " + pool + " " + img +
                                 " --into v --format plain" + k + " >" + dir + "/rep.json"));
    ::sync();
    anchor.push_back(sb::TimeShell("cp --sparse=always " + img + " " + dir + "/c.img"));
    const std::string rep = ReadFile(dir + "/rep.json");
    added.push_back(double(JsonNumber(rep, "pool_used_after") -
                           JsonNumber(rep, "pool_used_before")));
  }
  sb::Metric m = sb::MedianSecondsMetric(
      "import.delta", ours, anchor, "cp --sparse=always of the changed plain export");
  m.notes["goal"] = "ratio <= 1.5; pool_added_over_changed <= 1.1";
  m.notes["file_MiB"] = std::to_string(bytes >> 20);
  m.notes["changed_MiB"] = std::to_string(changed >> 20);
  m.notes["pool_added_over_changed"] = std::to_string(sb::Median(added) / double(changed));
  sb::Emit(m);
  fs::remove_all(dir);
}

// Removes a benchmark's scratch directory when it goes out of scope.
struct Scratch {
  std::string dir;
  ~Scratch() { fs::remove_all(dir); }
};

void DiffFiles(const sb::Options& o) {
  // The fs.build_tree tree (a /usr/share-like 65,000 files), built encrypted.
  const std::string dir = sb::ScratchDir("stack-diff-files");
  const Scratch cleanup{dir};
  sb::MakeUsrShareTree(dir + "/tree", o.quick ? 2000 : 65000);
  std::ofstream(dir + "/pass") << "bench passphrase";
  const std::string pool = dir + "/p.stk", k = " -k " + dir + "/pass";
  sb::Shell(kStack + " build -p " + pool + " g --from " + dir + "/tree --size 2G" + k + kFastKdf +
            " >/dev/null");
  RandomFile(dir + "/one", 64 << 10, 41);
  sb::Shell(kStack + " fs put -p " + pool + " g " + dir + "/one /changed" + k +
            " >/dev/null && " + kStack + " snapshot create -p " + pool + " g@after >/dev/null");
  for (const char* s : {"golden", "after"}) {
    sb::Shell(kStack + " fs extract -p " + pool + " g@" + s + " / --to " + dir + "/x-" + s + k +
              " >/dev/null");
  }
  const std::string ours_cmd = kStack + " --json diff -p " + pool + " --files g@golden g@after" +
                               k + " >" + dir + "/rep.json";
  // diff exits 1 when the trees differ (they do).
  const std::string anchor_cmd =
      "diff -r " + dir + "/x-golden " + dir + "/x-after >/dev/null; test $? -eq 1";
  sb::Shell(ours_cmd);  // both warm
  sb::Shell(anchor_cmd);
  std::vector<double> ours, anchor;
  for (int r = 0; r < o.reps; ++r) {
    ours.push_back(sb::TimeShell(ours_cmd));
    anchor.push_back(sb::TimeShell(anchor_cmd));
  }
  const std::string rep = ReadFile(dir + "/rep.json");
  if (rep.find("\"/changed\"") == std::string::npos) sb::Die("diff --files missed the change");
  sb::Metric m = sb::MedianSecondsMetric("diff.files", ours, anchor,
                                         "diff -r of the two trees extracted to the host");
  m.notes["goal"] = "ratio <= 0.05";
  m.notes["inodes_examined"] = std::to_string(JsonNumber(rep, "inodes_examined"));
  sb::Emit(m);
}

// An OCI image layout at dir/img: tag "t" of three layers (a /usr/share-like
// tree plus large files; half of the tree deleted and a large file replaced;
// new files added) and tag "u" sharing t's first two layers with another
// third. The work tree dir/bundle is removed after.
void MakeOciImage(const std::string& dir, bool quick) {
  const std::string img = dir + "/img", b = dir + "/bundle", r = b + "/rootfs";
  auto edit = [&](const std::string& from, const std::string& to, const std::string& change) {
    sb::Shell("rm -rf " + b + " && umoci unpack --rootless --image " + img + ":" + from + " " + b +
              " >/dev/null 2>&1 && " + change + " && umoci repack --image " + img + ":" + to +
              " " + b + " >/dev/null");
  };
  sb::Shell("umoci init --layout " + img + " >/dev/null && umoci new --image " + img + ":t");
  const uint64_t big = quick ? (4ull << 20) : (64ull << 20);
  edit("t", "t", "true");  // an empty first change keeps the steps alike
  sb::MakeUsrShareTree(dir + "/tree", quick ? 1500 : 20000);
  for (int i = 0; i < 4; ++i) RandomFile(dir + "/tree/big" + std::to_string(i), big, 60 + i);
  edit("t", "t", "mkdir -p " + r + "/usr && cp -a " + dir + "/tree " + r + "/usr/share");
  fs::remove_all(dir + "/tree");
  RandomFile(dir + "/replacement", big, 70);
  // Layer 2: the second half of the tree's directories and one big file go,
  // another big file is replaced.
  edit("t", "t",
       "find " + r + "/usr/share -mindepth 1 -maxdepth 1 -type d | sort | tail -n +2 | "
       "awk 'NR % 2 == 0' | xargs rm -rf && rm " + r + "/usr/share/big1 && cp " + dir +
           "/replacement " + r + "/usr/share/big2");
  sb::Shell("umoci tag --image " + img + ":t base");
  RandomFile(dir + "/extra", big * 2, 80);
  edit("t", "t", "mkdir -p " + r + "/opt && cp " + dir + "/extra " + r + "/opt/extra");
  RandomFile(dir + "/other", big, 90);
  edit("base", "u", "mkdir -p " + r + "/srv && cp " + dir + "/other " + r + "/srv/other");
  fs::remove_all(b);
}

void OciBuild(const sb::Options& o) {
  const std::string dir = sb::ScratchDir("stack-oci-build");
  const Scratch cleanup{dir};
  MakeOciImage(dir, o.quick);
  std::ofstream(dir + "/pass") << "bench passphrase";
  const std::string size = o.quick ? "256M" : "2G";
  std::vector<double> ours, anchor;
  for (int r = 0; r < o.reps; ++r) {
    fs::remove(dir + "/p.stk");
    fs::remove_all(dir + "/b");
    fs::remove(dir + "/plain.img");
    fs::remove(dir + "/enc.img");
    ::sync();
    ours.push_back(sb::TimeShell(kStack + " build -p " + dir + "/p.stk v --from oci:" + dir +
                                 "/img:t --size " + size + " -k " + dir + "/pass" + kFastKdf +
                                 " >/dev/null"));
    ::sync();
    anchor.push_back(sb::TimeShellRetry(
        "umoci unpack --rootless --image " + dir + "/img:t " + dir + "/b >/dev/null 2>&1 && " +
        "mke2fs -q -t ext4 -d " + dir + "/b/rootfs " + dir + "/plain.img " + size +
        " && qemu-img convert -O luks --object secret,id=s0,file=" + dir + "/pass" +
        " -o key-secret=s0,iter-time=10 " + dir + "/plain.img " + dir + "/enc.img",
        "rm -rf " + dir + "/b " + dir + "/plain.img " + dir + "/enc.img"));
  }
  sb::Metric m = sb::MedianSecondsMetric(
      "oci.build", ours, anchor,
      "umoci unpack --rootless + mke2fs -t ext4 -d + qemu-img convert -O luks, same image");
  m.notes["goal"] = "ratio <= 0.1";
  uint64_t blobs = 0;
  for (auto& e : fs::recursive_directory_iterator(dir + "/img"))
    if (e.is_regular_file()) blobs += e.file_size();
  m.notes["image_MiB"] = std::to_string(blobs >> 20);
  sb::Emit(m);
}

void OciLayerReuse(const sb::Options& o) {
  const std::string dir = sb::ScratchDir("stack-oci-reuse");
  const Scratch cleanup{dir};
  MakeOciImage(dir, o.quick);
  std::ofstream(dir + "/pass") << "bench passphrase";
  const std::string pool = dir + "/p.stk", size = o.quick ? "256M" : "2G";
  auto build = [&](const std::string& vol, const std::string& tag) {
    return sb::TimeShell(kStack + " build -p " + pool + " " + vol + " --from oci:" + dir + "/img:" +
                         tag + " --layer-snapshots --size " + size + " -k " + dir + "/pass" +
                         kFastKdf + " >/dev/null");
  };
  auto used = [&] {
    sb::Shell(kStack + " --json pool info " + pool + " >" + dir + "/info.json");
    return double(JsonNumber(ReadFile(dir + "/info.json"), "used_bytes"));
  };
  std::vector<double> first, second, bytes_ratio;
  for (int r = 0; r < o.reps; ++r) {
    fs::remove(pool);
    ::sync();
    first.push_back(build("a", "t"));
    const double after_first = used();
    ::sync();
    second.push_back(build("b", "u"));
    bytes_ratio.push_back((used() - after_first) / after_first);
  }
  sb::Metric m = sb::MedianSecondsMetric("oci.layer_reuse", second, first,
                                         "the first image's build (--layer-snapshots), same pool");
  m.notes["goal"] = "ratio <= 0.2; bytes_added_ratio <= 0.2";
  m.notes["bytes_added_ratio"] = std::to_string(sb::Median(bytes_ratio));
  sb::Emit(m);
}

}  // namespace

int main(int argc, char** argv) {
  return sb::BenchMain(argc, argv,
                       {{"stack.build_encrypted", BuildEncrypted},
                        {"stack.build_floor", BuildFloor},
                        {"fs.put_1g", Put1G},
                        {"stack.export_sparse", ExportSparse},
                        {"stack.clone_edit", CloneEdit},
                        {"stack.export_luks1", ExportLuks1},
                        {"pool.trim_reclaim", TrimReclaim},
                        {"send.incremental", SendIncremental},
                        {"send.full", SendFull},
                        {"import.delta", ImportDelta},
                        {"diff.files", DiffFiles},
                        {"oci.build", OciBuild},
                        {"oci.layer_reuse", OciLayerReuse}});
}
