// Pool::Diff: the block ranges where one entry differs from another, from a
// paired walk of their two volume trees (BTree::Diff) that skips every
// subtree the entries share.
#include <optional>

#include "pool_impl.h"

namespace stack::pool {

namespace {

// Merges per-block differences (keys rising) into ranges of one kind and
// hands each finished range to the sink.
class RangeMerger {
 public:
  RangeMerger(uint32_t bs, const std::function<Status(const DiffRange&)>& sink, DiffStats* st)
      : bs_(bs), sink_(sink), st_(st) {}

  Status Add(uint64_t block, DiffKind kind) {
    (kind == DiffKind::kWritten ? st_->written_bytes : st_->discarded_bytes) += bs_;
    if (cur_ && cur_->kind == kind && cur_->offset + cur_->length == block * bs_) {
      cur_->length += bs_;
      return Status::Ok();
    }
    RETURN_IF_ERROR(Finish());
    cur_ = DiffRange{block * bs_, bs_, kind};
    return Status::Ok();
  }
  Status Finish() {
    if (!cur_) return Status::Ok();
    DiffRange r = *cur_;
    cur_.reset();
    Status s = sink_(r);
    sink_failed_ = !s.ok();
    return s;
  }
  bool sink_failed() const { return sink_failed_; }

 private:
  const uint64_t bs_;
  const std::function<Status(const DiffRange&)>& sink_;
  DiffStats* st_;
  std::optional<DiffRange> cur_;
  bool sink_failed_ = false;
};

}  // namespace

Status Pool::Impl::Diff(const std::string& from, const std::string& to,
                        const std::function<Status(const DiffRange&)>& sink, DiffStats* stats) {
  std::lock_guard<std::mutex> lock(mu_);
  RETURN_IF_ERROR(Usable());
  // Roots and sizes are copied: the sink cannot change the pool, but the
  // entry pointers are only borrowed from the table.
  ASSIGN_OR_RETURN(TableEntry * t, Find(to));
  const uint64_t to_root = t->root;
  const uint64_t to_blocks = t->size_bytes / bs_;
  uint64_t from_root = 0;
  if (!from.empty()) {
    ASSIGN_OR_RETURN(TableEntry * f, Find(from));
    from_root = f->root;
  }
  DiffStats local;
  DiffStats* st = stats ? stats : &local;
  *st = DiffStats{};
  TreeDiffStats walk;
  RangeMerger merger(bs_, sink, st);
  Status s = tree_->Diff(
      from_root, to_root, 0, to_blocks,
      [&](uint64_t key, const Mapping*, const Mapping* now) {
        return merger.Add(key, now ? DiffKind::kWritten : DiffKind::kDiscarded);
      },
      &walk);
  if (s.ok()) s = merger.Finish();
  st->nodes_visited = walk.nodes_visited;
  // Entries of one lineage share nodes or at least data blocks (nothing
  // else makes two trees hold the same block); an empty side shares
  // nothing to find.
  st->by_address = from_root == 0 || to_root == 0 || walk.shared_nodes > 0 ||
                   walk.shared_blocks > 0;
  // The sink's own error goes back as it was; a walk error names the pair.
  if (!s.ok() && !merger.sink_failed()) return s.WithContext("diff " + from + " -> " + to);
  return s;
}

Status Pool::Diff(const std::string& from, const std::string& to,
                  const std::function<Status(const DiffRange&)>& sink, DiffStats* stats) {
  return impl_->Diff(from, to, sink, stats);
}

}  // namespace stack::pool
