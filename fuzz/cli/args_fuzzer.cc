// Fuzz target: the parsers of what users type and images name: sizes
// (cli/units: ParseSize), entry addresses (VOLUME[@SNAPSHOT]) and the one
// escaping rule for printing outside text (block/text.h). Beyond "no crash,
// no UB", each parser's contract is checked on every input:
//   - ParseSize: an accepted size is 1..2^63-1 (0 only when allowed), and
//     is exactly the digits times the suffix's power of 1024;
//   - ParseEntryAddress: an accepted address prints back as the input, and
//     uses only the characters the spec allows;
//   - EscapeText: one line of printable valid UTF-8, and idempotent.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "block/text.h"
#include "stack/address.h"
#include "units.h"

namespace {

void Require(bool ok) {
  if (!ok) std::abort();
}

void CheckSize(const std::string& text, bool allow_zero) {
  auto r = stack::cli::ParseSize(text, "--size", allow_zero);
  if (!r.ok()) {
    Require(r.status().Is(stack::Code::kInvalidArgument));
    return;
  }
  Require(*r <= uint64_t(INT64_MAX));
  Require(allow_zero || *r > 0);
  // Independent oracle: digits, then an optional suffix.
  size_t i = 0;
  unsigned __int128 v = 0;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') v = v * 10 + unsigned(text[i++] - '0');
  Require(i > 0);
  const std::string unit = text.substr(i);
  int shift = -1;
  const char* names[][3] = {{"", "B", "B"}, {"K", "KiB", "k"}, {"M", "MiB", "m"},
                            {"G", "GiB", "g"}, {"T", "TiB", "t"}, {"P", "PiB", "p"}};
  for (int s = 0; s < 6 && shift < 0; ++s)
    for (const char* n : names[s])
      if (unit == n) shift = s * 10;
  Require(shift >= 0);  // anything else must have been refused
  Require(uint64_t(v << shift) == *r);
}

void CheckAddress(const std::string& text) {
  auto a = stack::compose::ParseEntryAddress(text);
  if (!a.ok()) {
    Require(a.status().Is(stack::Code::kInvalidArgument));
    return;
  }
  Require(a->name() == text);
  for (char c : text) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == ':' || c == '+' || c == '-' || c == '@';
    Require(ok);
  }
}

void CheckEscape(const std::string& text) {
  const std::string once = stack::EscapeText(text);
  for (unsigned char c : once) Require(c >= 0x20 && c != 0x7f);
  Require(stack::EscapeText(once) == once);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 4096) return 0;
  const std::string text(reinterpret_cast<const char*>(data), size);
  CheckSize(text, false);
  CheckSize(text, true);
  CheckAddress(text);
  CheckEscape(text);
  return 0;
}
