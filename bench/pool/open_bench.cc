// bench_pool_open: what opening a pool for writing costs as the number of
// entries grows, through the real binary (spec/pool-format.md, "Hidden
// entries").
//
//   pool.open_scaling  `stack snapshot create` on a pool holding 10,000
//                      entries vs one holding 1 (goal: ratio <= 1.5)
//
// The pools are filled through the library in one process, on tmpfs when
// there is one (a commit's fdatasyncs cost nothing there, so 10,000
// snapshots take seconds), then copied sparse to the scratch directory,
// where the timed commands run on the disk like a user's.
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "bench_util.h"
#include "pool/pool.h"

namespace sb = stack::bench;
namespace fs = std::filesystem;
using stack::pool::Pool;
using stack::pool::PoolCreateOptions;

namespace {

const std::string kStack = STACK_BIN_PATH;

template <typename T>
T Must(stack::Result<T> r, const char* what) {
  if (!r.ok()) sb::Die(std::string(what) + ": " + r.status().ToString());
  return std::move(r).value();
}
void Must(const stack::Status& s, const char* what) {
  if (!s.ok()) sb::Die(std::string(what) + ": " + s.ToString());
}

// A pool at `path` holding volume "v" (1 MiB written) and `snaps` - 1
// snapshots of it: `snaps` entries. Built in `build_dir`, then moved.
void MakePool(const std::string& build_dir, const std::string& path, int entries) {
  const std::string tmp = build_dir + "/" + fs::path(path).filename().string();
  fs::remove(tmp);
  PoolCreateOptions o;
  o.size_bytes = 64ull << 20;
  o.max_bytes = 1ull << 30;
  auto pool = Must(Pool::Create(tmp, o), "create pool");
  Must(pool->CreateVolume("v", 1 << 20, {}), "create volume");
  {
    auto v = Must(pool->OpenVolume("v", false), "open");
    std::vector<uint8_t> buf(1 << 20, 0x5a);
    Must(v->Write(0, buf), "write");
    Must(v->Flush(), "flush");
  }
  for (int i = 1; i < entries; ++i) {
    Must(pool->Snapshot("v", "v@s" + std::to_string(i), {"bench", {"t"}}), "snapshot");
  }
  pool.reset();
  if (tmp != path) {
    sb::Shell("cp --sparse=always " + tmp + " " + path);
    fs::remove(tmp);
  }
}

void OpenScaling(const sb::Options& o) {
  const std::string dir = sb::ScratchDir("pool-open");
  const int entries = o.quick ? 2000 : 10000;
  std::string build_dir = dir;
  std::error_code ec;
  if (fs::is_directory("/dev/shm", ec)) {
    build_dir = "/dev/shm/stack-bench-open-" + std::to_string(::getpid());
    fs::create_directories(build_dir);
  }
  MakePool(build_dir, dir + "/small.stk", 1);
  MakePool(build_dir, dir + "/big.stk", entries);
  if (build_dir != dir) fs::remove_all(build_dir);
  const int reps = std::max(o.reps, 15);  // each is a process and a commit: noisy
  std::vector<double> t_small, t_big;
  for (int r = 0; r < reps; ++r) {  // interleaved
    const std::string snap = " v@bench" + std::to_string(r) + " >/dev/null";
    t_small.push_back(sb::TimeShell(kStack + " snapshot create -p " + dir + "/small.stk" + snap));
    t_big.push_back(sb::TimeShell(kStack + " snapshot create -p " + dir + "/big.stk" + snap));
  }
  fs::remove_all(dir);
  sb::Metric m = sb::MedianSecondsMetric("pool.open_scaling", t_big, t_small,
                                         "stack snapshot create on a pool with 1 entry");
  m.notes["ours_entries"] = std::to_string(entries);
  m.notes["goal"] = "ratio <= 1.5";
  m.notes["built_on"] = build_dir == dir ? "scratch dir" : "tmpfs, then copied";
  sb::Emit(m);
}

}  // namespace

int main(int argc, char** argv) {
  return sb::BenchMain(argc, argv, {{"pool.open_scaling", OpenScaling}});
}
