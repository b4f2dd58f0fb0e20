// The send stream (spec/send-stream.md): a versioned byte stream carrying
// one snapshot, full or incremental from a base snapshot, as stored blocks.
//
// StreamWriter produces it through a byte sink; StreamReader parses it from
// a byte source. The reader takes hostile input: every length is bounded
// before anything is allocated or read for it (at most kMaxWriteBytes of
// record data is held at a time), records must stay inside the entry and
// come in ascending order, every record's XXH3-64 must match, and the
// stream must end with an END record whose counts agree and its SHA-256
// digest, followed by nothing. Version 2 (written by default) digests the
// header and every record's 32 bytes, which carry the XXH3-64 of its
// payload, so each payload byte is hashed once, with the fast hash; version
// 1 digests every byte (SHA-256 at ~1 GB/s was most of a send's and a
// receive's time). Both are read and can be written. Any violation is
// Corruption naming the stream offset; a stream from an unknown format
// version is Unsupported naming the versions this stack reads.
//
// Neither side knows about pools: the stream does not assume its entry
// lives in a local file.
//
// Thread-safety: none; one writer or reader, one thread.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "block/status.h"

namespace stack::compose {

inline constexpr std::array<uint8_t, 8> kSendMagic = {'S', 'T', 'K', 'S', 'E', 'N', 'D', '\n'};
inline constexpr uint32_t kSendVersion = 2;        // written by default
inline constexpr uint32_t kSendOldestVersion = 1;  // the oldest one read and written
inline constexpr uint32_t kSendFlagIncremental = 1u;       // base uuid is set
inline constexpr uint32_t kSendFlagResume = 2u;            // the rest of an interrupted stream
inline constexpr uint32_t kSendResumeBytes = 64;           // resume block after the fixed header
inline constexpr uint32_t kSendFixedHeaderBytes = 96;      // before names, note, tags
inline constexpr uint32_t kSendMaxHeaderBytes = 64u << 10; // bound on the header length field
inline constexpr uint32_t kSendRecordBytes = 32;           // record header
inline constexpr uint32_t kSendMaxWriteBytes = 1u << 20;   // largest WRITE payload
inline constexpr uint32_t kSendDigestBytes = 32;           // SHA-256 after END

enum class SendRecordType : uint32_t { kWrite = 1, kHole = 2, kEnd = 3 };

using Uuid = std::array<uint8_t, 16>;

// 8-4-4-4-12 lowercase hex ("" for the all-zero uuid) and back.
std::string FormatUuidText(const Uuid& u);
Result<Uuid> ParseUuidText(const std::string& s);
inline bool IsZero(const Uuid& u) {
  for (uint8_t c : u)
    if (c) return false;
  return true;
}

using Digest = std::array<uint8_t, 32>;

// Where an interrupted receive stopped: the content of a resume token and of
// a resume stream's header (spec/send-stream.md "Resuming").
struct ResumePoint {
  Uuid uuid{};                // the snapshot being received
  Uuid base_uuid{};           // its base (zero: a full stream)
  uint64_t offset = 0;        // every record before this entry offset is applied
  uint64_t records = 0;       // WRITE and HOLE records applied, over all sessions
  uint64_t written_bytes = 0; // their WRITE bytes
  Digest digest{};            // chain digest of what was applied (see the spec)
  bool operator==(const ResumePoint&) const = default;
};

// The token text ("1-" and hex, with an XXH3-64 check) and back: a token
// mistyped or cut short is InvalidArgument, never a wrong position.
std::string FormatResumeToken(const ResumePoint& p);
Result<ResumePoint> ParseResumeToken(const std::string& token);

struct StreamHeader {
  // kSendOldestVersion..kSendVersion; the reader fills in the stream's.
  uint32_t version = kSendVersion;
  uint32_t flags = 0;             // kSendFlagIncremental iff base_uuid is set
  uint32_t block_size = 0;        // sender's pool block size; every offset/length a multiple
  uint64_t size_bytes = 0;        // the snapshot's size
  Uuid uuid{};                    // the snapshot's uuid
  Uuid parent_uuid{};             // the snapshot's parent (its volume); zero: none
  Uuid base_uuid{};               // incremental: the base snapshot's uuid; zero: full
  int64_t created_unix_ns = 0;    // the snapshot's creation time
  std::string volume;             // volume name on the sender (no '@')
  std::string snapshot;           // snapshot name (the part after '@')
  std::string note;               // the snapshot's note (<= 4096 bytes)
  std::vector<std::string> tags;  // its tags (<= 64, each <= 255 bytes)
  // kSendFlagResume: the stream carries only the records from resume.offset
  // on (resume.uuid and base_uuid repeat the header's).
  ResumePoint resume;
  bool incremental() const { return !IsZero(base_uuid); }
  bool resumed() const { return (flags & kSendFlagResume) != 0; }
};

// Encodes `h` (validated as the reader would; InvalidArgument otherwise).
Result<std::vector<uint8_t>> EncodeStreamHeader(const StreamHeader& h);

using ByteSink = std::function<Status(std::span<const uint8_t>)>;
// Fills up to out.size() bytes; returns how many (0: end of input).
using ByteSource = std::function<Result<size_t>(std::span<uint8_t>)>;

class StreamWriter {
 public:
  explicit StreamWriter(ByteSink sink);
  ~StreamWriter();
  StreamWriter(const StreamWriter&) = delete;
  StreamWriter& operator=(const StreamWriter&) = delete;

  // Once, first.
  Status WriteHeader(const StreamHeader& h);
  // A WRITE record: data.size() in (0, kSendMaxWriteBytes], block multiples,
  // ascending and inside the entry (checked: InvalidArgument).
  Status Write(uint64_t offset, std::span<const uint8_t> data);
  // A HOLE record: [offset, offset+length) reads as zeros (discarded).
  Status Hole(uint64_t offset, uint64_t length);
  // END and the digest. Nothing may follow.
  Status Finish();

  uint64_t stream_bytes() const { return bytes_; }
  uint64_t written_bytes() const { return data_bytes_; }
  uint64_t hole_bytes() const { return hole_bytes_; }
  uint64_t records() const { return records_; }

 private:
  // `digested`: part of the final digest (a v2 WRITE payload is not).
  Status Emit(std::span<const uint8_t> bytes, bool digested = true);
  Status Record(SendRecordType type, uint64_t offset, uint64_t length,
                std::span<const uint8_t> data);
  Status CheckRange(uint64_t offset, uint64_t length);
  struct Hasher;
  ByteSink sink_;
  std::unique_ptr<Hasher> hash_;
  StreamHeader header_;
  bool started_ = false, finished_ = false;
  uint64_t next_ = 0;  // lowest offset the next record may start at
  uint64_t bytes_ = 0, data_bytes_ = 0, hole_bytes_ = 0, records_ = 0;
};

struct StreamRecord {
  SendRecordType type = SendRecordType::kEnd;
  uint64_t offset = 0;
  uint64_t length = 0;
  std::span<const uint8_t> data;  // kWrite: `length` bytes, valid until the next Next()
  uint64_t checksum = 0;          // the record's XXH3-64 (checked): covers its header and data
};

class StreamReader {
 public:
  explicit StreamReader(ByteSource source);
  ~StreamReader();
  StreamReader(const StreamReader&) = delete;
  StreamReader& operator=(const StreamReader&) = delete;

  // Once, first.
  Result<StreamHeader> ReadHeader();
  // The next record. kEnd is returned only after the END record's counts,
  // the digest and the end of input were checked: then, and only then, the
  // stream is whole.
  Result<StreamRecord> Next();
  // Exchanges the buffer holding the last WRITE record's data with `other`
  // (which then holds exactly that data; the record's span stays valid as
  // long as `other` is not changed): hands the payload on without a copy.
  // The reader sizes whatever buffer it gets.
  void SwapData(std::vector<uint8_t>& other) { buf_.swap(other); }

  uint64_t stream_bytes() const { return bytes_; }
  uint64_t written_bytes() const { return data_bytes_; }
  uint64_t hole_bytes() const { return hole_bytes_; }

 private:
  // Fills `out` or fails (Corruption naming `what` if the input ends);
  // `piece`, if given, sees each part as it arrives.
  Status ReadExact(std::span<uint8_t> out, const char* what,
                   const std::function<void(std::span<const uint8_t>)>& piece = nullptr);
  Status Bad(const std::string& what) const;
  struct Hasher;
  ByteSource source_;
  std::unique_ptr<Hasher> hash_;
  StreamHeader header_;
  bool started_ = false, done_ = false;
  std::vector<uint8_t> buf_;
  uint64_t next_ = 0;
  uint64_t bytes_ = 0, data_bytes_ = 0, hole_bytes_ = 0, records_ = 0;
};

}  // namespace stack::compose
