// Fuzzes the LUKS2 header reader: the binary codec, checksum handling, the
// two-copy selection and the JSON metadata validation.
//
// Input byte 0 picks the mode:
//   even: the rest is a raw header image (both copies) given to ParseLuks2Image;
//   odd:  the rest is JSON text, sealed into a valid header pair (checksums
//         right) so the fuzzer reaches the metadata validation directly.
#include <cstdint>
#include <cstring>
#include <vector>

#include "luks2_header.h"
#include "luks2_disk.h"

using namespace stack::fde::internal;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t mode = data[0];
  ++data;
  --size;
  if ((mode & 1) == 0) {
    auto r = ParseLuks2Image({data, size});
    (void)r;
    return 0;
  }
  constexpr uint64_t kHdr = kLuks2DefaultHdrSize;
  if (size >= kHdr - kLuks2BinarySize) return 0;
  std::vector<uint8_t> image(2 * kHdr + 4096, 0);
  for (int copy = 0; copy < 2; ++copy) {
    Luks2Binary b;
    b.secondary = copy == 1;
    b.hdr_offset = copy == 1 ? kHdr : 0;
    b.seqid = 1 + (mode >> 1) * copy;
    b.uuid = "00000000-0000-4000-8000-000000000000";
    std::span<uint8_t> area(image.data() + b.hdr_offset, kHdr);
    if (!EncodeLuks2Binary(b, area).ok()) return 0;
    std::memcpy(area.data() + kLuks2BinarySize, data, size);
    if (!Luks2Checksum(b.csum_alg, area, &b.csum).ok()) return 0;
    if (!EncodeLuks2Binary(b, area).ok()) return 0;
  }
  auto r = ParseLuks2Image(image);
  if (r.ok()) {
    // What we accept must re-encode and read back the same way.
    std::vector<uint8_t> again;
    if (EncodeLuks2Copy(*r, false, &again).ok()) {
      std::vector<uint8_t> img2(2 * kHdr + 4096, 0);
      std::memcpy(img2.data(), again.data(), again.size());
      if (EncodeLuks2Copy(*r, true, &again).ok()) {
        std::memcpy(img2.data() + kHdr, again.data(), again.size());
        auto r2 = ParseLuks2Image(img2);
        if (!r2.ok()) __builtin_trap();
      }
    }
  }
  return 0;
}
