#include "stack/fs_session.h"

#include "pool/pool.h"
#include "stack/volume_store.h"
#include "stack/bulk_data.h"

namespace stack::compose {

Result<std::unique_ptr<FsSession>> FsSession::Open(const TargetSpec& spec,
                                                   const SecretGetter& get_passphrase,
                                                   bool key_given) {
  std::unique_ptr<FsSession> s(new FsSession());
  ASSIGN_OR_RETURN(s->target_, Target::Open(spec));
  if (!spec.pool_path.empty()) s->entry_ = spec.entry;
  ASSIGN_OR_RETURN(Unlocked u, Unlock(s->target_->TakeDevice(), get_passphrase, spec.writable,
                                      key_given, BulkCryptThreads(spec.writable)));
  s->kind_ = u.kind;
  s->warnings_ = u.warnings;
  // A writer edits on the bulk path build uses (stack/bulk_data.h):
  // encryption and the pool work beside the reading of host files.
  if (spec.writable) u.device = BulkWriteDevice(std::move(u.device));
  auto fs = fsbridge::Filesystem::Open(std::move(u.device), spec.writable);
  if (!fs.ok()) return fs.status().WithContext(s->target_->describe());
  s->fs_ = std::move(fs).value();
  return s;
}

Result<std::unique_ptr<FsSession>> FsSession::Mkfs(const TargetSpec& spec,
                                                   const SecretGetter& get_passphrase,
                                                   const fsbridge::MkfsOptions& opts,
                                                   bool key_given) {
  std::unique_ptr<FsSession> s(new FsSession());
  ASSIGN_OR_RETURN(s->target_, Target::Open(spec));
  if (!spec.pool_path.empty()) s->entry_ = spec.entry;
  ASSIGN_OR_RETURN(Unlocked u, Unlock(s->target_->TakeDevice(), get_passphrase, true, key_given,
                                      BulkCryptThreads(true)));
  s->kind_ = u.kind;
  s->warnings_ = u.warnings;
  auto fs = fsbridge::Filesystem::Mkfs(BulkWriteDevice(std::move(u.device)), opts);
  if (!fs.ok()) return fs.status().WithContext(s->target_->describe());
  s->fs_ = std::move(fs).value();
  return s;
}

Result<std::optional<uint64_t>> FsSession::MappedBytes() {
  if (entry_.empty() || !target_ || !target_->pool()) return std::optional<uint64_t>();
  ASSIGN_OR_RETURN(pool::EntryInfo info, target_->pool()->Stat(entry_));
  return std::optional<uint64_t>(info.mapped_bytes);
}

FsSession::~FsSession() {
  if (!closed_) (void)Close();
}

Status FsSession::Close() {
  if (closed_) return Status::Ok();
  closed_ = true;
  Status st;
  if (fs_) {
    st = fs_->Close();
    fs_.reset();  // destroys crypt and volume devices
  }
  if (target_) {
    Status fin = target_->Finish();
    if (st.ok()) st = fin;
  }
  return st;
}

}  // namespace stack::compose
