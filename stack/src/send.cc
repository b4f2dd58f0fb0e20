#include "stack/send.h"

#include <algorithm>
#include <optional>
#include <vector>

#include "stack/address.h"
#include "stack/publish.h"

namespace stack::compose {
namespace {

std::string VolumeOf(const std::string& name) { return name.substr(0, name.find('@')); }
std::string SnapOf(const std::string& name) {
  auto at = name.find('@');
  return at == std::string::npos ? "" : name.substr(at + 1);
}

Result<pool::EntryInfo> StatSnapshot(pool::Pool& pool, const std::string& name) {
  ASSIGN_OR_RETURN(auto e, pool.Stat(name));
  if (e.kind != pool::EntryKind::kSnapshot)
    return Status::InvalidArgument("'" + name + "' is not a snapshot (send takes VOLUME@SNAPSHOT)");
  return e;
}

enum class ChangeKind { kWritten, kHole };
struct Change {
  uint64_t offset, length;
  ChangeKind kind;
};

// Where `to` differs from `from` (Pool::Diff: shared subtrees skipped by
// address), ascending. `from` empty: every mapped range of `to`. Collected
// first: Diff's sink runs under the pool's lock and may not read.
Result<std::vector<Change>> Changes(pool::Pool& pool, const std::string& from,
                                    const std::string& to) {
  std::vector<Change> out;
  RETURN_IF_ERROR(pool.Diff(from, to, [&](const pool::DiffRange& r) {
    out.push_back({r.offset, r.length,
                   r.kind == pool::DiffKind::kWritten ? ChangeKind::kWritten : ChangeKind::kHole});
    return Status::Ok();
  }));
  return out;
}

}  // namespace

Result<SendReport> Send(pool::Pool& pool, const std::string& snapshot, const std::string& from,
                        const ByteSink& out) {
  ASSIGN_OR_RETURN(auto snap, StatSnapshot(pool, snapshot));
  StreamHeader h;
  SendReport rep;
  if (!from.empty()) {
    ASSIGN_OR_RETURN(auto base, StatSnapshot(pool, from));
    if (base.uuid == snap.uuid)
      return Status::InvalidArgument("--from names the snapshot being sent");
    ASSIGN_OR_RETURN(h.base_uuid, ParseUuidText(base.uuid));
    h.flags = kSendFlagIncremental;
    rep.base = from;
    rep.base_uuid = base.uuid;
  }
  h.block_size = pool.block_size();
  h.size_bytes = snap.size_bytes;
  ASSIGN_OR_RETURN(h.uuid, ParseUuidText(snap.uuid));
  ASSIGN_OR_RETURN(h.parent_uuid, ParseUuidText(snap.parent_uuid));
  h.created_unix_ns = snap.created_unix_ns;
  h.volume = VolumeOf(snapshot);
  h.snapshot = SnapOf(snapshot);
  h.note = snap.note;
  h.tags = snap.tags;

  ASSIGN_OR_RETURN(auto changes, Changes(pool, from, snapshot));
  ASSIGN_OR_RETURN(auto dev, pool.OpenVolume(snapshot, true, "send"));
  StreamWriter w(out);
  RETURN_IF_ERROR(w.WriteHeader(h));
  std::vector<uint8_t> buf;
  for (auto& c : changes) {
    if (c.kind == ChangeKind::kHole) {
      RETURN_IF_ERROR(w.Hole(c.offset, c.length));
      continue;
    }
    for (uint64_t done = 0; done < c.length;) {
      const uint64_t n = std::min<uint64_t>(kSendMaxWriteBytes, c.length - done);
      buf.resize(n);
      RETURN_IF_ERROR(dev->Read(c.offset + done, buf));
      RETURN_IF_ERROR(w.Write(c.offset + done, buf));
      done += n;
    }
  }
  RETURN_IF_ERROR(w.Finish());
  rep.snapshot = snapshot;
  rep.uuid = snap.uuid;
  rep.size_bytes = snap.size_bytes;
  rep.stream_bytes = w.stream_bytes();
  rep.written_bytes = w.written_bytes();
  rep.hole_bytes = w.hole_bytes();
  rep.records = w.records();
  return rep;
}

namespace {

// Applies every record to `name` (a hidden volume of the stream's size) and
// returns once the END record and the digest checked.
Status ApplyRecords(pool::Pool& pool, StreamReader& r, const std::string& name) {
  ASSIGN_OR_RETURN(auto dev, pool.OpenVolume(name, false, "receive"));
  for (;;) {
    ASSIGN_OR_RETURN(auto rec, r.Next());
    switch (rec.type) {
      case SendRecordType::kWrite:
        RETURN_IF_ERROR(dev->Write(rec.offset, rec.data));
        break;
      case SendRecordType::kHole:
        RETURN_IF_ERROR(dev->WriteZeroes(rec.offset, rec.length));
        break;
      case SendRecordType::kEnd:
        return dev->Flush();
    }
  }
}

// The entry with this uuid, if any: one lookup in the pool's uuid index,
// whatever the number of entries.
Result<std::optional<pool::EntryInfo>> ByUuid(pool::Pool& pool, const std::string& uuid) {
  if (uuid.empty()) return std::optional<pool::EntryInfo>();
  ASSIGN_OR_RETURN(auto found, pool.FindByUuid(uuid));
  if (found.empty()) return std::optional<pool::EntryInfo>();
  return std::optional<pool::EntryInfo>(std::move(found.front()));
}

// The newest snapshot of `volume` ("" if none), for messages.
std::string NewestSnapshot(const std::vector<pool::EntryInfo>& all, const std::string& volume) {
  const pool::EntryInfo* best = nullptr;
  for (auto& e : all)
    if (e.kind == pool::EntryKind::kSnapshot && VolumeOf(e.name) == volume &&
        (!best || e.created_unix_ns >= best->created_unix_ns))
      best = &e;
  return best ? best->name + " (uuid " + best->uuid + ")" : "";
}

void DropHidden(pool::Pool& pool, const std::string& hidden, const std::string& snap) {
  (void)pool.Delete(hidden + "@" + snap);  // best effort: a leftover goes at the next open
  (void)pool.Delete(hidden);
  (void)pool.Commit();
}

}  // namespace

Result<ReceiveReport> Receive(pool::Pool& pool, const ByteSource& in,
                              const ReceiveOptions& options) {
  StreamReader r(in);
  ASSIGN_OR_RETURN(auto h, r.ReadHeader());
  if (h.block_size != pool.block_size())
    return Status::Unsupported("stream block size " + std::to_string(h.block_size) +
                               " differs from the pool's " + std::to_string(pool.block_size()));
  const std::string uuid = FormatUuidText(h.uuid);
  ASSIGN_OR_RETURN(auto dup, ByUuid(pool, uuid));
  if (dup)
    return Status::AlreadyExists("snapshot uuid " + uuid + " is already in the pool as " +
                                 dup->name);
  ReceiveReport rep;
  rep.uuid = uuid;
  rep.incremental = h.incremental();
  rep.base_uuid = FormatUuidText(h.base_uuid);
  rep.size_bytes = h.size_bytes;
  pool::EntryMeta snap_meta{h.note, h.tags};
  pool::EntryIdentity snap_id{uuid, FormatUuidText(h.parent_uuid), h.created_unix_ns};

  if (!h.incremental()) {
    const std::string volume = options.volume.empty() ? h.volume : options.volume;
    RETURN_IF_ERROR(ValidateName(volume, "volume"));  // the CLI's rules: no hidden names
    if (!pool::ValidEntryName(volume + "@" + h.snapshot) ||
        !pool::ValidEntryName(std::string(kBuildPrefix) + volume + "@" + h.snapshot))
      return Status::InvalidArgument("name '" + volume + "@" + h.snapshot + "' too long");
    // The volume takes the sender's volume uuid unless that is taken here.
    pool::EntryIdentity vol_id;
    const std::string parent = FormatUuidText(h.parent_uuid);
    ASSIGN_OR_RETURN(auto parent_holder, ByUuid(pool, parent));
    if (!parent.empty() && !parent_holder) vol_id.uuid = parent;
    std::string hidden;
    Status st = PublishEntry(
        pool, volume,
        [&](const std::string& hid) {
          hidden = hid;
          return pool.CreateVolume(hid, h.size_bytes, {}, vol_id);
        },
        [&](const std::string& hid) -> Status {
          RETURN_IF_ERROR(ApplyRecords(pool, r, hid));
          return pool.Snapshot(hid, hid + "@" + h.snapshot, snap_meta, snap_id);
        });
    if (!st.ok()) {
      if (!hidden.empty()) DropHidden(pool, hidden, h.snapshot);
      return st;
    }
    rep.volume = volume;
  } else {
    ASSIGN_OR_RETURN(auto base, ByUuid(pool, rep.base_uuid));
    if (!base || base->kind != pool::EntryKind::kSnapshot) {
      std::string target = options.volume.empty() ? h.volume : options.volume;
      ASSIGN_OR_RETURN(auto all, pool.List());  // only for the message
      std::string newest = NewestSnapshot(all, target);
      return Status::NotFound("the stream's base snapshot uuid " + rep.base_uuid +
                              " is not in this pool" +
                              (newest.empty() ? std::string(" (volume '" + target +
                                                            "' has no snapshot)")
                                              : " (volume '" + target + "' has newest snapshot " +
                                                    newest + ")") +
                              "; the stream holds snapshot uuid " + uuid);
    }
    const std::string volume = VolumeOf(base->name);
    if (!options.volume.empty() && options.volume != volume)
      return Status::InvalidArgument("the stream's base (uuid " + rep.base_uuid + ") is " +
                                     base->name + ", not a snapshot of '" + options.volume + "'");
    ASSIGN_OR_RETURN(auto vol, pool.Stat(volume));
    if (!options.force) {
      ASSIGN_OR_RETURN(auto changed, Changes(pool, base->name, volume));
      if (!changed.empty() || vol.size_bytes != base->size_bytes)
        return Status::AlreadyExists("volume '" + volume + "' has changed since its snapshot " +
                                     base->name + " (uuid " + base->uuid +
                                     "), the stream's base; --force rolls those changes back");
    }
    const std::string hidden = std::string(kBuildPrefix) + volume;
    if (!pool::ValidEntryName(hidden + "@" + h.snapshot) ||
        !pool::ValidEntryName(volume + "@" + h.snapshot))
      return Status::InvalidArgument("name '" + volume + "@" + h.snapshot + "' too long");
    auto taken = pool.Stat(volume + "@" + h.snapshot);  // one name lookup
    if (taken.ok())
      return Status::AlreadyExists("snapshot " + volume + "@" + h.snapshot + " already exists");
    if (taken.status().code() != Code::kNotFound) return taken.status();
    // Build the new state in a hidden clone of the base; V changes only
    // after the digest checked.
    RETURN_IF_ERROR(pool.Clone(base->name, hidden, {}));
    Status st = [&]() -> Status {
      if (h.size_bytes != base->size_bytes) RETURN_IF_ERROR(pool.Resize(hidden, h.size_bytes));
      RETURN_IF_ERROR(ApplyRecords(pool, r, hidden));
      RETURN_IF_ERROR(pool.Snapshot(hidden, hidden + "@" + h.snapshot, {}));
      // Publication: V takes the received content, then the snapshot with
      // the sender's identity is taken of V (spec/send-stream.md says
      // what a kill between the two leaves).
      RETURN_IF_ERROR(pool.Rollback(volume, hidden + "@" + h.snapshot));
      return pool.Snapshot(volume, volume + "@" + h.snapshot, snap_meta, snap_id);
    }();
    DropHidden(pool, hidden, h.snapshot);
    if (!st.ok()) return st;
    rep.volume = volume;
  }
  rep.snapshot = rep.volume + "@" + h.snapshot;
  rep.stream_bytes = r.stream_bytes();
  rep.written_bytes = r.written_bytes();
  rep.hole_bytes = r.hole_bytes();
  return rep;
}

}  // namespace stack::compose
