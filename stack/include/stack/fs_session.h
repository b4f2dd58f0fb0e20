// FsSession: a filesystem opened on a Target through the decryption layer
// (when the target is encrypted): target -> [crypt] -> ext4.
//
// Close() closes the filesystem (writing everything), destroys the device
// chain and commits the pool, in that order; the destructor does the same
// but loses errors, so writers call Close().
//
// Thread-safety: none.
#pragma once

#include <memory>
#include <optional>

#include "fsbridge/filesystem.h"
#include "stack/target.h"
#include "stack/unlock.h"

namespace stack::compose {

class FsSession {
 public:
  // key_given: the user named a key (file), so the target must be
  // encrypted (see Unlock).
  static Result<std::unique_ptr<FsSession>> Open(const TargetSpec& spec,
                                                 const SecretGetter& get_passphrase,
                                                 bool key_given = false);
  // Formats the (decrypted) target as ext4 instead of opening it.
  static Result<std::unique_ptr<FsSession>> Mkfs(const TargetSpec& spec,
                                                 const SecretGetter& get_passphrase,
                                                 const fsbridge::MkfsOptions& opts,
                                                 bool key_given = false);
  ~FsSession();

  fsbridge::Filesystem& fs() { return *fs_; }
  fde::ContainerKind encryption() const { return kind_; }
  const std::vector<std::string>& warnings() const { return warnings_; }
  // The bytes the pool entry maps now, changes not yet committed included
  // (what a discard gave back shows at once); nullopt for an image file.
  Result<std::optional<uint64_t>> MappedBytes();
  Status Close();

 private:
  FsSession() = default;
  std::unique_ptr<Target> target_;  // declared first: destroyed last
  std::unique_ptr<fsbridge::Filesystem> fs_;
  fde::ContainerKind kind_ = fde::ContainerKind::kNone;
  std::vector<std::string> warnings_;
  std::string entry_;  // pool entry name; empty for an image file
  bool closed_ = false;
};

}  // namespace stack::compose
