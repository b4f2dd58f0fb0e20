// Shared helpers for the bench_<area> executables.
//
// Protocol every bench executable follows (bench/run relies on it):
//   bench_x --list            one metric name per line
//   bench_x --run NAME [--reps N] [--quick]
//                             measures ours and its anchor side by side,
//                             N times each (interleaved), and prints one JSON
//                             object per line: name, ours, anchor, ratio
//                             (ours/anchor), unit, anchor_desc, better
//                             ("lower" or "higher"), reps, and optional notes.
// Scratch files go under ScratchDir() ($STACK_BENCH_DIR or /var/tmp/stack-bench).
//
// Thread-safety: single-threaded helpers.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

namespace stack::bench {

struct Metric {
  std::string name;
  double ours = 0;
  double anchor = 0;
  std::string unit;         // "s", "MB/s", "IOPS", "MiB", "ratio"
  std::string anchor_desc;  // what the anchor is, e.g. "dd conv=fdatasync"
  std::string better;       // "lower" or "higher"
  int reps = 0;
  std::map<std::string, std::string> notes;  // extra facts printed with the metric
};

// Prints the metric as one JSON line (ratio = ours / anchor).
void Emit(const Metric& m);
// A lower-is-better timing metric from the medians of per-rep wall times
// (seconds), for callers that add notes before Emit.
Metric MedianSecondsMetric(const std::string& name, const std::vector<double>& ours,
                           const std::vector<double>& anchor, const std::string& anchor_desc);
// Emits a lower-is-better timing metric: the medians of the per-rep wall
// times (seconds) of ours and the anchor.
void EmitMedianSeconds(const std::string& name, const std::vector<double>& ours,
                       const std::vector<double>& anchor, const std::string& anchor_desc);

double Median(std::vector<double> v);
inline double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
// Wall time of f() in seconds.
double TimeIt(const std::function<void()>& f);
// Runs a shell command; aborts the benchmark with a message if it fails.
void Shell(const std::string& cmd);
// Wall time of a shell command in seconds (aborts if it fails).
double TimeShell(const std::string& cmd);
// The same for an anchor that fails now and then for reasons of its own
// (qemu-img's LUKS key setup times its KDF and gives up with "Unable to get
// accurate CPU usage" on a busy machine): a failed attempt is said on stderr,
// `reset` (a shell command) undoes what it left, and the command is timed
// again, up to `attempts` times; the time is the successful attempt's.
double TimeShellRetry(const std::string& cmd, const std::string& reset, int attempts = 3);
// A fresh scratch directory for this run (created; removed by the caller).
std::string ScratchDir(const std::string& tag);
// Bytes a file occupies on disk (st_blocks * 512); 0 if it is missing.
uint64_t AllocatedBytes(const std::string& path);
// Drops the page cache for a file (posix_fadvise DONTNEED), best effort.
void DropCache(const std::string& path);
// A file of `size` random bytes (from rng) at path.
void WriteRandomFile(const std::string& path, uint64_t size, std::mt19937_64& rng);
// A tree shaped like Debian's /usr/share with `files` files (~13.6 KB each
// on average) and ~6 % symlinks, generated deterministically (fs.build_tree,
// diff.files).
void MakeUsrShareTree(const std::string& root, int files);
// Aborts the process with a one-line message (benchmarks have no Status path).
[[noreturn]] void Die(const std::string& msg);

struct Options {
  int reps = 5;
  bool quick = false;  // smaller inputs, for smoke tests of the harness
};

// A benchmark: measures and emits one or more metrics.
using BenchFn = std::function<void(const Options&)>;

// Handles --list / --run NAME [--reps N] [--quick] over the registry.
int BenchMain(int argc, char** argv, const std::map<std::string, BenchFn>& registry);

}  // namespace stack::bench
