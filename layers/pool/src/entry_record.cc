#include "entry_record.h"

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

size_t RecordBytes(const TableEntry& e) {
  size_t n = kRecordFixedBytes + e.name.size() + e.note.size();
  for (const auto& t : e.tags) n += 2 + t.size();
  return n;
}

std::vector<uint8_t> EncodeRecord(const TableEntry& e) {
  Writer r;
  r.U32(0);  // length, filled in below
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
  PutLE32(r.buf().data(), static_cast<uint32_t>(r.buf().size() - 4));
  return std::move(r.buf());
}

Result<TableEntry> DecodeRecord(std::span<const uint8_t> rec, uint64_t nr_blocks) {
  auto bad = [](const std::string& why) { return Status::Corruption("entry record: " + why); };
  Reader outer(rec);
  uint32_t len = 0;
  if (!outer.U32(&len)) return bad("truncated length");
  if (len + size_t(4) > kMaxRecordBytes) return bad("length " + std::to_string(len) + " too large");
  if (!outer.Need(len)) return bad("truncated (length " + std::to_string(len) + ")");
  for (size_t i = 4 + size_t(len); i < rec.size(); ++i) {
    if (rec[i] != 0) return bad("non-zero padding");
  }
  Reader r(rec.subspan(4, len));
  TableEntry e;
  uint8_t kind = 0, flags = 0;
  uint16_t name_len = 0, ntags = 0;
  uint32_t note_len = 0;
  if (!r.U64(&e.id) || !r.U8(&kind) || !r.U8(&flags) || !r.U16(&name_len) || name_len == 0 ||
      name_len > kMaxNameLen || !r.Str(name_len, &e.name) || !r.Arr(&e.uuid) ||
      !r.Arr(&e.parent) || !r.U64(&e.created_ns) || !r.U64(&e.size_bytes) || !r.U64(&e.root) ||
      !r.U64(&e.mapped_blocks) || !r.U32(&note_len) || note_len > kMaxNoteLen ||
      !r.Str(note_len, &e.note) || !r.U16(&ntags) || ntags > kMaxTags) {
    return bad("malformed fields");
  }
  for (uint16_t t = 0; t < ntags; ++t) {
    uint16_t tl = 0;
    std::string tag;
    if (!r.U16(&tl) || tl > kMaxTagLen || !r.Str(tl, &tag)) {
      return bad("malformed tag in entry " + e.name);
    }
    e.tags.push_back(std::move(tag));
  }
  if (r.pos() != len) return bad("trailing bytes in entry " + e.name);
  if (kind > 1 || flags > 1) return bad("bad kind/flags in entry " + e.name);
  e.snapshot = kind == 1;
  e.read_only = flags == 1;
  if (e.root != 0 && (e.root < kFirstFreeBlock || e.root >= nr_blocks)) {
    return bad("root of " + e.name + " outside the pool");
  }
  return e;
}

}  // namespace stack::pool
