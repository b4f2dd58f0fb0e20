// Target: what a command operates on, opened down to its raw BlockDevice.
//
//   - a pool entry: --pool FILE plus VOLUME or VOLUME@SNAPSHOT (snapshots
//     open read-only);
//   - a raw image file: --image FILE (a LUKS container or a plain
//     filesystem image, e.g. one made by `stack export`).
//
// The Target owns the pool (when there is one; shared with a control server
// or, inside a forwarded command, with the process holding it). A writable
// pool target serves read-only commands on its pool (stack/control.h) until
// Finish() or destruction; its own entry is refused to them. The device handed out by
// TakeDevice() is only valid while the Target lives, so callers declare the
// Target first and destroy the device chain (fs -> crypt -> device) before
// it. Finish() commits the pool after the chain is gone.
//
// Thread-safety: none.
#pragma once

#include <memory>
#include <string>

#include "block/block_device.h"

namespace stack {
class VolumeStore;
}

namespace stack::compose {

class ControlServer;

struct TargetSpec {
  std::string pool_path;   // with entry
  std::string entry;       // "vol" or "vol@snap"
  std::string image_path;  // or a raw image file
  bool writable = false;
  size_t cache_bytes = 0;  // pool metadata cache; 0 = pool default
};

class Target {
 public:
  // InvalidArgument if neither or both of pool/image are given; NotFound for
  // a missing pool, entry or file; Busy if the pool is open elsewhere;
  // ReadOnly when writing a snapshot.
  static Result<std::unique_ptr<Target>> Open(const TargetSpec& spec);
  ~Target();
  Target(const Target&) = delete;
  Target& operator=(const Target&) = delete;

  // The raw device. REQUIRES: called at most once.
  std::unique_ptr<BlockDevice> TakeDevice() { return std::move(device_); }
  // Stops serving the pool, then commits its changes (a no-op for image
  // files, which are flushed by their users). REQUIRES: the device chain
  // was destroyed.
  Status Finish();
  const std::string& describe() const { return describe_; }
  VolumeStore* pool() { return pool_.get(); }

 private:
  Target() = default;
  std::shared_ptr<VolumeStore> pool_;  // outlives device_ (declared first)
  std::unique_ptr<ControlServer> server_;  // stopped before the pool closes
  std::unique_ptr<BlockDevice> device_;
  std::string describe_;
  bool writable_ = false;
};

}  // namespace stack::compose
