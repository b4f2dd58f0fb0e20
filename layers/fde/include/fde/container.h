// Container: one LUKS container on a device, its header read once.
//
// Container::Read probes the device and reads the header (LUKS2: both
// copies, checked; LUKS1: the 592-byte header) exactly once; every question
// and operation of a command is then answered from that one reading, by the
// LUKS1 or the LUKS2 implementation (src/luks1_container.cc,
// src/luks2_container.cc). The version branching lives there and only there.
// The free functions of fde/luks.h are thin wrappers: Read, then one call.
//
// Contracts are those of fde/luks.h (CheckOpenable, Open, TestPassphrase,
// AddKey, ChangeKey, ReplaceKeyslots, KillKeyslot, Dump); in short:
//   Unlock       never writes; AuthFailed only when every keyslot tried and
//                none matched; a keyslot that cannot be read keeps its error.
//   key management writes keyslot material (flushed) before the header that
//                points at it, wipes old material only after; the in-memory
//                header follows what was written (LUKS2: seqid).
//   Open         consumes the device the Container was read from.
// Header state (a damaged or stale LUKS2 copy, unknown mandatory
// requirements) is worded once, in Warnings(), which both Open (the
// CryptDevice's warnings) and Info (Dump) report.
//
// Thread-safety: none; one caller per device. The device is borrowed: it
// must outlive the Container (Open hands it to the CryptDevice, which then
// owns it; use no other method after Open).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "block/block_device.h"
#include "fde/crypt_device.h"
#include "fde/header_info.h"
#include "fde/luks.h"
#include "fde/secret.h"

namespace stack::fde {

// A volume key found by a passphrase, and the keyslot that gave it.
struct UnlockedKey {
  Secret volume_key;
  int keyslot = -1;
};

class Container {
 public:
  // NotFound ("no LUKS header on ...") when the device holds no LUKS
  // container; Corruption / IoError when the header cannot be read.
  static Result<std::unique_ptr<Container>> Read(BlockDevice& dev);
  virtual ~Container() = default;
  Container(const Container&) = delete;
  Container& operator=(const Container&) = delete;

  virtual ContainerKind kind() const = 0;
  BlockDevice& device() const { return dev_; }

  // Header summary (no secrets), including Warnings().
  virtual HeaderInfo Info() const = 0;
  // The header's state as one line each (empty when all is well).
  virtual std::vector<std::string> Warnings() const = 0;
  // Keyslots that hold a key, ascending.
  virtual std::vector<int> Keyslots() const = 0;
  // Bytes from 0 that hold the header and keyslots, and the data offset.
  virtual uint64_t HeaderRegionSize() const = 0;
  virtual uint64_t DataOffset() const = 0;

  // InvalidArgument unless keyslot is in range for the version.
  Status CheckKeyslotNumber(int keyslot) const { return fde::CheckKeyslotNumber(kind(), keyslot); }
  // Whether this build can open the container (fde/luks.h CheckOpenable).
  virtual Status CheckOpenable(std::optional<int> keyslot) const = 0;
  // The volume key that `pass` unlocks (only `keyslot` if given). Never writes.
  virtual Result<UnlockedKey> Unlock(const Secret& pass, std::optional<int> keyslot) const = 0;

  // Key management with a key from Unlock. ReadOnly when the device is
  // read-only (or, LUKS2, the header has unknown mandatory requirements).
  // Returns the new keyslot.
  virtual Result<int> AddKey(const UnlockedKey& key, const Secret& added,
                             const KdfParams& kdf) = 0;
  // Returns the keyslot that now holds new_pass.
  virtual Result<int> ChangeKey(const UnlockedKey& key, const Secret& new_pass,
                                const KdfParams& kdf) = 0;
  virtual Status ReplaceKeyslots(const UnlockedKey& key, const Secret& new_pass,
                                 const KdfParams& kdf) = 0;
  virtual Status KillKeyslot(int keyslot, bool force) = 0;

  // The decrypted data segment over dev, which must be the device this
  // Container was read from (ownership passes to the CryptDevice), with
  // opts.read_only and opts.crypt_threads applied (opts.keyslot is Unlock's).
  virtual Result<std::unique_ptr<CryptDevice>> Open(std::unique_ptr<BlockDevice> dev,
                                                    UnlockedKey key,
                                                    const OpenOptions& opts) const = 0;

 protected:
  explicit Container(BlockDevice& dev) : dev_(dev) {}
  // ReadOnly when the device below is read-only; shared by key management.
  Status CheckWritable() const;

 private:
  BlockDevice& dev_;
};

}  // namespace stack::fde
