// GzipStream (see fsbridge/gzip_stream.h): zlib's inflate with gzip
// wrapping, which checks each member's CRC-32 and ISIZE before Z_STREAM_END.
#include "fsbridge/gzip_stream.h"

#include <zlib.h>

#include <cstring>
#include <vector>

namespace stack::fsbridge {

namespace {
constexpr size_t kOutChunk = 1 << 16;
}  // namespace

struct GzipStream::Impl {
  std::string name;
  std::function<Result<std::span<const uint8_t>>()> next;
  std::span<const uint8_t> in;  // what `next` gave and inflate has not taken
  bool input_ended = false;
  std::vector<uint8_t> out = std::vector<uint8_t>(kOutChunk);
  z_stream z{};
  bool ok = false;
  bool member_ended = false;
  bool done = false;

  Status Corrupt(const std::string& why) const {
    return Status::Corruption(name + ": gzip stream: " + why);
  }
  // Refills `in` when it is used up; false at the end of the input.
  Result<bool> Fill() {
    while (in.empty() && !input_ended) {
      ASSIGN_OR_RETURN(in, next());
      if (in.empty()) input_ended = true;
    }
    return !in.empty();
  }
};

GzipStream::GzipStream(std::string name,
                       std::function<Result<std::span<const uint8_t>>()> next)
    : impl_(std::make_unique<Impl>()) {
  impl_->name = std::move(name);
  impl_->next = std::move(next);
  impl_->ok = inflateInit2(&impl_->z, 15 + 16) == Z_OK;
}

GzipStream::~GzipStream() {
  if (impl_->ok) inflateEnd(&impl_->z);
}

Result<std::span<const uint8_t>> GzipStream::Next() {
  Impl& s = *impl_;
  if (!s.ok) return Status::Internal(s.name + ": zlib initialisation failed");
  while (!s.done) {
    ASSIGN_OR_RETURN(bool more, s.Fill());
    if (s.member_ended) {
      // After a member: another member, or only zero padding to the end.
      if (!more) {
        s.done = true;
        break;
      }
      if (s.in[0] == 0) {
        for (uint8_t b : s.in)
          if (b != 0) return s.Corrupt("data after the end of the gzip stream");
        s.in = {};
        continue;
      }
      if (inflateReset(&s.z) != Z_OK) return s.Corrupt("cannot start the next member");
      s.member_ended = false;
    }
    if (!more) return s.Corrupt("truncated (no trailer)");
    s.z.next_in = const_cast<Bytef*>(s.in.data());
    s.z.avail_in = uInt(std::min<size_t>(s.in.size(), 1u << 30));
    s.z.next_out = s.out.data();
    s.z.avail_out = uInt(s.out.size());
    const uInt offered = s.z.avail_in;
    const int rc = inflate(&s.z, Z_NO_FLUSH);
    s.in = s.in.subspan(offered - s.z.avail_in);
    const size_t got = s.out.size() - s.z.avail_out;
    if (rc == Z_STREAM_END) s.member_ended = true;
    else if (rc != Z_OK && rc != Z_BUF_ERROR) return s.Corrupt(s.z.msg ? s.z.msg : "inflate failed");
    if (got) return std::span<const uint8_t>(s.out.data(), got);
  }
  return std::span<const uint8_t>();
}

bool IsGzip(std::span<const uint8_t> head) {
  return head.size() >= 2 && head[0] == 0x1f && head[1] == 0x8b;
}

}  // namespace stack::fsbridge
