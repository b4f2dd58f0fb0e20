// Unlock: put the decryption layer on a device when it holds a LUKS
// container, and leave it as is otherwise, so every filesystem command works
// on encrypted and plain volumes alike.
//
// The passphrase is asked for only when the device is encrypted, and only
// after the header says this build can open it (fde::CheckOpenable): a
// container we cannot open fails with Unsupported (or Corruption) without
// a prompt.
// Thread-safety: none.
#pragma once

#include <functional>
#include <memory>

#include "block/block_device.h"
#include "fde/luks.h"

namespace stack::compose {

using SecretGetter = std::function<Result<fde::Secret>()>;

struct Unlocked {
  std::unique_ptr<BlockDevice> device;  // CryptDevice, or the input device
  fde::ContainerKind kind = fde::ContainerKind::kNone;
  std::vector<std::string> warnings;    // from the header (damaged copy...)
};

// REQUIRES: dev != nullptr. AuthFailed on a wrong passphrase (nothing
// written); errors of Probe (I/O, corruption) are returned as they are.
// key_given: the user supplied a key (--key-file) and so means encryption;
// a device with no LUKS header is then InvalidArgument instead of being used
// as plain (which would e.g. make an unencrypted file system).
// crypt_threads: threads that encrypt/decrypt large requests; 0 = up to 4
// (one per core). The bulk data path chooses its own (stack/bulk_data.h).
Result<Unlocked> Unlock(std::unique_ptr<BlockDevice> dev, const SecretGetter& get_passphrase,
                        bool writable, bool key_given = false, unsigned crypt_threads = 0);

}  // namespace stack::compose
