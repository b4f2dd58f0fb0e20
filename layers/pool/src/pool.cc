// Pool lifecycle, the transaction scope every mutation runs in, and the
// entry operations behind the public API (pool_impl.h).
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstring>
#include <optional>
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

// Parses 8-4-4-4-12 hex into `out`.
bool ParseUuid(const std::string& s, std::array<uint8_t, 16>& out) {
  if (s.size() != 36) return false;
  size_t j = 0;
  for (size_t i = 0; i < 36; ++i) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (s[i] != '-') return false;
      continue;
    }
    int v = std::isxdigit(static_cast<unsigned char>(s[i]))
                ? (std::isdigit(static_cast<unsigned char>(s[i])) ? s[i] - '0'
                                                                  : (std::tolower(s[i]) - 'a' + 10))
                : -1;
    if (v < 0) return false;
    out[j / 2] = static_cast<uint8_t>(j % 2 ? (out[j / 2] | v) : (v << 4));
    ++j;
  }
  return true;
}

// The identity fields a new entry takes (fresh values where `id` leaves
// them empty). InvalidArgument before any change for a malformed one.
struct NewIdentity {
  std::array<uint8_t, 16> uuid{};
  std::optional<std::array<uint8_t, 16>> parent;
  uint64_t created_ns = 0;
};
Result<NewIdentity> ResolveIdentity(const EntryIdentity& id) {
  NewIdentity r;
  if (!id.uuid.empty() && !ParseUuid(id.uuid, r.uuid))
    return Status::InvalidArgument("malformed uuid '" + id.uuid + "'");
  if (!id.parent_uuid.empty()) {
    std::array<uint8_t, 16> p{};
    if (!ParseUuid(id.parent_uuid, p))
      return Status::InvalidArgument("malformed parent uuid '" + id.parent_uuid + "'");
    r.parent = p;
  }
  if (id.created_unix_ns < 0) return Status::InvalidArgument("creation time before 1970");
  r.created_ns = static_cast<uint64_t>(id.created_unix_ns);
  return r;
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


// ---------------------------------------------------------------- transaction scope

// One public mutation. Holds the pool lock for its whole life and refuses
// a pool that cannot be written (status()). The caller checks and reserves
// first (a refusal there changes nothing and keeps the running
// transaction's volume writes), then hands the change to Commit(), which
// commits it; a change that fails, or a scope left while a change is under
// way, abandons the running transaction (reloads the last commit).
class Pool::Impl::Txn {
 public:
  // A change starts when no write holds unmapped blocks (its commit must
  // not record them), and none can start one while the scope holds the lock.
  explicit Txn(Impl& p) : p_(p), lock_(p.mu_) {
    p_.WaitUnmappedWrites(lock_);
    status_ = p_.Writable();
  }
  ~Txn() {
    if (changing_ && !done_) (void)p_.Abort(Status::Internal("transaction left uncommitted"));
  }
  Txn(const Txn&) = delete;
  Txn& operator=(const Txn&) = delete;

  const Status& status() const { return status_; }

  // Runs `change` (the mutation, under this scope's lock), marks the pool
  // dirty and commits. Returns the change's error (the transaction
  // abandoned) or the commit's.
  Status Commit(const std::function<Status()>& change) {
    changing_ = true;
    Status st = change();
    done_ = true;
    if (!st.ok()) return p_.Abort(std::move(st));
    p_.dirty_ = true;
    Status committed = p_.CommitLocked();
    // An entry operation (delete, rollback, ...) gives its space back at
    // once; only the data path's commits defer it (transaction.h, step 4).
    if (committed.ok()) p_.tm_->ReleaseDeferred();
    return committed;
  }
  // Abandons the running transaction (a failure past the point where it
  // may have changed state) and returns `cause`.
  Status Fail(Status cause) {
    changing_ = done_ = true;
    return p_.Abort(std::move(cause));
  }

 private:
  Impl& p_;
  std::unique_lock<std::mutex> lock_;
  Status status_;
  bool changing_ = false;
  bool done_ = false;
};

// ---------------------------------------------------------------- lifecycle

void Pool::Impl::InitComponents() {
  size_t cap = std::max<size_t>(cache_bytes_ / bs_, 64);
  tm_ = std::make_unique<TransactionManager>(store_.get(), bs_, cap);
  tree_ = std::make_unique<BTree>(tm_.get(), bs_, kVolumeTree);
  table_ = std::make_unique<EntryTable>(tm_.get(), bs_);
  // An eighth of the metadata budget: 8 MiB by default, the mappings of
  // 2 GiB of volume data at 4 KiB blocks.
  map_cache_ = std::make_unique<MappingCache>(cache_bytes_ / 8);
  // Per-block transaction state costs ~64 bytes; keep it within a quarter
  // of the cache budget, then commit at the next request boundary.
  max_txn_entries_ = std::max<size_t>(cache_bytes_ / 256, 4096);
}

void Pool::Impl::WaitUnmappedWrites(std::unique_lock<std::mutex>& lock) {
  if (unmapped_writes_ == 0) return;
  ++commits_waiting_;
  unmapped_done_.wait(lock, [&] { return unmapped_writes_ == 0; });
  --commits_waiting_;
}

Status Pool::Impl::CommitWhenMapped(std::unique_lock<std::mutex>& lock) {
  WaitUnmappedWrites(lock);
  return CommitLocked();
}

Status Pool::Impl::CommitIfOverBound(std::unique_lock<std::mutex>& lock) {
  if (sm().txn_entries() <= max_txn_entries_) return Status::Ok();
  WaitUnmappedWrites(lock);
  // Writers that met the bound at once all waited here; the first to wake
  // committed. Committing again for each of the others made a chain of
  // one-write commits, and each gave the freed runs that the rewrite
  // stream was about to reuse back to the store (transaction.h, step 4).
  if (sm().txn_entries() <= max_txn_entries_) return Status::Ok();
  return CommitLocked();
}

Status Pool::Impl::Load() {
  ++load_epoch_;
  if (tm_) tm_->DropCache();
  if (map_cache_) map_cache_->Clear();
  ASSIGN_OR_RETURN(SuperCopies copies, ReadSuperCopies(*store_, bs_));
  SuperVerdict v = JudgeSuperCopies(copies);
  if (bs_ != 0 && v.open.block_size != bs_) return Status::Corruption("block size changed");
  std::vector<std::string> notes = v.torn;
  notes.insert(notes.end(), v.damaged.begin(), v.damaged.end());
  if (!v.lost.empty()) {
    if (!accept_lost_generation_) {
      return Status::Corruption(store_->describe() + ": " + v.lost +
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
  sb_ = v.open;
  if (bs_ == 0) {
    bs_ = sb_.block_size;
    InitComponents();
  }
  // A writer puts the copies back in agreement before anything else
  // happens (a generation it goes on from must have both copies again).
  if (!read_only_ && !v.repairs.empty()) {
    for (const auto& [block, copy] : v.repairs) {
      RETURN_IF_ERROR(store_->Write(block * bs_, EncodeSuperblock(copy, block)));
      RETURN_IF_ERROR(store_->Flush());
    }
    notes.push_back("rewrote " + std::to_string(v.repairs.size()) +
                    " superblock cop" + (v.repairs.size() == 1 ? "y" : "ies") +
                    " from the intact copy of the same generation");
  }
  warnings_ = std::move(notes);
  lost_generation_ = v.lost.empty() ? 0 : v.lost_generation;
  tm_->Begin(sb_);
  max_blocks_ = sb_.max_blocks;
  next_id_ = sb_.next_entry_id;
  table_->Reset(sb_.entry_root, sb_.name_root, sb_.entry_count, sb_.hidden_count,
                sb_.version >= 4);
  dirty_ = false;
  return Status::Ok();
}

void Pool::Impl::ReclaimUncommitted() {
  const std::optional<uint64_t> host = store_->allocated_bytes();
  const uint64_t used = sm().used_blocks() * bs_;
  if (!host || *host <= used) return;
  constexpr uint64_t kMinExcess = 8 << 20;
  if (*host - used < std::max<uint64_t>(kMinExcess, used / 32)) return;
  // Every free run, however short: what is left allocated after this is
  // the used blocks, so the next open's fstat finds no excess and skips
  // the scan. (Punching only long runs left the short ones that thousands
  // of commits free, and every open scanned the space map and punched the
  // same runs again.)
  std::vector<std::pair<uint64_t, uint64_t>> runs;
  Status st = sm().ForEachFreeRun(1,
                                  [&](uint64_t first, uint64_t n) { runs.emplace_back(first, n); });
  if (!st.ok()) return;
  for (const auto& [first, n] : runs) (void)store_->Discard(first * bs_, n * bs_);
}

Status Pool::Impl::Usable() const {
  if (!broken_.ok()) return broken_;
  return Status::Ok();
}

Status Pool::Impl::Writable() const {
  RETURN_IF_ERROR(Usable());
  if (read_only_) return Status::ReadOnly("pool is open read-only");
  return Status::Ok();
}

Status Pool::Impl::Abort(Status cause) {
  Status st = Load();
  if (!st.ok()) {
    broken_ = Status(cause.code(), "pool unusable after error (" + cause.ToString() +
                                       "); reloading failed: " + st.ToString());
  }
  return cause;
}

Status Pool::Impl::CommitLocked() {
  RETURN_IF_ERROR(Writable());
  if (!dirty_ && !tm_->changed()) return Status::Ok();
  Superblock next = sb_;
  next.generation = sb_.generation + 1;
  next.max_blocks = max_blocks_;
  next.next_entry_id = next_id_;
  // The pool's own changes first: changed entries into the entry tree.
  Status st = table_->Flush();
  if (st.ok()) {
    next.entry_root = table_->entry_root();
    next.name_root = table_->name_root();
    next.entry_count = table_->count();
    next.hidden_count = table_->hidden_count();
    next.version = kFormatVersion;
    // A format-3 state lacks the uuid index and the hidden count: it must
    // not be committed as format 4 (a writer's open upgrades it first).
    st = table_->indexed() ? tm_->Commit(&next)
                           : Status::Internal("commit of a format 3 pool before its upgrade");
  }
  if (!st.ok()) return Abort(st.WithContext("commit"));
  sb_ = std::move(next);
  dirty_ = false;
  table_->Trim();
  return Status::Ok();
}

void Pool::Impl::Close() {
  std::unique_lock<std::mutex> lock(mu_);
  if (!store_) return;
  if (!read_only_ && broken_.ok()) {
    Status st = CommitWhenMapped(lock);  // best effort, like an unmount
    // What the last commit freed goes back to the store now, not a commit later.
    if (st.ok() && !tm_->changed()) tm_->ReleaseDeferred();
  }
  // Devices still open keep reporting their size, so their calls reach
  // the pool and fail with the reason below rather than as out of range.
  for (const auto& [token, user] : users_) {
    auto e = FindId(user.first);
    if (e.ok() && *e) closed_sizes_[user.first] = (*e)->size_bytes / bs_;
  }
  broken_ = Status::IoError("pool " + store_->describe() +
                            " is closed (its Pool was destroyed while this device was open)");
  // Reads that left the lock finish with the store still there (new ones
  // now fail: the pool is closed).
  closing_ = true;
  io_idle_.wait(lock, [&] { return io_in_flight_.load() == 0; });
  table_.reset();
  tree_.reset();
  tm_.reset();
  store_.reset();  // releases the store's lock
}

Result<std::shared_ptr<Pool::Impl>> Pool::Impl::Create(std::unique_ptr<Store> store,
                                                       const PoolCreateOptions& o) {
  const uint32_t bs = o.block_size;
  const uint64_t nr = o.size_bytes / bs;
  const uint64_t max = o.max_bytes ? o.max_bytes / bs : nr;
  RETURN_IF_ERROR(store->Lock(true));
  if (store->Size() < nr * bs) RETURN_IF_ERROR(store->Resize(nr * bs));
  std::vector<uint8_t> zero(kSuperSize, 0);
  for (uint64_t b = 0; b < kSuperCopies; ++b) RETURN_IF_ERROR(store->Write(b * bs, zero));

  auto p = std::make_shared<Impl>();
  std::lock_guard<std::mutex> lock(p->mu_);
  p->store_ = std::move(store);
  p->bs_ = bs;
  p->cache_bytes_ = o.cache_bytes;
  p->InitComponents();
  p->sb_.generation = 0;
  p->sb_.block_size = bs;
  p->sb_.nr_blocks = nr;
  p->sb_.max_blocks = max;
  p->sb_.uuid = NewUuid();
  p->sb_.created_ns = NowNs();
  p->max_blocks_ = max;
  p->tm_->Begin(p->sb_);
  for (uint64_t b = 0; b < kSuperCopies; ++b) RETURN_IF_ERROR(p->sm().Claim(b));
  // Generations 1 and 2: both slots hold a generation from the start, so
  // an unreadable slot is never mistaken for one not yet written.
  for (int i = 0; i < 2; ++i) {
    p->dirty_ = true;
    RETURN_IF_ERROR(p->CommitLocked());
  }
  return p;
}

Result<std::shared_ptr<Pool::Impl>> Pool::Impl::Open(std::unique_ptr<Store> store,
                                                     const PoolOpenOptions& o) {
  bool ro = o.read_only || store->read_only();
  RETURN_IF_ERROR(store->Lock(!ro));
  auto p = std::make_shared<Impl>();
  std::lock_guard<std::mutex> lock(p->mu_);
  p->store_ = std::move(store);
  p->read_only_ = ro;
  p->cache_bytes_ = o.cache_bytes;
  p->accept_lost_generation_ = o.accept_lost_generation;
  RETURN_IF_ERROR(p->Load());
  // Format 3 -> 4 before anything else commits (the upgrade commits).
  if (!ro && !p->table_->indexed()) RETURN_IF_ERROR(p->Upgrade());
  if (p->lost_generation_ != 0 && !ro) {
    // The loss was accepted: commit at once, so both slots are whole again
    // and the next open needs no flag.
    p->dirty_ = true;
    RETURN_IF_ERROR(p->CommitLocked());
  }
  if (!ro) p->ReclaimUncommitted();
  p->open_warnings_ = p->warnings_;
  for (const std::string& w : p->open_warnings_) EmitWarning(w);
  return p;
}

Status Pool::Impl::Upgrade() {
  ASSIGN_OR_RETURN(uint64_t cost, table_->UpgradeCost());
  Status st = EnsureSpace(cost, "the upgrade to format 4 (uuid index)");
  if (!st.ok()) return st;
  st = table_->Upgrade();
  if (!st.ok()) return Abort(st.WithContext("upgrading the pool to format 4"));
  dirty_ = true;
  return CommitLocked();
}

std::string Pool::Impl::store_path() const {
  // Under the lock: Publish renames the store after Create.
  std::lock_guard<std::mutex> lock(mu_);
  return store_ ? store_->local_path() : std::string();
}

void Pool::Impl::RefreshLockNote() {
  std::lock_guard<std::mutex> lock(mu_);
  if (store_) store_->RefreshLockNote();
}

// ---------------------------------------------------------------- rules

uint64_t Pool::Impl::Reserve() const {
  // The space map's commit, the dirty entries and one more entry change.
  return SpaceMap::ReserveBlocks(max_blocks_, bs_) + table_->ReserveBlocks() + 2;
}

Status Pool::Impl::NewId() {
  if (next_id_ >= EntryTable::kMaxId) {
    return Status::NoSpace("pool has handed out every entry id (2^48)");
  }
  return Status::Ok();
}

Status Pool::Impl::EnsureSpace(uint64_t need, const char* what) {
  uint64_t want = need + Reserve() + promised_meta_;
  if (sm().available() >= want) return Status::Ok();
  if (sm().nr_blocks() < max_blocks_) {
    uint64_t shortfall = want - sm().available();
    uint64_t grow = std::max<uint64_t>({shortfall, sm().nr_blocks() / 8, (64ull << 20) / bs_});
    uint64_t new_nr = std::min(max_blocks_, sm().nr_blocks() + grow);
    RETURN_IF_ERROR(store_->Resize(new_nr * bs_));
    RETURN_IF_ERROR(sm().Grow(new_nr));
    dirty_ = true;
    if (sm().available() >= want) return Status::Ok();
  }
  return Status::NoSpace(std::string("pool full: ") + what + " needs up to " +
                         std::to_string(need) + " blocks, " +
                         std::to_string(sm().available()) + " free of which " +
                         std::to_string(Reserve()) + " are reserved for metadata commits");
}

Status Pool::Impl::NameFree(const std::string& name) {
  ASSIGN_OR_RETURN(TableEntry * e, table_->Find(name));
  if (e) return Status::AlreadyExists("entry '" + name + "' exists");
  return Status::Ok();
}

Status Pool::Impl::NotInUse(const TableEntry& e, const char* doing) const {
  std::string who;
  for (const auto& [token, user] : users_) {
    if (user.first != e.id) continue;
    who += (who.empty() ? "" : ", ") + user.second;
  }
  if (who.empty()) return Status::Ok();
  return Status::Busy(std::string("cannot ") + doing + " " +
                      (e.snapshot ? "snapshot '" : "volume '") + e.name + "': in use by " + who);
}

Status Pool::Impl::FlushEntries() {
  Status st = table_->Flush();
  return st.ok() ? st : Abort(st);
}

Result<TableEntry*> Pool::Impl::Find(const std::string& name, const char* what) {
  ASSIGN_OR_RETURN(TableEntry * e, table_->Find(name));
  if (!e) return Status::NotFound(std::string("no ") + what + " '" + name + "'");
  return e;
}

// ---------------------------------------------------------------- entry operations

Status Pool::Impl::CreateVolume(const std::string& name, uint64_t size_bytes,
                                const EntryMeta& meta, const EntryIdentity& identity) {
  Txn txn(*this);
  RETURN_IF_ERROR(txn.status());
  RETURN_IF_ERROR(CheckName(name));
  ASSIGN_OR_RETURN(NewIdentity idn, ResolveIdentity(identity));
  if (name.find('@') != std::string::npos) {
    return Status::InvalidArgument("a volume name cannot contain '@' (that names a snapshot)");
  }
  RETURN_IF_ERROR(ValidateMeta(meta));
  if (size_bytes % bs_ != 0) {
    return Status::InvalidArgument("volume size must be a multiple of " + std::to_string(bs_));
  }
  if (size_bytes / bs_ > (uint64_t(1) << 48)) return Status::InvalidArgument("volume too large");
  RETURN_IF_ERROR(NameFree(name));
  RETURN_IF_ERROR(NewId());
  TableEntry e;
  e.name = name;
  e.size_bytes = size_bytes;
  e.note = meta.note;
  e.tags = meta.tags;
  if (idn.parent) e.parent = *idn.parent;
  RETURN_IF_ERROR(EnsureSpace(table_->AddCost(e), "a new volume"));
  return txn.Commit([&] {
    e.id = next_id_++;
    e.uuid = identity.uuid.empty() ? NewUuid() : idn.uuid;
    e.created_ns = idn.created_ns ? idn.created_ns : NowNs();
    return table_->Add(std::move(e)).status();
  });
}

Result<std::unique_ptr<BlockDevice>> Pool::Impl::OpenVolume(const std::string& name,
                                                            bool read_only,
                                                            const std::string& user) {
  std::lock_guard<std::mutex> lock(mu_);
  RETURN_IF_ERROR(Usable());
  ASSIGN_OR_RETURN(TableEntry * e, Find(name));
  bool ro = read_only || e->read_only || e->snapshot || read_only_;
  if (!read_only && ro) {
    return Status::ReadOnly("'" + name + "' is read-only" +
                            (e->snapshot ? " (a snapshot)" : read_only_ ? " (pool open read-only)" : ""));
  }
  const uint64_t token = next_token_++;
  users_.emplace(token, std::make_pair(e->id, user));
  return MakeVolumeDevice(shared_from_this(), e->id, ro, token);
}

void Pool::Impl::ReleaseUser(uint64_t token) {
  std::lock_guard<std::mutex> lock(mu_);
  users_.erase(token);
}

Status Pool::Impl::Copy(const std::string& source, const std::string& name, bool snapshot,
                        const EntryMeta& meta, const EntryIdentity& identity) {
  Txn txn(*this);
  RETURN_IF_ERROR(txn.status());
  RETURN_IF_ERROR(CheckName(name));
  ASSIGN_OR_RETURN(NewIdentity idn, ResolveIdentity(identity));
  RETURN_IF_ERROR(ValidateMeta(meta));
  ASSIGN_OR_RETURN(TableEntry * src, Find(source));
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
  e.parent = idn.parent ? *idn.parent : src->uuid;
  e.size_bytes = src->size_bytes;
  e.root = src->root;
  e.mapped_blocks = src->mapped_blocks;
  e.note = meta.note;
  e.tags = meta.tags;
  RETURN_IF_ERROR(NameFree(name));
  RETURN_IF_ERROR(NewId());
  // The reserve threshold: refused unless 1% of the largest pool stays
  // free, counting what the file may still grow by. Only the entry's own
  // cost is made free now: the file grows for data when data comes (a
  // growable 128 MiB pool used to grow to 720 MiB for an empty snapshot).
  const char* what = snapshot ? "a snapshot" : "a clone";
  const uint64_t headroom = std::max<uint64_t>(64, max_blocks_ / 100);
  const uint64_t need = table_->AddCost(e);
  const uint64_t growable = max_blocks_ > sm().nr_blocks() ? max_blocks_ - sm().nr_blocks() : 0;
  Status space = Status::Ok();
  if (sm().available() + growable < headroom + need + Reserve() + promised_meta_)
    space = Status::NoSpace(std::string(what) + " needs " + std::to_string(headroom) +
                            " blocks left free, " +
                            std::to_string(sm().available() + growable) +
                            " free or growable of which " + std::to_string(Reserve()) +
                            " are reserved for metadata commits");
  else
    space = EnsureSpace(need, what);
  if (!space.ok()) {
    return Status::NoSpace(std::string("pool nearly full: ") + (snapshot ? "snapshot" : "clone") +
                           " refused below the reserve threshold (" + space.message() + ")");
  }
  return txn.Commit([&] {
    e.id = next_id_++;
    e.uuid = identity.uuid.empty() ? NewUuid() : idn.uuid;
    e.created_ns = idn.created_ns ? idn.created_ns : NowNs();
    RETURN_IF_ERROR(tree_->IncRoot(e.root));
    return table_->Add(std::move(e)).status();
  });
}

Status Pool::Impl::Rollback(const std::string& volume, const std::string& snapshot) {
  Txn txn(*this);
  RETURN_IF_ERROR(txn.status());
  std::string snap = snapshot.find('@') == std::string::npos ? volume + "@" + snapshot : snapshot;
  ASSIGN_OR_RETURN(TableEntry * v, Find(volume, "volume"));
  if (v->snapshot) return Status::InvalidArgument("'" + volume + "' is a snapshot, not a volume");
  if (v->read_only) return Status::ReadOnly("volume '" + volume + "' is read-only");
  RETURN_IF_ERROR(NotInUse(*v, "roll back"));
  ASSIGN_OR_RETURN(TableEntry * s, Find(snap, "snapshot"));
  return txn.Commit([&] {
    uint64_t old_root = v->root;
    RETURN_IF_ERROR(tree_->IncRoot(s->root));
    RETURN_IF_ERROR(tree_->DecRoot(old_root));
    v->root = s->root;
    map_cache_->EraseEntry(v->id);
    v->size_bytes = s->size_bytes;
    v->mapped_blocks = s->mapped_blocks;
    table_->MarkDirty(v);
    return Status::Ok();
  });
}

Status Pool::Impl::Delete(const std::string& name) {
  Txn txn(*this);
  RETURN_IF_ERROR(txn.status());
  ASSIGN_OR_RETURN(TableEntry * e, Find(name));
  RETURN_IF_ERROR(NotInUse(*e, "delete"));
  const uint64_t id = e->id, root = e->root;
  // The reserve holds the usual cost of removing one record (two leaves);
  // a record spread over more nodes needs the difference free.
  ASSIGN_OR_RETURN(uint64_t cost, table_->RemoveCost(id));
  const uint64_t allowance = table_->Allowance();
  if (cost > allowance) RETURN_IF_ERROR(EnsureSpace(cost - allowance, "the delete"));
  return txn.Commit([&] {
    RETURN_IF_ERROR(tree_->DecRoot(root));
    map_cache_->EraseEntry(id);
    return table_->Remove(id);
  });
}

Status Pool::Impl::Rename(const std::string& old_name, const std::string& new_name) {
  Txn txn(*this);
  RETURN_IF_ERROR(txn.status());
  RETURN_IF_ERROR(CheckName(new_name));
  ASSIGN_OR_RETURN(TableEntry * e, Find(old_name));
  if (old_name == new_name) return Status::Ok();
  bool old_snap = old_name.find('@') != std::string::npos;
  bool new_snap = new_name.find('@') != std::string::npos;
  std::vector<std::pair<uint64_t, std::string>> renames;  // id, new name
  if (old_snap) {
    if (!new_snap || VolumePart(new_name) != VolumePart(old_name)) {
      return Status::InvalidArgument("a snapshot keeps its volume part: rename '" + old_name +
                                     "' to '" + VolumePart(old_name) + "@<new>'");
    }
    RETURN_IF_ERROR(NotInUse(*e, "rename"));
    renames.push_back({e->id, new_name});
  } else {
    if (new_snap) return Status::InvalidArgument("a volume name cannot contain '@'");
    // The volume and each of its snapshots (one range of the family
    // index); an open device on any of them keeps the whole family's names.
    Status busy;
    auto family = table_->Family(old_name);
    if (!family.ok()) return txn.Fail(family.status());
    Status walk;
    for (uint64_t id : *family) {
      auto x = table_->Get(id);
      if (!x.ok() || !*x) {
        walk = x.ok() ? Status::Corruption("family index: entry id " + std::to_string(id) +
                                           " vanished")
                      : x.status();
        break;
      }
      const TableEntry& member = **x;
      renames.push_back({member.id, new_name + member.name.substr(old_name.size())});
      if (busy.ok()) busy = NotInUse(member, "rename");
    }
    if (!walk.ok()) return txn.Fail(walk);
    RETURN_IF_ERROR(busy);
  }
  uint64_t lo = UINT64_MAX, hi = 0;
  for (auto& [id, n] : renames) {
    if (!ValidEntryName(n)) return CheckName(n);
    RETURN_IF_ERROR(NameFree(n));
    lo = std::min(lo, id);
    hi = std::max(hi, id);
  }
  // A family of a few entries: a bound per record, reading nothing more
  // (the range bound reads every node between the family's first and last
  // id, which may be the whole table). Many: the range bound is tighter.
  uint64_t cost = 0;
  if (renames.size() <= 64) {
    for (auto& [id, n] : renames) {
      ASSIGN_OR_RETURN(TableEntry * x, table_->Get(id));
      if (!x) return txn.Fail(Status::Corruption("entry id " + std::to_string(id) + " vanished"));
      cost += table_->RenameCost(*x, n);
    }
  } else {
    ASSIGN_OR_RETURN(cost, table_->ChangeCost(lo, hi, renames.size()));
  }
  RETURN_IF_ERROR(EnsureSpace(cost, "the rename"));
  return txn.Commit([&] {
    for (auto& [id, n] : renames) {
      ASSIGN_OR_RETURN(TableEntry * x, table_->Get(id));
      RETURN_IF_ERROR(table_->Rename(x, n));
    }
    return Status::Ok();
  });
}

Status Pool::Impl::Resize(const std::string& name, uint64_t new_size) {
  Txn txn(*this);
  RETURN_IF_ERROR(txn.status());
  ASSIGN_OR_RETURN(TableEntry * e, Find(name, "volume"));
  if (e->snapshot) return Status::InvalidArgument("snapshots cannot be resized");
  if (e->read_only) return Status::ReadOnly("volume '" + name + "' is read-only");
  if (new_size % bs_ != 0) {
    return Status::InvalidArgument("volume size must be a multiple of " + std::to_string(bs_));
  }
  if (new_size / bs_ > (uint64_t(1) << 48)) return Status::InvalidArgument("volume too large");
  const uint64_t id = e->id;
  const uint64_t old_blocks = e->size_bytes / bs_, new_blocks = new_size / bs_;
  if (new_blocks < old_blocks) RETURN_IF_ERROR(PrepareRemove(*e, new_blocks, old_blocks));
  return txn.Commit([&] {
    if (new_blocks < old_blocks) RETURN_IF_ERROR(RemoveMappings(id, new_blocks, old_blocks));
    ASSIGN_OR_RETURN(TableEntry * cur, FindId(id));
    cur->size_bytes = new_size;
    table_->MarkDirty(cur);
    return Status::Ok();
  });
}

Status Pool::Impl::SetReadOnly(const std::string& name, bool ro) {
  Txn txn(*this);
  RETURN_IF_ERROR(txn.status());
  ASSIGN_OR_RETURN(TableEntry * e, Find(name));
  if (e->snapshot && !ro) return Status::InvalidArgument("snapshots are always read-only");
  RETURN_IF_ERROR(EnsureSpace(0, "metadata"));
  return txn.Commit([&] {
    e->read_only = ro;
    table_->MarkDirty(e);
    return Status::Ok();
  });
}

Status Pool::Impl::SetMeta(const std::string& name, const EntryMeta& meta) {
  Txn txn(*this);
  RETURN_IF_ERROR(txn.status());
  RETURN_IF_ERROR(ValidateMeta(meta));
  ASSIGN_OR_RETURN(TableEntry * e, Find(name));
  TableEntry grown = *e;
  grown.note = meta.note;
  grown.tags = meta.tags;
  RETURN_IF_ERROR(EnsureSpace(table_->WriteCost(RecordBytes(grown)), "metadata"));
  return txn.Commit([&] {
    e->note = meta.note;
    e->tags = meta.tags;
    table_->MarkDirty(e);
    return Status::Ok();
  });
}

Status Pool::Impl::Grow(uint64_t new_max_bytes) {
  Txn txn(*this);
  RETURN_IF_ERROR(txn.status());
  if (new_max_bytes % bs_ != 0) {
    return Status::InvalidArgument("pool size must be a multiple of the block size");
  }
  uint64_t nb = new_max_bytes / bs_;
  if (nb < max_blocks_) return Status::InvalidArgument("a pool cannot shrink");
  if (nb > SpaceMap::MaxPoolBlocks(bs_)) {
    return Status::InvalidArgument("pool larger than the format allows for this block size");
  }
  return txn.Commit([&] {
    max_blocks_ = nb;
    return Status::Ok();
  });
}

Status Pool::Impl::Commit() {
  std::unique_lock<std::mutex> lock(mu_);
  return CommitWhenMapped(lock);
}

// ---------------------------------------------------------------- queries

Result<EntryInfo> Pool::Impl::InfoOf(const TableEntry& e, bool accounting) {
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
  i.mapped_bytes = e.mapped_blocks * bs_;
  if (!accounting) return i;
  ASSIGN_OR_RETURN(uint64_t excl, ExclusiveBlocks(e.root));
  i.exclusive_bytes = excl * bs_;
  i.shared_bytes = i.mapped_bytes - std::min(i.mapped_bytes, i.exclusive_bytes);
  return i;
}

Result<std::vector<EntryInfo>> Pool::Impl::List() {
  std::lock_guard<std::mutex> lock(mu_);
  RETURN_IF_ERROR(Usable());
  RETURN_IF_ERROR(FlushEntries());
  std::vector<EntryInfo> out;
  Status st = table_->ForEach([&](const TableEntry& e) -> Status {
    ASSIGN_OR_RETURN(EntryInfo i, InfoOf(e));
    out.push_back(std::move(i));
    return Status::Ok();
  });
  if (!st.ok()) return st;
  return out;
}

Result<std::vector<std::string>> Pool::Impl::Names() {
  std::lock_guard<std::mutex> lock(mu_);
  RETURN_IF_ERROR(Usable());
  RETURN_IF_ERROR(FlushEntries());
  std::vector<std::string> out;
  out.reserve(table_->count());
  Status st = table_->ForEach([&](const TableEntry& e) {
    out.push_back(e.name);
    return Status::Ok();
  });
  if (!st.ok()) return st;
  return out;
}

Result<std::vector<std::string>> Pool::Impl::HiddenNames() {
  std::lock_guard<std::mutex> lock(mu_);
  RETURN_IF_ERROR(Usable());
  // Flushing only when there is something to find keeps the common case
  // free of reads (HiddenNames walks, and the walk wants the tree current).
  if (table_->indexed() && table_->hidden_count() == 0) return std::vector<std::string>{};
  RETURN_IF_ERROR(FlushEntries());
  const uint64_t counted = table_->hidden_count();
  ASSIGN_OR_RETURN(std::vector<std::string> names, table_->HiddenNames());
  if (table_->hidden_count() != counted && !read_only_) dirty_ = true;  // a writer commits the fix
  return names;
}

Result<std::vector<EntryInfo>> Pool::Impl::FindByUuid(const std::string& uuid) {
  std::array<uint8_t, 16> u{};
  if (!ParseUuid(uuid, u)) return Status::InvalidArgument("malformed uuid '" + uuid + "'");
  std::lock_guard<std::mutex> lock(mu_);
  RETURN_IF_ERROR(Usable());
  if (!table_->indexed()) RETURN_IF_ERROR(FlushEntries());
  ASSIGN_OR_RETURN(std::vector<TableEntry*> found, table_->FindUuid(u));
  std::vector<EntryInfo> out;
  for (TableEntry* e : found) {
    ASSIGN_OR_RETURN(EntryInfo i, InfoOf(*e, false));
    out.push_back(std::move(i));
  }
  return out;
}

Result<EntryInfo> Pool::Impl::Stat(const std::string& name, bool accounting) {
  std::lock_guard<std::mutex> lock(mu_);
  RETURN_IF_ERROR(Usable());
  ASSIGN_OR_RETURN(TableEntry * e, Find(name));
  return InfoOf(*e, accounting);
}

Result<std::vector<uint8_t>> Pool::Impl::SameStored(const std::string& name, uint64_t offset,
                                                    std::span<const uint8_t> data) {
  if (offset % bs_ || data.size() % bs_)
    return Status::InvalidArgument("same stored: offset and length must be block multiples");
  const uint64_t first = offset / bs_, n = data.size() / bs_;
  std::vector<LogicalMapping> maps;
  {
    std::lock_guard<std::mutex> lock(mu_);
    RETURN_IF_ERROR(Usable());
    ASSIGN_OR_RETURN(TableEntry * e, Find(name));
    RETURN_IF_ERROR(InBounds(*e, first, n, "checksum comparison"));
    ASSIGN_OR_RETURN(maps, Mappings(*e, first, first + n));
  }
  // Hashed outside the lock: the mappings are values, `data` is the caller's.
  std::vector<uint8_t> same(n, 0);
  for (const LogicalMapping& m : maps) {
    const uint64_t i = m.first - first;
    same[i] = DataChecksum(data.subspan(i * bs_, bs_), m.second.phys) == m.second.csum;
  }
  return same;
}

Result<std::vector<StoredRun>> Pool::Impl::StoredRuns(const std::string& name, uint64_t offset,
                                                      uint64_t length) {
  std::lock_guard<std::mutex> lock(mu_);
  RETURN_IF_ERROR(Usable());
  ASSIGN_OR_RETURN(TableEntry * e, Find(name));
  if (offset % bs_ || length % bs_) {
    return Status::InvalidArgument("stored runs: offset and length must be block multiples");
  }
  const uint64_t first = offset / bs_;
  const uint64_t end = std::min(e->size_bytes / bs_, first + length / bs_);
  if (first >= end) return std::vector<StoredRun>{};
  return Runs(*e, first, end - first);
}

Result<PoolInfo> Pool::Impl::Info() {
  std::lock_guard<std::mutex> lock(mu_);
  RETURN_IF_ERROR(Usable());
  PoolInfo i;
  i.uuid = FormatUuid(sb_.uuid);
  i.block_size = bs_;
  i.size_bytes = sm().nr_blocks() * bs_;
  i.max_bytes = max_blocks_ * bs_;
  i.used_bytes = sm().used_blocks() * bs_;
  uint64_t avail = sm().available() + (max_blocks_ - sm().nr_blocks());
  uint64_t reserve = Reserve();
  i.free_bytes = (avail > reserve ? avail - reserve : 0) * bs_;
  i.reserved_bytes = reserve * bs_;
  i.generation = sb_.generation;
  if (auto host = store_->allocated_bytes()) {
    i.host_known = true;
    i.host_allocated_bytes = *host;
    i.host_unused_bytes = *host > i.used_bytes ? *host - i.used_bytes : 0;
  }
  i.entries = table_->count();
  i.cache_bytes = cache_bytes_;
  return i;
}

// Both wait, as a commit does, for writes whose new blocks are allocated
// but not yet mapped: a check meanwhile would count them as leaked.
Result<CheckReport> Pool::Impl::Check() {
  std::unique_lock<std::mutex> lock(mu_);
  WaitUnmappedWrites(lock);
  RETURN_IF_ERROR(Usable());
  return CheckLocked();
}

Result<VerifyReport> Pool::Impl::Verify(const std::function<void(uint64_t)>& progress) {
  std::unique_lock<std::mutex> lock(mu_);
  WaitUnmappedWrites(lock);
  RETURN_IF_ERROR(Usable());
  return VerifyLocked(progress);
}

// ---------------------------------------------------------------- Pool

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

Pool::Pool(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

Pool::~Pool() {
  if (impl_) impl_->Close();
}

void SetPoolWarningSink(std::function<void(const std::string&)> sink) {
  WarningSink() = std::move(sink);
}

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
  ASSIGN_OR_RETURN(auto impl, Impl::Create(std::move(store), o));
  return std::unique_ptr<Pool>(new Pool(std::move(impl)));
}

Result<std::unique_ptr<Pool>> Pool::Open(const std::string& path, const PoolOpenOptions& o) {
  ASSIGN_OR_RETURN(auto store, OpenFileStore(path, o.read_only, o.write_behind));
  return Open(std::move(store), o);
}

Result<std::unique_ptr<Pool>> Pool::Open(std::unique_ptr<Store> store, const PoolOpenOptions& o) {
  ASSIGN_OR_RETURN(auto impl, Impl::Open(std::move(store), o));
  return std::unique_ptr<Pool>(new Pool(std::move(impl)));
}

uint32_t Pool::block_size() const { return impl_->block_size(); }
const std::vector<std::string>& Pool::open_warnings() const { return impl_->open_warnings(); }
std::string Pool::StorePath() const { return impl_->store_path(); }
void Pool::RefreshLockNote() { impl_->RefreshLockNote(); }

Status Pool::CreateVolume(const std::string& name, uint64_t size_bytes, const EntryMeta& meta) {
  return impl_->CreateVolume(name, size_bytes, meta, {});
}
Status Pool::CreateVolume(const std::string& name, uint64_t size_bytes, const EntryMeta& meta,
                          const EntryIdentity& identity) {
  return impl_->CreateVolume(name, size_bytes, meta, identity);
}
Result<std::unique_ptr<BlockDevice>> Pool::OpenVolume(const std::string& name, bool read_only) {
  return impl_->OpenVolume(name, read_only, "an open device");
}
Result<std::unique_ptr<BlockDevice>> Pool::OpenVolume(const std::string& name, bool read_only,
                                                      const std::string& user_label) {
  return impl_->OpenVolume(name, read_only, user_label);
}
Status Pool::Snapshot(const std::string& source, const std::string& snap_name,
                      const EntryMeta& meta) {
  return impl_->Copy(source, snap_name, true, meta, {});
}
Status Pool::Snapshot(const std::string& source, const std::string& snap_name,
                      const EntryMeta& meta, const EntryIdentity& identity) {
  return impl_->Copy(source, snap_name, true, meta, identity);
}
Status Pool::Clone(const std::string& source, const std::string& new_name, const EntryMeta& meta) {
  return impl_->Copy(source, new_name, false, meta, {});
}
Status Pool::Rollback(const std::string& volume, const std::string& snapshot) {
  return impl_->Rollback(volume, snapshot);
}
Status Pool::Delete(const std::string& name) { return impl_->Delete(name); }
Status Pool::Rename(const std::string& old_name, const std::string& new_name) {
  return impl_->Rename(old_name, new_name);
}
Status Pool::Resize(const std::string& name, uint64_t new_size_bytes) {
  return impl_->Resize(name, new_size_bytes);
}
Status Pool::SetReadOnly(const std::string& name, bool read_only) {
  return impl_->SetReadOnly(name, read_only);
}
Status Pool::SetMeta(const std::string& name, const EntryMeta& meta) {
  return impl_->SetMeta(name, meta);
}
Result<std::vector<EntryInfo>> Pool::List() { return impl_->List(); }
Result<std::vector<std::string>> Pool::Names() { return impl_->Names(); }
Result<std::vector<std::string>> Pool::HiddenNames() { return impl_->HiddenNames(); }
Result<std::vector<EntryInfo>> Pool::FindByUuid(const std::string& uuid) {
  return impl_->FindByUuid(uuid);
}
Result<EntryInfo> Pool::Stat(const std::string& name) { return impl_->Stat(name, true); }
Result<EntryInfo> Pool::Lookup(const std::string& name) { return impl_->Stat(name, false); }
Result<PoolInfo> Pool::Info() { return impl_->Info(); }
Result<CheckReport> Pool::Check() { return impl_->Check(); }
Result<VerifyReport> Pool::Verify(const std::function<void(uint64_t)>& progress) {
  return impl_->Verify(progress);
}
Result<std::vector<uint8_t>> Pool::SameStored(const std::string& name, uint64_t offset,
                                              std::span<const uint8_t> data) {
  return impl_->SameStored(name, offset, data);
}
Result<std::vector<StoredRun>> Pool::StoredRuns(const std::string& name, uint64_t offset,
                                                uint64_t length) {
  return impl_->StoredRuns(name, offset, length);
}
Status Pool::Grow(uint64_t new_max_bytes) { return impl_->Grow(new_max_bytes); }
Status Pool::Commit() { return impl_->Commit(); }

}  // namespace stack::pool
