// Export: request semantics over leased devices (see export.h).
#include "export.h"

#include <algorithm>
#include <cstring>

namespace stack::nbd {
namespace {

// Free devices kept for reuse; more are destroyed when returned (nbdkit runs
// at most 16 requests per connection, so this covers a few busy clients).
constexpr size_t kMaxFree = 64;
// Zeros written per request when an edge or a plain-view range is zeroed.
constexpr uint64_t kZeroChunk = 4u << 20;

uint64_t AlignDown(uint64_t v, uint64_t a) { return v / a * a; }
uint64_t AlignUp(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

}  // namespace

class Export::Lease {
 public:
  Lease(Export* e, std::unique_ptr<BlockDevice> d) : export_(e), dev_(std::move(d)) {}
  Lease(Lease&& o) noexcept = default;
  Lease& operator=(Lease&&) = delete;
  ~Lease() {
    if (dev_) export_->Release(std::move(dev_));
  }
  BlockDevice& operator*() { return *dev_; }
  BlockDevice* operator->() { return dev_.get(); }

 private:
  Export* export_;
  std::unique_ptr<BlockDevice> dev_;
};

Export::Export(ExportParams params, std::unique_ptr<BlockDevice> first, DeviceFactory factory)
    : params_(std::move(params)), factory_(std::move(factory)) {
  caps_ = first->capabilities();
  size_ = first->size_bytes();
  unit_ = first->block_size();
  write_unit_ = std::max(unit_, params_.lower_block_size);
  if (caps_.read_only) params_.read_only = true;
  free_.push_back(std::move(first));
}

Result<Export::Lease> Export::Acquire() {
  {
    std::lock_guard<std::mutex> lock(free_mu_);
    if (!free_.empty()) {
      std::unique_ptr<BlockDevice> d = std::move(free_.back());
      free_.pop_back();
      return Lease(this, std::move(d));
    }
  }
  // Made outside the lock: opening a device takes the pool's lock.
  ASSIGN_OR_RETURN(std::unique_ptr<BlockDevice> d, factory_());
  return Lease(this, std::move(d));
}

void Export::Release(std::unique_ptr<BlockDevice> dev) {
  std::lock_guard<std::mutex> lock(free_mu_);
  if (free_.size() < kMaxFree) free_.push_back(std::move(dev));
}

Status Export::CheckRange(uint64_t offset, uint64_t length, bool write) const {
  if (write && params_.read_only) {
    return Status::ReadOnly("export '" + params_.name + "' is read-only");
  }
  if (offset > size_ || length > size_ - offset) {
    return Status::OutOfRange("request " + std::to_string(offset) + "+" + std::to_string(length) +
                              " is past the end of export '" + params_.name + "' (" +
                              std::to_string(size_) + " bytes)");
  }
  return Status::Ok();
}

bool Export::WriteAligned(uint64_t offset, uint64_t length) const {
  return offset % write_unit_ == 0 && length % write_unit_ == 0;
}

Status Export::Read(uint64_t offset, std::span<uint8_t> out) {
  RETURN_IF_ERROR(CheckRange(offset, out.size(), false));
  if (out.empty()) return Status::Ok();
  std::shared_lock<std::shared_mutex> lock(rmw_mu_);
  ASSIGN_OR_RETURN(Lease dev, Acquire());
  if (offset % unit_ == 0 && out.size() % unit_ == 0) return dev->Read(offset, out);
  const uint64_t head = AlignDown(offset, unit_);
  const uint64_t tail = AlignUp(offset + out.size(), unit_);
  std::vector<uint8_t> buf(tail - head);
  RETURN_IF_ERROR(dev->Read(head, buf));
  std::memcpy(out.data(), buf.data() + (offset - head), out.size());
  return Status::Ok();
}

Status Export::WriteMerged(BlockDevice& dev, uint64_t offset, std::span<const uint8_t> data) {
  const uint64_t end = offset + data.size();
  const uint64_t head = AlignDown(offset, unit_);
  const uint64_t tail = AlignUp(end, unit_);
  std::vector<uint8_t> buf(tail - head);
  // The partly covered first and last units keep their other bytes.
  if (head < offset) {
    RETURN_IF_ERROR(dev.Read(head, std::span(buf).first(unit_)));
  }
  if (end < tail) {  // (the same unit as the first one when the range is short: read twice)
    RETURN_IF_ERROR(dev.Read(tail - unit_, std::span(buf).last(unit_)));
  }
  std::memcpy(buf.data() + (offset - head), data.data(), data.size());
  return dev.Write(head, buf);
}

Status Export::Write(uint64_t offset, std::span<const uint8_t> data, bool fua) {
  RETURN_IF_ERROR(CheckRange(offset, data.size(), true));
  if (!data.empty()) {
    if (WriteAligned(offset, data.size())) {
      std::shared_lock<std::shared_mutex> lock(rmw_mu_);
      ASSIGN_OR_RETURN(Lease dev, Acquire());
      RETURN_IF_ERROR(dev->Write(offset, data));
    } else {
      std::unique_lock<std::shared_mutex> lock(rmw_mu_);
      ASSIGN_OR_RETURN(Lease dev, Acquire());
      if (offset % unit_ == 0 && data.size() % unit_ == 0) {
        RETURN_IF_ERROR(dev->Write(offset, data));
      } else {
        RETURN_IF_ERROR(WriteMerged(*dev, offset, data));
      }
    }
  }
  return fua ? Flush() : Status::Ok();
}

Status Export::Zero(uint64_t offset, uint64_t length, bool fua) {
  RETURN_IF_ERROR(CheckRange(offset, length, true));
  if (length > 0) {
    const bool aligned = WriteAligned(offset, length);
    std::shared_lock<std::shared_mutex> shared(rmw_mu_, std::defer_lock);
    std::unique_lock<std::shared_mutex> exclusive(rmw_mu_, std::defer_lock);
    if (aligned) shared.lock();
    else exclusive.lock();
    ASSIGN_OR_RETURN(Lease dev, Acquire());
    const uint64_t end = offset + length;
    const uint64_t mid_begin = AlignUp(offset, unit_);
    const uint64_t mid_end = std::max(mid_begin, AlignDown(end, unit_));
    // Partial units at the edges: zero bytes merged into what is there.
    std::vector<uint8_t> zeros;
    auto zero_bytes = [&](uint64_t at, uint64_t len) -> Status {
      while (len > 0) {
        const uint64_t n = std::min(len, kZeroChunk);
        zeros.assign(n, 0);
        RETURN_IF_ERROR(WriteMerged(*dev, at, zeros));
        at += n;
        len -= n;
      }
      return Status::Ok();
    };
    if (mid_begin >= end) {
      RETURN_IF_ERROR(zero_bytes(offset, length));
    } else {
      if (offset < mid_begin) RETURN_IF_ERROR(zero_bytes(offset, mid_begin - offset));
      if (mid_end > mid_begin) RETURN_IF_ERROR(dev->WriteZeroes(mid_begin, mid_end - mid_begin));
      if (mid_end < end) RETURN_IF_ERROR(zero_bytes(mid_end, end - mid_end));
    }
  }
  return fua ? Flush() : Status::Ok();
}

Status Export::Trim(uint64_t offset, uint64_t length, bool fua) {
  RETURN_IF_ERROR(CheckRange(offset, length, true));
  const uint64_t begin = AlignUp(offset, write_unit_);
  const uint64_t end = AlignDown(offset + length, write_unit_);
  if (can_trim() && end > begin) {
    std::shared_lock<std::shared_mutex> lock(rmw_mu_);
    ASSIGN_OR_RETURN(Lease dev, Acquire());
    RETURN_IF_ERROR(dev->Discard(begin, end - begin));
  }
  return fua ? Flush() : Status::Ok();
}

Status Export::Flush() {
  ASSIGN_OR_RETURN(Lease dev, Acquire());
  return dev->Flush();
}

Result<std::vector<Extent>> Export::Allocated(uint64_t offset, uint64_t length) {
  RETURN_IF_ERROR(CheckRange(offset, length, false));
  const uint64_t begin = AlignDown(offset, unit_);
  const uint64_t end = std::min(size_, AlignUp(offset + length, unit_));
  if (end <= begin) return std::vector<Extent>{};
  std::shared_lock<std::shared_mutex> lock(rmw_mu_);
  ASSIGN_OR_RETURN(Lease dev, Acquire());
  return dev->AllocatedExtents(begin, end - begin);
}

}  // namespace stack::nbd
