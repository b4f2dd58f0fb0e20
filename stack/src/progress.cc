#include "stack/progress.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>

namespace stack::compose {
namespace {
double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
std::string Human(double bytes) {
  const char* u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int i = 0;
  while (bytes >= 1024 && i < 4) {
    bytes /= 1024;
    ++i;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f %s", bytes, u[i]);
  return buf;
}
}  // namespace

Progress::Progress(std::string label, uint64_t total_bytes)
    : label_(std::move(label)), total_(total_bytes), start_(Now()),
      enabled_(::isatty(STDERR_FILENO) == 1) {}

Progress::~Progress() { Finish(); }

void Progress::Advance(uint64_t bytes) {
  done_ += bytes;
  if (!enabled_) return;
  double now = Now();
  if (now - last_draw_ < 0.1) return;
  last_draw_ = now;
  Draw(false);
}

void Progress::Draw(bool final) {
  double elapsed = Now() - start_;
  double rate = elapsed > 0 ? done_ / elapsed : 0;
  char line[256];
  if (total_ > 0) {
    double frac = static_cast<double>(done_) / static_cast<double>(total_);
    double eta = rate > 0 ? (static_cast<double>(total_ - std::min(done_, total_)) / rate) : 0;
    std::snprintf(line, sizeof line, "\r%s: %5.1f%% %s/%s %s/s ETA %02d:%02d ", label_.c_str(),
                  frac * 100, Human(done_).c_str(), Human(total_).c_str(), Human(rate).c_str(),
                  int(eta) / 60, int(eta) % 60);
  } else {
    std::snprintf(line, sizeof line, "\r%s: %s %s/s ", label_.c_str(), Human(done_).c_str(),
                  Human(rate).c_str());
  }
  std::fputs(line, stderr);
  if (final) std::fputs("\r\033[K", stderr);
  std::fflush(stderr);
}

void Progress::Restart(std::string label, uint64_t total_bytes) {
  Finish();
  label_ = std::move(label);
  total_ = total_bytes;
  done_ = 0;
  start_ = Now();
  last_draw_ = 0;
  finished_ = false;
}

void Progress::Finish() {
  if (finished_) return;
  finished_ = true;
  if (enabled_ && last_draw_ > 0) Draw(true);
}

}  // namespace stack::compose
