#include "volume_table.h"

#include <cstring>

#include "block/endian.h"
#include "format.h"

namespace stack::pool {
namespace {

class Writer {
 public:
  void U8(uint8_t v) { b_.push_back(v); }
  void U16(uint16_t v) { size_t o = Grow(2); PutLE16(&b_[o], v); }
  void U32(uint32_t v) { size_t o = Grow(4); PutLE32(&b_[o], v); }
  void U64(uint64_t v) { size_t o = Grow(8); PutLE64(&b_[o], v); }
  void Bytes(const void* p, size_t n) {
    size_t o = Grow(n);
    if (n) std::memcpy(&b_[o], p, n);
  }
  std::vector<uint8_t>& buf() { return b_; }

 private:
  size_t Grow(size_t n) { size_t o = b_.size(); b_.resize(o + n); return o; }
  std::vector<uint8_t> b_;
};

class Reader {
 public:
  explicit Reader(std::span<const uint8_t> s) : s_(s) {}
  bool Need(size_t n) { return pos_ + n <= s_.size(); }
  bool U8(uint8_t* v) { if (!Need(1)) return false; *v = s_[pos_]; pos_ += 1; return true; }
  bool U16(uint16_t* v) { if (!Need(2)) return false; *v = GetLE16(&s_[pos_]); pos_ += 2; return true; }
  bool U32(uint32_t* v) { if (!Need(4)) return false; *v = GetLE32(&s_[pos_]); pos_ += 4; return true; }
  bool U64(uint64_t* v) { if (!Need(8)) return false; *v = GetLE64(&s_[pos_]); pos_ += 8; return true; }
  bool Str(size_t n, std::string* out) {
    if (!Need(n)) return false;
    out->assign(reinterpret_cast<const char*>(&s_[pos_]), n);
    pos_ += n;
    return true;
  }
  bool Arr(std::array<uint8_t, 16>* a) {
    if (!Need(16)) return false;
    std::memcpy(a->data(), &s_[pos_], 16);
    pos_ += 16;
    return true;
  }
  size_t pos() const { return pos_; }

 private:
  std::span<const uint8_t> s_;
  size_t pos_ = 0;
};

}  // namespace

std::vector<uint8_t> EncodeTable(const std::vector<TableEntry>& entries) {
  Writer w;
  w.U32(static_cast<uint32_t>(entries.size()));
  for (const auto& e : entries) {
    Writer r;
    r.U64(e.id);
    r.U8(e.snapshot ? 1 : 0);
    r.U8(e.read_only ? 1 : 0);
    r.U16(static_cast<uint16_t>(e.name.size()));
    r.Bytes(e.name.data(), e.name.size());
    r.Bytes(e.uuid.data(), 16);
    r.Bytes(e.parent.data(), 16);
    r.U64(e.created_ns);
    r.U64(e.size_bytes);
    r.U64(e.root);
    r.U64(e.mapped_blocks);
    r.U32(static_cast<uint32_t>(e.note.size()));
    r.Bytes(e.note.data(), e.note.size());
    r.U16(static_cast<uint16_t>(e.tags.size()));
    for (const auto& t : e.tags) {
      r.U16(static_cast<uint16_t>(t.size()));
      r.Bytes(t.data(), t.size());
    }
    w.U32(static_cast<uint32_t>(r.buf().size()));
    w.Bytes(r.buf().data(), r.buf().size());
  }
  return std::move(w.buf());
}

Result<std::vector<TableEntry>> DecodeTable(std::span<const uint8_t> blob, uint64_t nr_blocks) {
  auto bad = [](const std::string& why) { return Status::Corruption("volume table: " + why); };
  Reader rd(blob);
  uint32_t count = 0;
  if (!rd.U32(&count)) return bad("truncated count");
  if (count > blob.size() / 8) return bad("entry count too large");
  std::vector<TableEntry> out;
  out.reserve(count);
  uint64_t last_id = 0;
  for (uint32_t i = 0; i < count; ++i) {
    uint32_t len = 0;
    if (!rd.U32(&len) || !rd.Need(len)) return bad("truncated entry " + std::to_string(i));
    Reader r(blob.subspan(rd.pos(), len));
    std::string skip;
    (void)rd.Str(len, &skip);
    TableEntry e;
    uint8_t kind = 0, flags = 0;
    uint16_t name_len = 0, ntags = 0;
    uint32_t note_len = 0;
    if (!r.U64(&e.id) || !r.U8(&kind) || !r.U8(&flags) || !r.U16(&name_len) ||
        name_len == 0 || name_len > kMaxNameLen || !r.Str(name_len, &e.name) || !r.Arr(&e.uuid) ||
        !r.Arr(&e.parent) || !r.U64(&e.created_ns) || !r.U64(&e.size_bytes) || !r.U64(&e.root) ||
        !r.U64(&e.mapped_blocks) || !r.U32(&note_len) || note_len > kMaxNoteLen ||
        !r.Str(note_len, &e.note) || !r.U16(&ntags) || ntags > kMaxTags) {
      return bad("malformed entry " + std::to_string(i));
    }
    for (uint16_t t = 0; t < ntags; ++t) {
      uint16_t tl = 0;
      std::string tag;
      if (!r.U16(&tl) || tl > kMaxTagLen || !r.Str(tl, &tag)) {
        return bad("malformed tag in entry " + e.name);
      }
      e.tags.push_back(std::move(tag));
    }
    if (kind > 1 || flags > 1) return bad("bad kind/flags in entry " + e.name);
    e.snapshot = kind == 1;
    e.read_only = flags == 1;
    if (e.id <= last_id) return bad("entries out of creation order at " + e.name);
    last_id = e.id;
    if (e.root != 0 && (e.root < kFirstFreeBlock || e.root >= nr_blocks)) {
      return bad("root of " + e.name + " outside the pool");
    }
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace stack::pool
