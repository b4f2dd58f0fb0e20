#include "stack/send_stream.h"

#define XXH_STATIC_LINKING_ONLY  // XXH3_state_t on the stack: no allocation per record
#include <xxhash.h>
#if defined(__x86_64__)
// The same XXH3 (bit for bit), its vector width chosen at run time
// (AVX2/AVX-512): the default build is SSE2, half the speed on a record
// payload, and every payload byte is hashed once on each side.
#include <xxh_x86dispatch.h>
#endif

#include <algorithm>
#include <cstring>

#include "block/endian.h"
#include "block/text.h"
#include "pool/pool.h"
#include "sha256.h"

namespace stack::compose {
namespace {

constexpr uint64_t kHeaderSeed = 0x53454e44;  // "SEND"
constexpr size_t kMaxNote = 4096, kMaxTags = 64, kMaxTag = 255;
constexpr uint64_t kMaxEntryBlocks = uint64_t(1) << 48;  // the pool's volume size limit

// XXH3-64 of a record header's first 24 bytes and its data, seeded with
// the type, fed in pieces: Start, Add for each piece of data, then Final.
class RecordHash {
 public:
  RecordHash(const uint8_t* head, uint32_t type) {
    XXH3_INITSTATE(&st_);
    XXH3_64bits_reset_withSeed(&st_, type);
    XXH3_64bits_update(&st_, head, 24);
  }
  void Add(std::span<const uint8_t> data) {
    if (!data.empty()) XXH3_64bits_update(&st_, data.data(), data.size());
  }
  uint64_t Final() { return XXH3_64bits_digest(&st_); }

 private:
  XXH3_state_t st_;
};

uint64_t RecordChecksum(const uint8_t* head, std::span<const uint8_t> data, uint32_t type) {
  RecordHash h(head, type);
  h.Add(data);
  return h.Final();
}

bool PowerOfTwo(uint32_t v) { return v && (v & (v - 1)) == 0; }

// The rules a header must meet, writer and reader alike ("" if it does).
std::string HeaderProblem(const StreamHeader& h) {
  if (h.version < kSendOldestVersion || h.version > kSendVersion)
    return "format version " + std::to_string(h.version) + " is not one this stack writes";
  if (h.flags & ~(kSendFlagIncremental | kSendFlagResume)) return "unknown flags";
  if (h.resumed() && (h.resume.offset % std::max<uint32_t>(h.block_size, 1) ||
                      h.resume.offset > h.size_bytes))
    return "resume offset is not a block boundary inside the entry";
  if (((h.flags & kSendFlagIncremental) != 0) != h.incremental())
    return "incremental flag and base uuid disagree";
  if (!PowerOfTwo(h.block_size) || h.block_size < 4096 || h.block_size > (1u << 20))
    return "block size " + std::to_string(h.block_size) + " is not a power of two in 4 KiB..1 MiB";
  if (h.size_bytes % h.block_size) return "entry size is not a multiple of the block size";
  if (h.size_bytes / h.block_size > kMaxEntryBlocks) return "entry size too large";
  if (IsZero(h.uuid)) return "entry uuid is zero";
  if (h.created_unix_ns < 0) return "creation time before 1970";
  if (h.volume.find('@') != std::string::npos || !pool::ValidEntryName(h.volume))
    return "invalid volume name";
  if (h.snapshot.empty() || h.snapshot.find('@') != std::string::npos ||
      !pool::ValidEntryName(h.volume + "@" + h.snapshot))
    return "invalid snapshot name";
  if (h.note.size() > kMaxNote) return "note longer than 4096 bytes";
  if (h.tags.size() > kMaxTags) return "more than 64 tags";
  for (auto& t : h.tags)
    if (t.size() > kMaxTag) return "tag longer than 255 bytes";
  return "";
}

// Where the names start: after the resume block, if any.
size_t NamesAt(const StreamHeader& h) {
  return kSendFixedHeaderBytes + (h.resumed() ? kSendResumeBytes : 0);
}

size_t HeaderBytes(const StreamHeader& h) {
  size_t n = NamesAt(h) + h.volume.size() + h.snapshot.size() + h.note.size();
  for (auto& t : h.tags) n += 2 + t.size();
  return (n + 7) / 8 * 8 + 8;  // padding to 8, then the checksum
}

}  // namespace

std::string FormatUuidText(const Uuid& u) {
  if (IsZero(u)) return "";
  return FormatUuid(u);
}

Result<Uuid> ParseUuidText(const std::string& s) {
  Uuid u{};
  if (s.empty()) return u;
  auto nib = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  if (s.size() != 36) return Status::InvalidArgument("malformed uuid '" + s + "'");
  size_t j = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (s[i] != '-') return Status::InvalidArgument("malformed uuid '" + s + "'");
      continue;
    }
    int v = nib(s[i]);
    if (v < 0) return Status::InvalidArgument("malformed uuid '" + s + "'");
    u[j / 2] = static_cast<uint8_t>(j % 2 ? (u[j / 2] | v) : (v << 4));
    ++j;
  }
  return u;
}

namespace {
constexpr uint8_t kTokenVersion = 1;
constexpr size_t kTokenBytes = 1 + 16 + 16 + 24 + 32;  // then the XXH3-64 check
constexpr uint64_t kTokenSeed = 0x544f4b4e;  // "TOKN"
}  // namespace

std::string FormatResumeToken(const ResumePoint& p) {
  std::vector<uint8_t> b(kTokenBytes + 8);
  b[0] = kTokenVersion;
  std::memcpy(&b[1], p.uuid.data(), 16);
  std::memcpy(&b[17], p.base_uuid.data(), 16);
  PutLE64(&b[33], p.offset);
  PutLE64(&b[41], p.records);
  PutLE64(&b[49], p.written_bytes);
  std::memcpy(&b[57], p.digest.data(), 32);
  PutLE64(&b[kTokenBytes], XXH3_64bits_withSeed(b.data(), kTokenBytes, kTokenSeed));
  static const char* hex = "0123456789abcdef";
  std::string out = "1-";
  for (uint8_t c : b) {
    out += hex[c >> 4];
    out += hex[c & 15];
  }
  return out;
}

Result<ResumePoint> ParseResumeToken(const std::string& token) {
  auto bad = [] { return Status::InvalidArgument("malformed resume token (mistyped or cut short?)"); };
  if (token.size() != 2 + 2 * (kTokenBytes + 8) || token.rfind("1-", 0) != 0) return bad();
  std::vector<uint8_t> b(kTokenBytes + 8);
  for (size_t i = 0; i < b.size(); ++i) {
    auto nib = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      return -1;
    };
    int hi = nib(token[2 + 2 * i]), lo = nib(token[3 + 2 * i]);
    if (hi < 0 || lo < 0) return bad();
    b[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  if (b[0] != kTokenVersion ||
      GetLE64(&b[kTokenBytes]) != XXH3_64bits_withSeed(b.data(), kTokenBytes, kTokenSeed))
    return bad();
  ResumePoint p;
  std::memcpy(p.uuid.data(), &b[1], 16);
  std::memcpy(p.base_uuid.data(), &b[17], 16);
  p.offset = GetLE64(&b[33]);
  p.records = GetLE64(&b[41]);
  p.written_bytes = GetLE64(&b[49]);
  std::memcpy(p.digest.data(), &b[57], 32);
  if (IsZero(p.uuid)) return bad();
  return p;
}

Result<std::vector<uint8_t>> EncodeStreamHeader(const StreamHeader& h) {
  std::string bad = HeaderProblem(h);
  if (!bad.empty()) return Status::InvalidArgument("send stream header: " + bad);
  std::vector<uint8_t> b(HeaderBytes(h), 0);
  std::memcpy(b.data(), kSendMagic.data(), 8);
  PutLE32(&b[8], h.version);
  PutLE32(&b[12], static_cast<uint32_t>(b.size()));
  PutLE32(&b[16], h.flags);
  PutLE32(&b[20], h.block_size);
  PutLE64(&b[24], h.size_bytes);
  std::memcpy(&b[32], h.uuid.data(), 16);
  std::memcpy(&b[48], h.parent_uuid.data(), 16);
  std::memcpy(&b[64], h.base_uuid.data(), 16);
  PutLE64(&b[80], static_cast<uint64_t>(h.created_unix_ns));
  PutLE16(&b[88], static_cast<uint16_t>(h.volume.size()));
  PutLE16(&b[90], static_cast<uint16_t>(h.snapshot.size()));
  PutLE16(&b[92], static_cast<uint16_t>(h.note.size()));
  PutLE16(&b[94], static_cast<uint16_t>(h.tags.size()));
  if (h.resumed()) {
    PutLE64(&b[96], h.resume.offset);
    PutLE64(&b[104], h.resume.records);
    PutLE64(&b[112], h.resume.written_bytes);
    std::memcpy(&b[128], h.resume.digest.data(), 32);
  }
  size_t p = NamesAt(h);
  auto put = [&](const std::string& s) {
    std::memcpy(&b[p], s.data(), s.size());
    p += s.size();
  };
  put(h.volume);
  put(h.snapshot);
  put(h.note);
  for (auto& t : h.tags) {
    PutLE16(&b[p], static_cast<uint16_t>(t.size()));
    p += 2;
    put(t);
  }
  PutLE64(&b[b.size() - 8], XXH3_64bits_withSeed(b.data(), b.size() - 8, kHeaderSeed));
  return b;
}

// ------------------------------------------------------------------ writer

struct StreamWriter::Hasher {
  Sha256 sha;
};

StreamWriter::StreamWriter(ByteSink sink)
    : sink_(std::move(sink)), hash_(std::make_unique<Hasher>()) {}
StreamWriter::~StreamWriter() = default;

Status StreamWriter::Emit(std::span<const uint8_t> bytes, bool digested) {
  if (digested) hash_->sha.Update(bytes);
  bytes_ += bytes.size();
  return sink_(bytes);
}

Status StreamWriter::WriteHeader(const StreamHeader& h) {
  if (started_) return Status::Internal("send stream: header written twice");
  ASSIGN_OR_RETURN(auto b, EncodeStreamHeader(h));
  header_ = h;
  header_.resume.uuid = h.uuid;
  header_.resume.base_uuid = h.base_uuid;
  started_ = true;
  if (h.resumed()) next_ = h.resume.offset;
  return Emit(b);
}

Status StreamWriter::CheckRange(uint64_t offset, uint64_t length) {
  if (!started_ || finished_) return Status::Internal("send stream: record outside header..END");
  const uint64_t bs = header_.block_size;
  if (length == 0 || offset % bs || length % bs || offset < next_ ||
      offset > header_.size_bytes || length > header_.size_bytes - offset)
    return Status::InvalidArgument("send stream: record [" + std::to_string(offset) + ", +" +
                                   std::to_string(length) + ") out of order or outside the entry");
  return Status::Ok();
}

Status StreamWriter::Record(SendRecordType type, uint64_t offset, uint64_t length,
                            std::span<const uint8_t> data) {
  uint8_t head[kSendRecordBytes] = {};
  PutLE32(head, static_cast<uint32_t>(type));
  PutLE64(head + 8, offset);
  PutLE64(head + 16, length);
  PutLE64(head + 24, RecordChecksum(head, data, static_cast<uint32_t>(type)));
  RETURN_IF_ERROR(Emit(head));
  // Version 2: the payload is in the digest through its XXH3-64 in `head`.
  if (!data.empty()) RETURN_IF_ERROR(Emit(data, header_.version < 2));
  return Status::Ok();
}

Status StreamWriter::Write(uint64_t offset, std::span<const uint8_t> data) {
  if (data.size() > kSendMaxWriteBytes)
    return Status::InvalidArgument("send stream: WRITE larger than 1 MiB");
  RETURN_IF_ERROR(CheckRange(offset, data.size()));
  RETURN_IF_ERROR(Record(SendRecordType::kWrite, offset, data.size(), data));
  next_ = offset + data.size();
  data_bytes_ += data.size();
  ++records_;
  return Status::Ok();
}

Status StreamWriter::Hole(uint64_t offset, uint64_t length) {
  RETURN_IF_ERROR(CheckRange(offset, length));
  RETURN_IF_ERROR(Record(SendRecordType::kHole, offset, length, {}));
  next_ = offset + length;
  hole_bytes_ += length;
  ++records_;
  return Status::Ok();
}

Status StreamWriter::Finish() {
  if (!started_ || finished_) return Status::Internal("send stream: Finish out of order");
  RETURN_IF_ERROR(Record(SendRecordType::kEnd, records_, data_bytes_, {}));
  finished_ = true;
  auto digest = hash_->sha.Final();
  bytes_ += digest.size();
  return sink_(digest);
}

// ------------------------------------------------------------------ reader

struct StreamReader::Hasher {
  Sha256 sha;
};

StreamReader::StreamReader(ByteSource source)
    : source_(std::move(source)), hash_(std::make_unique<Hasher>()) {}
StreamReader::~StreamReader() = default;

Status StreamReader::Bad(const std::string& what) const {
  return Status::Corruption("send stream: " + what + " (stream byte " + std::to_string(bytes_) +
                            ")");
}

Status StreamReader::ReadExact(std::span<uint8_t> out, const char* what,
                               const std::function<void(std::span<const uint8_t>)>& piece) {
  size_t got = 0;
  while (got < out.size()) {
    ASSIGN_OR_RETURN(size_t n, source_(out.subspan(got)));
    if (n == 0) {
      bytes_ += got;
      return Bad(std::string("truncated: the stream ends inside ") + what);
    }
    if (n > out.size() - got) return Status::Internal("byte source returned too much");
    if (piece) piece(out.subspan(got, n));
    got += n;
  }
  bytes_ += got;
  return Status::Ok();
}

Result<StreamHeader> StreamReader::ReadHeader() {
  if (started_) return Status::Internal("send stream: header read twice");
  started_ = true;
  uint8_t fixed[kSendFixedHeaderBytes];
  // Magic and version first: a newer stream is refused for what it is, not
  // for a layout this reader does not know.
  RETURN_IF_ERROR(ReadExact(std::span<uint8_t>(fixed, 16), "the header"));
  if (std::memcmp(fixed, kSendMagic.data(), 8) != 0)
    return Status::Corruption("not a stack send stream (bad magic)");
  const uint32_t version = GetLE32(fixed + 8);
  if (version < kSendOldestVersion || version > kSendVersion)
    return Status::Unsupported("send stream format version " + std::to_string(version) +
                               "; this stack reads versions " +
                               std::to_string(kSendOldestVersion) + " to " +
                               std::to_string(kSendVersion));
  const uint32_t len = GetLE32(fixed + 12);
  if (len < kSendFixedHeaderBytes + 8 || len > kSendMaxHeaderBytes || len % 8)
    return Bad("header length " + std::to_string(len) + " out of bounds");
  RETURN_IF_ERROR(ReadExact(std::span<uint8_t>(fixed + 16, kSendFixedHeaderBytes - 16), "the header"));
  std::vector<uint8_t> b(len);  // bounded above
  std::memcpy(b.data(), fixed, kSendFixedHeaderBytes);
  RETURN_IF_ERROR(ReadExact(std::span<uint8_t>(b).subspan(kSendFixedHeaderBytes), "the header"));
  if (GetLE64(&b[len - 8]) != XXH3_64bits_withSeed(b.data(), len - 8, kHeaderSeed))
    return Bad("header checksum mismatch");
  StreamHeader h;
  h.version = version;
  h.flags = GetLE32(&b[16]);
  if (h.flags & ~(kSendFlagIncremental | kSendFlagResume))
    return Status::Unsupported("send stream uses flags " + std::to_string(h.flags) +
                               " this stack does not know (version " +
                               std::to_string(version) + ")");
  h.block_size = GetLE32(&b[20]);
  h.size_bytes = GetLE64(&b[24]);
  std::memcpy(h.uuid.data(), &b[32], 16);
  std::memcpy(h.parent_uuid.data(), &b[48], 16);
  std::memcpy(h.base_uuid.data(), &b[64], 16);
  h.created_unix_ns = static_cast<int64_t>(GetLE64(&b[80]));
  const size_t nv = GetLE16(&b[88]), ns = GetLE16(&b[90]), nn = GetLE16(&b[92]),
               nt = GetLE16(&b[94]);
  size_t p = NamesAt(h);
  const size_t body_end = len - 8;
  if (h.resumed()) {
    if (len < NamesAt(h) + 8) return Bad("header too short for its resume block");
    h.resume.uuid = h.uuid;
    h.resume.base_uuid = h.base_uuid;
    h.resume.offset = GetLE64(&b[96]);
    h.resume.records = GetLE64(&b[104]);
    h.resume.written_bytes = GetLE64(&b[112]);
    if (GetLE64(&b[120]) != 0) return Bad("resume block reserved field not zero");
    std::memcpy(h.resume.digest.data(), &b[128], 32);
  }
  auto take = [&](size_t n, std::string& out) {
    if (n > body_end - p) return false;
    out.assign(reinterpret_cast<const char*>(&b[p]), n);
    p += n;
    return true;
  };
  if (nt > kMaxTags) return Bad("more than 64 tags");
  if (!take(nv, h.volume) || !take(ns, h.snapshot) || !take(nn, h.note))
    return Bad("header strings overrun the header");
  for (size_t i = 0; i < nt; ++i) {
    if (body_end - p < 2) return Bad("header tags overrun the header");
    size_t tl = GetLE16(&b[p]);
    p += 2;
    std::string t;
    if (!take(tl, t)) return Bad("header tags overrun the header");
    h.tags.push_back(std::move(t));
  }
  if (HeaderBytes(h) != len) return Bad("header length disagrees with its fields");
  if (std::any_of(b.begin() + static_cast<long>(p), b.begin() + static_cast<long>(body_end),
                  [](uint8_t c) { return c != 0; }))
    return Bad("header padding is not zero");
  std::string bad = HeaderProblem(h);
  if (!bad.empty()) return Bad("header: " + bad);
  hash_->sha.Update(b);
  header_ = h;
  if (h.resumed()) next_ = h.resume.offset;
  return h;
}

Result<StreamRecord> StreamReader::Next() {
  if (!started_ || done_) return Status::Internal("send stream: Next out of order");
  const uint64_t at = bytes_;
  uint8_t head[kSendRecordBytes];
  RETURN_IF_ERROR(ReadExact(head, "a record header"));
  const uint32_t type = GetLE32(head);
  StreamRecord r;
  r.offset = GetLE64(head + 8);
  r.length = GetLE64(head + 16);
  const uint64_t sum = GetLE64(head + 24);
  auto bad = [&](const std::string& what) {
    return Status::Corruption("send stream: " + what + " (record at stream byte " +
                              std::to_string(at) + ")");
  };
  if (type < 1 || type > 3) return bad("unknown record type " + std::to_string(type));
  if (GetLE32(head + 4) != 0) return bad("reserved field not zero");
  r.type = static_cast<SendRecordType>(type);
  const uint64_t bs = header_.block_size;
  if (r.type != SendRecordType::kEnd) {
    if (r.length == 0 || r.offset % bs || r.length % bs || r.offset < next_ ||
        r.offset > header_.size_bytes || r.length > header_.size_bytes - r.offset)
      return bad("record [" + std::to_string(r.offset) + ", +" + std::to_string(r.length) +
                 ") out of order or outside the entry");
    if (r.type == SendRecordType::kWrite && r.length > kSendMaxWriteBytes)
      return bad("WRITE larger than 1 MiB");
  }
  // The payload is hashed piece by piece as it arrives, while each piece is
  // still in cache: hashing the whole 1 MiB afterwards reads it back again.
  RecordHash check(head, type);
  if (r.type == SendRecordType::kWrite) {
    buf_.resize(r.length);  // bounded by kSendMaxWriteBytes above
    RETURN_IF_ERROR(ReadExact(buf_, "a WRITE record's data",
                              [&](std::span<const uint8_t> piece) { check.Add(piece); }));
    r.data = buf_;
  }
  if (check.Final() != sum) return bad("record checksum mismatch");
  r.checksum = sum;
  hash_->sha.Update(head);
  if (header_.version < 2) hash_->sha.Update(r.data);  // v2: through `sum` in head
  if (r.type == SendRecordType::kEnd) {
    if (r.offset != records_ || r.length != data_bytes_)
      return bad("END counts (" + std::to_string(r.offset) + " records, " +
                 std::to_string(r.length) + " bytes) disagree with the stream's");
    std::array<uint8_t, kSendDigestBytes> digest;
    RETURN_IF_ERROR(ReadExact(digest, "the final digest"));
    if (digest != hash_->sha.Final()) return Bad("final SHA-256 digest mismatch");
    uint8_t extra;
    ASSIGN_OR_RETURN(size_t n, source_(std::span<uint8_t>(&extra, 1)));
    if (n != 0) return Bad("bytes after the final digest");
    done_ = true;
    return r;
  }
  next_ = r.offset + r.length;
  ++records_;
  if (r.type == SendRecordType::kWrite) data_bytes_ += r.length;
  else hole_bytes_ += r.length;
  return r;
}

}  // namespace stack::compose
