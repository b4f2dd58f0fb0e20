#include "stack/diff.h"

#include "stack/address.h"

namespace stack::compose {

namespace {
Result<uint64_t> EntrySize(VolumeStore& pool, const std::string& name) {
  // A read-only device's size is the entry's, read from its record (Stat
  // would also walk the tree for space accounting).
  ASSIGN_OR_RETURN(auto dev, pool.OpenVolume(name, /*read_only=*/true, "stack diff"));
  return dev->size_bytes();
}
}  // namespace

Result<BlockDiffReport> DiffEntries(VolumeStore& pool, const std::string& from,
                                    const std::string& to) {
  ASSIGN_OR_RETURN(auto from_addr, ParseEntryAddress(from));
  ASSIGN_OR_RETURN(auto to_addr, ParseEntryAddress(to));
  BlockDiffReport r;
  r.from = from_addr.name();
  r.to = to_addr.name();
  r.block_size = pool.block_size();
  ASSIGN_OR_RETURN(r.from_size_bytes, EntrySize(pool, r.from));
  ASSIGN_OR_RETURN(r.to_size_bytes, EntrySize(pool, r.to));
  RETURN_IF_ERROR(pool.Diff(
      r.from, r.to,
      [&r](const pool::DiffRange& d) {
        r.ranges.push_back(d);
        return Status::Ok();
      },
      &r.stats));
  return r;
}

}  // namespace stack::compose
