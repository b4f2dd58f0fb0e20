// CryptDevice: the decrypted view of a LUKS data segment, as a BlockDevice.
//
// Geometry: block_size() is the container's encryption sector size (512 or
// 4096), so every request covers whole sectors and no sector is ever
// read-modify-written. block_count() covers the data segment (a "dynamic"
// segment runs to the end of the device below).
//
// Data path: sector s (counted from the segment start, in block_size units)
// is AES-XTS-plain64 with IV = s * block_size / 512 + iv_tweak (512-byte IV
// units even for 4096-byte sectors, as dm-crypt). A write encrypts the whole
// run into a private buffer (never the caller's) and issues ONE lower write
// per chunk of at most kMaxChunk bytes. If the device below has blocks larger
// than a sector, the unaligned lower edges are read (ciphertext, no
// decryption needed) and merged into that one write; edge sectors never
// written (all-zero ciphertext) are written as encrypted zeros, so a lower
// block is always written whole with defined content. Reads decrypt in place.
//
// Never-written sectors: a sector whose ciphertext is all zeros (what a hole
// or a never-written block of the device below reads as) reads as zero
// plaintext, not as the decryption of zeros (key-dependent noise). AES-XTS
// gives an all-zero ciphertext sector for real data with probability
// 2^-4096 (512-byte sectors) or less. So a read-modify-write above us (the
// ext4 superblock, 1 KiB in a 4 KiB sector) writes zeros, not noise, around
// what it changes, and an encrypted image decrypts to the same bytes as the
// plain image of the same input (spec/fde.md "Never-written sectors").
// dm-crypt still decrypts a never-written sector to noise; only sectors
// nobody wrote differ, and no writer of ours leaves one half written.
//
// Other operations:
//   Flush         passes through.
//   WriteZeroes   encrypts zeros (never a plaintext-zero shortcut below).
//   Discard       passes through (lower-aligned part) only when the container
//                 has allow-discards; otherwise it is accepted and ignored,
//                 as the contract allows for a hint. Either way
//                 discard_zeroes = false: a discarded range reads as garbage.
//   AllocatedExtents passes through, mapped into segment coordinates and
//                 widened to whole sectors (a hole below is a hole above; it
//                 reads as zeros when the device below reads holes as zeros,
//                 but holes_read_zero and unwritten_reads_zero stay false:
//                 dm-crypt, reading the same container, sees noise there).
//
// Thread-safety: none; callers serialise access (as for every BlockDevice).
// The volume key is held in secure memory and wiped on destruction.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "block/block_device.h"
#include "fde/secret.h"

namespace stack::fde {

enum class ContainerKind { kNone, kLuks1, kLuks2 };
std::string_view ContainerKindName(ContainerKind k);

class XtsCipher;

class CryptDevice : public BlockDevice {
 public:
  static constexpr size_t kMaxChunk = 4u << 20;

  struct Params {
    ContainerKind kind = ContainerKind::kLuks2;
    uint64_t data_offset = 0;  // bytes on the device below
    uint64_t data_size = 0;    // bytes; 0 = to the end of the device below
    uint32_t sector_size = 4096;
    uint64_t iv_tweak = 0;
    bool allow_discards = false;
    bool read_only = false;
    int keyslot = -1;                   // the keyslot that opened it
    std::vector<std::string> warnings;  // damaged header copy, requirements...
  };

  // Used by Open/Format; also usable directly with a known key (tests).
  // InvalidArgument on a geometry that cannot work (offset not aligned to
  // the sector size, segment past the end, key not 32/64 bytes).
  static Result<std::unique_ptr<CryptDevice>> Create(std::unique_ptr<BlockDevice> lower,
                                                     Secret volume_key, const Params& params);
  ~CryptDevice() override;

  uint32_t block_size() const override { return params_.sector_size; }
  uint64_t block_count() const override;
  DeviceCapabilities capabilities() const override;
  std::string describe() const override;

  ContainerKind kind() const { return params_.kind; }
  uint64_t data_offset() const { return params_.data_offset; }
  uint64_t iv_tweak() const { return params_.iv_tweak; }
  int keyslot() const { return params_.keyslot; }
  bool allow_discards() const { return params_.allow_discards; }
  // Problems noticed while opening (e.g. "primary header damaged: ...").
  const std::vector<std::string>& warnings() const { return params_.warnings; }

  BlockDevice& lower() { return *lower_; }
  // Gives the device below back; this object must not be used afterwards.
  std::unique_ptr<BlockDevice> ReleaseLower() { return std::move(lower_); }
  // A copy of the volume key (for key management and tests). Handle with care.
  Result<Secret> CopyVolumeKey() const { return key_.Clone(); }
  // Split requests of at least min_bytes across up to n threads.
  void set_crypt_threads(unsigned n, size_t min_bytes = 512 * 1024);

 protected:
  Status DoRead(uint64_t offset, std::span<uint8_t> out) override;
  Status DoWrite(uint64_t offset, std::span<const uint8_t> data) override;
  Status DoFlush() override;
  Status DoDiscard(uint64_t offset, uint64_t length) override;
  Status DoWriteZeroes(uint64_t offset, uint64_t length) override;
  Result<std::vector<Extent>> DoAllocatedExtents(uint64_t offset, uint64_t length) override;

 private:
  CryptDevice(std::unique_ptr<BlockDevice> lower, Secret key, std::unique_ptr<XtsCipher> xts,
              const Params& params);
  Status WriteChunk(uint64_t offset, std::span<const uint8_t> data);
  Status ReadChunk(uint64_t offset, std::span<uint8_t> out);
  // Decrypts the sectors of `in` (segment byte offset `offset`) into out
  // (may alias in exactly); all-zero ciphertext sectors become zeros.
  Status DecryptSectors(std::span<const uint8_t> in, std::span<uint8_t> out, uint64_t offset);
  // Encrypts zero plaintext over the all-zero sectors of buf_ in lower bytes
  // [from, to) (within the data segment).
  Status EncryptZeroNeighbours(uint64_t from, uint64_t to);

  std::unique_ptr<BlockDevice> lower_;
  Secret key_;
  std::unique_ptr<XtsCipher> xts_;
  Params params_;
  std::vector<uint8_t> buf_;  // ciphertext staging, at most kMaxChunk + 2 lower blocks
  uint64_t buf_base_ = 0;     // lower byte offset of buf_[0] while writing
};

}  // namespace stack::fde
