// Pool lifecycle, commit and the volume-table operations.
#include <algorithm>
#include <chrono>
#include <cstring>
#include <random>

#include "block/endian.h"
#include "pool_impl.h"
#include "superblock_copies.h"

namespace stack::pool {
namespace {


uint64_t NowNs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

std::array<uint8_t, 16> NewUuid() {
  static std::mt19937_64 rng = [] {
    std::random_device rd;
    std::seed_seq seq{rd(), rd(), rd(), rd(), static_cast<unsigned>(NowNs())};
    return std::mt19937_64(seq);
  }();
  std::array<uint8_t, 16> u{};
  uint64_t a = rng(), b = rng();
  for (int i = 0; i < 8; ++i) {
    u[i] = uint8_t(a >> (8 * i));
    u[8 + i] = uint8_t(b >> (8 * i));
  }
  u[6] = uint8_t((u[6] & 0x0f) | 0x40);  // version 4
  u[8] = uint8_t((u[8] & 0x3f) | 0x80);  // variant
  return u;
}

bool IsZeroUuid(const std::array<uint8_t, 16>& u) {
  return std::all_of(u.begin(), u.end(), [](uint8_t c) { return c == 0; });
}

std::string VolumePart(const std::string& name) { return name.substr(0, name.find('@')); }

Status ValidateMeta(const EntryMeta& m) {
  if (m.note.size() > kMaxNoteLen) return Status::InvalidArgument("note longer than 4096 bytes");
  if (m.tags.size() > kMaxTags) return Status::InvalidArgument("more than 64 tags");
  for (const auto& t : m.tags) {
    if (t.size() > kMaxTagLen) return Status::InvalidArgument("tag longer than 255 bytes");
  }
  return Status::Ok();
}

Status CheckName(const std::string& name) {
  if (!ValidEntryName(name)) {
    return Status::InvalidArgument("invalid name '" + name +
                                   "': use [A-Za-z0-9._:+-], at most one '@', 1-255 bytes");
  }
  return Status::Ok();
}

std::function<void(const std::string&)>& WarningSink() {
  static std::function<void(const std::string&)> sink;
  return sink;
}

void EmitWarning(const std::string& w) {
  if (WarningSink()) WarningSink()(w);
}

}  // namespace

bool ValidEntryName(const std::string& name) {
  if (name.empty() || name.size() > kMaxNameLen) return false;
  int ats = 0;
  for (char c : name) {
    if (c == '@') {
      ++ats;
      continue;
    }
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == ':' || c == '+' || c == '-';
    if (!ok) return false;
  }
  if (ats > 1) return false;
  if (ats == 1 && (name.front() == '@' || name.back() == '@')) return false;
  return true;
}

std::string FormatUuid(const std::array<uint8_t, 16>& u) {
  static const char* hex = "0123456789abcdef";
  std::string s;
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) s += '-';
    s += hex[u[i] >> 4];
    s += hex[u[i] & 15];
  }
  return s;
}

// ---------------------------------------------------------------- Impl

void Pool::Impl::InitComponents() {
  size_t cap = std::max<size_t>(cache_bytes / bs, 64);
  cache = std::make_unique<BlockCache>(store.get(), bs, cap);
  sm = std::make_unique<SpaceMap>(cache.get(), bs);
  tm = std::make_unique<TransactionManager>(cache.get(), sm.get());
  tree = std::make_unique<BTree>(tm.get(), bs, kVolumeTree);
  table = std::make_unique<EntryTable>(tm.get(), bs);
  // Per-block transaction state costs ~64 bytes; keep it within a quarter
  // of the cache budget, then commit at the next request boundary.
  max_txn_entries = std::max<size_t>(cache_bytes / 256, 4096);
}

Status Pool::Impl::Load() {
  if (cache) cache->Clear();
  ASSIGN_OR_RETURN(SuperCopies copies, ReadSuperCopies(*store, bs));
  SuperVerdict v = JudgeSuperCopies(copies);
  if (bs != 0 && v.open.block_size != bs) return Status::Corruption("block size changed");
  std::vector<std::string> notes = v.torn;
  notes.insert(notes.end(), v.damaged.begin(), v.damaged.end());
  if (!v.lost.empty()) {
    if (!accept_lost_generation) {
      return Status::Corruption(store->describe() + ": " + v.lost +
                                ". To open generation " + std::to_string(v.open.generation) +
                                " anyway and give up generation " +
                                std::to_string(v.lost_generation) +
                                " if it existed, pass --accept-lost-generation (stack pool check, "
                                "stack pool recover)");
    }
    notes.push_back("opened generation " + std::to_string(v.open.generation) +
                    " as asked (--accept-lost-generation); lost: generation " +
                    std::to_string(v.lost_generation) +
                    " if it was committed (no copy of it is readable, so what it held cannot be "
                    "listed): " + v.lost);
  }
  sb = v.open;
  if (bs == 0) {
    bs = sb.block_size;
    InitComponents();
  }
  // A writer puts the copies back in agreement before anything else
  // happens (a generation it goes on from must have both copies again).
  if (!read_only && !v.repairs.empty()) {
    for (const auto& [block, copy] : v.repairs) {
      RETURN_IF_ERROR(store->Write(block * bs, EncodeSuperblock(copy, block)));
      RETURN_IF_ERROR(store->Flush());
    }
    notes.push_back("rewrote " + std::to_string(v.repairs.size()) +
                    " superblock cop" + (v.repairs.size() == 1 ? "y" : "ies") +
                    " from the intact copy of the same generation");
  }
  warnings = std::move(notes);
  lost_generation = v.lost.empty() ? 0 : v.lost_generation;
  sm->Load(sb.nr_blocks, sb.used_blocks, sb.index_locs);
  max_blocks = sb.max_blocks;
  next_id = sb.next_entry_id;
  cache->set_generation(sb.generation + 1);
  table->Reset(sb.entry_root, sb.name_root, sb.entry_count);
  dirty = false;
  return Status::Ok();
}

Status Pool::Impl::Usable() const {
  if (!broken.ok()) return broken;
  return Status::Ok();
}

Status Pool::Impl::Writable() const {
  RETURN_IF_ERROR(Usable());
  if (read_only) return Status::ReadOnly("pool is open read-only");
  return Status::Ok();
}

Status Pool::Impl::Abort(Status cause) {
  Status st = Load();
  if (!st.ok()) {
    broken = Status(cause.code(), "pool unusable after error (" + cause.ToString() +
                                      "); reloading failed: " + st.ToString());
  }
  return cause;
}

uint64_t Pool::Impl::Reserve() const {
  // The space map's commit, the dirty entries and one more entry change.
  return SpaceMap::ReserveBlocks(max_blocks, bs) + table->ReserveBlocks() + 2;
}

Status Pool::Impl::NewId() {
  if (next_id >= EntryTable::kMaxId) {
    return Status::NoSpace("pool has handed out every entry id (2^48)");
  }
  return Status::Ok();
}

Status Pool::Impl::EnsureSpace(uint64_t need, const char* what) {
  uint64_t want = need + Reserve();
  if (sm->available() >= want) return Status::Ok();
  if (sm->nr_blocks() < max_blocks) {
    uint64_t shortfall = want - sm->available();
    uint64_t grow = std::max<uint64_t>({shortfall, sm->nr_blocks() / 8, (64ull << 20) / bs});
    uint64_t new_nr = std::min(max_blocks, sm->nr_blocks() + grow);
    RETURN_IF_ERROR(store->Resize(new_nr * bs));
    RETURN_IF_ERROR(sm->Grow(new_nr));
    dirty = true;
    if (sm->available() >= want) return Status::Ok();
  }
  return Status::NoSpace(std::string("pool full: ") + what + " needs up to " +
                         std::to_string(need) + " blocks, " +
                         std::to_string(sm->available()) + " free of which " +
                         std::to_string(Reserve()) + " are reserved for metadata commits");
}

Status Pool::Impl::NameFree(const std::string& name) {
  ASSIGN_OR_RETURN(TableEntry * e, table->Find(name));
  if (e) return Status::AlreadyExists("entry '" + name + "' exists");
  return Status::Ok();
}

Status Pool::Impl::FlushEntries() {
  Status st = table->Flush();
  return st.ok() ? st : Abort(st);
}

Result<TableEntry*> Pool::Impl::Find(const std::string& name, const char* what) {
  ASSIGN_OR_RETURN(TableEntry * e, table->Find(name));
  if (!e) return Status::NotFound(std::string("no ") + what + " '" + name + "'");
  return e;
}

void Pool::Impl::ReleaseSpace(const std::vector<uint64_t>& blocks) {
  // Only runs of at least kReleaseMinBytes: a deleted volume or a discarded
  // range gives its space back to the file system, while the few metadata
  // blocks every commit frees are left for reuse (punching them would only
  // fragment the backing file).
  constexpr uint64_t kReleaseMinBytes = 64 << 10;
  for (size_t i = 0; i < blocks.size();) {
    size_t j = i + 1;
    while (j < blocks.size() && blocks[j] == blocks[j - 1] + 1) ++j;
    const uint64_t len = (j - i) * bs;
    if (len >= kReleaseMinBytes) {
      // A hint: the blocks are free in the durable state whatever happens.
      Status st = store->Discard(blocks[i] * bs, len);
      (void)st;
    }
    i = j;
  }
}

Status Pool::Impl::CommitLocked() {
  RETURN_IF_ERROR(Writable());
  if (!dirty && !sm->changed()) return Status::Ok();
  auto run = [&]() -> Status {
    // 1. Changed entries into the entry tree.
    RETURN_IF_ERROR(table->Flush());
    // 2. Reference counts.
    RETURN_IF_ERROR(sm->PrepareCommit());
    // 3. Metadata, then a barrier.
    RETURN_IF_ERROR(cache->WriteDirty());
    RETURN_IF_ERROR(store->Flush());
    // 4. The superblock, then a barrier.
    Superblock next = sb;
    next.generation = sb.generation + 1;
    next.nr_blocks = sm->nr_blocks();
    next.max_blocks = max_blocks;
    next.used_blocks = sm->used_blocks();
    next.entry_root = table->entry_root();
    next.name_root = table->name_root();
    next.entry_count = table->count();
    next.next_entry_id = next_id;
    next.index_locs = sm->index_locs();
    // Primary, barrier, mirror, barrier: a crash tears at most one copy,
    // and only in the patterns superblock_copies.h recognises.
    const uint64_t slot = next.generation % 2;
    for (bool mirror : {false, true}) {
      const uint64_t block = SuperCopyBlock(slot, mirror);
      RETURN_IF_ERROR(store->Write(block * bs, EncodeSuperblock(next, block)));
      RETURN_IF_ERROR(store->Flush());
    }
    // 5. Durable.
    std::vector<uint64_t> released = sm->EndCommit();
    sb = std::move(next);
    cache->set_generation(sb.generation + 1);
    dirty = false;
    ReleaseSpace(released);
    table->Trim();
    return Status::Ok();
  };
  Status st = run();
  if (!st.ok()) return Abort(st.WithContext("commit"));
  return Status::Ok();
}

// ---------------------------------------------------------------- Pool

Pool::Pool(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Pool::~Pool() {
  if (!impl_) return;
  std::lock_guard<std::mutex> lock(impl_->mu);
  if (!impl_->read_only && impl_->broken.ok()) {
    Status st = impl_->CommitLocked();  // best effort, like an unmount
    (void)st;
  }
}

uint32_t Pool::block_size() const { return impl_->bs; }

const std::vector<std::string>& Pool::open_warnings() const { return impl_->open_warnings; }

void SetPoolWarningSink(std::function<void(const std::string&)> sink) {
  WarningSink() = std::move(sink);
}

namespace {
// Every option checked before anything is created.
Status ValidateCreate(const PoolCreateOptions& o) {
  const uint32_t bs = o.block_size;
  if (bs < kMinBlockSize || bs > kMaxBlockSize || (bs & (bs - 1)) != 0) {
    return Status::InvalidArgument("block size " + std::to_string(bs) +
                                   " must be a power of two from 4 KiB to 1 MiB");
  }
  if (o.size_bytes == 0) return Status::InvalidArgument("pool size must be positive");
  if (o.size_bytes % bs != 0 || o.max_bytes % bs != 0) {
    return Status::InvalidArgument("pool sizes must be multiples of the block size");
  }
  const uint64_t nr = o.size_bytes / bs;
  const uint64_t max = o.max_bytes ? o.max_bytes / bs : nr;
  if (nr < 16) return Status::InvalidArgument("pool must hold at least 16 blocks");
  if (max < nr) {
    return Status::InvalidArgument("maximum size " + std::to_string(o.max_bytes) +
                                   " is below the initial size " + std::to_string(o.size_bytes));
  }
  if (max > SpaceMap::MaxPoolBlocks(bs)) {
    return Status::InvalidArgument("pool larger than the format allows for this block size");
  }
  return Status::Ok();
}
}  // namespace

Result<std::unique_ptr<Pool>> Pool::Create(const std::string& path, const PoolCreateOptions& o) {
  // Validate first, build under a temporary name, then rename into place
  // without replacing: a failed create leaves nothing behind, and two
  // concurrent creates cannot overwrite each other.
  RETURN_IF_ERROR(ValidateCreate(o));
  ASSIGN_OR_RETURN(auto store, CreateFileStore(path, o.size_bytes));
  Store* raw = store.get();
  ASSIGN_OR_RETURN(auto pool, Create(std::move(store), o));
  RETURN_IF_ERROR(raw->Publish());
  return pool;
}

Result<std::unique_ptr<Pool>> Pool::Create(std::unique_ptr<Store> store,
                                           const PoolCreateOptions& o) {
  RETURN_IF_ERROR(ValidateCreate(o));
  const uint32_t bs = o.block_size;
  const uint64_t nr = o.size_bytes / bs;
  const uint64_t max = o.max_bytes ? o.max_bytes / bs : nr;
  RETURN_IF_ERROR(store->Lock(true));
  if (store->Size() < nr * bs) RETURN_IF_ERROR(store->Resize(nr * bs));
  std::vector<uint8_t> zero(kSuperSize, 0);
  for (uint64_t b = 0; b < kSuperCopies; ++b) RETURN_IF_ERROR(store->Write(b * bs, zero));

  auto impl = std::make_unique<Impl>();
  impl->store = std::move(store);
  impl->bs = bs;
  impl->cache_bytes = o.cache_bytes;
  impl->InitComponents();
  impl->sb.generation = 0;
  impl->sb.block_size = bs;
  impl->sb.nr_blocks = nr;
  impl->sb.max_blocks = max;
  impl->sb.uuid = NewUuid();
  impl->sb.created_ns = NowNs();
  impl->max_blocks = max;
  impl->sm->Load(nr, 0, {});
  impl->cache->set_generation(1);
  for (uint64_t b = 0; b < kSuperCopies; ++b) RETURN_IF_ERROR(impl->sm->Claim(b));
  // Generations 1 and 2: both slots hold a generation from the start, so
  // an unreadable slot is never mistaken for one not yet written.
  for (int i = 0; i < 2; ++i) {
    impl->dirty = true;
    RETURN_IF_ERROR(impl->CommitLocked());
  }
  return std::unique_ptr<Pool>(new Pool(std::move(impl)));
}

Result<std::unique_ptr<Pool>> Pool::Open(const std::string& path, const PoolOpenOptions& o) {
  ASSIGN_OR_RETURN(auto store, OpenFileStore(path, o.read_only));
  return Open(std::move(store), o);
}

Result<std::unique_ptr<Pool>> Pool::Open(std::unique_ptr<Store> store, const PoolOpenOptions& o) {
  bool ro = o.read_only || store->read_only();
  RETURN_IF_ERROR(store->Lock(!ro));
  auto impl = std::make_unique<Impl>();
  impl->store = std::move(store);
  impl->read_only = ro;
  impl->cache_bytes = o.cache_bytes;
  impl->accept_lost_generation = o.accept_lost_generation;
  RETURN_IF_ERROR(impl->Load());
  if (impl->lost_generation != 0 && !ro) {
    // The loss was accepted: commit at once, so both slots are whole again
    // and the next open needs no flag.
    impl->dirty = true;
    RETURN_IF_ERROR(impl->CommitLocked());
  }
  impl->open_warnings = impl->warnings;
  for (const std::string& w : impl->open_warnings) EmitWarning(w);
  return std::unique_ptr<Pool>(new Pool(std::move(impl)));
}

Status Pool::CreateVolume(const std::string& name, uint64_t size_bytes, const EntryMeta& meta) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  Impl& p = *impl_;
  RETURN_IF_ERROR(p.Writable());
  RETURN_IF_ERROR(CheckName(name));
  if (name.find('@') != std::string::npos) {
    return Status::InvalidArgument("a volume name cannot contain '@' (that names a snapshot)");
  }
  RETURN_IF_ERROR(ValidateMeta(meta));
  if (size_bytes % p.bs != 0) {
    return Status::InvalidArgument("volume size must be a multiple of " + std::to_string(p.bs));
  }
  if (size_bytes / p.bs > (uint64_t(1) << 48)) return Status::InvalidArgument("volume too large");
  RETURN_IF_ERROR(p.NameFree(name));
  RETURN_IF_ERROR(p.NewId());
  TableEntry e;
  e.name = name;
  e.size_bytes = size_bytes;
  e.note = meta.note;
  e.tags = meta.tags;
  RETURN_IF_ERROR(p.EnsureSpace(p.table->AddCost(e), "a new volume"));
  e.id = p.next_id++;
  e.uuid = NewUuid();
  e.created_ns = NowNs();
  if (Status st = p.table->Add(std::move(e)).status(); !st.ok()) return p.Abort(st);
  p.dirty = true;
  return p.CommitLocked();
}

Result<std::unique_ptr<BlockDevice>> Pool::OpenVolume(const std::string& name, bool read_only) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  Impl& p = *impl_;
  RETURN_IF_ERROR(p.Usable());
  ASSIGN_OR_RETURN(TableEntry * e, p.Find(name));
  bool ro = read_only || e->read_only || e->snapshot || p.read_only;
  if (!read_only && ro) {
    return Status::ReadOnly("'" + name + "' is read-only" +
                            (e->snapshot ? " (a snapshot)" : p.read_only ? " (pool open read-only)" : ""));
  }
  return MakeVolumeDevice(impl_.get(), e->id, ro);
}

namespace {
Status MakeCopy(Pool::Impl& p, const std::string& source, const std::string& name, bool snapshot,
                const EntryMeta& meta) {
  RETURN_IF_ERROR(p.Writable());
  RETURN_IF_ERROR(CheckName(name));
  RETURN_IF_ERROR(ValidateMeta(meta));
  ASSIGN_OR_RETURN(TableEntry * src, p.Find(source));
  bool has_at = name.find('@') != std::string::npos;
  if (snapshot) {
    if (!has_at || VolumePart(name) != VolumePart(source)) {
      return Status::InvalidArgument("snapshot of '" + source + "' must be named '" +
                                     VolumePart(source) + "@<name>'");
    }
  } else if (has_at) {
    return Status::InvalidArgument("a clone is a volume: its name cannot contain '@'");
  }
  // Copy what we need of the source before the table changes.
  TableEntry e;
  e.snapshot = snapshot;
  e.read_only = snapshot;
  e.name = name;
  e.parent = src->uuid;
  e.size_bytes = src->size_bytes;
  e.root = src->root;
  e.mapped_blocks = src->mapped_blocks;
  e.note = meta.note;
  e.tags = meta.tags;
  RETURN_IF_ERROR(p.NameFree(name));
  RETURN_IF_ERROR(p.NewId());
  uint64_t headroom = std::max<uint64_t>(64, p.max_blocks / 100);
  Status space = p.EnsureSpace(headroom + p.table->AddCost(e), snapshot ? "a snapshot" : "a clone");
  if (!space.ok()) {
    return Status::NoSpace(std::string("pool nearly full: ") + (snapshot ? "snapshot" : "clone") +
                           " refused below the reserve threshold (" + space.message() + ")");
  }
  e.id = p.next_id++;
  e.uuid = NewUuid();
  e.created_ns = NowNs();
  Status st = p.tree->IncRoot(e.root);
  if (st.ok()) st = p.table->Add(std::move(e)).status();
  if (!st.ok()) return p.Abort(st);
  p.dirty = true;
  return p.CommitLocked();
}
}  // namespace

Status Pool::Snapshot(const std::string& source, const std::string& snap_name,
                      const EntryMeta& meta) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return MakeCopy(*impl_, source, snap_name, true, meta);
}

Status Pool::Clone(const std::string& source, const std::string& new_name, const EntryMeta& meta) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return MakeCopy(*impl_, source, new_name, false, meta);
}

Status Pool::Rollback(const std::string& volume, const std::string& snapshot) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  Impl& p = *impl_;
  RETURN_IF_ERROR(p.Writable());
  std::string snap = snapshot.find('@') == std::string::npos ? volume + "@" + snapshot : snapshot;
  ASSIGN_OR_RETURN(TableEntry * v, p.Find(volume, "volume"));
  if (v->snapshot) return Status::InvalidArgument("'" + volume + "' is a snapshot, not a volume");
  if (v->read_only) return Status::ReadOnly("volume '" + volume + "' is read-only");
  ASSIGN_OR_RETURN(TableEntry * s, p.Find(snap, "snapshot"));
  uint64_t old_root = v->root;
  Status st = p.tree->IncRoot(s->root);
  if (st.ok()) st = p.tree->DecRoot(old_root);
  if (!st.ok()) return p.Abort(st);
  v->root = s->root;
  v->size_bytes = s->size_bytes;
  v->mapped_blocks = s->mapped_blocks;
  p.table->MarkDirty(v);
  p.dirty = true;
  return p.CommitLocked();
}

Status Pool::Delete(const std::string& name) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  Impl& p = *impl_;
  RETURN_IF_ERROR(p.Writable());
  ASSIGN_OR_RETURN(TableEntry * e, p.Find(name));
  const uint64_t id = e->id, root = e->root;
  // The reserve holds the usual cost of removing one record (two leaves);
  // a record spread over more nodes needs the difference free.
  ASSIGN_OR_RETURN(uint64_t cost, p.table->RemoveCost(id));
  const uint64_t allowance = p.table->Allowance();
  if (cost > allowance) RETURN_IF_ERROR(p.EnsureSpace(cost - allowance, "the delete"));
  Status st = p.tree->DecRoot(root);
  if (st.ok()) st = p.table->Remove(id);
  if (!st.ok()) return p.Abort(st);
  p.dirty = true;
  return p.CommitLocked();
}

Status Pool::Rename(const std::string& old_name, const std::string& new_name) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  Impl& p = *impl_;
  RETURN_IF_ERROR(p.Writable());
  RETURN_IF_ERROR(CheckName(new_name));
  ASSIGN_OR_RETURN(TableEntry * e, p.Find(old_name));
  if (old_name == new_name) return Status::Ok();
  bool old_snap = old_name.find('@') != std::string::npos;
  bool new_snap = new_name.find('@') != std::string::npos;
  std::vector<std::pair<uint64_t, std::string>> renames;  // id, new name
  if (old_snap) {
    if (!new_snap || VolumePart(new_name) != VolumePart(old_name)) {
      return Status::InvalidArgument("a snapshot keeps its volume part: rename '" + old_name +
                                     "' to '" + VolumePart(old_name) + "@<new>'");
    }
    renames.push_back({e->id, new_name});
  } else {
    if (new_snap) return Status::InvalidArgument("a volume name cannot contain '@'");
    // The volume and each of its snapshots (a walk of the entry tree).
    Status walk = p.table->ForEach([&](const TableEntry& x) {
      if (x.name == old_name) {
        renames.push_back({x.id, new_name});
      } else if (x.name.size() > old_name.size() &&
                 x.name.compare(0, old_name.size(), old_name) == 0 &&
                 x.name[old_name.size()] == '@') {
        renames.push_back({x.id, new_name + x.name.substr(old_name.size())});
      }
      return Status::Ok();
    });
    if (!walk.ok()) return p.Abort(walk);
  }
  uint64_t lo = UINT64_MAX, hi = 0;
  for (auto& [id, n] : renames) {
    if (!ValidEntryName(n)) return CheckName(n);
    RETURN_IF_ERROR(p.NameFree(n));
    lo = std::min(lo, id);
    hi = std::max(hi, id);
  }
  ASSIGN_OR_RETURN(uint64_t cost, p.table->ChangeCost(lo, hi, renames.size()));
  RETURN_IF_ERROR(p.EnsureSpace(cost, "the rename"));
  for (auto& [id, n] : renames) {
    auto x = p.table->Get(id);
    Status st = x.ok() ? p.table->Rename(*x, n) : x.status();
    if (!st.ok()) return p.Abort(st);
  }
  p.dirty = true;
  return p.CommitLocked();
}

Status Pool::Resize(const std::string& name, uint64_t new_size) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  Impl& p = *impl_;
  RETURN_IF_ERROR(p.Writable());
  ASSIGN_OR_RETURN(TableEntry * e, p.Find(name, "volume"));
  if (e->snapshot) return Status::InvalidArgument("snapshots cannot be resized");
  if (e->read_only) return Status::ReadOnly("volume '" + name + "' is read-only");
  if (new_size % p.bs != 0) {
    return Status::InvalidArgument("volume size must be a multiple of " + std::to_string(p.bs));
  }
  if (new_size / p.bs > (uint64_t(1) << 48)) return Status::InvalidArgument("volume too large");
  const uint64_t id = e->id;
  if (new_size < e->size_bytes) {
    RETURN_IF_ERROR(p.RemoveRange(*e, new_size / p.bs, e->size_bytes / p.bs));
  }
  ASSIGN_OR_RETURN(e, p.FindId(id));
  e->size_bytes = new_size;
  p.table->MarkDirty(e);
  p.dirty = true;
  return p.CommitLocked();
}

Status Pool::SetReadOnly(const std::string& name, bool ro) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  Impl& p = *impl_;
  RETURN_IF_ERROR(p.Writable());
  ASSIGN_OR_RETURN(TableEntry * e, p.Find(name));
  if (e->snapshot && !ro) return Status::InvalidArgument("snapshots are always read-only");
  RETURN_IF_ERROR(p.EnsureSpace(0, "metadata"));
  e->read_only = ro;
  p.table->MarkDirty(e);
  p.dirty = true;
  return p.CommitLocked();
}

Status Pool::SetMeta(const std::string& name, const EntryMeta& meta) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  Impl& p = *impl_;
  RETURN_IF_ERROR(p.Writable());
  RETURN_IF_ERROR(ValidateMeta(meta));
  ASSIGN_OR_RETURN(TableEntry * e, p.Find(name));
  TableEntry grown = *e;
  grown.note = meta.note;
  grown.tags = meta.tags;
  RETURN_IF_ERROR(p.EnsureSpace(p.table->WriteCost(RecordBytes(grown)), "metadata"));
  e->note = meta.note;
  e->tags = meta.tags;
  p.table->MarkDirty(e);
  p.dirty = true;
  return p.CommitLocked();
}

namespace {
Result<EntryInfo> InfoOf(Pool::Impl& p, const TableEntry& e) {
  EntryInfo i;
  i.name = e.name;
  i.uuid = FormatUuid(e.uuid);
  i.kind = e.snapshot ? EntryKind::kSnapshot : EntryKind::kVolume;
  i.size_bytes = e.size_bytes;
  i.created_unix_ns = static_cast<int64_t>(e.created_ns);
  if (!IsZeroUuid(e.parent)) i.parent_uuid = FormatUuid(e.parent);
  i.note = e.note;
  i.tags = e.tags;
  i.read_only = e.read_only || e.snapshot;
  i.mapped_bytes = e.mapped_blocks * p.bs;
  ASSIGN_OR_RETURN(uint64_t excl, p.ExclusiveBlocks(e.root));
  i.exclusive_bytes = excl * p.bs;
  i.shared_bytes = i.mapped_bytes - std::min(i.mapped_bytes, i.exclusive_bytes);
  return i;
}
}  // namespace

Result<std::vector<EntryInfo>> Pool::List() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  Impl& p = *impl_;
  RETURN_IF_ERROR(p.Usable());
  RETURN_IF_ERROR(p.FlushEntries());
  std::vector<EntryInfo> out;
  Status st = p.table->ForEach([&](const TableEntry& e) -> Status {
    ASSIGN_OR_RETURN(EntryInfo i, InfoOf(p, e));
    out.push_back(std::move(i));
    return Status::Ok();
  });
  if (!st.ok()) return st;
  return out;
}

Result<std::vector<std::string>> Pool::Names() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  Impl& p = *impl_;
  RETURN_IF_ERROR(p.Usable());
  RETURN_IF_ERROR(p.FlushEntries());
  std::vector<std::string> out;
  out.reserve(p.table->count());
  Status st = p.table->ForEach([&](const TableEntry& e) {
    out.push_back(e.name);
    return Status::Ok();
  });
  if (!st.ok()) return st;
  return out;
}

Result<EntryInfo> Pool::Stat(const std::string& name) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  RETURN_IF_ERROR(impl_->Usable());
  ASSIGN_OR_RETURN(TableEntry * e, impl_->Find(name));
  return InfoOf(*impl_, *e);
}

Result<std::vector<StoredRun>> Pool::StoredRuns(const std::string& name, uint64_t offset,
                                                uint64_t length) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  Impl& p = *impl_;
  RETURN_IF_ERROR(p.Usable());
  ASSIGN_OR_RETURN(TableEntry * e, p.Find(name));
  if (offset % p.bs || length % p.bs) {
    return Status::InvalidArgument("stored runs: offset and length must be block multiples");
  }
  const uint64_t first = offset / p.bs;
  const uint64_t end = std::min(e->size_bytes / p.bs, first + length / p.bs);
  if (first >= end) return std::vector<StoredRun>{};
  return p.Runs(*e, first, end - first);
}

std::string Pool::StorePath() const { return impl_->store->local_path(); }

Result<PoolInfo> Pool::Info() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  Impl& p = *impl_;
  RETURN_IF_ERROR(p.Usable());
  PoolInfo i;
  i.uuid = FormatUuid(p.sb.uuid);
  i.block_size = p.bs;
  i.size_bytes = p.sm->nr_blocks() * p.bs;
  i.max_bytes = p.max_blocks * p.bs;
  i.used_bytes = p.sm->used_blocks() * p.bs;
  uint64_t avail = p.sm->available() + (p.max_blocks - p.sm->nr_blocks());
  uint64_t reserve = p.Reserve();
  i.free_bytes = (avail > reserve ? avail - reserve : 0) * p.bs;
  i.reserved_bytes = reserve * p.bs;
  i.generation = p.sb.generation;
  if (auto host = p.store->allocated_bytes()) {
    i.host_known = true;
    i.host_allocated_bytes = *host;
    i.host_unused_bytes = *host > i.used_bytes ? *host - i.used_bytes : 0;
  }
  i.entries = p.table->count();
  i.cache_bytes = p.cache_bytes;
  return i;
}

Result<CheckReport> Pool::Check() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  RETURN_IF_ERROR(impl_->Usable());
  return impl_->CheckLocked();
}

Result<VerifyReport> Pool::Verify(const std::function<void(uint64_t)>& progress) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  RETURN_IF_ERROR(impl_->Usable());
  return impl_->VerifyLocked(progress);
}

Status Pool::Grow(uint64_t new_max_bytes) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  Impl& p = *impl_;
  RETURN_IF_ERROR(p.Writable());
  if (new_max_bytes % p.bs != 0) {
    return Status::InvalidArgument("pool size must be a multiple of the block size");
  }
  uint64_t nb = new_max_bytes / p.bs;
  if (nb < p.max_blocks) return Status::InvalidArgument("a pool cannot shrink");
  if (nb > SpaceMap::MaxPoolBlocks(p.bs)) {
    return Status::InvalidArgument("pool larger than the format allows for this block size");
  }
  p.max_blocks = nb;
  p.dirty = true;
  return p.CommitLocked();
}

Status Pool::Commit() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->CommitLocked();
}

}  // namespace stack::pool
