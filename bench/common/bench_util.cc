#include "bench_util.h"

#include <sys/stat.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <sstream>

namespace stack::bench {
namespace {

std::string JsonString(const std::string& s) {
  std::string o = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      o += '\\';
      o += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      o += buf;
    } else {
      o += c;
    }
  }
  return o + "\"";
}

std::string Num(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

}  // namespace

void Emit(const Metric& m) {
  std::ostringstream o;
  o << "{\"name\":" << JsonString(m.name) << ",\"ours\":" << Num(m.ours)
    << ",\"anchor\":" << Num(m.anchor)
    << ",\"ratio\":" << (m.anchor != 0 ? Num(m.ours / m.anchor) : std::string("null"))
    << ",\"unit\":" << JsonString(m.unit) << ",\"anchor_desc\":" << JsonString(m.anchor_desc)
    << ",\"better\":" << JsonString(m.better) << ",\"reps\":" << m.reps;
  if (!m.notes.empty()) {
    o << ",\"notes\":{";
    bool first = true;
    for (auto& [k, v] : m.notes) {
      if (!first) o << ",";
      first = false;
      o << JsonString(k) << ":" << JsonString(v);
    }
    o << "}";
  }
  o << "}";
  std::cout << o.str() << std::endl;
}

Metric MedianSecondsMetric(const std::string& name, const std::vector<double>& ours,
                           const std::vector<double>& anchor, const std::string& anchor_desc) {
  Metric m;
  m.name = name;
  m.ours = Median(ours);
  m.anchor = Median(anchor);
  m.unit = "s";
  m.anchor_desc = anchor_desc;
  m.better = "lower";
  m.reps = static_cast<int>(ours.size());
  return m;
}

void EmitMedianSeconds(const std::string& name, const std::vector<double>& ours,
                       const std::vector<double>& anchor, const std::string& anchor_desc) {
  Emit(MedianSecondsMetric(name, ours, anchor, anchor_desc));
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double TimeIt(const std::function<void()>& f) {
  double t0 = Now();
  f();
  return Now() - t0;
}

void Die(const std::string& msg) {
  std::cerr << "bench: " << msg << std::endl;
  std::exit(1);
}

void Shell(const std::string& cmd) {
  int rc = std::system(cmd.c_str());
  if (rc != 0) Die("command failed (" + std::to_string(rc) + "): " + cmd);
}

double TimeShell(const std::string& cmd) {
  return TimeIt([&] { Shell(cmd); });
}

double TimeShellRetry(const std::string& cmd, const std::string& reset, int attempts) {
  for (int a = 1;; ++a) {
    int rc = 0;
    const double t = TimeIt([&] { rc = std::system(cmd.c_str()); });
    if (rc == 0) return t;
    if (a >= attempts) Die("command failed (" + std::to_string(rc) + ") " + std::to_string(a) +
                           " times: " + cmd);
    std::fprintf(stderr, "bench: anchor attempt %d failed (%d), timing it again: %s\n", a, rc,
                 cmd.c_str());
    Shell(reset);
  }
}

std::string ScratchDir(const std::string& tag) {
  const char* base = std::getenv("STACK_BENCH_DIR");
  std::filesystem::path root = base ? base : "/var/tmp/stack-bench";
  std::filesystem::create_directories(root);
  std::string tmpl = (root / (tag + "-XXXXXX")).string();
  if (!::mkdtemp(tmpl.data())) Die("mkdtemp " + tmpl + ": " + std::strerror(errno));
  return tmpl;
}

uint64_t AllocatedBytes(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 0;
  return static_cast<uint64_t>(st.st_blocks) * 512;
}

void DropCache(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  ::fdatasync(fd);
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
}

int BenchMain(int argc, char** argv, const std::map<std::string, BenchFn>& registry) {
  Options opts;
  std::vector<std::string> names;
  bool list = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--list") {
      list = true;
    } else if (a == "--run" && i + 1 < argc) {
      names.push_back(argv[++i]);
    } else if (a == "--reps" && i + 1 < argc) {
      opts.reps = std::max(1, std::atoi(argv[++i]));
    } else if (a == "--quick") {
      opts.quick = true;
    } else {
      std::cerr << "usage: " << argv[0] << " --list | --run NAME [--reps N] [--quick]\n";
      return 2;
    }
  }
  if (list) {
    for (auto& [name, fn] : registry) std::cout << name << "\n";
    return 0;
  }
  if (names.empty()) {
    std::cerr << "nothing to run (use --list / --run NAME)\n";
    return 2;
  }
  for (auto& n : names) {
    auto it = registry.find(n);
    if (it == registry.end()) {
      std::cerr << "unknown benchmark " << n << "\n";
      return 2;
    }
    it->second(opts);
  }
  return 0;
}

void WriteRandomFile(const std::string& path, uint64_t size, std::mt19937_64& rng) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) Die("create " + path);
  std::vector<uint64_t> buf(size_t((std::min<uint64_t>(size, 1 << 20) + 7) / 8));
  uint64_t left = size;
  while (left) {
    for (auto& w : buf) w = rng();
    size_t n = size_t(std::min<uint64_t>(left, buf.size() * 8));
    if (::write(fd, buf.data(), n) != ssize_t(n)) Die("write " + path);
    left -= n;
  }
  ::close(fd);
}

// File sizes following the quantiles of a Debian /usr/share (p50 1.4 KB,
// p90 17.5 KB, p99 ~120 KB, p99.9 900 KB, max a few MB), log-uniform
// inside each band: about 13.6 KB on average.
static uint64_t PickSize(std::mt19937_64& rng) {
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
void MakeUsrShareTree(const std::string& root, int files) {
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
      WriteRandomFile(f, PickSize(rng), rng);
      if (n % 16 == 0)  // ~6 % symlinks, like /usr/share
        std::filesystem::create_symlink("file" + std::to_string(n) + ".dat", f + ".lnk");
    }
  }
}


}  // namespace stack::bench
