// Text that came from outside (names in images, pool entries, host paths,
// archive members) made safe to print on one line of a terminal or log.
//
// One rule for the whole stack (spec/security.md "Names in output"): every
// byte below 0x20, DEL (0x7f) and every byte that is not part of a valid
// UTF-8 sequence becomes \xHH; everything else, backslash included, is kept.
// The result is printable, one line and valid UTF-8, and escaping it again
// changes nothing, so a layer may escape a name inside its message and the
// CLI still escapes every line it prints, without doubled backslashes. The
// price: a name that spells "\x0a" literally prints like one holding a
// newline (--json output keeps the exact bytes).
//
// Pure functions; thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace stack {

std::string EscapeText(std::string_view text);

// A 16-byte uuid as text: 8-4-4-4-12 lowercase hex.
std::string FormatUuid(const std::array<uint8_t, 16>& u);

}  // namespace stack
