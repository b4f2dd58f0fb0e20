// Unlock: put the decryption layer on a device when it holds a LUKS
// container, and leave it as is otherwise, so every filesystem command works
// on encrypted and plain volumes alike.
//
// The passphrase is asked for only when the device is encrypted.
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
Result<Unlocked> Unlock(std::unique_ptr<BlockDevice> dev, const SecretGetter& get_passphrase,
                        bool writable);

}  // namespace stack::compose
