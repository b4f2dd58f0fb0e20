#include "stack/build.h"

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <filesystem>

#include "fsbridge/filesystem.h"
#include "pool/pool.h"

namespace stack::compose {
namespace {

double Seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

Result<std::unique_ptr<pool::Pool>> OpenOrCreatePool(const BuildOptions& o, bool* created) {
  *created = false;
  if (std::filesystem::exists(o.pool_path)) {
    return pool::Pool::Open(o.pool_path, pool::PoolOpenOptions{});
  }
  pool::PoolCreateOptions c;
  if (o.pool_block_size) c.block_size = o.pool_block_size;
  if (o.pool_size_bytes) c.size_bytes = o.pool_size_bytes;
  if (o.pool_max_bytes) c.max_bytes = std::max(o.pool_max_bytes, c.size_bytes);
  *created = true;
  return pool::Pool::Create(o.pool_path, c);
}

// Everything between "volume exists" and "filesystem closed".
Status FillVolume(pool::Pool& pool, const std::string& tmp, const BuildOptions& o,
                  const fde::Secret* passphrase, BuildReport* rep) {
  ASSIGN_OR_RETURN(std::unique_ptr<BlockDevice> dev, pool.OpenVolume(tmp, false));
  if (o.encrypt) {
    ASSIGN_OR_RETURN(auto crypt, fde::Format(std::move(dev), *passphrase, o.luks));
    dev = std::move(crypt);
  }
  ASSIGN_OR_RETURN(auto fs, fsbridge::Filesystem::Mkfs(std::move(dev), o.mkfs));
  if (!o.source.empty()) {
    fsbridge::PopulateOptions popts = o.populate;
    if (o.progress) {
      Progress* p = o.progress;
      popts.on_file = [p](uint64_t n) { p->Advance(n); };
    }
    Result<fsbridge::PopulateStats> st = Status::Internal("unset");
    if (o.source != "-" && std::filesystem::is_directory(o.source))
      st = fs->PopulateFromDirectory(o.source, "/", popts);
    else
      st = fs->PopulateFromTar(o.source, "/", popts);
    if (o.progress) o.progress->Finish();
    RETURN_IF_ERROR(st.status());
    rep->stats = *st;
  }
  ASSIGN_OR_RETURN(rep->df, fs->Df());
  RETURN_IF_ERROR(fs->Close());
  return Status::Ok();
}

}  // namespace

uint64_t SourceBytes(const std::string& source) {
  std::error_code ec;
  if (source.empty() || source == "-" || !std::filesystem::is_directory(source, ec)) return 0;
  uint64_t total = 0;
  for (auto it = std::filesystem::recursive_directory_iterator(
           source, std::filesystem::directory_options::skip_permission_denied, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file(ec) && !it->is_symlink(ec)) total += it->file_size(ec);
  }
  return total;
}

Result<int> CleanupStaleBuilds(pool::Pool& pool) {
  ASSIGN_OR_RETURN(auto entries, pool.List());
  int n = 0;
  for (auto& e : entries) {
    if (e.name.rfind(kBuildPrefix, 0) == 0) {
      RETURN_IF_ERROR(pool.Delete(e.name));
      ++n;
    }
  }
  if (n) RETURN_IF_ERROR(pool.Commit());
  return n;
}

Result<BuildReport> BuildImage(const BuildOptions& o, const fde::Secret* passphrase) {
  const double t0 = Seconds();
  if (o.encrypt && (!passphrase || passphrase->empty()))
    return Status::InvalidArgument("an encrypted build needs a passphrase");
  if (o.size_bytes == 0) return Status::InvalidArgument("volume size is required (--size)");
  if (!o.source.empty() && o.source != "-" && !std::filesystem::exists(o.source))
    return Status::NotFound("source " + o.source + " does not exist");
  BuildReport rep;
  rep.volume = o.volume;
  rep.encrypted = o.encrypt;
  ASSIGN_OR_RETURN(auto pool, OpenOrCreatePool(o, &rep.created_pool));
  ASSIGN_OR_RETURN(int stale, CleanupStaleBuilds(*pool));
  (void)stale;
  // Refuse early (before any work) if the names are taken.
  ASSIGN_OR_RETURN(auto entries, pool->List());
  for (auto& e : entries) {
    if (e.name == o.volume) return Status::AlreadyExists("volume " + o.volume + " already exists");
  }
  const std::string tmp = std::string(kBuildPrefix) + o.volume;
  pool::EntryMeta meta;
  meta.note = o.note;
  meta.tags = o.tags;
  RETURN_IF_ERROR(pool->CreateVolume(tmp, o.size_bytes, meta));
  Status st = FillVolume(*pool, tmp, o, passphrase, &rep);
  if (st.ok()) st = pool->Commit();
  if (st.ok()) st = pool->Rename(tmp, o.volume);
  if (!st.ok()) {
    (void)pool->Delete(tmp);  // best effort; a leftover is cleaned next time
    (void)pool->Commit();
    return st;
  }
  if (!o.snapshot.empty()) {
    rep.snapshot = o.volume + "@" + o.snapshot;
    RETURN_IF_ERROR(pool->Snapshot(o.volume, rep.snapshot, meta));
  }
  RETURN_IF_ERROR(pool->Commit());
  rep.seconds = Seconds() - t0;
  return rep;
}

}  // namespace stack::compose
