#include "stack/unlock.h"

#include <thread>

namespace stack::compose {

Result<Unlocked> Unlock(std::unique_ptr<BlockDevice> dev, const SecretGetter& get_passphrase,
                        bool writable) {
  ASSIGN_OR_RETURN(fde::ContainerKind kind, fde::Probe(*dev));
  Unlocked u;
  u.kind = kind;
  if (kind == fde::ContainerKind::kNone) {
    u.device = std::move(dev);
    return u;
  }
  ASSIGN_OR_RETURN(fde::Secret pass, get_passphrase());
  fde::OpenOptions o;
  o.read_only = !writable;
  o.crypt_threads = std::max(1u, std::min(4u, std::thread::hardware_concurrency()));
  ASSIGN_OR_RETURN(auto crypt, fde::Open(std::move(dev), pass, o));
  u.warnings = crypt->warnings();
  u.device = std::move(crypt);
  return u;
}

}  // namespace stack::compose
