#include "block/write_behind_device.h"

#include <algorithm>
#include <cstring>

namespace stack {

WriteBehindDevice::WriteBehindDevice(std::unique_ptr<BlockDevice> inner, size_t max_pending_bytes)
    : inner_(std::move(inner)),
      max_pending_(std::max<size_t>(max_pending_bytes, 1)),
      block_size_(inner_->block_size()),
      block_count_(inner_->block_count()),
      caps_(inner_->capabilities()),
      worker_([this] { Worker(); }) {}

WriteBehindDevice::~WriteBehindDevice() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  changed_.notify_all();
  worker_.join();
}

std::string WriteBehindDevice::describe() const {
  std::lock_guard<std::mutex> lower(lower_mu_);
  return inner_->describe();
}

void WriteBehindDevice::Worker() {
  std::unique_lock<std::mutex> lk(mu_);
  for (;;) {
    changed_.wait(lk, [&] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, and everything written
    // The front stays in the queue while it is written, so reads see it.
    const uint64_t at = queue_.front().offset;
    const std::span<const uint8_t> data(queue_.front().data);
    lk.unlock();
    // In slices, letting a waiting reader in between: a read not covered by
    // the queue then waits for one slice, not for a whole large write.
    Status st;
    for (size_t done = 0; done < data.size() && st.ok();) {
      // Sleeps (a futex), not spins: the reader needs the second core.
      for (int r; (r = readers_waiting_.load(std::memory_order_acquire)) > 0;) {
        readers_waiting_.wait(r, std::memory_order_acquire);
      }
      const size_t n = std::min(kSliceBytes, data.size() - done);
      std::lock_guard<std::mutex> lower(lower_mu_);
      st = inner_->Write(at + done, data.subspan(done, n));
      done += n;
    }
    lk.lock();
    Pending done = std::move(queue_.front());
    queue_.pop_front();
    queued_bytes_ -= done.data.size();
    // Spares up to the queue's bound: a queue that drained and fills again
    // reuses them instead of allocating (and faulting in) fresh buffers.
    if (spare_bytes_ + done.data.capacity() <= max_pending_) {
      spare_bytes_ += done.data.capacity();
      spare_.push_back(std::move(done.data));
    }
    if (!st.ok() && error_.ok()) {
      error_ = st.WithContext("queued write of " + std::to_string(data.size()) +
                              " bytes at byte " + std::to_string(at));
      // What was queued after it is dropped: the device is broken.
      for (auto& q : queue_) queued_bytes_ -= q.data.size();
      queue_.clear();
    }
    changed_.notify_all();
  }
}

Status WriteBehindDevice::Drain() {
  std::unique_lock<std::mutex> lower;
  return DrainLocked(lower);
}

Status WriteBehindDevice::DrainLocked(std::unique_lock<std::mutex>& lower) {
  {
    std::unique_lock<std::mutex> lk(mu_);
    changed_.wait(lk, [&] { return !error_.ok() || queue_.empty(); });
    if (!error_.ok()) return error_;
  }
  // mu_ is released first (lock order lower_mu_ -> mu_). Nothing can be
  // queued meanwhile: only the one caller queues writes.
  lower = std::unique_lock<std::mutex>(lower_mu_);
  return Status::Ok();
}

Status WriteBehindDevice::WaitForRoom(size_t bytes, bool largest, std::vector<uint8_t>* spare) {
  std::unique_lock<std::mutex> lk(mu_);
  changed_.wait(lk, [&] {
    return !error_.ok() || queued_bytes_ == 0 || queued_bytes_ + bytes <= max_pending_;
  });
  if (!error_.ok()) return error_;
  if (spare_.empty()) return Status::Ok();
  auto pick = spare_.end() - 1;
  if (largest) {
    pick = std::max_element(spare_.begin(), spare_.end(),
                            [](const auto& a, const auto& b) { return a.capacity() < b.capacity(); });
  }
  spare_bytes_ -= pick->capacity();
  *spare = std::move(*pick);
  spare_.erase(pick);
  return Status::Ok();
}

Status WriteBehindDevice::Enqueue(uint64_t offset, std::vector<uint8_t> data) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (!error_.ok()) return error_;
    queued_bytes_ += data.size();
    queue_.push_back(Pending{offset, std::move(data)});
  }
  changed_.notify_all();
  return Status::Ok();
}

Status WriteBehindDevice::DoWrite(uint64_t offset, std::span<const uint8_t> data) {
  std::vector<uint8_t> buf;
  RETURN_IF_ERROR(WaitForRoom(data.size(), false, &buf));
  buf.assign(data.begin(), data.end());  // outside the lock: the worker goes on
  return Enqueue(offset, std::move(buf));
}

Status WriteBehindDevice::DoWriteBuffer(uint64_t offset, std::vector<uint8_t>& data) {
  // The caller refills what it gets back: give it the roomiest spare.
  std::vector<uint8_t> back;
  RETURN_IF_ERROR(WaitForRoom(data.size(), true, &back));
  std::vector<uint8_t> mine = std::move(data);
  data = std::move(back);
  return Enqueue(offset, std::move(mine));
}

Status WriteBehindDevice::DoRead(uint64_t offset, std::span<uint8_t> out) {
  const uint64_t end = offset + out.size();
  // Under mu_: copy what the queue holds for the range, oldest first, and
  // note which blocks it covers.
  struct Piece {
    uint64_t at;
    std::vector<uint8_t> bytes;
  };
  std::vector<Piece> pieces;
  std::vector<bool> covered(out.size() / block_size_, false);
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (!error_.ok()) return error_;
    for (const Pending& p : queue_) {
      const uint64_t lo = std::max(offset, p.offset);
      const uint64_t hi = std::min<uint64_t>(end, p.offset + p.data.size());
      if (lo >= hi) continue;
      pieces.push_back(Piece{lo, std::vector<uint8_t>(p.data.begin() + long(lo - p.offset),
                                                      p.data.begin() + long(hi - p.offset))});
      for (uint64_t b = (lo - offset) / block_size_; b < (hi - offset) / block_size_; ++b) {
        covered[b] = true;
      }
    }
  }
  if (!std::all_of(covered.begin(), covered.end(), [](bool c) { return c; })) {
    // Read below, then lay the queued data over it: writes the worker
    // applies meanwhile carry the same bytes, so the result is the same
    // whichever of them landed first.
    readers_waiting_.fetch_add(1, std::memory_order_acq_rel);
    std::unique_lock<std::mutex> lower(lower_mu_);
    readers_waiting_.fetch_sub(1, std::memory_order_acq_rel);
    readers_waiting_.notify_all();
    RETURN_IF_ERROR(inner_->Read(offset, out));
  }
  for (const Piece& p : pieces) {
    std::memcpy(out.data() + (p.at - offset), p.bytes.data(), p.bytes.size());
  }
  return Status::Ok();
}

Status WriteBehindDevice::DoFlush() {
  std::unique_lock<std::mutex> lower;
  RETURN_IF_ERROR(DrainLocked(lower));
  return inner_->Flush();
}

Status WriteBehindDevice::DoDiscard(uint64_t offset, uint64_t length) {
  std::unique_lock<std::mutex> lower;
  RETURN_IF_ERROR(DrainLocked(lower));
  return inner_->Discard(offset, length);
}

Status WriteBehindDevice::DoWriteZeroes(uint64_t offset, uint64_t length) {
  std::unique_lock<std::mutex> lower;
  RETURN_IF_ERROR(DrainLocked(lower));
  return inner_->WriteZeroes(offset, length);
}

Result<std::vector<Extent>> WriteBehindDevice::DoAllocatedExtents(uint64_t offset,
                                                                  uint64_t length) {
  std::unique_lock<std::mutex> lower;
  RETURN_IF_ERROR(DrainLocked(lower));
  return inner_->AllocatedExtents(offset, length);
}

}  // namespace stack
