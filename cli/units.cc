#include "units.h"

#include <cstdio>
#include <limits>

namespace stack::cli {
namespace {

constexpr uint64_t kMaxSize = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());

Status Bad(const std::string& option, const std::string& text, const std::string& why) {
  return Status::InvalidArgument(option + " \"" + text + "\": " + why +
                                 " (a size is a whole number of bytes, optionally with a binary "
                                 "suffix K, M, G, T or P, e.g. 4096, 64M, 20G)");
}

// The shift of a suffix, or -1.
int SuffixShift(const std::string& unit) {
  static const struct {
    const char* name;
    int shift;
  } kUnits[] = {{"", 0},    {"B", 0},    {"K", 10},   {"KiB", 10}, {"M", 20},
                {"MiB", 20}, {"G", 30},  {"GiB", 30}, {"T", 40},   {"TiB", 40},
                {"P", 50},  {"PiB", 50}};
  for (const auto& u : kUnits)
    if (unit == u.name) return u.shift;
  // Lower case k/m/g/t/p: accepted, the same binary units.
  if (unit.size() == 1) {
    const std::string up(1, static_cast<char>(unit[0] - 'a' + 'A'));
    if (unit[0] >= 'a' && unit[0] <= 'z' && up != "B") return SuffixShift(up);
  }
  return -1;
}

}  // namespace

Result<uint64_t> ParseSize(const std::string& text, const std::string& option, bool allow_zero) {
  if (text.empty()) return Bad(option, text, "empty");
  if (text[0] == '-') return Bad(option, text, "negative");
  size_t i = 0;
  uint64_t value = 0;
  bool overflow = false;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
    const uint64_t d = static_cast<uint64_t>(text[i] - '0');
    if (value > (kMaxSize - d) / 10) overflow = true;
    else value = value * 10 + d;
    ++i;
  }
  if (i == 0) return Bad(option, text, "not a number");
  const std::string unit = text.substr(i);
  const int shift = SuffixShift(unit);
  if (shift < 0) {
    if (!unit.empty() && (unit[0] == '.' || unit[0] == ','))
      return Bad(option, text, "not a whole number");
    return Bad(option, text, "unknown unit \"" + unit + "\"");
  }
  if (overflow || (shift > 0 && value > (kMaxSize >> shift)))
    return Bad(option, text, "larger than the largest size, 8 EiB - 1 (9223372036854775807)");
  value <<= shift;
  if (value == 0 && !allow_zero) return Bad(option, text, "must be positive");
  return value;
}

std::string FormatSize(uint64_t bytes) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 6) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  if (u == 0) std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(bytes));
  else std::snprintf(buf, sizeof buf, "%.1f %s", v, kUnits[u]);
  return buf;
}

}  // namespace stack::cli
