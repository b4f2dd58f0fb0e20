// Progress: rate and ETA on a terminal for long operations (build, export,
// import, verify); silent when stderr is not a TTY (scripts, CI, pipes).
//
// Updates are rate-limited (at most ~10 redraws a second) so calling
// Advance() per block is cheap. Finish() clears the line.
// Thread-safety: none; one operation, one thread.
#pragma once

#include <cstdint>
#include <string>

namespace stack::compose {

class Progress {
 public:
  // total may be 0 when unknown (no percentage or ETA then).
  Progress(std::string label, uint64_t total_bytes);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  void Advance(uint64_t bytes);
  void SetTotal(uint64_t total_bytes) { total_ = total_bytes; }
  // Starts over for the next stage of one operation (an image build's next
  // layer): a new label and total; count, rate and ETA from zero.
  void Restart(std::string label, uint64_t total_bytes);
  void Finish();
  bool enabled() const { return enabled_; }
  // Forces output on or off (tests; --progress/--no-progress).
  void set_enabled(bool on) { enabled_ = on; }

 private:
  void Draw(bool final);
  std::string label_;
  uint64_t total_;
  uint64_t done_ = 0;
  double start_;
  double last_draw_ = 0;
  bool enabled_;
  bool finished_ = false;
};

}  // namespace stack::compose
