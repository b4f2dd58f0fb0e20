// Fuzzes the LUKS1 header decoder; whatever it accepts must round-trip.
#include <cstdint>
#include <vector>

#include "luks1_header.h"

using namespace stack::fde::internal;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto r = DecodeLuks1({data, size});
  if (!r.ok()) return 0;
  std::vector<uint8_t> out(kLuks1HeaderSize);
  if (!EncodeLuks1(*r, out).ok()) __builtin_trap();
  auto again = DecodeLuks1(out);
  if (!again.ok() || again->payload_offset != r->payload_offset ||
      again->key_bytes != r->key_bytes) {
    __builtin_trap();
  }
  return 0;
}
