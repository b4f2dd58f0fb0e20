#include "fde/crypt_device.h"

#include <algorithm>
#include <cstring>

#include "fde/xts_cipher.h"

namespace stack::fde {

std::string_view ContainerKindName(ContainerKind k) {
  switch (k) {
    case ContainerKind::kNone: return "none";
    case ContainerKind::kLuks1: return "luks1";
    case ContainerKind::kLuks2: return "luks2";
  }
  return "?";
}

CryptDevice::CryptDevice(std::unique_ptr<BlockDevice> lower, Secret key,
                         std::unique_ptr<XtsCipher> xts, const Params& params)
    : lower_(std::move(lower)), key_(std::move(key)), xts_(std::move(xts)), params_(params) {}

CryptDevice::~CryptDevice() = default;

Result<std::unique_ptr<CryptDevice>> CryptDevice::Create(std::unique_ptr<BlockDevice> lower,
                                                         Secret volume_key, const Params& p) {
  if (lower == nullptr) return Status::InvalidArgument("no device below the crypt device");
  const uint32_t ss = p.sector_size;
  if (ss < 512 || ss > 4096 || (ss & (ss - 1)) != 0) {
    return Status::InvalidArgument("sector size must be 512..4096, a power of two");
  }
  if (p.data_offset % ss != 0) return Status::InvalidArgument("data offset not sector aligned");
  const uint64_t lower_size = lower->size_bytes();
  if (p.data_offset > lower_size) return Status::InvalidArgument("data offset past the device end");
  if (p.data_size != 0 && (p.data_size % ss != 0 || p.data_size > lower_size - p.data_offset)) {
    return Status::InvalidArgument("data segment does not fit the device");
  }
  ASSIGN_OR_RETURN(std::unique_ptr<XtsCipher> xts, XtsCipher::Create(volume_key.bytes()));
  return std::unique_ptr<CryptDevice>(
      new CryptDevice(std::move(lower), std::move(volume_key), std::move(xts), p));
}

uint64_t CryptDevice::block_count() const {
  if (lower_ == nullptr) return 0;
  uint64_t bytes = params_.data_size;
  if (bytes == 0) bytes = lower_->size_bytes() - params_.data_offset;
  return bytes / params_.sector_size;
}

DeviceCapabilities CryptDevice::capabilities() const {
  DeviceCapabilities below = lower_->capabilities();
  DeviceCapabilities c;
  c.read_only = below.read_only || params_.read_only;
  c.unwritten_reads_zero = false;
  c.discard_supported = params_.allow_discards && below.discard_supported;
  c.discard_zeroes = false;
  c.holes_read_zero = false;
  c.persistent = below.persistent;
  return c;
}

std::string CryptDevice::describe() const {
  return std::string(ContainerKindName(params_.kind)) + " on " + lower_->describe();
}

void CryptDevice::set_crypt_threads(unsigned n, size_t min_bytes) {
  xts_->set_threads(n, min_bytes);
}

Status CryptDevice::DoRead(uint64_t offset, std::span<uint8_t> out) {
  for (size_t done = 0; done < out.size();) {
    const size_t n = std::min(out.size() - done, kMaxChunk);
    RETURN_IF_ERROR(ReadChunk(offset + done, out.subspan(done, n)));
    done += n;
  }
  return Status::Ok();
}

namespace {

bool AllZero(std::span<const uint8_t> s) {
  // Ciphertext almost never starts with 8 zero bytes: one load decides.
  uint64_t head;
  std::memcpy(&head, s.data(), sizeof head);
  if (head != 0) return false;
  return std::all_of(s.begin(), s.end(), [](uint8_t b) { return b == 0; });
}

}  // namespace

Status CryptDevice::DecryptSectors(std::span<const uint8_t> in, std::span<uint8_t> out,
                                   uint64_t offset) {
  const size_t ss = params_.sector_size;
  // Runs of sectors holding ciphertext are decrypted in one call each (one
  // split across the crypt threads); all-zero sectors between them read as
  // zero plaintext.
  for (size_t i = 0; i < in.size();) {
    if (AllZero(in.subspan(i, ss))) {
      if (out.data() != in.data()) std::memset(out.data() + i, 0, ss);
      i += ss;
      continue;
    }
    size_t j = i + ss;
    while (j < in.size() && !AllZero(in.subspan(j, ss))) j += ss;
    RETURN_IF_ERROR(xts_->Decrypt(in.subspan(i, j - i), out.subspan(i, j - i), params_.sector_size,
                                  (offset + i) / 512 + params_.iv_tweak));
    i = j;
  }
  return Status::Ok();
}

Status CryptDevice::ReadChunk(uint64_t offset, std::span<uint8_t> out) {
  const uint64_t lbs = lower_->block_size();
  const uint64_t at = params_.data_offset + offset;
  if (at % lbs == 0 && out.size() % lbs == 0) {
    RETURN_IF_ERROR(lower_->Read(at, out));
    return DecryptSectors(out, out, offset);
  }
  const uint64_t l0 = at / lbs * lbs, l1 = (at + out.size() + lbs - 1) / lbs * lbs;
  buf_.resize(l1 - l0);
  RETURN_IF_ERROR(lower_->Read(l0, buf_));
  return DecryptSectors(std::span<const uint8_t>(buf_).subspan(at - l0, out.size()), out, offset);
}

Status CryptDevice::DoWrite(uint64_t offset, std::span<const uint8_t> data) {
  for (size_t done = 0; done < data.size();) {
    const size_t n = std::min(data.size() - done, kMaxChunk);
    RETURN_IF_ERROR(WriteChunk(offset + done, data.subspan(done, n)));
    done += n;
  }
  return Status::Ok();
}

Status CryptDevice::WriteChunk(uint64_t offset, std::span<const uint8_t> data) {
  const uint64_t lbs = lower_->block_size();
  const uint64_t at = params_.data_offset + offset;
  const uint64_t l0 = at / lbs * lbs, l1 = (at + data.size() + lbs - 1) / lbs * lbs;
  buf_.resize(l1 - l0);
  buf_base_ = l0;
  // Lower blocks larger than a sector: keep the neighbouring ciphertext.
  if (l0 < at) RETURN_IF_ERROR(lower_->Read(l0, std::span(buf_).first(lbs)));
  if (at + data.size() < l1 && (l1 - lbs > l0 || l0 == at)) {
    RETURN_IF_ERROR(lower_->Read(l1 - lbs, std::span(buf_).last(lbs)));
  }
  // Neighbours never written (all-zero ciphertext, which reads as zero
  // plaintext) are written as encrypted zeros: the lower block is written
  // whole, and every sector in it then decrypts to defined content for any
  // reader, dm-crypt included.
  RETURN_IF_ERROR(EncryptZeroNeighbours(l0, at));
  RETURN_IF_ERROR(EncryptZeroNeighbours(at + data.size(), l1));
  RETURN_IF_ERROR(xts_->Encrypt(data, std::span(buf_).subspan(at - l0, data.size()),
                                params_.sector_size, offset / 512 + params_.iv_tweak));
  return lower_->Write(l0, buf_);
}

Status CryptDevice::EncryptZeroNeighbours(uint64_t from, uint64_t to) {
  // [from, to): lower-device bytes inside buf_ (which starts at the lower
  // block holding data_offset + the chunk), outside the data being written.
  const uint64_t ss = params_.sector_size, seg_end = params_.data_offset + size_bytes();
  const uint64_t end = std::min(to, seg_end);
  for (uint64_t p = std::max(from, params_.data_offset); p + ss <= end; p += ss) {
    std::span<uint8_t> sector = std::span(buf_).subspan(p - buf_base_, ss);
    if (!AllZero(sector)) continue;
    RETURN_IF_ERROR(xts_->Encrypt(sector, sector, params_.sector_size,
                                  (p - params_.data_offset) / 512 + params_.iv_tweak));
  }
  return Status::Ok();
}

Status CryptDevice::DoFlush() { return lower_->Flush(); }

Status CryptDevice::DoDiscard(uint64_t offset, uint64_t length) {
  if (!params_.allow_discards) return Status::Ok();  // a hint we decline: it would leak layout
  const uint64_t lbs = lower_->block_size();
  const uint64_t at = params_.data_offset + offset;
  const uint64_t l0 = (at + lbs - 1) / lbs * lbs, l1 = (at + length) / lbs * lbs;
  if (l1 <= l0) return Status::Ok();
  return lower_->Discard(l0, l1 - l0);
}

Status CryptDevice::DoWriteZeroes(uint64_t offset, uint64_t length) {
  std::vector<uint8_t> zeros(std::min<uint64_t>(length, kMaxChunk));
  for (uint64_t done = 0; done < length;) {
    const size_t n = size_t(std::min<uint64_t>(length - done, zeros.size()));
    RETURN_IF_ERROR(WriteChunk(offset + done, std::span<const uint8_t>(zeros).first(n)));
    done += n;
  }
  return Status::Ok();
}

Result<std::vector<Extent>> CryptDevice::DoAllocatedExtents(uint64_t offset, uint64_t length) {
  const uint64_t lbs = lower_->block_size();
  const uint64_t at = params_.data_offset + offset;
  const uint64_t l0 = at / lbs * lbs;
  const uint64_t l1 = std::min(lower_->size_bytes(), (at + length + lbs - 1) / lbs * lbs);
  ASSIGN_OR_RETURN(std::vector<Extent> below, lower_->AllocatedExtents(l0, l1 - l0));
  const uint64_t ss = params_.sector_size;
  std::vector<Extent> out;
  for (const Extent& e : below) {
    uint64_t b = std::max(e.offset, at), t = std::min(e.end(), at + length);
    if (t <= b) continue;
    b = (b - params_.data_offset) / ss * ss;
    t = (t - params_.data_offset + ss - 1) / ss * ss;
    b = std::max(b, offset);
    t = std::min(t, offset + length);
    if (!out.empty() && out.back().end() >= b) {
      out.back().length = std::max(out.back().end(), t) - out.back().offset;
    } else {
      out.push_back({b, t - b});
    }
  }
  return out;
}

}  // namespace stack::fde
