#include "stack/unlock.h"

#include "fde/container.h"
#include "stack/bulk_data.h"

namespace stack::compose {

Result<Unlocked> Unlock(std::unique_ptr<BlockDevice> dev, const SecretGetter& get_passphrase,
                        bool writable, bool key_given, unsigned crypt_threads) {
  ASSIGN_OR_RETURN(fde::ContainerKind kind, fde::Probe(*dev));
  Unlocked u;
  u.kind = kind;
  if (kind == fde::ContainerKind::kNone) {
    if (key_given) {
      return Status::InvalidArgument(
          "a key file was given but " + dev->describe() +
          " holds no LUKS container, so nothing would be encrypted: to encrypt it, run "
          "`stack luks format` on it first (or make it with `stack build`); for a plain "
          "file system, drop --key-file");
    }
    u.device = std::move(dev);
    return u;
  }
  // The header is read once: the check, the unlock and the open use it.
  ASSIGN_OR_RETURN(auto container, fde::Container::Read(*dev));
  // Before asking for anything: can we open what the header describes?
  RETURN_IF_ERROR(container->CheckOpenable(std::nullopt));
  ASSIGN_OR_RETURN(fde::Secret pass, get_passphrase());
  ASSIGN_OR_RETURN(fde::UnlockedKey key, container->Unlock(pass, std::nullopt));
  fde::OpenOptions o;
  o.read_only = !writable;
  o.crypt_threads = crypt_threads ? crypt_threads : BulkCryptThreads(false);
  ASSIGN_OR_RETURN(auto crypt, container->Open(std::move(dev), std::move(key), o));
  u.warnings = crypt->warnings();
  u.device = std::move(crypt);
  return u;
}

}  // namespace stack::compose
