// Benchmarks of the copy-on-write pool against plain-file anchors
// (bench/common/bench_util.h protocol). Scratch files live under
// $STACK_BENCH_DIR (default /var/tmp/stack-bench) and are removed.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <span>
#include <vector>

#include "bench_util.h"
#include "block/file_device.h"
#include "pool/pool.h"

namespace sb = stack::bench;
using stack::Status;
using stack::pool::Pool;
using stack::pool::PoolCreateOptions;

namespace {

constexpr uint64_t kMiB = 1 << 20;

template <typename T>
T Must(stack::Result<T> r, const char* what) {
  if (!r.ok()) sb::Die(std::string(what) + ": " + r.status().ToString());
  return std::move(r).value();
}
void Must(const Status& s, const char* what) {
  if (!s.ok()) sb::Die(std::string(what) + ": " + s.ToString());
}

// Non-zero, varying 1 MiB pattern (zero blocks would become holes): a
// fixed random MiB with the salt stamped into every 4 KiB block, so
// generating it costs next to nothing on either side.
void Fill(std::vector<uint8_t>& buf, uint64_t salt) {
  static const std::vector<uint8_t> base = [] {
    std::vector<uint8_t> b(kMiB);
    std::mt19937_64 rng(12345);
    for (size_t i = 0; i + 8 <= b.size(); i += 8) {
      uint64_t x = rng();
      std::memcpy(&b[i], &x, 8);
    }
    return b;
  }();
  if (buf.size() == base.size()) {
    std::memcpy(buf.data(), base.data(), buf.size());
  } else {
    std::copy(base.begin(), base.begin() + buf.size(), buf.begin());
  }
  for (size_t i = 0; i + 8 <= buf.size(); i += 4096) std::memcpy(&buf[i], &salt, 8);
}

// Physical block size of the pools under test: 4096 (the default) unless
// $STACK_POOL_BENCH_BS says otherwise (used to choose the default, see
// spec/pool-format.md).
uint32_t BenchBlockSize() {
  const char* e = std::getenv("STACK_POOL_BENCH_BS");
  return e ? static_cast<uint32_t>(std::atoi(e)) : 4096;
}

std::unique_ptr<Pool> NewPool(const std::string& path, uint64_t max_bytes, size_t cache,
                              uint32_t bs = BenchBlockSize()) {
  std::filesystem::remove(path);
  PoolCreateOptions o;
  o.block_size = bs;
  o.size_bytes = 64 * kMiB;
  o.max_bytes = max_bytes;
  o.cache_bytes = cache;
  return Must(Pool::Create(path, o), "create pool");
}

void WriteSeq(stack::BlockDevice& d, uint64_t bytes, uint64_t salt) {
  std::vector<uint8_t> buf(kMiB);
  for (uint64_t off = 0; off < bytes; off += kMiB) {
    Fill(buf, salt + off / kMiB);
    Must(d.Write(off, buf), "write");
  }
  Must(d.Flush(), "flush");
}

// A pool holding volume "v" with `mapped` bytes written and flushed.
std::unique_ptr<Pool> PoolWithMapped(const std::string& path, uint64_t mapped) {
  auto pool = NewPool(path, mapped + 256 * kMiB, 64 * kMiB);
  Must(pool->CreateVolume("v", mapped, {}), "create volume");
  auto v = Must(pool->OpenVolume("v", false), "open");
  WriteSeq(*v, mapped, 1);
  return pool;
}

// One Snapshot (or Clone) of "v", timed, then deleted (untimed).
double CopyOnce(Pool& pool, bool clone, int r) {
  std::string name = clone ? "c" + std::to_string(r) : "v@s" + std::to_string(r);
  double t = sb::TimeIt([&] {
    Must(clone ? pool.Clone("v", name, {}) : pool.Snapshot("v", name, {}), "copy");
  });
  Must(pool.Delete(name), "delete");
  return t;
}

double Mean(const std::vector<double>& v) {
  double sum = 0;
  for (double x : v) sum += x;
  return sum / double(v.size());
}

void Scaling(const sb::Options& o, bool clone) {
  const std::string dir = sb::ScratchDir("pool");
  uint64_t big = o.quick ? 256 * kMiB : 4096 * kMiB, small = 4 * kMiB;
  int reps = std::max(o.reps, 15);  // each copy costs ~two fdatasyncs: noisy
  auto p_small = PoolWithMapped(dir + "/small.pool", small);
  auto p_big = PoolWithMapped(dir + "/big.pool", big);
  std::vector<double> t_small, t_big;
  for (int r = 0; r < reps; ++r) {  // interleaved
    t_small.push_back(CopyOnce(*p_small, clone, r));
    t_big.push_back(CopyOnce(*p_big, clone, r));
  }
  p_small.reset();
  p_big.reset();
  std::filesystem::remove_all(dir);
  sb::Metric m;
  m.name = clone ? "pool.clone_scaling" : "pool.snapshot_scaling";
  // fdatasync latency here comes in ~4 ms steps, so a median of a few
  // samples flips between steps; the mean of many is the stabler figure.
  m.ours = Mean(t_big);
  m.anchor = Mean(t_small);
  m.unit = "s";
  m.anchor_desc = std::string(clone ? "clone" : "snapshot") + " of a volume with 4 MiB mapped";
  m.better = "lower";
  m.reps = reps;
  m.notes["ours_mapped_mib"] = std::to_string(big / kMiB);
  m.notes["median_ours_s"] = std::to_string(sb::Median(t_big));
  m.notes["median_anchor_s"] = std::to_string(sb::Median(t_small));
  m.notes["statistic"] = "mean of interleaved reps (each copy is a commit: two fdatasyncs)";
  m.notes["goal"] = "ratio <= 2";
  sb::Emit(m);
}

void SnapshotScaling(const sb::Options& o) { Scaling(o, false); }
void CloneScaling(const sb::Options& o) { Scaling(o, true); }

void SeqWrite(const sb::Options& o) {
  const std::string dir = sb::ScratchDir("pool");
  uint64_t bytes = (o.quick ? 32 : 512) * kMiB;
  std::vector<double> ours, anchor;
  for (int r = 0; r < o.reps; ++r) {
    {
      auto pool = NewPool(dir + "/seq.pool", bytes + 128 * kMiB, 64 * kMiB);
      Must(pool->CreateVolume("v", bytes, {}), "create volume");
      auto v = Must(pool->OpenVolume("v", false), "open");
      ::sync();  // start both sides with no writeback pending
      ours.push_back(sb::TimeIt([&] { WriteSeq(*v, bytes, r); }));
    }
    std::filesystem::remove(dir + "/seq.pool");
    std::filesystem::remove(dir + "/plain.img");
    ::sync();
    anchor.push_back(sb::TimeIt([&] {
      auto f = Must(stack::FileDevice::Create(dir + "/plain.img", bytes), "plain file");
      WriteSeq(*f, bytes, r);
    }));
    std::filesystem::remove(dir + "/plain.img");
  }
  std::filesystem::remove_all(dir);
  sb::Metric m;
  m.name = "pool.seq_write";
  m.ours = double(bytes / kMiB) / sb::Median(ours);
  m.anchor = double(bytes / kMiB) / sb::Median(anchor);
  m.unit = "MiB/s";
  m.anchor_desc = "plain file, 1 MiB pwrite + fdatasync, " + std::to_string(bytes / kMiB) + " MiB";
  m.better = "higher";
  m.reps = o.reps;
  m.notes["goal"] = "ratio >= 0.8";
  sb::Emit(m);
}

// Random 4 KiB writes, `n` of them, then one flush.
double RandWrites(stack::BlockDevice& d, uint64_t span, uint64_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  // 4 KiB, or one whole block of a device with larger blocks (what a
  // 4 KiB write costs there: read-modify-write of the block).
  const uint32_t io = std::max<uint32_t>(4096, d.block_size());
  std::vector<uint8_t> buf(io);
  Fill(buf, seed);
  return sb::TimeIt([&] {
    for (uint64_t i = 0; i < n; ++i) {
      buf[0] = uint8_t(i);
      buf[1] = uint8_t(i >> 8) | 1;
      Must(d.Write((rng() % (span / io)) * io, buf), "write");
    }
    Must(d.Flush(), "flush");
  });
}

void RandWriteCow(const sb::Options& o) {
  const std::string dir = sb::ScratchDir("pool");
  uint64_t span = (o.quick ? 64 : 1024) * kMiB, n = o.quick ? 5000 : 50000;
  std::vector<double> ours, anchor;
  for (int r = 0; r < o.reps; ++r) {
    {
      auto pool = NewPool(dir + "/rw.pool", 3 * span + 256 * kMiB, 64 * kMiB);
      Must(pool->CreateVolume("v", span, {}), "create volume");
      auto v = Must(pool->OpenVolume("v", false), "open");
      WriteSeq(*v, span, 7);
      Must(pool->Snapshot("v", "v@base", {}), "snapshot");
      ::sync();
      ours.push_back(RandWrites(*v, span, n, r + 1));
    }
    std::filesystem::remove(dir + "/rw.pool");
    {
      auto f = Must(stack::FileDevice::Create(dir + "/plain.img", span), "plain file");
      WriteSeq(*f, span, 7);
      ::sync();
      anchor.push_back(RandWrites(*f, span, n, r + 1));
    }
    std::filesystem::remove(dir + "/plain.img");
  }
  std::filesystem::remove_all(dir);
  sb::Metric m;
  m.name = "pool.rand_write_cow";
  m.ours = double(n) / sb::Median(ours);
  m.anchor = double(n) / sb::Median(anchor);
  m.unit = "IOPS";
  m.anchor_desc = "plain file (fully written), random 4 KiB pwrite + one fdatasync";
  m.better = "higher";
  m.reps = o.reps;
  m.notes["writes"] = std::to_string(n);
  m.notes["span_mib"] = std::to_string(span / kMiB);
  m.notes["goal"] = "ratio >= 0.5";
  sb::Emit(m);
}

double RandReads(stack::BlockDevice& d, uint64_t span, uint64_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> buf(4096);
  return sb::TimeIt([&] {
    for (uint64_t i = 0; i < n; ++i) {
      Must(d.Read((rng() % (span / 4096)) * 4096, buf), "read");
    }
  });
}

void RandRead(const sb::Options& o) {
  const std::string dir = sb::ScratchDir("pool");
  uint64_t span = (o.quick ? 64 : 1024) * kMiB, n = o.quick ? 20000 : 200000;
  auto pool = NewPool(dir + "/rr.pool", span + 256 * kMiB, 64 * kMiB);
  Must(pool->CreateVolume("v", span, {}), "create volume");
  auto v = Must(pool->OpenVolume("v", false), "open");
  WriteSeq(*v, span, 3);
  auto f = Must(stack::FileDevice::Create(dir + "/plain.img", span), "plain file");
  WriteSeq(*f, span, 3);
  std::vector<double> ours, anchor;
  RandReads(*v, span, n / 4, 99);  // warm both page caches alike
  RandReads(*f, span, n / 4, 99);
  for (int r = 0; r < o.reps; ++r) {
    ours.push_back(RandReads(*v, span, n, r));
    anchor.push_back(RandReads(*f, span, n, r));
  }
  v.reset();
  pool.reset();
  f.reset();
  std::filesystem::remove_all(dir);
  sb::Metric m;
  m.name = "pool.rand_read";
  m.ours = double(n) / sb::Median(ours);
  m.anchor = double(n) / sb::Median(anchor);
  m.unit = "IOPS";
  m.anchor_desc = "plain file, random 4 KiB pread (page cache warm for both)";
  m.better = "higher";
  m.reps = o.reps;
  m.notes["span_mib"] = std::to_string(span / kMiB);
  sb::Emit(m);
}

// Peak RSS (MiB) of a child process that writes `bytes` into a volume.
double ChildPeakRss(const std::string& dir, uint64_t bytes, size_t cache) {
  int fds[2];
  if (pipe(fds) != 0) sb::Die("pipe");
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    {
      auto pool = NewPool(dir + "/rss.pool", bytes + 512 * kMiB, cache);
      Must(pool->CreateVolume("v", bytes, {}), "create volume");
      auto v = Must(pool->OpenVolume("v", false), "open");
      WriteSeq(*v, bytes, 5);
    }
    struct rusage ru {};
    getrusage(RUSAGE_SELF, &ru);
    double mib = double(ru.ru_maxrss) / 1024.0;
    if (write(fds[1], &mib, sizeof(mib)) != sizeof(mib)) _exit(1);
    _exit(0);
  }
  close(fds[1]);
  double mib = 0;
  if (read(fds[0], &mib, sizeof(mib)) != sizeof(mib)) sb::Die("rss child failed");
  close(fds[0]);
  int st = 0;
  waitpid(pid, &st, 0);
  std::filesystem::remove(dir + "/rss.pool");
  return mib;
}

void RssWrite8g(const sb::Options& o) {
  const std::string dir = sb::ScratchDir("pool");
  uint64_t bytes = (o.quick ? 512 : 8192) * kMiB;
  size_t cache = 64 * kMiB;
  double peak = ChildPeakRss(dir, bytes, cache);
  std::filesystem::remove_all(dir);
  sb::Metric m;
  m.name = "pool.rss_write_8g";
  m.ours = peak;
  m.anchor = double(cache / kMiB) + 64;
  m.unit = "MiB";
  m.anchor_desc = "configured metadata cache (64 MiB) + 64 MiB";
  m.better = "lower";
  m.reps = 1;
  m.notes["written_mib"] = std::to_string(bytes / kMiB);
  m.notes["goal"] = "ratio <= 1";
  sb::Emit(m);
}

// The change both sides of diff.scaling make: 1 MiB pieces (a file's worth
// of writes each), so the two volumes differ in size, not in how the change
// is spread. Scattered smaller pieces touch more leaves per changed byte in
// the large volume (a leaf holds 84..168 blocks) and cost proportionally.
constexpr uint64_t kDiffPiece = kMiB;

// A pool holding "v" with `mapped` bytes written, snapshot "v@base", then
// `changed` bytes rewritten in kDiffPiece pieces at random aligned offsets
// (distinct), flushed.
std::unique_ptr<Pool> PoolWithChange(const std::string& path, uint64_t mapped, uint64_t changed) {
  auto pool = PoolWithMapped(path, mapped);
  Must(pool->Snapshot("v", "v@base", {}), "snapshot");
  auto v = Must(pool->OpenVolume("v", false), "open");
  const uint64_t piece = kDiffPiece, slots = mapped / piece;
  std::vector<uint64_t> order(slots);
  for (uint64_t i = 0; i < slots; ++i) order[i] = i;
  std::mt19937_64 rng(7);
  std::shuffle(order.begin(), order.end(), rng);
  std::vector<uint8_t> buf(kMiB);
  Fill(buf, 999);
  for (uint64_t i = 0; i < changed / piece; ++i) {
    Must(v->Write(order[i] * piece, std::span(buf).first(piece)), "write change");
  }
  Must(v->Flush(), "flush");
  return pool;
}

// Ten Pool::Diff runs of v@base -> v (ranges collected), timed together (a
// single diff of 8 MiB is ~100 us: below the clock's noise).
double DiffOnce(Pool& pool, stack::pool::DiffStats* st) {
  std::vector<stack::pool::DiffRange> ranges;
  return sb::TimeIt([&] {
    for (int i = 0; i < 10; ++i) {
      ranges.clear();
      Must(pool.Diff("v@base", "v",
                     [&](const stack::pool::DiffRange& r) {
                       ranges.push_back(r);
                       return Status::Ok();
                     },
                     st),
           "diff");
    }
  }) / 10;
}

void DiffScaling(const sb::Options& o) {
  const std::string dir = sb::ScratchDir("pool");
  const uint64_t changed = 8 * kMiB;
  const uint64_t big = o.quick ? 256 * kMiB : 8192 * kMiB, small = 16 * kMiB;
  // Sparse pool files: they grow as the volumes are written.
  auto p_small = PoolWithChange(dir + "/small.pool", small, changed);
  auto p_big = PoolWithChange(dir + "/big.pool", big, changed);
  std::vector<double> t_small, t_big;
  stack::pool::DiffStats s_small, s_big;
  for (int r = 0; r < std::max(o.reps, 9); ++r) {  // interleaved
    t_small.push_back(DiffOnce(*p_small, &s_small));
    t_big.push_back(DiffOnce(*p_big, &s_big));
  }
  p_small.reset();
  p_big.reset();
  std::filesystem::remove_all(dir);
  sb::Metric m = sb::MedianSecondsMetric("diff.scaling", t_big, t_small,
                                         "diff of 8 MiB changed in a volume holding 16 MiB");
  m.notes["ours_mapped_mib"] = std::to_string(big / kMiB);
  m.notes["changed_mib"] = std::to_string(changed / kMiB);
  m.notes["change_piece_kib"] = std::to_string(kDiffPiece / 1024);
  m.notes["ours_nodes_visited"] = std::to_string(s_big.nodes_visited);
  m.notes["anchor_nodes_visited"] = std::to_string(s_small.nodes_visited);
  m.notes["ours_written_mib"] = std::to_string(s_big.written_bytes / kMiB);
  m.notes["goal"] = "ratio <= 2";
  sb::Emit(m);
}

}  // namespace

int main(int argc, char** argv) {
  return sb::BenchMain(argc, argv,
                       {{"pool.snapshot_scaling", SnapshotScaling},
                        {"pool.clone_scaling", CloneScaling},
                        {"pool.seq_write", SeqWrite},
                        {"pool.rand_write_cow", RandWriteCow},
                        {"pool.rand_read", RandRead},
                        {"pool.rss_write_8g", RssWrite8g},
                        {"diff.scaling", DiffScaling}});
}
