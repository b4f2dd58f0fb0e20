#include "stack/send.h"

#include <algorithm>
#include <optional>
#include <vector>

#include "block/endian.h"
#include "block/text.h"
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

// An entry's stored uuid: text from the pool (or from another tool, on a
// shared Ceph pool), so a malformed one is damage, not a usage error.
Result<Uuid> StoredUuid(const std::string& text, const std::string& entry) {
  auto u = ParseUuidText(text);
  if (!u.ok())
    return Status::Corruption(entry + ": its stored uuid is malformed ('" + EscapeText(text) +
                              "')");
  return u;
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
// whatever the number of entries. A visible entry first: a receive's hidden
// snapshot holds the uuid of the V@S it publishes until it is dropped.
Result<std::optional<pool::EntryInfo>> ByUuid(VolumeStore& pool, const std::string& uuid) {
  if (uuid.empty()) return std::optional<pool::EntryInfo>();
  ASSIGN_OR_RETURN(auto found, pool.FindByUuid(uuid));
  if (found.empty()) return std::optional<pool::EntryInfo>();
  for (auto& e : found)
    if (!IsHiddenEntry(e.name)) return std::optional<pool::EntryInfo>(std::move(e));
  return std::optional<pool::EntryInfo>(std::move(found.front()));
}

// The visible snapshot with this uuid, if any.
Result<std::optional<pool::EntryInfo>> VisibleSnapshot(VolumeStore& pool,
                                                       const std::string& uuid) {
  ASSIGN_OR_RETURN(auto e, ByUuid(pool, uuid));
  if (e && (e->kind != pool::EntryKind::kSnapshot || IsHiddenEntry(e->name))) e.reset();
  return e;
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
    ASSIGN_OR_RETURN(h.base_uuid, StoredUuid(base.uuid, from));
    h.flags = kSendFlagIncremental;
    rep.base = from;
    rep.base_uuid = base.uuid;
  }
  h.block_size = pool.block_size();
  h.size_bytes = snap.size_bytes;
  if (snap.uuid.empty())
    return Status::Unsupported(snapshot + " was not made by stack (it has no record): a stream "
                               "names its snapshot by uuid (export it instead)");
  ASSIGN_OR_RETURN(h.uuid, StoredUuid(snap.uuid, snapshot));
  ASSIGN_OR_RETURN(h.parent_uuid, StoredUuid(snap.parent_uuid, snapshot));
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
  if (st.Is(Code::kNotFound)) st = Status::Ok();  // only its snapshot was left
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

// What a kill during a receive's publication left of `.recv-V`, and the
// step that finishes it. Each publication step commits on its own (Pool:
// Snapshot, SetMeta, Rename, Rollback, Delete), so a kill after END and the
// digest checked leaves one of (spec/send-stream.md section 4):
//   full:        .recv-V + .recv-V@S (token, or note already cleared) -> kFull
//   incremental: .recv-V + .recv-V@S, V not rolled back yet            -> kVerified
//                .recv-V + .recv-V@S, V rolled back                    -> kRolledBack
//                V@S published, .recv-V@S and/or .recv-V left          -> kPublished
// kStuck: it cannot go on as it was (V changed since the base, V gone or
// taken, V@S taken by another snapshot): .recv-V@S goes, the partial stays
// (resumable from its token). kNone: an ordinary partial receive.
enum class Step { kNone, kPublished, kFull, kVerified, kRolledBack, kStuck };

struct Leftover {
  std::string hidden, volume;              // .recv-V, V
  std::optional<pool::EntryInfo> hv, hs;   // .recv-V, .recv-V@S
  std::vector<std::string> hidden_snaps;   // every .recv-V@*
  std::optional<ResumePoint> point;        // .recv-V's token
  std::string uuid;  // the snapshot's: .recv-V@S's, else the token's
  std::string snap;  // V@S published (kPublished) or to publish
  Step step = Step::kNone;
  // Not a receive of ours: an image another tool made under the reserved
  // name (no record). Left alone, and not listed as a partial receive.
  bool foreign = false;
};

Result<Leftover> Inspect(VolumeStore& pool, const std::string& hidden,
                         const std::vector<std::string>& hidden_names) {
  Leftover l;
  l.hidden = hidden;
  l.volume = hidden.substr(std::string(kReceivePrefix).size());
  for (auto& n : hidden_names)
    if (n.rfind(hidden + "@", 0) == 0) l.hidden_snaps.push_back(n);
  if (auto hv = pool.Lookup(hidden); hv.ok()) l.hv = *hv;
  else if (!hv.status().Is(Code::kNotFound)) return hv.status();
  if (!l.hidden_snaps.empty()) {
    ASSIGN_OR_RETURN(auto hs, pool.Lookup(l.hidden_snaps.front()));
    l.hs = hs;
  }
  if ((l.hv && l.hv->uuid.empty()) || (l.hs && l.hs->uuid.empty())) {
    l.foreign = true;
    return l;
  }
  if (l.hv)
    if (auto pt = ParseResumeToken(l.hv->note); pt.ok()) l.point = *pt;
  l.uuid = l.hs ? l.hs->uuid : l.point ? FormatUuidText(l.point->uuid) : "";
  // Its snapshot already published: the kill fell after V@S was taken.
  ASSIGN_OR_RETURN(auto published, VisibleSnapshot(pool, l.uuid));
  if (published) {
    l.step = Step::kPublished;
    l.snap = published->name;
    return l;
  }
  if (!l.hs) return l;  // still receiving (END not reached)
  l.snap = l.volume + "@" + SnapOf(l.hs->name);
  // A full publication clears the token before the rename; an incremental
  // one never does. Neither (a note set by hand): cannot tell.
  if (!l.hv || (!l.point && !l.hv->note.empty())) {
    l.step = Step::kStuck;
    return l;
  }
  ASSIGN_OR_RETURN(bool has_volume, Exists(pool, l.volume));
  if (!l.point || IsZero(l.point->base_uuid)) {
    l.step = has_volume ? Step::kStuck : Step::kFull;
    return l;
  }
  ASSIGN_OR_RETURN(bool has_snap, Exists(pool, l.snap));
  if (!has_volume || has_snap) {
    l.step = Step::kStuck;
    return l;
  }
  ASSIGN_OR_RETURN(bool diverged, Diverged(pool, l.hs->name, l.volume));
  if (!diverged) {  // V holds the received content: the rollback committed
    l.step = Step::kRolledBack;
    return l;
  }
  // Not rolled back yet: finish as the receive would have without --force,
  // only onto V unchanged since the stream's base.
  l.step = Step::kStuck;
  ASSIGN_OR_RETURN(auto base, VisibleSnapshot(pool, FormatUuidText(l.point->base_uuid)));
  if (base && VolumeOf(base->name) == l.volume) {
    ASSIGN_OR_RETURN(bool changed, Diverged(pool, base->name, l.volume));
    if (!changed) l.step = Step::kVerified;
  }
  return l;
}

// Takes `l`'s remaining steps. Returns the V@S it published ("" if none).
Result<std::string> Finish(VolumeStore& pool, const Leftover& l) {
  switch (l.step) {
    case Step::kNone:
      return std::string();
    case Step::kPublished:
      RETURN_IF_ERROR(DropHidden(pool, l.hidden, false));
      return l.snap;
    case Step::kFull:
      // The token is not the published volume's note.
      if (!l.hv->note.empty()) RETURN_IF_ERROR(pool.SetMeta(l.hidden, {}));
      RETURN_IF_ERROR(pool.Rename(l.hidden, l.volume));  // its snapshot follows
      return l.snap;
    case Step::kVerified:
      RETURN_IF_ERROR(pool.Rollback(l.volume, l.hs->name));
      [[fallthrough]];
    case Step::kRolledBack:
      RETURN_IF_ERROR(pool.Snapshot(l.volume, l.snap, {l.hs->note, l.hs->tags},
                                    {l.hs->uuid, l.hs->parent_uuid, l.hs->created_unix_ns}));
      RETURN_IF_ERROR(DropHidden(pool, l.hidden, false));
      return l.snap;
    case Step::kStuck:
      for (auto& n : l.hidden_snaps) RETURN_IF_ERROR(pool.Delete(n));
      RETURN_IF_ERROR(pool.Commit());
      return std::string();
  }
  return std::string();
}

// Every `.recv-V` (and a `.recv-V@S` whose volume is gone), one each.
std::vector<std::string> ReceiveLeftovers(const std::vector<std::string>& names) {
  std::vector<std::string> out;
  for (auto& n : names)
    if (n.rfind(kReceivePrefix, 0) == 0 &&
        std::find(out.begin(), out.end(), VolumeOf(n)) == out.end())
      out.push_back(VolumeOf(n));
  return out;
}

// Finishes every receive a kill cut short in its publication; the next
// receive into the pool runs it first. Returns the snapshots published.
Result<std::vector<std::string>> CompleteInterrupted(VolumeStore& pool) {
  ASSIGN_OR_RETURN(auto names, pool.HiddenNames());  // nothing read when there is none
  const auto hiddens = ReceiveLeftovers(names);
  std::vector<std::string> published;
  for (auto& hidden : hiddens) {
    ASSIGN_OR_RETURN(auto l, Inspect(pool, hidden, names));
    if (l.foreign) continue;
    auto done = Finish(pool, l);
    if (!done.ok())
      return Status(done.status().code(), "completing the interrupted receive into '" +
                                              l.volume + "': " + done.status().message());
    if (!done->empty()) published.push_back(*done);
  }
  return published;
}

}  // namespace

Result<std::vector<PartialReceive>> ListPartialReceives(VolumeStore& pool) {
  ASSIGN_OR_RETURN(auto names, pool.HiddenNames());
  std::vector<PartialReceive> out;
  for (auto& n : names) {
    if (n.rfind(kReceivePrefix, 0) != 0 || n.find('@') != std::string::npos) continue;
    ASSIGN_OR_RETURN(auto l, Inspect(pool, n, names));
    if (l.foreign) continue;
    PartialReceive p;
    p.hidden = n;
    p.volume = l.volume;
    p.size_bytes = l.hv->size_bytes;
    if (l.point) {
      p.point = *l.point;
      p.token = l.hv->note;
    }
    p.snapshot_uuid = l.uuid;
    switch (l.step) {
      case Step::kPublished:
        p.stage = PartialReceive::Stage::kPublished;
        p.snapshot = l.snap;
        break;
      case Step::kFull:
      case Step::kVerified:
      case Step::kRolledBack:
        p.stage = PartialReceive::Stage::kComplete;
        p.snapshot = l.snap;
        p.abort_publishes = l.step == Step::kRolledBack;
        break;
      case Step::kNone:
      case Step::kStuck:
        break;
    }
    out.push_back(std::move(p));
  }
  return out;
}

Result<AbortReport> AbortReceive(VolumeStore& pool, const std::string& volume) {
  const std::string hidden = std::string(kReceivePrefix) + volume;
  ASSIGN_OR_RETURN(auto names, pool.HiddenNames());
  const bool any = std::any_of(names.begin(), names.end(), [&](const std::string& n) {
    return n == hidden || n.rfind(hidden + "@", 0) == 0;
  });
  if (!any) return Status::NotFound("no partial receive into '" + volume + "' in the pool");
  ASSIGN_OR_RETURN(auto l, Inspect(pool, hidden, names));
  if (l.foreign)
    return Status::NotFound("no partial receive into '" + volume + "' in the pool (" + hidden +
                            " was not made by stack)");
  AbortReport rep;
  // V already holds the received content (or V@S is published): dropping
  // the hidden entries would leave V changed with no V@S. Finishing is the
  // only outcome that matches the pool.
  if (l.step == Step::kRolledBack || l.step == Step::kPublished) {
    ASSIGN_OR_RETURN(rep.published, Finish(pool, l));
    rep.already_published = l.step == Step::kPublished;
    return rep;
  }
  RETURN_IF_ERROR(DropHidden(pool, hidden, false));
  return rep;
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
  // The names a stream brings follow the CLI's rules, as typed names do: a
  // snapshot "-x" or ".x" could be neither addressed nor removed afterwards.
  // Before anything changes.
  RETURN_IF_ERROR(ValidateName(h.volume, "the stream's volume"));
  RETURN_IF_ERROR(ValidateName(h.snapshot, "the stream's snapshot"));
  if (!options.volume.empty()) RETURN_IF_ERROR(ValidateName(options.volume, "volume"));
  if (h.block_size != pool.block_size())
    return Status::Unsupported("stream block size " + std::to_string(h.block_size) +
                               " differs from the pool's " + std::to_string(pool.block_size()));
  ASSIGN_OR_RETURN(const auto completed, CompleteInterrupted(pool));
  const std::string uuid = FormatUuidText(h.uuid);
  ASSIGN_OR_RETURN(auto dup, ByUuid(pool, uuid));
  if (dup) {
    std::string msg = "snapshot uuid " + uuid + " is already in the pool as " + dup->name;
    // Fed again after a kill: say the first receive did land after all.
    if (std::find(completed.begin(), completed.end(), dup->name) != completed.end())
      msg += ": the earlier interrupted receive of it was just completed";
    return Status::AlreadyExists(msg);
  }
  ASSIGN_OR_RETURN(auto partials, ListPartialReceives(pool));
  // Partials of this snapshot (one at most, since a whole stream of it into
  // a second volume is refused; pools from before that may hold several).
  std::vector<const PartialReceive*> same;
  for (auto& p : partials)
    if (!p.token.empty() && p.point.uuid == h.uuid) same.push_back(&p);
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
  bool resize_partial = false;
  if (h.resumed()) {
    if (!options.volume.empty()) {
      for (auto* p : same)
        if (p->volume == options.volume) partial = p;
      if (!partial && !same.empty()) partial = same.front();  // refused below, naming it
    } else if (same.size() > 1) {
      std::string which;
      for (auto* p : same)
        which += (which.empty() ? "" : ", ") + std::string("'") + p->volume +
                 "' (resume token " + p->token + ")";
      return Status::InvalidArgument("several partial receives of snapshot uuid " + uuid +
                                     ": into " + which +
                                     "; name the volume to continue (stack receive VOLUME)");
    } else if (!same.empty()) {
      partial = same.front();
    }
    if (!partial)
      return Status::NotFound("no partial receive of snapshot uuid " + uuid +
                              " in this pool to resume (a whole stream starts it again)");
    if (!options.volume.empty() && options.volume != partial->volume)
      return Status::InvalidArgument("the partial receive of snapshot uuid " + uuid +
                                     " is into '" + partial->volume + "', not '" +
                                     options.volume + "'");
    // A kill between the incremental's clone and its resize leaves the
    // base's size with nothing applied yet: resized below.
    resize_partial = partial->size_bytes != h.size_bytes && partial->point.records == 0;
    if (!(partial->point == h.resume) ||
        (partial->size_bytes != h.size_bytes && !resize_partial))
      return Status::NotFound(
          "the resume stream continues snapshot uuid " + uuid + " from offset " +
          std::to_string(h.resume.offset) + " (" + std::to_string(h.resume.records) +
          " records), but the partial receive into '" + partial->volume + "' stopped at offset " +
          std::to_string(partial->point.offset) + " (" + std::to_string(partial->point.records) +
          " records): resume it with token " + partial->token);
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
    if (resize_partial) RETURN_IF_ERROR(pool.Resize(hidden, h.size_bytes));
  } else {
    // One partial receive per snapshot uuid: a second into another volume
    // would leave two that no single resume stream can tell apart.
    for (auto* p : same)
      if (p->volume != volume)
        return Status::AlreadyExists(
            "snapshot uuid " + uuid + " is already being received into '" + p->volume +
            "' (a partial receive): finish it (stack send --resume " + p->token +
            ") or drop it (stack receive --abort " + p->volume + ")");
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
      // The volume takes the sender's volume uuid unless any entry holds it
      // here, hidden ones too: another partial would publish it as well.
      // (A partial just dropped above is not in the way.)
      pool::EntryIdentity vol_id;
      const std::string parent = FormatUuidText(h.parent_uuid);
      ASSIGN_OR_RETURN(auto taken, ByUuid(pool, parent));
      if (!parent.empty() && !taken) vol_id.uuid = parent;
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
  bool rolled_back = false;
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
    rolled_back = true;
    RETURN_IF_ERROR(pool.Snapshot(volume, volume + "@" + h.snapshot, snap_meta, snap_id));
    return DropHidden(pool, hidden, false);
  }();
  if (!st.ok() && rolled_back) {
    // V holds the received content already: dropping the hidden entries
    // would leave it with no V@S. Kept for the next receive or --abort.
    return Status(st.code(), st.message() + "; '" + volume +
                                 "' already holds the received content: the next receive "
                                 "or stack receive --abort " + volume + " publishes " +
                                 volume + "@" + h.snapshot);
  }
  if (!st.ok()) {
    (void)DropHidden(pool, hidden);
    return st;
  }
  rep.volume = volume;
  rep.snapshot = rep.volume + "@" + h.snapshot;
  rep.completed = completed;
  rep.stream_bytes = r.stream_bytes();
  rep.written_bytes = r.written_bytes();
  rep.hole_bytes = r.hole_bytes();
  return rep;
}

}  // namespace stack::compose
