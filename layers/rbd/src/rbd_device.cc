// RbdDevice (see rbd/rbd.h).
#include <rbd/librbd.h>

#include <algorithm>
#include <utility>
#include <vector>

#include "rbd/rbd.h"
#include "rbd_status.h"

namespace stack::rbd {
namespace {
rbd_image_t H(Image& i) { return static_cast<rbd_image_t>(i.handle()); }
}  // namespace

RbdDevice::RbdDevice(std::shared_ptr<Image> image, bool read_only)
    : image_(std::move(image)), read_only_(read_only || image_->read_only()) {}

RbdDevice::~RbdDevice() = default;

uint64_t RbdDevice::block_count() const {
  uint64_t size = 0;
  if (rbd_get_size(H(*image_), &size) < 0) return 0;
  return size / block_size();
}

DeviceCapabilities RbdDevice::capabilities() const {
  DeviceCapabilities c;
  c.read_only = read_only_;
  c.unwritten_reads_zero = true;
  c.discard_supported = true;
  c.discard_zeroes = true;
  c.holes_read_zero = true;
  c.persistent = true;
  return c;
}

std::string RbdDevice::describe() const { return image_->describe(); }

Status RbdDevice::DoRead(uint64_t offset, std::span<uint8_t> out) {
  ssize_t n = rbd_read(H(*image_), offset, out.size(), reinterpret_cast<char*>(out.data()));
  if (n < 0) return FromRbd("read " + describe(), static_cast<int>(n));
  if (static_cast<size_t>(n) != out.size())
    return Status::IoError("short read from " + describe());
  return Status::Ok();
}

Status RbdDevice::DoWrite(uint64_t offset, std::span<const uint8_t> data) {
  // A large write goes out as several requests at once (one synchronous
  // rbd_write waits for each OSD round trip in turn); all are waited for
  // before returning, so the contract is a plain write's.
  constexpr size_t kPiece = 1u << 20;
  constexpr size_t kInFlight = 8;
  if (data.size() <= kPiece) {
    ssize_t n = rbd_write(H(*image_), offset, data.size(), reinterpret_cast<const char*>(data.data()));
    if (n < 0) return FromRbd("write " + describe(), static_cast<int>(n));
    if (static_cast<size_t>(n) != data.size())
      return Status::IoError("short write to " + describe());
    return Status::Ok();
  }
  Status first = Status::Ok();
  for (size_t base = 0; base < data.size(); base += kPiece * kInFlight) {
    std::vector<std::pair<rbd_completion_t, size_t>> pending;  // completion, length
    for (size_t at = base; at < std::min(data.size(), base + kPiece * kInFlight); at += kPiece) {
      const size_t len = std::min(kPiece, data.size() - at);
      rbd_completion_t c = nullptr;
      int r = rbd_aio_create_completion(nullptr, nullptr, &c);
      if (r == 0) {
        r = rbd_aio_write(H(*image_), offset + at, len,
                          reinterpret_cast<const char*>(data.data() + at), c);
        if (r < 0) rbd_aio_release(c);
      }
      if (r < 0) {
        if (first.ok()) first = FromRbd("write " + describe(), r);
        break;
      }
      pending.emplace_back(c, len);
    }
    for (auto& [c, len] : pending) {  // every started request ends before we return
      rbd_aio_wait_for_complete(c);
      const ssize_t n = rbd_aio_get_return_value(c);
      rbd_aio_release(c);
      if (first.ok() && n < 0) first = FromRbd("write " + describe(), static_cast<int>(n));
      else if (first.ok() && static_cast<size_t>(n) != len)
        first = Status::IoError("short write to " + describe());
    }
    if (!first.ok()) return first;
  }
  return first;
}

Status RbdDevice::DoFlush() { return FromRbd("flush " + describe(), rbd_flush(H(*image_))); }

Status RbdDevice::DoDiscard(uint64_t offset, uint64_t length) {
  return FromRbd("discard " + describe(), rbd_discard(H(*image_), offset, length));
}

Status RbdDevice::DoWriteZeroes(uint64_t offset, uint64_t length) {
  // Chunks: librbd takes a size_t length but large requests are split anyway.
  constexpr uint64_t kChunk = 1ull << 30;
  while (length) {
    const uint64_t n = std::min(length, kChunk);
    ssize_t r = rbd_write_zeroes(H(*image_), offset, n, 0, 0);
    if (r < 0) return FromRbd("write zeroes to " + describe(), static_cast<int>(r));
    offset += n;
    length -= n;
  }
  return Status::Ok();
}

Result<std::vector<Extent>> RbdDevice::DoAllocatedExtents(uint64_t offset, uint64_t length) {
  std::vector<Extent> out;
  const uint64_t end = offset + length;
  const uint64_t bs = block_size();
  RETURN_IF_ERROR(image_->DiffIterate("", [&](const DiffExtent& e) {
    if (!e.exists) return Status::Ok();
    uint64_t a = std::max(e.offset, offset), b = std::min(e.offset + e.length, end);
    if (a >= b) return Status::Ok();
    a = a / bs * bs;
    b = (b + bs - 1) / bs * bs;
    if (!out.empty() && out.back().end() >= a) out.back().length = std::max(out.back().end(), b) - out.back().offset;
    else out.push_back({a, b - a});
    return Status::Ok();
  }, true, offset, length));
  return out;
}

}  // namespace stack::rbd
