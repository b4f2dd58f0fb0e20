// stack_crash_soak: power cuts through all layers (stack_crash_harness.h).
//
// For each seeded workload: one run without a cut counts the mutating store
// operations; then, in each cut mode, a run cuts the power at every
// `--stride`-th of them, reboots and checks. Prints
//   crash points: N, inconsistencies: M
// and exits 0 only if M == 0 and N >= --min-points. A cut point a re-run
// does not reach (its op count varied) is reported as UNREACHED, checked as
// an uncut run, and not counted.
//
//   --first-seed S     first workload seed (default 1)
//   --workloads W      at most W workloads (default: unbounded)
//   --seconds T        start no new workload after T seconds (default: unbounded)
//   --max-points N     stop once N crash points ran (default: unbounded)
//   --min-points N     fail unless at least N crash points ran (default 0)
//   --ops N            edits per workload (default: 12 + seed % 12)
//   --stride K         cut at every K-th mutating op (default 1: all)
//   --e2fsck-every N   export and e2fsck -fn every N-th point (0: none); a
//                      failing point is always re-run with e2fsck
//   --unlock-every N   unlock with the passphrase every N-th point (default 1);
//                      the others use the volume key (the header area is
//                      compared byte for byte at every point)
//   --case S:K:M       run one case (seed, cut point, mode 0-2) verbosely
//   --verbose 1        print each workload's mutating op count
//   --count-runs N     print the mutating op count of N uncut runs of
//                      --first-seed (a diagnostic: it must not vary)
// Exit 77 (skipped) when e2fsck is asked for and missing.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "stack_crash_harness.h"

using namespace stack;
using namespace stack::soak;

namespace {

struct Args {
  uint64_t first_seed = 1, workloads = UINT64_MAX, max_points = UINT64_MAX, min_points = 0;
  double seconds = 1e18;
  int ops = 0;
  uint64_t stride = 1, e2fsck_every = 0, unlock_every = 1, count_runs = 0;
  std::string one_case;
  bool verbose = false;
};

const char* ModeName(CutMode m) {
  switch (m) {
    case CutMode::kDropAll: return "drop-all";
    case CutMode::kTearLast: return "tear-last";
    case CutMode::kRandomSubset: return "random-subset";
  }
  return "?";
}

int OpsFor(const Args& a, uint64_t seed) { return a.ops ? a.ops : 12 + int(seed % 12); }

uint64_t CutSeed(uint64_t seed, uint64_t k, int mode) { return seed * 1000003 + k * 7 + mode; }

int RunOne(const Args& a) {
  unsigned long long s = 0, k = 0;
  int m = 0;
  if (std::sscanf(a.one_case.c_str(), "%llu:%llu:%d", &s, &k, &m) != 3 || m < 0 || m > 2) {
    std::fprintf(stderr, "--case SEED:CUT:MODE\n");
    return 2;
  }
  Workload w = Workload::Generate(s, OpsFor(a, s));
  std::printf("workload seed %llu:\n%s", s, w.Describe().c_str());
  RunOptions o;
  o.cut_at = int64_t(k);
  o.mode = CutMode(m);
  o.cut_seed = CutSeed(s, k, m);
  o.e2fsck = true;
  RunResult r = RunCase(w, o);
  std::printf("cut at %llu (%s): %s%s\n", k, ModeName(o.mode), r.cut ? "cut" : "not reached",
              r.ok ? ", consistent" : "");
  if (!r.ok) std::printf("INCONSISTENCY: %s\n", r.error.c_str());
  return r.ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string f = argv[i];
    if (i + 1 >= argc) {
      std::fprintf(stderr, "%s needs a value\n", f.c_str());
      return 2;
    }
    const char* v = argv[++i];
    if (f == "--first-seed") a.first_seed = std::strtoull(v, nullptr, 10);
    else if (f == "--workloads") a.workloads = std::strtoull(v, nullptr, 10);
    else if (f == "--seconds") a.seconds = std::atof(v);
    else if (f == "--max-points") a.max_points = std::strtoull(v, nullptr, 10);
    else if (f == "--min-points") a.min_points = std::strtoull(v, nullptr, 10);
    else if (f == "--ops") a.ops = std::atoi(v);
    else if (f == "--stride") a.stride = std::max<uint64_t>(1, std::strtoull(v, nullptr, 10));
    else if (f == "--e2fsck-every") a.e2fsck_every = std::strtoull(v, nullptr, 10);
    else if (f == "--unlock-every") a.unlock_every = std::max<uint64_t>(1, std::strtoull(v, nullptr, 10));
    else if (f == "--case") a.one_case = v;
    else if (f == "--count-runs") a.count_runs = std::strtoull(v, nullptr, 10);
    else if (f == "--verbose") a.verbose = std::atoi(v) != 0;
    else {
      std::fprintf(stderr, "unknown option %s\n", f.c_str());
      return 2;
    }
  }
  if ((a.e2fsck_every || !a.one_case.empty()) &&
      testing::RunCommand("command -v e2fsck >/dev/null 2>&1") != 0) {
    std::printf("SKIPPED: e2fsck (e2fsprogs) is not installed\n");
    return 77;
  }
  if (!a.one_case.empty()) return RunOne(a);
  if (a.count_runs) {
    Workload w = Workload::Generate(a.first_seed, OpsFor(a, a.first_seed));
    for (uint64_t i = 0; i < a.count_runs; ++i) {
      RunResult r = RunCase(w, {});
      std::printf("%llu%s\n", (unsigned long long)r.mutating_ops, r.ok ? "" : r.error.c_str());
    }
    return 0;
  }

  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  uint64_t points = 0, bad = 0, fscks = 0, unlocks = 0, workloads = 0, unreached = 0;
  double next_report = 60;
  for (uint64_t seed = a.first_seed; workloads < a.workloads && points < a.max_points &&
                                     elapsed() < a.seconds;
       ++seed, ++workloads) {
    Workload w = Workload::Generate(seed, OpsFor(a, seed));
    RunOptions none;
    none.e2fsck = a.e2fsck_every > 0;
    RunResult full = RunCase(w, none);
    if (!full.ok) {
      ++bad;
      std::printf("INCONSISTENCY seed %llu without a cut: %s\n", (unsigned long long)seed,
                  full.error.c_str());
      continue;
    }
    if (a.verbose) {
      std::printf("seed %llu: %llu mutating ops\n", (unsigned long long)seed,
                  (unsigned long long)full.mutating_ops);
    }
    for (int m = 0; m < 3 && points < a.max_points; ++m) {
      // Each mode starts at a different offset, so a stride still covers
      // every point in one mode or another.
      for (uint64_t k = uint64_t(m) % a.stride; k < full.mutating_ops && points < a.max_points;
           k += a.stride) {
        RunOptions o;
        o.cut_at = int64_t(k);
        o.mode = CutMode(m);
        o.cut_seed = CutSeed(seed, k, m);
        o.e2fsck = a.e2fsck_every > 0 && points % a.e2fsck_every == 0;
        o.passphrase = points % a.unlock_every == 0;
        RunResult r = RunCase(w, o);
        if (r.ok && !r.cut) {
          // The run was checked (uncut, against its final state) but is no
          // crash point: the op count varied between runs of one workload.
          ++unreached;
          std::printf("UNREACHED seed %llu cut %llu mode %d: the uncut run made %llu mutating "
                      "ops, this one %llu\n",
                      (unsigned long long)seed, (unsigned long long)k, m,
                      (unsigned long long)full.mutating_ops, (unsigned long long)r.mutating_ops);
          std::fflush(stdout);
          continue;
        }
        if (!r.ok && !(o.e2fsck && o.passphrase)) {
          o.e2fsck = true;  // every failure gets the oracle's view too
          o.passphrase = true;
          RunResult again = RunCase(w, o);
          r.error += "\n  re-run with e2fsck: " + (again.ok ? std::string("consistent") : again.error);
        }
        if (elapsed() >= next_report) {
          // Long runs show their rate as they go.
          std::printf("progress: %llu points, %llu inconsistencies, %.0f s\n",
                      (unsigned long long)points, (unsigned long long)bad, elapsed());
          std::fflush(stdout);
          next_report += 60;
        }
        fscks += r.e2fsck_ran;
        unlocks += o.passphrase;
        ++points;
        if (!r.ok) {
          ++bad;
          std::printf("INCONSISTENCY seed %llu cut %llu mode %d (%s) [--case %llu:%llu:%d]: %s\n",
                      (unsigned long long)seed, (unsigned long long)k, m, ModeName(CutMode(m)),
                      (unsigned long long)seed, (unsigned long long)k, m, r.error.c_str());
          std::fflush(stdout);
        }
      }
    }
  }
  const double t = elapsed();
  std::printf("crash points: %llu, inconsistencies: %llu\n", (unsigned long long)points,
              (unsigned long long)bad);
  if (unreached) {
    std::printf("unreached cut points: %llu (not counted; the mutating op count of a workload "
                "varied between runs)\n",
                (unsigned long long)unreached);
  }
  std::printf("workloads %llu (seeds %llu..%llu), passphrase unlocks %llu, e2fsck runs %llu, "
              "%.1f s, %.1f points/s\n",
              (unsigned long long)workloads, (unsigned long long)a.first_seed,
              (unsigned long long)(a.first_seed + workloads - 1), (unsigned long long)unlocks,
              (unsigned long long)fscks, t,
              t > 0 ? double(points) / t : 0.0);
  if (bad) return 1;
  if (points < a.min_points) {
    std::printf("FAIL: fewer than %llu crash points\n", (unsigned long long)a.min_points);
    return 1;
  }
  return 0;
}
