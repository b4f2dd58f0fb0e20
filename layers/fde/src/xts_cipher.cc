// XtsCipher: whole-sector AES-XTS-plain64 over the crypto backend's XtsLane
// (crypto.h), optionally split across threads, one lane per thread.
#include "fde/xts_cipher.h"

#include <algorithm>
#include <cstring>
#include <thread>
#include <vector>

#include "crypto.h"
#include "fde/secret.h"

namespace stack::fde {

using internal::XtsLane;

struct XtsCipher::Impl {
  Secret key;  // kept to key further lanes (set_threads)
  std::vector<std::unique_ptr<XtsLane>> lanes;  // lanes[0] always exists
  unsigned threads = 1;
  size_t min_parallel = 512 * 1024;
};

XtsCipher::XtsCipher(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
XtsCipher::~XtsCipher() = default;

Result<std::unique_ptr<XtsCipher>> XtsCipher::Create(std::span<const uint8_t> key) {
  if (key.size() != 64 && key.size() != 32) {
    return Status::InvalidArgument("XTS key must be 32 or 64 bytes");
  }
  const size_t half = key.size() / 2;
  if (std::memcmp(key.data(), key.data() + half, half) == 0) {
    return Status::InvalidArgument("XTS key halves must differ");
  }
  auto impl = std::make_unique<Impl>();
  ASSIGN_OR_RETURN(impl->key, Secret::Copy(key));
  ASSIGN_OR_RETURN(auto lane, XtsLane::Create(impl->key.bytes()));
  impl->lanes.push_back(std::move(lane));
  return std::unique_ptr<XtsCipher>(new XtsCipher(std::move(impl)));
}

void XtsCipher::set_threads(unsigned n, size_t min_parallel_bytes) {
  impl_->threads = std::clamp(n, 1u, 16u);
  impl_->min_parallel = std::max<size_t>(min_parallel_bytes, 4096);
}

unsigned XtsCipher::threads() const { return impl_->threads; }

Status XtsCipher::Encrypt(std::span<const uint8_t> in, std::span<uint8_t> out,
                          uint32_t sector_size, uint64_t first_iv) {
  return Run(true, in, out, sector_size, first_iv);
}

Status XtsCipher::Decrypt(std::span<const uint8_t> in, std::span<uint8_t> out,
                          uint32_t sector_size, uint64_t first_iv) {
  return Run(false, in, out, sector_size, first_iv);
}

Status XtsCipher::Run(bool encrypt, std::span<const uint8_t> in, std::span<uint8_t> out,
                      uint32_t sector_size, uint64_t first_iv) {
  if (sector_size < 512 || sector_size > 4096 || (sector_size & (sector_size - 1)) != 0) {
    return Status::InvalidArgument("XTS sector size must be a power of two in [512, 4096]");
  }
  if (in.size() != out.size() || in.size() % sector_size != 0) {
    return Status::InvalidArgument("XTS run must be whole sectors");
  }
  const size_t sectors = in.size() / sector_size;
  unsigned n = impl_->threads;
  if (in.size() < impl_->min_parallel) n = 1;
  n = unsigned(std::min<size_t>(n, sectors));
  if (n <= 1) {
    return impl_->lanes[0]->Crypt(encrypt, in.data(), out.data(), in.size(), sector_size,
                                  first_iv);
  }
  while (impl_->lanes.size() < n) {
    ASSIGN_OR_RETURN(auto lane, XtsLane::Create(impl_->key.bytes()));
    impl_->lanes.push_back(std::move(lane));
  }
  // Slice by whole sectors; the caller's thread takes slice 0.
  std::vector<Status> result(n);
  std::vector<std::thread> workers;
  const size_t per = (sectors + n - 1) / n;
  auto work = [&](unsigned t) {
    const size_t s0 = std::min(sectors, per * t), s1 = std::min(sectors, per * (t + 1));
    if (s0 == s1) return;
    const size_t b0 = s0 * sector_size;
    result[t] = impl_->lanes[t]->Crypt(encrypt, in.data() + b0, out.data() + b0,
                                       (s1 - s0) * sector_size, sector_size,
                                       first_iv + b0 / 512);
  };
  for (unsigned t = 1; t < n; ++t) workers.emplace_back(work, t);
  work(0);
  for (auto& w : workers) w.join();
  for (const Status& st : result) RETURN_IF_ERROR(st);
  return Status::Ok();
}

}  // namespace stack::fde
