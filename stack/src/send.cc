#include "stack/send.h"

#include <algorithm>
#include <optional>
#include <vector>

#include "block/endian.h"
#include "sha256.h"
#include "stack/address.h"
#include "stack/bulk_data.h"
#include "stack/publish.h"

namespace stack::compose {
namespace {

std::string VolumeOf(const std::string& name) { return name.substr(0, name.find('@')); }
std::string SnapOf(const std::string& name) {
  auto at = name.find('@');
  return at == std::string::npos ? "" : name.substr(at + 1);
}

Result<pool::EntryInfo> StatSnapshot(VolumeStore& pool, const std::string& name) {
  ASSIGN_OR_RETURN(auto e, pool.Lookup(name));
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
Result<std::vector<Change>> Changes(VolumeStore& pool, const std::string& from,
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

// The entry with this uuid, if any: one lookup in the pool's uuid index,
// whatever the number of entries.
Result<std::optional<pool::EntryInfo>> ByUuid(VolumeStore& pool, const std::string& uuid) {
  if (uuid.empty()) return std::optional<pool::EntryInfo>();
  ASSIGN_OR_RETURN(auto found, pool.FindByUuid(uuid));
  if (found.empty()) return std::optional<pool::EntryInfo>();
  return std::optional<pool::EntryInfo>(std::move(found.front()));
}

// Whether an entry named `name` exists: one name lookup.
Result<bool> Exists(VolumeStore& pool, const std::string& name) {
  auto e = pool.Lookup(name);
  if (e.ok()) return true;
  if (e.status().code() == Code::kNotFound) return false;
  return e.status();
}

Result<SendReport> Send(VolumeStore& pool, const std::string& snapshot_arg,
                        const std::string& from_arg, const ByteSink& out,
                        const std::string& resume_token, Progress* progress,
                        uint32_t version) {
  std::string snapshot = snapshot_arg, from = from_arg;
  std::optional<ResumePoint> resume;
  if (!resume_token.empty()) {
    ASSIGN_OR_RETURN(resume, ParseResumeToken(resume_token));
    auto find = [&](const Uuid& u, const std::string& named, const char* what) -> Result<std::string> {
      const std::string text = FormatUuidText(u);
      ASSIGN_OR_RETURN(auto e, ByUuid(pool, text));
      if (!e || e->kind != pool::EntryKind::kSnapshot || IsHiddenEntry(e->name))
        return Status::NotFound(std::string("the resume token's ") + what + " uuid " + text +
                                " is not a snapshot in this pool");
      if (!named.empty() && named != e->name)
        return Status::InvalidArgument("the resume token is for " + std::string(what) + " " +
                                       e->name + " (uuid " + text + "), not " + named);
      return e->name;
    };
    ASSIGN_OR_RETURN(snapshot, find(resume->uuid, snapshot, "snapshot"));
    if (IsZero(resume->base_uuid)) {
      if (!from.empty())
        return Status::InvalidArgument("the resume token is for a full stream, not one --from " +
                                       from);
    } else {
      ASSIGN_OR_RETURN(from, find(resume->base_uuid, from, "base"));
    }
  }
  ASSIGN_OR_RETURN(auto snap, StatSnapshot(pool, snapshot));
  StreamHeader h;
  h.version = version;
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
  uint64_t skip_below = 0;
  if (resume) {
    if (resume->offset > h.size_bytes || resume->offset % h.block_size)
      return Status::InvalidArgument("the resume token's offset is not inside " + snapshot);
    h.flags |= kSendFlagResume;
    h.resume = *resume;
    skip_below = resume->offset;
  }

  ASSIGN_OR_RETURN(auto changes, Changes(pool, from, snapshot));
  if (progress) {  // the stream's size, exactly: header, records, payload, END, digest
    ASSIGN_OR_RETURN(auto head, EncodeStreamHeader(h));
    uint64_t total = head.size() + kSendRecordBytes + kSendDigestBytes;
    for (auto& c : changes) {
      if (c.offset + c.length <= skip_below) continue;
      const uint64_t len = c.length - (c.offset < skip_below ? skip_below - c.offset : 0);
      total += c.kind == ChangeKind::kHole
                   ? kSendRecordBytes
                   : len + (len + kSendMaxWriteBytes - 1) / kSendMaxWriteBytes * kSendRecordBytes;
    }
    progress->SetTotal(total);
  }
  ASSIGN_OR_RETURN(auto dev, pool.OpenVolume(snapshot, true, "send"));
  StreamWriter w(out);
  RETURN_IF_ERROR(w.WriteHeader(h));
  std::vector<uint8_t> buf;
  for (auto& c : changes) {
    // A resume stream: only what starts at or after the token's offset (the
    // receiver stopped at a record boundary of the same stream).
    if (c.offset + c.length <= skip_below) continue;
    if (c.offset < skip_below) {
      c.length -= skip_below - c.offset;
      c.offset = skip_below;
    }
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

// The chain digest's start: binds the identity of what is received.
Digest ChainSeed(const StreamHeader& h) {
  Sha256 s;
  static const char kTag[] = "stack receive chain v2";
  s.Update(std::span(reinterpret_cast<const uint8_t*>(kTag), sizeof kTag - 1));
  s.Update(h.uuid);
  s.Update(h.base_uuid);
  uint8_t size[8];
  PutLE64(size, h.size_bytes);
  s.Update(size);
  return s.Final();
}

// Applies records to the hidden entry and records resume points in its note.
class Applier {
 public:
  Applier(VolumeStore& pool, std::string hidden, const ResumePoint& start)
      : pool_(pool), hidden_(std::move(hidden)), point_(start) {
    chain_.Update(start.digest);
  }

  // The pool's writes run on a worker thread (WriteBehindDevice) while this
  // one reads and checks the next records: on two cores, reading the input
  // and storing it overlap. Checkpoint's Flush waits for them. Four records
  // queued at most: as fast as 32 (1 GiB through a pipe), and 28 MiB fewer
  // buffers faulted in (~6K page faults, ~70 ms of CPU, measured).
  Status Open() {
    ASSIGN_OR_RETURN(auto dev, pool_.OpenVolume(hidden_, false, "receive"));
    dev_ = BulkWriteDevice(std::move(dev), 4 * size_t{kSendMaxWriteBytes});
    return Status::Ok();
  }

  // `r` produced `rec`; a WRITE's payload buffer is taken from it.
  Status Apply(const StreamRecord& rec, StreamReader& r) {
    if (rec.type == SendRecordType::kWrite) {
      r.SwapData(spare_);
      RETURN_IF_ERROR(dev_->WriteBuffer(rec.offset, spare_));  // spare_: a spare back, or empty
    } else {
      RETURN_IF_ERROR(dev_->WriteZeroes(rec.offset, rec.length));
    }
    // The payload enters through the record's checksum (checked): hashing
    // it again here cost as much as the whole rest of a receive.
    uint8_t head[28];
    PutLE32(head, static_cast<uint32_t>(rec.type));
    PutLE64(head + 4, rec.offset);
    PutLE64(head + 12, rec.length);
    PutLE64(head + 20, rec.checksum);
    chain_.Update(head);
    point_.offset = rec.offset + rec.length;
    ++point_.records;
    if (rec.type == SendRecordType::kWrite) point_.written_bytes += rec.length;
    dirty_ = true;
    since_ += rec.length;
    if (since_ >= kCheckpointBytes) return Checkpoint();
    return Status::Ok();
  }

  // Makes what was applied durable and records where to resume.
  Status Checkpoint() {
    if (!dirty_) return Status::Ok();
    RETURN_IF_ERROR(dev_->Flush());
    point_.digest = chain_.Peek();
    RETURN_IF_ERROR(pool_.SetMeta(hidden_, {FormatResumeToken(point_), {}}));  // commits
    dirty_ = false;
    since_ = 0;
    return Status::Ok();
  }

  Status Flush() { return dev_->Flush(); }
  void Close() { dev_.reset(); }
  std::string token() const { return FormatResumeToken(point_); }

 private:
  VolumeStore& pool_;
  const std::string hidden_;
  ResumePoint point_;
  Sha256 chain_;
  std::unique_ptr<BlockDevice> dev_;
  std::vector<uint8_t> spare_;  // a payload buffer traded with the reader and dev_
  bool dirty_ = false;
  uint64_t since_ = 0;
};


// The newest snapshot of `volume` ("" if none), for messages.
std::string NewestSnapshot(const std::vector<pool::EntryInfo>& all, const std::string& volume) {
  const pool::EntryInfo* best = nullptr;
  for (auto& e : all)
    if (e.kind == pool::EntryKind::kSnapshot && VolumeOf(e.name) == volume &&
        (!best || e.created_unix_ns >= best->created_unix_ns))
      best = &e;
  return best ? best->name + " (uuid " + best->uuid + ")" : "";
}

// Deletes `hidden` and its snapshots (best effort when `best_effort`).
Status DropHidden(VolumeStore& pool, const std::string& hidden, bool best_effort = true) {
  auto names = pool.HiddenNames();  // its snapshots are hidden too
  if (names.ok())
    for (auto& n : *names)
      if (n.rfind(hidden + "@", 0) == 0) {
        Status st = pool.Delete(n);
        if (!st.ok() && !best_effort) return st;
      }
  Status st = pool.Delete(hidden);
  if (!st.ok() && !best_effort) return st;
  st = pool.Commit();
  return best_effort ? Status::Ok() : st;
}

// Differs volume from snapshot (content or size)?
Result<bool> Diverged(VolumeStore& pool, const std::string& snap, const std::string& volume) {
  ASSIGN_OR_RETURN(auto s, pool.Lookup(snap));
  ASSIGN_OR_RETURN(auto v, pool.Lookup(volume));
  ASSIGN_OR_RETURN(auto changed, Changes(pool, snap, volume));
  return !changed.empty() || s.size_bytes != v.size_bytes;
}

// A kill after END checked but before the publication's last commit leaves
// `.recv-V@S` (with the sender's identity). Completes what can be completed;
// otherwise drops `.recv-V@S` and leaves the partial to be resumed.
Status CompleteInterrupted(VolumeStore& pool) {
  ASSIGN_OR_RETURN(auto names, pool.HiddenNames());  // nothing read when there is none
  for (auto& n : names) {
    if (n.rfind(kReceivePrefix, 0) != 0 || n.find('@') == std::string::npos) continue;
    const std::string hidden = VolumeOf(n);
    const std::string volume = hidden.substr(std::string(kReceivePrefix).size());
    const std::string snap = volume + "@" + SnapOf(n);
    ASSIGN_OR_RETURN(auto hs, pool.Lookup(n));
    ASSIGN_OR_RETURN(auto hv, pool.Lookup(hidden));
    auto point = ParseResumeToken(hv.note);
    // A full publication clears the token before the rename; an incremental
    // one never does.
    const bool full = (point.ok() && IsZero(point->base_uuid)) || hv.note.empty();
    Status done = Status::Unsupported("");
    ASSIGN_OR_RETURN(bool has_volume, Exists(pool, volume));
    ASSIGN_OR_RETURN(bool has_snap, Exists(pool, snap));
    if (full && !has_volume) {
      done = pool.Rename(hidden, volume);  // its snapshot follows
    } else if (point.ok() && !full && has_volume && !has_snap) {
      ASSIGN_OR_RETURN(bool diverged, Diverged(pool, n, volume));
      if (!diverged) {  // the rollback committed; only V@S is missing
        done = pool.Snapshot(volume, snap, {hs.note, hs.tags},
                             {hs.uuid, hs.parent_uuid, hs.created_unix_ns});
        if (done.ok()) RETURN_IF_ERROR(DropHidden(pool, hidden, false));
      }
    }
    if (!done.ok()) {
      RETURN_IF_ERROR(pool.Delete(n));
      RETURN_IF_ERROR(pool.Commit());
    }
  }
  return Status::Ok();
}

}  // namespace

Result<std::vector<PartialReceive>> ListPartialReceives(VolumeStore& pool) {
  ASSIGN_OR_RETURN(auto names, pool.HiddenNames());
  std::vector<PartialReceive> out;
  for (auto& n : names) {
    if (n.rfind(kReceivePrefix, 0) != 0 || n.find('@') != std::string::npos) continue;
    ASSIGN_OR_RETURN(auto e, pool.Lookup(n));
    PartialReceive p;
    p.hidden = n;
    p.volume = n.substr(std::string(kReceivePrefix).size());
    p.size_bytes = e.size_bytes;
    if (auto pt = ParseResumeToken(e.note); pt.ok()) {
      p.point = *pt;
      p.token = e.note;
    }
    out.push_back(std::move(p));
  }
  return out;
}

Status AbortReceive(VolumeStore& pool, const std::string& volume) {
  const std::string hidden = std::string(kReceivePrefix) + volume;
  ASSIGN_OR_RETURN(bool partial, Exists(pool, hidden));
  if (!partial)
    return Status::NotFound("no partial receive into '" + volume + "' in the pool");
  return DropHidden(pool, hidden, false);
}

Result<ReceiveReport> Receive(VolumeStore& pool, const ByteSource& in,
                              const ReceiveOptions& options) {
  // Before a read that would wait, record where to resume: a kill while
  // waiting then loses nothing that arrived.
  Applier* applier = nullptr;
  bool input_ended = false;
  ByteSource source = [&](std::span<uint8_t> out) -> Result<size_t> {
    if (applier && options.input_idle && options.input_idle())
      RETURN_IF_ERROR(applier->Checkpoint());
    auto n = in(out);
    if (!n.ok() || *n == 0) input_ended = true;
    return n;
  };
  StreamReader r(source);
  ASSIGN_OR_RETURN(auto h, r.ReadHeader());
  if (h.block_size != pool.block_size())
    return Status::Unsupported("stream block size " + std::to_string(h.block_size) +
                               " differs from the pool's " + std::to_string(pool.block_size()));
  RETURN_IF_ERROR(CompleteInterrupted(pool));
  const std::string uuid = FormatUuidText(h.uuid);
  ASSIGN_OR_RETURN(auto dup, ByUuid(pool, uuid));
  if (dup)
    return Status::AlreadyExists("snapshot uuid " + uuid + " is already in the pool as " +
                                 dup->name);
  ASSIGN_OR_RETURN(auto partials, ListPartialReceives(pool));
  ReceiveReport rep;
  rep.uuid = uuid;
  rep.incremental = h.incremental();
  rep.resumed = h.resumed();
  rep.base_uuid = FormatUuidText(h.base_uuid);
  rep.size_bytes = h.size_bytes;
  pool::EntryMeta snap_meta{h.note, h.tags};
  pool::EntryIdentity snap_id{uuid, FormatUuidText(h.parent_uuid), h.created_unix_ns};

  // The partial a resume stream continues: its token must match exactly.
  const PartialReceive* partial = nullptr;
  if (h.resumed()) {
    for (auto& p : partials)
      if (!p.token.empty() && p.point.uuid == h.uuid) partial = &p;
    if (!partial)
      return Status::NotFound("no partial receive of snapshot uuid " + uuid +
                              " in this pool to resume (a whole stream starts it again)");
    if (!(partial->point == h.resume) || partial->size_bytes != h.size_bytes)
      return Status::NotFound(
          "the resume stream continues snapshot uuid " + uuid + " from offset " +
          std::to_string(h.resume.offset) + " (" + std::to_string(h.resume.records) +
          " records), but the partial receive into '" + partial->volume + "' stopped at offset " +
          std::to_string(partial->point.offset) + " (" + std::to_string(partial->point.records) +
          " records): resume it with token " + partial->token);
    if (!options.volume.empty() && options.volume != partial->volume)
      return Status::InvalidArgument("the partial receive of snapshot uuid " + uuid + " is into '" +
                                     partial->volume + "', not '" + options.volume + "'");
  }

  // The target volume (and, incremental, the base it continues).
  std::string volume, base_name;
  if (!h.incremental()) {
    volume = partial ? partial->volume : options.volume.empty() ? h.volume : options.volume;
    RETURN_IF_ERROR(ValidateName(volume, "volume"));  // the CLI's rules: no hidden names
    auto taken = pool.Lookup(volume);  // one name lookup
    if (taken.ok()) return Status::AlreadyExists("volume " + volume + " already exists");
    if (taken.status().code() != Code::kNotFound) return taken.status();
  } else {
    ASSIGN_OR_RETURN(auto base, ByUuid(pool, rep.base_uuid));
    if (!base || base->kind != pool::EntryKind::kSnapshot || IsHiddenEntry(base->name)) {
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
    base_name = base->name;
    volume = VolumeOf(base->name);
    if (!options.volume.empty() && options.volume != volume)
      return Status::InvalidArgument("the stream's base (uuid " + rep.base_uuid + ") is " +
                                     base->name + ", not a snapshot of '" + options.volume + "'");
    if (!options.force) {
      ASSIGN_OR_RETURN(bool diverged, Diverged(pool, base_name, volume));
      if (diverged)
        return Status::AlreadyExists("volume '" + volume + "' has changed since its snapshot " +
                                     base->name + " (uuid " + base->uuid +
                                     "), the stream's base; --force rolls those changes back");
    }
    auto taken = pool.Lookup(volume + "@" + h.snapshot);  // one name lookup
    if (taken.ok())
      return Status::AlreadyExists("snapshot " + volume + "@" + h.snapshot + " already exists");
    if (taken.status().code() != Code::kNotFound) return taken.status();
  }
  const std::string hidden = std::string(kReceivePrefix) + volume;
  if (!pool::ValidEntryName(hidden + "@" + h.snapshot) ||
      !pool::ValidEntryName(volume + "@" + h.snapshot))
    return Status::InvalidArgument("name '" + volume + "@" + h.snapshot + "' too long");

  ResumePoint start;
  if (partial) {
    start = partial->point;
  } else {
    // A partial into the same volume: of this snapshot, a whole stream
    // starts it again; of another, it is in the way.
    for (auto& p : partials) {
      if (p.volume != volume) continue;
      if (!p.token.empty() && p.point.uuid != h.uuid)
        return Status::AlreadyExists(
            "a partial receive of snapshot uuid " + FormatUuidText(p.point.uuid) + " into '" +
            volume + "' is in the pool: finish it (stack send --resume " + p.token +
            ") or drop it (stack receive --abort " + volume + ")");
      RETURN_IF_ERROR(DropHidden(pool, p.hidden, false));
    }
    start.uuid = h.uuid;
    start.base_uuid = h.base_uuid;
    start.digest = ChainSeed(h);
    const pool::EntryMeta token_meta{FormatResumeToken(start), {}};
    if (!h.incremental()) {
      // The volume takes the sender's volume uuid unless that is taken here.
      pool::EntryIdentity vol_id;
      const std::string parent = FormatUuidText(h.parent_uuid);
      // (A partial just dropped above is not in the way.)
      ASSIGN_OR_RETURN(auto taken, ByUuid(pool, parent));
      if (!parent.empty() && (!taken || IsHiddenEntry(taken->name))) vol_id.uuid = parent;
      RETURN_IF_ERROR(pool.CreateVolume(hidden, h.size_bytes, token_meta, vol_id));
    } else {
      RETURN_IF_ERROR(pool.Clone(base_name, hidden, token_meta));
      ASSIGN_OR_RETURN(auto b, pool.Lookup(base_name));
      if (h.size_bytes != b.size_bytes) {
        if (Status st = pool.Resize(hidden, h.size_bytes); !st.ok()) {
          (void)DropHidden(pool, hidden);
          return st;
        }
      }
    }
  }

  Applier ap(pool, hidden, start);
  Status st = ap.Open();
  if (st.ok()) {
    applier = &ap;
    for (;;) {
      auto rec = r.Next();
      if (!rec.ok()) {
        st = rec.status();
        break;
      }
      if (rec->type == SendRecordType::kEnd) break;
      st = ap.Apply(*rec, r);
      if (!st.ok()) break;
    }
    applier = nullptr;
  }
  if (st.ok()) st = ap.Flush();
  if (!st.ok()) {
    // Input that ended early (or failed) is an interruption: keep what
    // arrived for a resume. Anything else (damage, no space): drop it.
    if (input_ended && ap.Checkpoint().ok()) {
      ap.Close();
      return Status(st.code(), st.message() + "; the partial receive into '" + volume +
                                   "' is kept: resume token " + ap.token() +
                                   " (stack send --resume TOKEN; stack receive --abort " +
                                   volume + " drops it)");
    }
    ap.Close();
    (void)DropHidden(pool, hidden);
    return st;
  }
  ap.Close();

  // Publication. The hidden snapshot carries the sender's identity, so a
  // kill before the last commit can be completed (CompleteInterrupted).
  const std::string hidden_snap = hidden + "@" + h.snapshot;
  st = [&]() -> Status {
    RETURN_IF_ERROR(pool.Snapshot(hidden, hidden_snap, snap_meta, snap_id));
    if (!h.incremental()) {
      RETURN_IF_ERROR(pool.SetMeta(hidden, {}));  // the token is not the volume's note
      return pool.Rename(hidden, volume);         // commits; V@S follows
    }
    if (!options.force) {
      ASSIGN_OR_RETURN(bool diverged, Diverged(pool, base_name, volume));
      if (diverged)
        return Status::AlreadyExists("volume '" + volume + "' changed during the receive");
    }
    RETURN_IF_ERROR(pool.Rollback(volume, hidden_snap));
    RETURN_IF_ERROR(pool.Snapshot(volume, volume + "@" + h.snapshot, snap_meta, snap_id));
    return DropHidden(pool, hidden, false);
  }();
  if (!st.ok()) {
    (void)DropHidden(pool, hidden);
    return st;
  }
  rep.volume = volume;
  rep.snapshot = rep.volume + "@" + h.snapshot;
  rep.stream_bytes = r.stream_bytes();
  rep.written_bytes = r.written_bytes();
  rep.hole_bytes = r.hole_bytes();
  return rep;
}

}  // namespace stack::compose
