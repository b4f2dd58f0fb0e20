// ApplyImage (stack/oci_apply.h): merge from the headers, then one tar
// stream of the surviving members, assembled on the fly, into the file
// system through fsbridge's tar populate (its path, xattr, hard link and
// device handling, and its hostile-input rules).
#include "stack/oci_apply.h"

#include <archive.h>
#include <archive_entry.h>

#include <sys/mman.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "oci_blob.h"
#include "oci_layer.h"
#include "oci_merge.h"
#include "oci_spool.h"

namespace stack::compose::oci {
namespace {

// Zeros handed to the tar writer for a hole (which it skips unread): a
// read-only anonymous mapping, address space only, made once.
constexpr size_t kHoleChunk = size_t(1) << 26;

std::span<const uint8_t> HoleZeros() {
  static const std::span<const uint8_t> zeros = []() -> std::span<const uint8_t> {
    void* p = ::mmap(nullptr, kHoleChunk, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                     -1, 0);
    if (p != MAP_FAILED) return {static_cast<const uint8_t*>(p), kHoleChunk};
    static const uint8_t small[1 << 16] = {};  // no address space: more calls, same result
    return {small, sizeof small};
  }();
  return zeros;
}

// The stored bytes of a layer, counted into the progress as they are read.
class Counted : public ByteSource {
 public:
  Counted(std::unique_ptr<ByteSource> in, Progress* p) : in_(std::move(in)), p_(p) {}
  Result<std::span<const uint8_t>> Next() override {
    ASSIGN_OR_RETURN(auto d, in_->Next());
    p_->Advance(d.size());
    return d;
  }
  uint64_t SizeHint() const override { return in_->SizeHint(); }

 private:
  std::unique_ptr<ByteSource> in_;
  Progress* p_;
};

// What pass 1 learnt of a member, for pass 2.
struct MemberInfo {
  uint64_t size = 0;    // a regular file's size, holes included; else 0
  bool sparse = false;  // a regular file with holes: less data than size
};
using MemberInfos = std::vector<std::vector<MemberInfo>>;  // [layer][member]

// What the file system can hold, checked in pass 1 (before any big work).
struct Limits {
  uint64_t max_file = UINT64_MAX;  // ext4's largest file for its block size
  uint64_t volume = UINT64_MAX;    // the file system's size
};

Result<Limits> LimitsOf(fsbridge::Filesystem& fs) {
  ASSIGN_OR_RETURN(fsbridge::DfInfo df, fs.Df());
  Limits l;
  // Extent-mapped files address 2^32 - 1 blocks (Linux's ext4_max_size).
  l.max_file = ((uint64_t(1) << 32) - 1) * df.block_size;
  l.volume = df.blocks_total * df.block_size;
  return l;
}

// The file types the merged tar and fsbridge write. Anything else (a GNU
// 'M' continuation, a socket, a header whose mode has no type) would only
// fail in pass 2, as the tar writer's Internal error.
bool Writable(mode_t type) {
  switch (type) {
    case AE_IFREG:
    case AE_IFDIR:
    case AE_IFLNK:
    case AE_IFCHR:
    case AE_IFBLK:
    case AE_IFIFO:
      return true;
    default:
      return false;
  }
}

// A regular member's data, read in pass 1 (its bytes pass through for the
// digest and the spool anyway). libarchive drops sparse-map entries it
// cannot use and stops at whichever of map and stored data ends first, so
// a bad map would put data at the wrong offset, or leave stored bytes that
// the next header is then read from: the blocks must come in file order,
// apart, within the size, be exactly the regions the map lists, and end
// where the member's stored data ends. Also refuses sizes the file system
// cannot hold, before any of them is written.
Result<MemberInfo> CheckData(LayerReader& r, archive_entry* e, const std::string& name,
                             const Limits& lim) {
  const std::string what = r.layer().label + ": '" + name + "'";
  const la_int64_t size = archive_entry_size(e);
  if (size < 0) return Status::Corruption(what + ": a negative size");
  MemberInfo info{uint64_t(size), false};
  if (info.size > lim.max_file)
    return Status::OutOfRange(what + ": " + std::to_string(info.size) +
                              " bytes, more than an ext4 file holds (" +
                              std::to_string(lim.max_file) + ")");
  // The map's regions [off, end), adjacent ones joined, empty ones left
  // out; none for a member without a map (its data is [0, size)).
  std::vector<std::pair<uint64_t, uint64_t>> map;
  la_int64_t o, l;
  archive_entry_sparse_reset(e);
  while (archive_entry_sparse_next(e, &o, &l) == ARCHIVE_OK) {
    if (l == 0) continue;
    if (!map.empty() && map.back().second == uint64_t(o))
      map.back().second += uint64_t(l);
    else
      map.emplace_back(uint64_t(o), uint64_t(o) + uint64_t(l));
  }
  const bool mapped = !map.empty();
  if (!mapped && info.size) map.emplace_back(0, info.size);
  size_t next = 0;        // the map region the data goes into
  uint64_t start = 0, end = 0, data = 0;  // the joined run of blocks being read
  auto close_run = [&]() -> Status {
    if (end == start) return Status::Ok();
    if (next == map.size() || map[next] != std::make_pair(start, end))
      return Status::Corruption(what + ": its sparse map is out of order, overlapping or "
                                "beyond the file's size");
    next++;
    return Status::Ok();
  };
  while (true) {
    ASSIGN_OR_RETURN(LayerReader::Block b, r.ReadData());
    if (b.data.empty()) break;
    if (b.offset < end)
      return Status::Corruption(what + ": its sparse map is out of order or overlapping");
    if (b.offset > info.size || b.data.size() > info.size - b.offset)
      return Status::Corruption(what + ": data beyond its size");
    if (b.offset != end) {
      RETURN_IF_ERROR(close_run());
      start = b.offset;
    }
    end = b.offset + b.data.size();
    data += b.data.size();
  }
  RETURN_IF_ERROR(close_run());
  // No data at all is a file that is one hole, when there is no map.
  if (next != map.size() && (mapped || data))
    return Status::Corruption(what + ": its sparse map lists more data than is stored");
  if (r.position() % 512)
    return Status::Corruption(what + ": its sparse map does not add up to its stored size");
  if (data > lim.volume)
    return Status::NoSpace(r.layer().label + ": writing /" + ResolveName(name) + ": " +
                           std::to_string(data) + " bytes of data, more than the volume (" +
                           std::to_string(lim.volume) + ")");
  info.sparse = data < info.size;
  return info;
}

// Pass 1: every layer's headers (and digests), into the merge; each
// layer's uncompressed tar into its spool, for pass 2. Every member's type
// and data are checked here, before anything is written. Progress: each
// layer's stored bytes read ("build: reading layer 2/3").
Status MergeLayers(ImageSource& src, size_t first, size_t end, const Limits& limits,
                   LayerMerge* merge, MemberInfos* infos, std::vector<Spool>* spools,
                   ApplyReport* rep, Progress* progress) {
  const auto& layers = src.image().layers;
  for (size_t i = 0; i < end; i++) {
    merge->BeginLayer();
    infos->emplace_back();
    spools->emplace_back();
    if (i < first) continue;  // applied already: the merge holds none of it
    ASSIGN_OR_RETURN(spools->back(), Spool::Create(layers[i].label));
    ASSIGN_OR_RETURN(auto stored, src.OpenLayer(i));
    if (progress) {
      progress->Restart("build: reading layer " + std::to_string(i + 1) + "/" +
                            std::to_string(layers.size()),
                        layers[i].size ? layers[i].size : stored->SizeHint());
      stored = std::make_unique<Counted>(std::move(stored), progress);
    }
    ASSIGN_OR_RETURN(auto reader,
                     LayerReader::Open(std::move(stored), layers[i], &spools->back()));
    for (uint64_t m = 0;; m++) {
      ASSIGN_OR_RETURN(archive_entry * e, reader->Next());
      if (!e) break;
      rep->members++;
      const char* pn = archive_entry_pathname(e);
      if (!pn) return Status::Corruption(layers[i].label + ": a member without a name");
      const char* hl = archive_entry_hardlink(e);
      // "" is no target: such a member would be planned as a plain node.
      if (hl && !*hl)
        return Status::Corruption(layers[i].label + ": hard link '" + pn +
                                  "' with an empty target");
      const mode_t type = archive_entry_filetype(e);
      if (!hl && !Writable(type)) {
        char mode[16];
        snprintf(mode, sizeof mode, "0%o", unsigned(archive_entry_mode(e)));
        return Status::Corruption(layers[i].label + ": '" + pn +
                                  "': a member of a type an image cannot hold (mode " +
                                  mode + ")");
      }
      const bool is_dir = type == AE_IFDIR && !hl;
      MemberInfo info;
      if (!hl && type == AE_IFREG) {
        ASSIGN_OR_RETURN(info, CheckData(*reader, e, pn, limits));
      }
      infos->back().push_back(info);
      if (!merge->Add(m, pn, is_dir ? LayerMerge::Kind::kDir : LayerMerge::Kind::kOther,
                      hl ? hl : "") &&
          hl)
        return Status::Corruption(
            layers[i].label + ": hard link '" + pn + "' to '" + hl +
            (first > 0 ? "', which is not a file of this layer: with --layer-snapshots a "
                         "hard link may name only a file of its own layer, as the image "
                         "spec allows"
                       : "', which is not a file in the image"));
    }
  }
  return Status::Ok();
}

// Pass 2: the surviving members as one pax tar, produced as it is read.
class MergedTar {
 public:
  // Writes plan's layers from `first` on (the plan holds nothing below),
  // reading them from the spools pass 1 filled.
  MergedTar(ImageSource& src, const std::vector<Spool>& spools, const MemberInfos& infos,
            LayerMerge::Plan plan, std::vector<std::string> implicit_dirs, size_t first = 0)
      : src_(src),
        spools_(spools),
        infos_(infos),
        plan_(std::move(plan)),
        implicit_(std::move(implicit_dirs)),
        layer_(first) {}
  ~MergedTar() {
    if (w_) archive_write_free(w_);
  }
  MergedTar(const MergedTar&) = delete;
  MergedTar& operator=(const MergedTar&) = delete;

  Result<std::span<const uint8_t>> Next() {
    out_.clear();
    while (out_.empty() && state_ != State::kDone) RETURN_IF_ERROR(Step());
    return std::span<const uint8_t>(out_.data(), out_.size());
  }
  // The layer being written (for messages), "" before the first.
  std::string where() const { return reader_ ? reader_->layer().label : ""; }

 private:
  enum class State { kStart, kNextLayer, kMembers, kData, kDone };

  static la_ssize_t WriteCb(archive*, void* self, const void* buf, size_t n) {
    auto* t = static_cast<MergedTar*>(self);
    const auto* p = static_cast<const uint8_t*>(buf);
    t->out_.insert(t->out_.end(), p, p + n);
    return la_ssize_t(n);
  }

  Status WriteError(const std::string& what) {
    const char* m = archive_error_string(w_);
    return Status::Internal("writing the merged tar (" + what + "): " + (m ? m : "error"));
  }

  Status Header(archive_entry* e, const std::string& what) {
    if (archive_write_header(w_, e) < ARCHIVE_WARN) return WriteError(what);
    return Status::Ok();
  }

  Status Step() {
    switch (state_) {
      case State::kStart: {
        w_ = archive_write_new();
        if (!w_) return Status::Internal("libarchive: out of memory");
        archive_write_set_format_pax(w_);
        archive_write_add_filter_none(w_);
        archive_write_set_bytes_per_block(w_, 0);  // hand bytes over as they come
        if (archive_write_open(w_, this, nullptr, WriteCb, nullptr) != ARCHIVE_OK)
          return WriteError("open");
        for (const auto& d : implicit_) {
          archive_entry* e = archive_entry_new();
          archive_entry_set_pathname(e, d.c_str());
          archive_entry_set_filetype(e, AE_IFDIR);
          archive_entry_set_perm(e, 0755);
          Status s = Header(e, d);
          archive_entry_free(e);
          RETURN_IF_ERROR(s);
        }
        state_ = State::kNextLayer;
        return Status::Ok();
      }
      case State::kNextLayer: {
        reader_.reset();
        if (layer_ == plan_.size()) {
          if (archive_write_close(w_) != ARCHIVE_OK) return WriteError("close");
          state_ = State::kDone;
          return Status::Ok();
        }
        ASSIGN_OR_RETURN(reader_, LayerReader::OpenSpooled(spools_[layer_],
                                                           src_.image().layers[layer_]));
        member_ = 0;
        state_ = State::kMembers;
        return Status::Ok();
      }
      case State::kMembers: {
        ASSIGN_OR_RETURN(archive_entry * e, reader_->Next());
        if (!e) {
          layer_++;
          state_ = State::kNextLayer;
          return Status::Ok();
        }
        const uint64_t m = member_++;
        auto it = plan_[layer_].find(m);
        if (it == plan_[layer_].end()) return Status::Ok();  // deleted or replaced above
        names_ = it->second;
        entry_.reset(archive_entry_clone(e));
        archive_entry* c = entry_.get();
        archive_entry_set_pathname(c, names_[0].empty() ? "." : names_[0].c_str());
        archive_entry_set_hardlink(c, nullptr);
        // A sparse member keeps its map (pass 1 found it to be its data),
        // so the holes go on as holes, never as bytes; a map of none is
        // one hole to the end. Others go out whole.
        sparse_ = archive_entry_filetype(c) == AE_IFREG && infos_[layer_][m].sparse;
        if (!sparse_)
          archive_entry_sparse_clear(c);
        else if (archive_entry_sparse_count(c) == 0)
          archive_entry_sparse_add_entry(c, archive_entry_size(c), 0);
        RETURN_IF_ERROR(Header(c, names_[0]));
        if (archive_entry_filetype(c) == AE_IFREG) {
          size_ = uint64_t(archive_entry_size(c));
          pos_ = 0;
          state_ = State::kData;
          return Status::Ok();
        }
        return Links();
      }
      case State::kData: {
        // Pass 1 checked the blocks: in order, within the size, and gaps
        // only in a sparse member.
        ASSIGN_OR_RETURN(LayerReader::Block b, reader_->ReadData());
        const uint64_t upto = b.data.empty() ? size_ : b.offset;
        if (upto < pos_ || upto > size_ || (b.data.size() > size_ - upto))
          return Status::Corruption(reader_->layer().label + ": data of '" + names_[0] +
                                    "' beyond its size");
        if (upto > pos_ && !sparse_)
          return Status::Internal(reader_->layer().label + ": '" + names_[0] +
                                  "': a hole in a member pass 1 found whole");
        if (!b.data.empty()) {
          RETURN_IF_ERROR(Hole(upto));
          if (archive_write_data(w_, b.data.data(), b.data.size()) < 0)
            return WriteError(names_[0]);
          pos_ += b.data.size();
          return Status::Ok();
        }
        // A last hole is the writer's to leave: it expects no bytes for it.
        if (archive_write_finish_entry(w_) < ARCHIVE_WARN) return WriteError(names_[0]);
        state_ = State::kMembers;
        return Links();
      }
      case State::kDone:
        return Status::Ok();
    }
    return Status::Ok();
  }

  // Moves the writer past a hole of a sparse member up to `upto`. The pax
  // writer skips a hole's bytes without reading or storing them, so they
  // are handed over in large pieces of a zero mapping: no memory, few calls.
  Status Hole(uint64_t upto) {
    const std::span<const uint8_t> z = HoleZeros();
    while (pos_ < upto) {
      const size_t n = size_t(std::min<uint64_t>(z.size(), upto - pos_));
      const la_ssize_t w = archive_write_data(w_, z.data(), n);
      if (w <= 0) return WriteError(names_[0]);
      pos_ += uint64_t(w);
    }
    return Status::Ok();
  }

  // The member's other names: hard links to its first.
  Status Links() {
    for (size_t i = 1; i < names_.size(); i++) {
      archive_entry* c = entry_.get();
      archive_entry_set_pathname(c, names_[i].c_str());
      archive_entry_set_hardlink(c, names_[0].c_str());
      archive_entry_set_size(c, 0);
      RETURN_IF_ERROR(Header(c, names_[i]));
    }
    entry_.reset();
    return Status::Ok();
  }

  struct EntryFree {
    void operator()(archive_entry* e) const { archive_entry_free(e); }
  };

  ImageSource& src_;
  const std::vector<Spool>& spools_;
  const MemberInfos& infos_;
  LayerMerge::Plan plan_;
  std::vector<std::string> implicit_;
  archive* w_ = nullptr;
  std::vector<uint8_t> out_;
  State state_ = State::kStart;
  size_t layer_ = 0;
  uint64_t member_ = 0;
  std::unique_ptr<LayerReader> reader_;
  std::unique_ptr<archive_entry, EntryFree> entry_;
  std::vector<std::string> names_;
  uint64_t size_ = 0, pos_ = 0;
  bool sparse_ = false;
};

// Pass 2 for layers [first, plan.size()) and the report.
Result<ApplyReport> WritePlan(ImageSource& src, fsbridge::Filesystem& fs,
                              const fsbridge::PopulateOptions& popts, Progress* progress,
                              LayerMerge::Plan plan, std::vector<std::string> implicit,
                              const MemberInfos& infos, const std::vector<Spool>& spools,
                              size_t first, ApplyReport rep,
                              const std::string& label) {
  uint64_t total = 0, all = 0;
  size_t kept = 0;
  for (size_t l = first; l < plan.size(); l++) {
    for (const MemberInfo& i : infos[l]) all += i.size;
    for (const auto& [m, names] : plan[l]) {
      total += infos[l][m].size;
      kept += names.size();
    }
  }
  rep.skipped_bytes = all - total;
  rep.skipped_members = rep.members > kept ? rep.members - kept : 0;
  fsbridge::PopulateOptions opts = popts;
  if (progress) {
    progress->Restart(label, total);
    opts.on_file = [progress](uint64_t b) { progress->Advance(b); };
  }
  MergedTar tar(src, spools, infos, std::move(plan), std::move(implicit), first);
  Result<fsbridge::PopulateStats> st = fs.PopulateFromTarStream(
      src.image().reference, [&tar] { return tar.Next(); }, "/", opts);
  if (progress) progress->Finish();
  if (!st.ok()) {
    if (st.status().Is(Code::kNoSpace) && !tar.where().empty())
      return Status::NoSpace(tar.where() + ": " + st.status().message());
    return st.status();
  }
  rep.stats = *st;
  return rep;
}

}  // namespace

Result<ApplyReport> ApplyImage(ImageSource& src, fsbridge::Filesystem& fs,
                               const fsbridge::PopulateOptions& popts, Progress* progress) {
  ApplyReport rep;
  const size_t n = src.image().layers.size();
  rep.layers = n;
  LayerMerge merge;
  MemberInfos infos;
  std::vector<Spool> spools;
  ASSIGN_OR_RETURN(const Limits limits, LimitsOf(fs));
  RETURN_IF_ERROR(MergeLayers(src, 0, n, limits, &merge, &infos, &spools, &rep, progress));
  return WritePlan(src, fs, popts, progress, merge.Finish(), merge.ImplicitDirs(), infos, spools,
                   0, rep,
                   "build: " + std::to_string(n) + (n == 1 ? " layer" : " layers"));
}

Result<ApplyReport> ApplyLayer(ImageSource& src, size_t k, fsbridge::Filesystem& fs,
                               const fsbridge::PopulateOptions& popts, Progress* progress) {
  ApplyReport rep;
  rep.layers = 1;
  LayerMerge merge;  // layer k alone
  MemberInfos infos;
  std::vector<Spool> spools;
  ASSIGN_OR_RETURN(const Limits limits, LimitsOf(fs));
  RETURN_IF_ERROR(MergeLayers(src, k, k + 1, limits, &merge, &infos, &spools, &rep, progress));
  auto at = [](const std::string& p) { return "/" + p; };
  auto stat = [&](const std::string& p) { return fs.Stat(at(p)); };
  // What the layer deletes from the lower ones goes first, so its own
  // entries of those names stay (spec/oci.md "Layers").
  for (const std::string& p : merge.whiteouts())
    if (stat(p).ok()) RETURN_IF_ERROR(fs.Remove(at(p), true));
  for (const std::string& d : merge.opaque_dirs()) {
    auto st = stat(d);
    if (!st.ok() || st->type != fsbridge::FileType::kDirectory) continue;
    ASSIGN_OR_RETURN(auto children, fs.List(at(d)));
    for (const auto& c : children)
      RETURN_IF_ERROR(fs.Remove(at(d.empty() ? c.name : d + "/" + c.name), true));
  }
  // A lower entry of another type than the layer's is replaced (with its
  // subtree); a lower non-directory where the layer has a directory too.
  std::vector<std::string> implicit;
  // A lower directory the layer declares again takes the layer's
  // attributes: populate sets its xattrs but would keep the lower ones the
  // layer does not name (an ACL, a label), which the one-pass merge drops.
  for (const auto& [p, node] : merge.nodes()) {
    if (p.empty()) {
      if (node.member >= 0 && node.dir) RETURN_IF_ERROR(fs.ClearXattrs("/"));
      continue;
    }
    auto st = stat(p);
    if (!st.ok()) {
      if (!st.status().Is(Code::kNotFound)) return st.status();
      if (node.member < 0) implicit.push_back(p);
      continue;
    }
    const bool lower_dir = st->type == fsbridge::FileType::kDirectory;
    if (lower_dir && node.dir) {  // merged; an implicit one keeps its attributes
      if (node.member >= 0) RETURN_IF_ERROR(fs.ClearXattrs(at(p)));
      continue;
    }
    RETURN_IF_ERROR(fs.Remove(at(p), true));
    if (node.member < 0) implicit.push_back(p);
  }
  return WritePlan(src, fs, popts, progress, merge.Finish(), implicit, infos, spools, k, rep,
                   "build: layer " + std::to_string(k + 1) + "/" +
                       std::to_string(src.image().layers.size()));
}

std::vector<std::string> ChainIds(const Image& image) {
  std::vector<std::string> out;
  for (const Layer& l : image.layers) {
    if (out.empty()) {
      out.push_back(l.diff_id);
    } else {
      const std::string s = out.back() + " " + l.diff_id;
      out.push_back(DigestOf({reinterpret_cast<const uint8_t*>(s.data()), s.size()}));
    }
  }
  return out;
}

}  // namespace stack::compose::oci
