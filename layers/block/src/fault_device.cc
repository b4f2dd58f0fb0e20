#include "block/fault_device.h"

#include <algorithm>
#include <random>

namespace stack {

FaultDevice::FaultDevice(std::unique_ptr<BlockDevice> inner, std::shared_ptr<FaultController> ctl)
    : PassthroughDevice(std::move(inner)), ctl_(std::move(ctl)) {}

Status FaultDevice::Admit(bool mutating, uint64_t offset, std::span<const uint8_t> torn) {
  FaultController& c = *ctl_;
  if (c.power_cut_) return Status::IoError("power is off (simulated power cut) on " + describe());
  const uint64_t n = c.ops_++;
  if (c.fail_at_ && (n == *c.fail_at_ || (c.fail_sticky_ && n > *c.fail_at_))) {
    return Status(c.fail_code_, "injected failure of operation " + std::to_string(n) + " on " +
                                    describe(),
                  c.fail_code_ == Code::kIoError ? 5 /* EIO */ : 0);
  }
  if (mutating) {
    const uint64_t m = c.mutating_ops_++;
    if (c.cut_at_ && m == *c.cut_at_) {
      RETURN_IF_ERROR(PowerCut(offset, torn));
      return Status::IoError("power cut (simulated) at mutating operation " + std::to_string(m));
    }
  }
  return Status::Ok();
}

Status FaultDevice::Remember(uint64_t offset, uint64_t length) {
  const uint32_t bs = block_size();
  std::vector<uint8_t> buf(bs);
  for (uint64_t b = offset / bs; b < (offset + length) / bs; ++b) {
    if (unflushed_.count(b)) continue;
    RETURN_IF_ERROR(inner().Read(b * bs, buf));
    unflushed_[b].push_back(buf);
  }
  return Status::Ok();
}

void FaultDevice::RecordVersion(uint64_t offset, std::span<const uint8_t> data) {
  const uint32_t bs = block_size();
  for (uint64_t i = 0; i < data.size() / bs; ++i) {
    unflushed_[offset / bs + i].emplace_back(data.begin() + i * bs, data.begin() + (i + 1) * bs);
  }
}

Status FaultDevice::PowerCut(uint64_t offset, std::span<const uint8_t> torn) {
  FaultController& c = *ctl_;
  c.power_cut_ = true;
  const uint32_t bs = block_size();
  std::mt19937_64 rng(c.cut_seed_);
  for (auto& [block, versions] : unflushed_) {
    size_t pick = 0;  // the pre-flush content
    if (c.cut_mode_ == CutMode::kRandomSubset) pick = rng() % versions.size();
    RETURN_IF_ERROR(inner().Write(block * bs, versions[pick]));
  }
  unflushed_.clear();
  if (c.cut_mode_ == CutMode::kTearLast && !torn.empty()) {
    // A prefix of whole 512-byte sectors of the interrupted write lands.
    const uint64_t sectors = torn.size() / 512;
    const uint64_t keep = rng() % sectors;
    if (keep > 0) {
      // Read-modify-write whole blocks around the landed prefix.
      const uint64_t first = offset / bs;
      const uint64_t bytes = keep * 512;
      const uint64_t nblocks = (bytes + bs - 1) / bs;
      std::vector<uint8_t> buf(nblocks * bs);
      RETURN_IF_ERROR(inner().Read(first * bs, buf));
      std::copy(torn.begin(), torn.begin() + static_cast<ptrdiff_t>(bytes), buf.begin());
      RETURN_IF_ERROR(inner().Write(first * bs, buf));
    }
  }
  return Status::Ok();
}

Status FaultDevice::DoRead(uint64_t offset, std::span<uint8_t> out) {
  RETURN_IF_ERROR(Admit(false, 0, {}));
  ++ctl_->reads_;
  return inner().Read(offset, out);
}

Status FaultDevice::DoWrite(uint64_t offset, std::span<const uint8_t> data) {
  RETURN_IF_ERROR(Remember(offset, data.size()));
  RETURN_IF_ERROR(Admit(true, offset, data));
  ++ctl_->writes_;
  RETURN_IF_ERROR(inner().Write(offset, data));
  RecordVersion(offset, data);
  return Status::Ok();
}

Status FaultDevice::DoFlush() {
  RETURN_IF_ERROR(Admit(true, 0, {}));
  ++ctl_->flushes_;
  RETURN_IF_ERROR(inner().Flush());
  unflushed_.clear();
  return Status::Ok();
}

Status FaultDevice::DoDiscard(uint64_t offset, uint64_t length) {
  RETURN_IF_ERROR(Remember(offset, length));
  RETURN_IF_ERROR(Admit(true, 0, {}));
  ++ctl_->discards_;
  RETURN_IF_ERROR(inner().Discard(offset, length));
  std::vector<uint8_t> now(length);
  RETURN_IF_ERROR(inner().Read(offset, now));
  RecordVersion(offset, now);
  return Status::Ok();
}

Status FaultDevice::DoWriteZeroes(uint64_t offset, uint64_t length) {
  RETURN_IF_ERROR(Remember(offset, length));
  RETURN_IF_ERROR(Admit(true, 0, {}));
  ++ctl_->writes_;
  RETURN_IF_ERROR(inner().WriteZeroes(offset, length));
  std::vector<uint8_t> zeros(length, 0);
  RecordVersion(offset, zeros);
  return Status::Ok();
}

}  // namespace stack
