#include "units.h"

#include <cctype>
#include <cmath>
#include <cstdio>

namespace stack::cli {

Result<uint64_t> ParseSize(const std::string& text) {
  size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.'))
    ++i;
  if (i == 0) return Status::InvalidArgument("size \"" + text + "\" does not start with a number");
  double value = 0;
  try {
    value = std::stod(text.substr(0, i));
  } catch (...) {
    return Status::InvalidArgument("size \"" + text + "\" is not a number");
  }
  std::string unit = text.substr(i);
  for (auto& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (unit.size() == 3 && unit.substr(1) == "IB") unit = unit.substr(0, 1);
  if (unit.size() == 2 && unit[1] == 'B') unit = unit.substr(0, 1);
  int shift = 0;
  if (unit.empty() || unit == "B") shift = 0;
  else if (unit == "K") shift = 10;
  else if (unit == "M") shift = 20;
  else if (unit == "G") shift = 30;
  else if (unit == "T") shift = 40;
  else if (unit == "P") shift = 50;
  else return Status::InvalidArgument("size \"" + text + "\" has unknown unit \"" + unit + "\"");
  double bytes = std::ldexp(value, shift);
  if (bytes >= 18446744073709551615.0) return Status::OutOfRange("size \"" + text + "\" too large");
  if (bytes != std::floor(bytes))
    return Status::InvalidArgument("size \"" + text + "\" is not a whole number of bytes");
  return static_cast<uint64_t>(bytes);
}

std::string FormatSize(uint64_t bytes) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 5) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  if (u == 0) std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(bytes));
  else std::snprintf(buf, sizeof buf, "%.1f %s", v, kUnits[u]);
  return buf;
}

}  // namespace stack::cli
