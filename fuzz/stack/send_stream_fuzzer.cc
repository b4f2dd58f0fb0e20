// libFuzzer target for the send stream parser (stack/send_stream.h): any
// input is parsed to its end or refused with a Status, never a crash, a
// read out of bounds or an allocation driven by an unchecked length.
// Seeds: fuzz/stack/seeds/send_stream_fuzzer/, streams made by `stack send`
// (fuzz/stack/make_seeds.sh).
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "stack/send_stream.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  size_t pos = 0;
  stack::compose::StreamReader r([&](std::span<uint8_t> out) -> stack::Result<size_t> {
    size_t n = std::min(out.size(), size - pos);
    if (n) std::memcpy(out.data(), data + pos, n);
    pos += n;
    return n;
  });
  auto h = r.ReadHeader();
  if (!h.ok()) return 0;
  for (;;) {
    auto rec = r.Next();
    if (!rec.ok() || rec->type == stack::compose::SendRecordType::kEnd) break;
    if (rec->type == stack::compose::SendRecordType::kWrite && rec->data.size() != rec->length)
      __builtin_trap();
  }
  return 0;
}
