#include "bench_util.h"

#include <sys/stat.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
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

}  // namespace stack::bench
