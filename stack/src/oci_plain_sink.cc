// PlainSink (oci_plain_sink.h): a producer/consumer pair of buffer lists.
#include "oci_plain_sink.h"

namespace stack::compose::oci {
namespace {

constexpr size_t kBufferBytes = 1 << 20;
constexpr size_t kBuffers = 4;

}  // namespace

PlainSink::PlainSink(Spool* spool) : spool_(spool) {
  cur_.reserve(kBufferBytes);
  for (size_t i = 1; i < kBuffers; i++) {
    free_.emplace_back();
    free_.back().reserve(kBufferBytes);
  }
  worker_ = std::thread([this] { Run(); });
}

PlainSink::~PlainSink() {
  {
    std::lock_guard<std::mutex> l(mu_);
    closing_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
}

Status PlainSink::Push(std::span<const uint8_t> data) {
  while (!data.empty()) {
    const size_t n = std::min(data.size(), kBufferBytes - cur_.size());
    cur_.insert(cur_.end(), data.begin(), data.begin() + ptrdiff_t(n));
    data = data.subspan(n);
    if (cur_.size() == kBufferBytes) RETURN_IF_ERROR(HandOver());
  }
  return Status::Ok();
}

Status PlainSink::HandOver() {
  std::unique_lock<std::mutex> l(mu_);
  cv_.wait(l, [this] { return !free_.empty() || !error_.ok(); });
  if (!error_.ok()) return error_;
  full_.push_back(std::move(cur_));
  cur_ = std::move(free_.back());
  free_.pop_back();
  cur_.clear();
  l.unlock();
  cv_.notify_all();
  return Status::Ok();
}

Result<std::array<uint8_t, 32>> PlainSink::Finish() {
  // A second call would join a joined thread (std::system_error, and so
  // std::terminate in a noexcept path): refused instead.
  if (!worker_.joinable()) return Status::Internal("PlainSink::Finish called twice");
  if (!cur_.empty()) RETURN_IF_ERROR(HandOver());
  {
    std::lock_guard<std::mutex> l(mu_);
    closing_ = true;
  }
  cv_.notify_all();
  worker_.join();
  RETURN_IF_ERROR(error_);
  return hash_.Final();
}

void PlainSink::Run() {
  std::unique_lock<std::mutex> l(mu_);
  while (true) {
    cv_.wait(l, [this] { return !full_.empty() || closing_; });
    if (full_.empty()) return;  // closing, and everything done
    std::vector<uint8_t> buf = std::move(full_.front());
    full_.pop_front();
    const bool failed = !error_.ok();
    l.unlock();
    Status s;
    if (!failed) {  // after a failure, buffers are only given back
      hash_.Update(buf);
      if (spool_) s = spool_->Append(buf);
    }
    l.lock();
    if (!s.ok() && error_.ok()) error_ = s;
    free_.push_back(std::move(buf));
    cv_.notify_all();
  }
}

}  // namespace stack::compose::oci
