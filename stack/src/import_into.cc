#include "stack/import_into.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "block/file_device.h"
#include "block/passthrough_device.h"
#include "fde/crypt_device.h"
#include "fde/header_info.h"
#include "fde/luks.h"
#include "fde/xts_cipher.h"
#include "pool/pool.h"
#include "stack/control.h"
#include "stack/open_pool.h"
#include "stack/publish.h"
#include "kind_text.h"

namespace stack::compose {
namespace {

// Runs of the bulk data path's size (stack/bulk_data.h): each batch costs
// two extent queries and, for a plain view, a decryption split across
// threads that are started per call, so small batches cost more than their
// bytes.
constexpr uint64_t kBatchBytes = 1u << 20;
constexpr const char* kIntoSnapshot = "into";  // the hidden clone's snapshot: .build-V@into

bool AllZero(std::span<const uint8_t> b) {
  if (b.empty()) return true;
  return b[0] == 0 && std::memcmp(b.data(), b.data() + 1, b.size() - 1) == 0;
}

// Zeroes buf (covering [base, base + buf.size())) outside the ascending,
// disjoint ranges `[a, e)` in `covered`: only what will not be read over.
void ZeroGaps(std::span<uint8_t> buf, uint64_t base,
              const std::vector<std::pair<uint64_t, uint64_t>>& covered) {
  uint64_t at = base;
  for (auto [a, e] : covered) {
    if (a > at) std::memset(buf.data() + (at - base), 0, a - at);
    at = std::max(at, e);
  }
  const uint64_t end = base + buf.size();
  if (end > at) std::memset(buf.data() + (at - base), 0, end - at);
}

// Marks, per block of `bs` bytes from `base`, whether an extent touches it.
void Mark(const std::vector<Extent>& ext, uint64_t base, uint64_t bs, std::vector<uint8_t>& out) {
  for (const Extent& x : ext)
    for (uint64_t b = (x.offset - base) / bs; b < (x.end() - base + bs - 1) / bs; ++b) out[b] = 1;
}

// Compares a plain image with an encrypted volume without reading the
// volume's data: the file's plaintext is encrypted with the volume's key
// (XTS is deterministic per sector: unchanged plaintext gives unchanged
// ciphertext) and its checksum compared with the one the pool keeps for
// the block (pool::Pool::SameStored). Reading, verifying and decrypting the
// stored block and comparing the plaintext cost twice as much. Sound
// because the file's author does not hold the key: the ciphertext cannot be
// chosen to collide, so a changed block matches with probability 2^-64.
struct CipherCompare {
  pool::Pool* pool = nullptr;
  std::string entry;  // the hidden clone
  std::unique_ptr<fde::XtsCipher> xts;
  uint32_t sector_size = 0;
  uint64_t iv_tweak = 0;
};

// The file as a stored import into an encrypted volume compares it: the
// volume's own LUKS header area in place of the file's, so only the data
// segment comes in. Key changes made since the export (a passphrase
// removed, one changed) stay the volume's; the file's header would undo
// them, or bring a header this build cannot open.
class VolumeHead : public PassthroughDevice {
 public:
  VolumeHead(std::unique_ptr<BlockDevice> file, std::vector<uint8_t> head)
      : PassthroughDevice(std::move(file)), head_(std::move(head)) {}

 protected:
  Status DoRead(uint64_t offset, std::span<uint8_t> out) override {
    const uint64_t n = offset < head_.size() ? std::min<uint64_t>(out.size(), head_.size() - offset)
                                             : 0;
    if (n) std::memcpy(out.data(), head_.data() + offset, n);
    if (n == out.size()) return Status::Ok();
    return inner().Read(offset + n, out.subspan(n));
  }
  Result<std::vector<Extent>> DoAllocatedExtents(uint64_t offset, uint64_t length) override {
    std::vector<Extent> out;
    const uint64_t end = offset + length;
    if (offset < head_.size())
      out.push_back({offset, std::min<uint64_t>(end, head_.size()) - offset});
    if (end <= head_.size()) return out;
    const uint64_t from = std::max<uint64_t>(offset, head_.size());
    ASSIGN_OR_RETURN(auto rest, inner().AllocatedExtents(from, end - from));
    for (const Extent& x : rest) {
      if (!out.empty() && out.back().end() == x.offset)
        out.back().length += x.length;
      else
        out.push_back(x);
    }
    return out;
  }

 private:
  std::vector<uint8_t> head_;
};

// A stored image brought into an encrypted volume must hold that volume's
// container: one this build opens, with the volume's LUKS uuid, volume key
// (its digest) and data segment. Returns the volume's header area (what
// VolumeHead shows), and says in `*note` when the file's differs.
Result<std::vector<uint8_t>> CheckSameContainer(BlockDevice& file, BlockDevice& volume,
                                                const fde::HeaderInfo& v,
                                                const ImportIntoOptions& o, std::string* note) {
  if (Status st = fde::CheckOpenable(file); !st.ok())
    return Status(st.code(), o.in_path + " holds a container this build cannot open: " +
                                 st.message());
  ASSIGN_OR_RETURN(fde::HeaderInfo f, fde::Dump(file));
  const std::string other = o.in_path + " holds another container than volume '" + o.volume + "'";
  if (f.kind != v.kind)
    return Status::InvalidArgument(other + " (" + KindText(f.kind) + ", the volume's is " +
                                   KindText(v.kind) + "): import --into takes an export of it");
  if (f.uuid != v.uuid)
    return Status::InvalidArgument(other + " (LUKS uuid " + f.uuid + ", the volume's is " +
                                   v.uuid + "): import --into takes an export of it");
  if (f.digest_salt != v.digest_salt || f.digest_value != v.digest_value ||
      f.data_offset != v.data_offset || f.cipher != v.cipher || f.key_bytes != v.key_bytes ||
      f.sector_size != v.sector_size || f.iv_tweak != v.iv_tweak)
    return Status::InvalidArgument(other + ": the same uuid but another volume key or data "
                                   "segment (re-encrypted?); import --into takes an export of it");
  if (v.data_offset > volume.size_bytes())
    return Status::Corruption("volume '" + o.volume + "': its data segment starts past its end");
  std::vector<uint8_t> head(v.data_offset), fhead(v.data_offset);
  RETURN_IF_ERROR(volume.Read(0, head));
  RETURN_IF_ERROR(file.Read(0, fhead));
  if (head != fhead)
    *note = o.in_path + "'s LUKS header differs from volume '" + o.volume +
            "'s (keys changed on either side since the export): the volume keeps its own "
            "header and keyslots; only the data came in";
  return head;
}

// The comparison and the writes, in the hidden clone. `raw` is the clone as
// stored; `view` is what the file holds (raw itself, or the crypt device
// over it whose data segment starts at raw offset `data_offset`). With
// `cc` (plain only), mapped blocks are compared by checksum.
class Merger {
 public:
  Merger(BlockDevice& file, BlockDevice& raw, BlockDevice& view, uint64_t data_offset,
         bool plain, Progress* progress, ImportIntoReport& rep, CipherCompare* cc = nullptr)
      : file_(file), raw_(raw), view_(view), d_(data_offset), plain_(plain),
        progress_(progress), rep_(rep), cc_(cc) {}

  Status Run() {
    const uint64_t bs = raw_.block_size();
    const uint64_t size = view_.size_bytes();
    const uint64_t batch = std::max<uint64_t>(bs, kBatchBytes / bs * bs);
    for (uint64_t r0 = d_ / bs * bs; r0 < d_ + size; r0 += batch) {
      const uint64_t r1 = std::min<uint64_t>(r0 + batch, (d_ + size + bs - 1) / bs * bs);
      RETURN_IF_ERROR(Batch(r0, r1));
      if (progress_) progress_->Advance(std::min(r1, d_ + size) - std::max(r0, d_));
    }
    return flush_ ? raw_.Flush() : Status::Ok();
  }

  // A pool file's writes are in its transaction, which the snapshot that
  // publishes them commits: the Flush (a commit, two syncs) is not needed.
  void SkipFinalFlush() { flush_ = false; }

 private:
  enum class Action { kNone, kWrite, kUnmap };

  // Raw blocks [r0, r1): the view part of each is [max(r, d), min(r + bs, d + size)) - d.
  Status Batch(uint64_t r0, uint64_t r1) {
    const uint64_t bs = raw_.block_size();
    const uint64_t size = view_.size_bytes();
    const uint64_t v0 = std::max(r0, d_) - d_, v1 = std::min(r1, d_ + size) - d_;
    ASSIGN_OR_RETURN(auto mapped, raw_.AllocatedExtents(r0, r1 - r0));
    ASSIGN_OR_RETURN(auto data, file_.AllocatedExtents(v0, v1 - v0));
    if (mapped.empty() && data.empty()) return Status::Ok();  // zeros both sides
    // Holes read as zeros; only they are zeroed (not the whole batch twice).
    fbuf_.resize(v1 - v0);
    cbuf_.resize(v1 - v0);
    covered_.clear();
    for (const Extent& x : data) {
      RETURN_IF_ERROR(file_.Read(x.offset, std::span(fbuf_).subspan(x.offset - v0, x.length)));
      covered_.emplace_back(x.offset, x.end());
    }
    ZeroGaps(fbuf_, v0, covered_);
    const uint64_t n = (r1 - r0) / bs;
    same_.assign(n, 0);
    if (cc_) return CompareByChecksum(r0, r1, v0, mapped, data);
    covered_.clear();
    for (const Extent& x : mapped) {
      // The view part of a mapped raw extent (a plain view starts at d).
      const uint64_t a = std::max(x.offset, d_), e = std::min(x.end(), d_ + size);
      if (e <= a) continue;
      RETURN_IF_ERROR(
          view_.Read(a - d_, std::span(cbuf_).subspan(a - d_ - v0, e - a)));
      covered_.emplace_back(a - d_, e - d_);
    }
    ZeroGaps(cbuf_, v0, covered_);
    return Decide(r0, r1, v0, mapped, data);
  }

  // The mapped blocks' file content, encrypted, against the pool's
  // checksums (same_). REQUIRES: d_ and the view's size are block multiples.
  Status CompareByChecksum(uint64_t r0, uint64_t r1, uint64_t v0,
                           const std::vector<Extent>& mapped, std::vector<Extent>& data) {
    const uint64_t bs = raw_.block_size();
    const uint64_t size = view_.size_bytes();
    ebuf_.resize(fbuf_.size());
    for (const Extent& x : mapped) {
      // Whole blocks: d_, size and the extents are block multiples.
      const uint64_t a = std::max({x.offset, d_, r0}), e = std::min({x.end(), d_ + size, r1});
      if (e <= a) continue;
      auto plain = std::span<const uint8_t>(fbuf_).subspan(a - d_ - v0, e - a);
      auto cipher = std::span<uint8_t>(ebuf_).subspan(a - d_ - v0, e - a);
      RETURN_IF_ERROR(cc_->xts->Encrypt(plain, cipher, cc_->sector_size,
                                        (a - d_) / 512 + cc_->iv_tweak));
      ASSIGN_OR_RETURN(auto same, cc_->pool->SameStored(cc_->entry, a, cipher));
      std::copy(same.begin(), same.end(), same_.begin() + static_cast<long>((a - r0) / bs));
    }
    return Decide(r0, r1, v0, mapped, data);
  }

  // Decides per raw block, then applies runs of one action.
  Status Decide(uint64_t r0, uint64_t r1, uint64_t v0, const std::vector<Extent>& mapped,
                std::vector<Extent>& data) {
    const uint64_t bs = raw_.block_size();
    const uint64_t size = view_.size_bytes();
    // Per raw block: mapped in the pool, holding file data.
    const uint64_t n = (r1 - r0) / bs;
    is_mapped_.assign(n, 0);
    has_data_.assign(n, 0);
    Mark(mapped, r0, bs, is_mapped_);
    for (Extent& x : data) x.offset += d_;  // raw coordinates
    Mark(data, r0, bs, has_data_);
    // Decide per raw block, then apply runs of one action.
    Action run = Action::kNone;
    uint64_t run_a = 0, run_e = 0;  // view range of the run
    for (uint64_t r = r0; r < r1; r += bs) {
      const uint64_t a = std::max(r, d_) - d_, e = std::min(r + bs, d_ + size) - d_;
      Action act = Action::kNone;
      if (e > a) {
        const bool is_mapped = is_mapped_[(r - r0) / bs];
        const bool hole = !has_data_[(r - r0) / bs];
        auto f = std::span<const uint8_t>(fbuf_).subspan(a - v0, e - a);
        auto c = std::span<const uint8_t>(cbuf_).subspan(a - v0, e - a);
        if (!plain_) {
          // Stored bytes: an unmapped block reads as zeros, exactly.
          if ((is_mapped || !hole) && std::memcmp(f.data(), c.data(), f.size()) != 0)
            act = AllZero(f) ? Action::kUnmap : Action::kWrite;
        } else if (is_mapped && cc_) {
          if (!same_[(r - r0) / bs]) act = Action::kWrite;
        } else if (is_mapped) {
          if (std::memcmp(f.data(), c.data(), f.size()) != 0) act = Action::kWrite;
        } else if (!hole) {
          // Unmapped under LUKS decrypts to noise, not zeros: file data
          // there (zeros included) is new and is written encrypted. A hole
          // over it is what the export left: unchanged.
          act = Action::kWrite;
        }
      }
      if (act != run || (act != Action::kNone && a != run_e)) {
        RETURN_IF_ERROR(Apply(run, run_a, run_e, v0));
        run = act;
        run_a = a;
      }
      run_e = e;
    }
    return Apply(run, run_a, run_e, v0);
  }

  Status Apply(Action act, uint64_t a, uint64_t e, uint64_t v0) {
    if (act == Action::kNone || e <= a) return Status::Ok();
    rep_.changed_bytes += e - a;
    if (act == Action::kUnmap) {
      rep_.discarded_bytes += e - a;
      // Stored view: whole raw blocks, which the pool unmaps.
      return raw_.WriteZeroes(a + d_, e - a);
    }
    rep_.written_bytes += e - a;
    return view_.Write(a, std::span<const uint8_t>(fbuf_).subspan(a - v0, e - a));
  }

  BlockDevice& file_;
  BlockDevice& raw_;
  BlockDevice& view_;
  const uint64_t d_;
  const bool plain_;
  Progress* progress_;
  ImportIntoReport& rep_;
  CipherCompare* cc_;
  bool flush_ = true;
  std::vector<uint8_t> fbuf_, cbuf_, ebuf_, is_mapped_, has_data_, same_;
  std::vector<std::pair<uint64_t, uint64_t>> covered_;  // view ranges read into a buffer
};

}  // namespace

Result<ImportIntoFormat> ParseImportIntoFormat(const std::string& text) {
  if (text == "auto") return ImportIntoFormat::kAuto;
  if (text == "stored") return ImportIntoFormat::kStored;
  if (text == "plain" || text == "decrypted") return ImportIntoFormat::kPlain;
  return Status::InvalidArgument("--format must be auto, stored or plain, not '" + text + "'");
}

Result<ImportIntoReport> ImportInto(const ImportIntoOptions& o) {
  ImportIntoReport rep;
  rep.volume = o.volume;
  FileDeviceOptions fo;
  fo.block_size = 512;
  fo.read_only = true;
  ASSIGN_OR_RETURN(auto in, FileDevice::Open(o.in_path, fo));
  ASSIGN_OR_RETURN(fde::ContainerKind file_kind, fde::Probe(*in));

  ASSIGN_OR_RETURN(auto pool, OpenPool(o.pool_path, PoolAccess::kWritable));
  auto server = ServeWhileHolding(pool, o.pool_path);  // until the import returns
  ASSIGN_OR_RETURN(auto vol, pool->Lookup(o.volume));
  if (vol.kind != pool::EntryKind::kVolume)
    return Status::InvalidArgument("'" + o.volume +
                                   "' is a snapshot: import --into takes a volume");
  if (vol.read_only) return Status::ReadOnly("volume '" + o.volume + "' is read-only");
  const std::string hidden = std::string(kBuildPrefix) + o.volume;
  const std::string hidden_snap = hidden + "@" + kIntoSnapshot;
  if (!pool::ValidEntryName(hidden_snap))
    return Status::InvalidArgument("volume name '" + o.volume + "' too long for import --into");
  if (!o.snapshot.empty()) {
    rep.snapshot = o.volume + "@" + o.snapshot;
    if (!pool::ValidEntryName(rep.snapshot))
      return Status::InvalidArgument("invalid snapshot name '" + rep.snapshot + "'");
    ASSIGN_OR_RETURN(auto names, pool->Names());
    if (std::find(names.begin(), names.end(), rep.snapshot) != names.end())
      return Status::AlreadyExists("snapshot " + rep.snapshot + " already exists");
  }
  ASSIGN_OR_RETURN(auto before, pool->Info());
  rep.pool_used_before = before.used_bytes;

  // The volume's kind decides the format before anything is made. A file
  // with a LUKS header is a stored image, unless its size is the plain
  // view's and not the stored one's: then it is a plain export whose
  // plaintext starts with a LUKS header of its own (a guest that encrypts
  // its disk).
  fde::ContainerKind vol_kind;
  uint64_t raw_size = 0, plain_size = 0;
  std::vector<uint8_t> vol_head;  // a stored import into an encrypted volume
  std::string head_note;
  {
    ASSIGN_OR_RETURN(auto probe_dev, pool->OpenVolume(o.volume, true, "import --into"));
    ASSIGN_OR_RETURN(vol_kind, fde::Probe(*probe_dev));
    raw_size = probe_dev->size_bytes();
    fde::HeaderInfo vh;  // the volume's header, when it has one
    if (vol_kind != fde::ContainerKind::kNone) {
      ASSIGN_OR_RETURN(vh, fde::Dump(*probe_dev));
      plain_size = vh.data_offset < raw_size ? raw_size - vh.data_offset : 0;
    }
    const bool luks_file = file_kind != fde::ContainerKind::kNone;
    const bool plain_sized = in->size_bytes() == plain_size && in->size_bytes() != raw_size;
    ImportIntoFormat format = o.format;
    if (vol_kind == fde::ContainerKind::kNone)
      format = ImportIntoFormat::kStored;  // an unencrypted volume: the same bytes
    else if (format == ImportIntoFormat::kAuto)
      format = luks_file && !plain_sized ? ImportIntoFormat::kStored : ImportIntoFormat::kPlain;
    const bool plain = format == ImportIntoFormat::kPlain;
    rep.format = plain ? "plain" : "stored";
    if (plain && luks_file && in->size_bytes() == raw_size)
      return Status::InvalidArgument(o.in_path + " holds a " + KindText(file_kind) +
                                     " header and the stored image's size: it is a stored "
                                     "image (--format stored), not a plain one");
    if (!plain && vol_kind != fde::ContainerKind::kNone && !luks_file)
      return Status::InvalidArgument(o.in_path + " holds no LUKS header but volume '" +
                                     o.volume + "' is " + KindText(vol_kind) +
                                     ": a decrypted image is imported with --format plain -k PASS");
    if (!plain && vol_kind != fde::ContainerKind::kNone) {
      ASSIGN_OR_RETURN(vol_head, CheckSameContainer(*in, *probe_dev, vh, o, &head_note));
    }
  }
  rep.encryption = KindText(vol_kind);
  const bool plain = rep.format == "plain";

  RETURN_IF_ERROR(pool->Clone(o.volume, hidden, {}));
  auto drop = [&] {  // best effort: a leftover goes at the next writable open
    (void)pool->Delete(hidden_snap);
    (void)pool->Delete(hidden);
    (void)pool->Commit();
  };
  Status st = [&]() -> Status {
    ASSIGN_OR_RETURN(auto raw, pool->OpenVolume(hidden, false, "import --into"));
    std::unique_ptr<BlockDevice> view;
    uint64_t data_offset = 0;
    std::unique_ptr<CipherCompare> cc;
    if (plain) {
      ASSIGN_OR_RETURN(auto lower, pool->OpenVolume(hidden, false, "import --into"));
      ASSIGN_OR_RETURN(auto u, Unlock(std::move(lower), o.passphrase, true, true, 1));
      auto* crypt = dynamic_cast<fde::CryptDevice*>(u.device.get());
      if (!crypt) return Status::Internal("unlocked volume is not a crypt device");
      data_offset = crypt->data_offset();
      // By checksum where the pool keeps them and blocks hold whole
      // sectors at block-aligned offsets; else by decrypting.
      const uint64_t bs = raw->block_size();
      if (auto fp = pool->file_pool();
          fp && data_offset % bs == 0 && crypt->size_bytes() % bs == 0 &&
          bs % crypt->block_size() == 0) {
        ASSIGN_OR_RETURN(auto key, crypt->CopyVolumeKey());
        cc = std::make_unique<CipherCompare>();
        ASSIGN_OR_RETURN(cc->xts, fde::XtsCipher::Create(key.bytes()));
        cc->pool = fp.get();
        cc->entry = hidden;
        cc->sector_size = crypt->block_size();
        cc->iv_tweak = crypt->iv_tweak();
      }
      view = std::move(u.device);
    }
    BlockDevice& v = view ? *view : *raw;
    rep.file_bytes = in->size_bytes();
    if (in->size_bytes() != v.size_bytes())
      return Status::InvalidArgument(
          o.in_path + " is " + std::to_string(in->size_bytes()) + " bytes but the " +
          rep.format + " image of volume '" + o.volume + "' is " +
          std::to_string(v.size_bytes()) + " bytes (import --into keeps the volume's size)");
    if (o.progress) o.progress->SetTotal(v.size_bytes());
    std::unique_ptr<BlockDevice> file = std::move(in);
    if (!vol_head.empty())
      file = std::make_unique<VolumeHead>(std::move(file), std::move(vol_head));
    Merger m(*file, *raw, v, data_offset, plain, o.progress, rep, cc.get());
    if (pool->file_pool()) m.SkipFinalFlush();
    RETURN_IF_ERROR(m.Run());
    if (o.progress) o.progress->Finish();
    view.reset();
    raw.reset();
    if (rep.changed_bytes == 0) return Status::Ok();  // nothing to publish
    RETURN_IF_ERROR(pool->Snapshot(hidden, hidden_snap, {}));
    // Publication: one commit makes V the imported content.
    return pool->Rollback(o.volume, hidden_snap);
  }();
  drop();
  if (!st.ok()) return st;
  if (!head_note.empty()) rep.notes.push_back(head_note);
  if (!o.snapshot.empty())
    RETURN_IF_ERROR(pool->Snapshot(o.volume, rep.snapshot, {}));
  ASSIGN_OR_RETURN(auto after, pool->Info());
  rep.pool_used_after = after.used_bytes;
  return rep;
}

}  // namespace stack::compose
