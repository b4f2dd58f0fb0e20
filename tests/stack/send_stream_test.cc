// The send stream parser (stack/send_stream.h) against hostile input: every
// single-bit flip and every truncation of a real stream is refused, lengths
// that would drive allocation are bounded, a newer version is Unsupported
// naming both versions. And compose::Send/Receive over in-memory pools: a
// receive of a damaged stream leaves nothing in the pool.
#include <catch2/catch.hpp>

#include <cstring>

#include "block/endian.h"
#include "block/mem_device.h"
#include "pool/pool.h"
#include "stack/send.h"
#include "stack/send_stream.h"
#include "test_util.h"

using namespace stack;
using namespace stack::compose;
using stack::testing::CodeOf;

namespace {

constexpr uint32_t kBs = 4096;

StreamHeader SmallHeader() {
  StreamHeader h;
  h.block_size = kBs;
  h.size_bytes = 16 * kBs;
  h.uuid = {1, 2, 3, 4, 5, 6, 0x47, 8, 0x89, 10, 11, 12, 13, 14, 15, 16};
  h.parent_uuid = {9, 9, 9, 9, 9, 9, 0x49, 9, 0x89, 9, 9, 9, 9, 9, 9, 9};
  h.created_unix_ns = 1700000000000000000;
  h.volume = "vm";
  h.snapshot = "v1";
  h.note = "golden";
  h.tags = {"a", "bb"};
  return h;
}

// A stream with every record kind: WRITE, HOLE, WRITE, END.
std::vector<uint8_t> SmallStream(const StreamHeader& h = SmallHeader()) {
  std::vector<uint8_t> out;
  StreamWriter w([&](std::span<const uint8_t> b) {
    out.insert(out.end(), b.begin(), b.end());
    return Status::Ok();
  });
  REQUIRE(w.WriteHeader(h).ok());
  std::vector<uint8_t> d(2 * kBs, 0xab);
  REQUIRE(w.Write(0, d).ok());
  REQUIRE(w.Hole(4 * kBs, 3 * kBs).ok());
  d.assign(kBs, 0xcd);
  REQUIRE(w.Write(15 * kBs, d).ok());
  REQUIRE(w.Finish().ok());
  return out;
}

ByteSource FromBytes(const std::vector<uint8_t>& b, size_t chunk = 7) {
  auto pos = std::make_shared<size_t>(0);
  return [&b, pos, chunk](std::span<uint8_t> out) -> Result<size_t> {
    size_t n = std::min({out.size(), b.size() - *pos, chunk});
    if (n > 0) std::memcpy(out.data(), b.data() + *pos, n);  // an empty span may be null
    *pos += n;
    return n;
  };
}

// Parses the whole stream; OK only if it is whole.
Status ParseAll(const std::vector<uint8_t>& b, std::vector<StreamRecord>* recs = nullptr,
                StreamHeader* hdr = nullptr) {
  StreamReader r(FromBytes(b));
  ASSIGN_OR_RETURN(auto h, r.ReadHeader());
  if (hdr) *hdr = h;
  for (;;) {
    ASSIGN_OR_RETURN(auto rec, r.Next());
    if (recs) recs->push_back(rec);
    if (rec.type == SendRecordType::kEnd) return Status::Ok();
  }
}

std::unique_ptr<pool::Pool> MemPool() {
  auto storage = std::make_shared<MemStorage>();
  storage->block_size = kBs;
  storage->block_count = 2048;
  pool::PoolCreateOptions o;
  o.size_bytes = 2048 * kBs;
  auto p = pool::Pool::Create(pool::MakeDeviceStore(std::make_unique<MemDevice>(storage)), o);
  REQUIRE(p.ok());
  return std::move(p).value();
}

}  // namespace

TEST_CASE("send stream: header and records round-trip") {
  auto s = SmallStream();
  std::vector<StreamRecord> recs;
  StreamHeader h;
  REQUIRE(ParseAll(s, &recs, &h).ok());
  auto want = SmallHeader();
  CHECK(h.uuid == want.uuid);
  CHECK(h.parent_uuid == want.parent_uuid);
  CHECK(!h.incremental());
  CHECK(h.size_bytes == want.size_bytes);
  CHECK(h.created_unix_ns == want.created_unix_ns);
  CHECK(h.volume == "vm");
  CHECK(h.snapshot == "v1");
  CHECK(h.note == "golden");
  CHECK(h.tags == want.tags);
  REQUIRE(recs.size() == 4);
  CHECK(recs[0].type == SendRecordType::kWrite);
  CHECK(recs[1].type == SendRecordType::kHole);
  CHECK(recs[1].offset == 4 * kBs);
  CHECK(recs[1].length == 3 * kBs);
  CHECK(recs[2].offset == 15 * kBs);
  CHECK(recs[3].type == SendRecordType::kEnd);
}

TEST_CASE("send stream: every bit flip is refused") {
  auto s = SmallStream();
  for (size_t i = 0; i < s.size(); ++i) {
    for (int bit : {0, 7}) {
      auto bad = s;
      bad[i] ^= uint8_t(1u << bit);
      Status st = ParseAll(bad);
      INFO("byte " << i << " bit " << bit);
      REQUIRE(!st.ok());
      // Only the version field may say Unsupported; everything else is damage.
      if (i >= 8 && i < 12) CHECK(st.code() == Code::kUnsupported);
      else CHECK(st.code() == Code::kCorruption);
    }
  }
}

TEST_CASE("send stream: every truncation and any trailing byte is refused") {
  auto s = SmallStream();
  for (size_t n = 0; n < s.size(); ++n) {
    std::vector<uint8_t> cut(s.begin(), s.begin() + static_cast<long>(n));
    INFO("length " << n);
    CHECK(CodeOf(ParseAll(cut)) == Code::kCorruption);
  }
  s.push_back(0);
  CHECK(CodeOf(ParseAll(s)) == Code::kCorruption);
}

TEST_CASE("send stream: newer version is Unsupported naming both versions") {
  auto s = SmallStream();
  PutLE32(&s[8], 2);
  Status st = ParseAll(s);
  CHECK(st.code() == Code::kUnsupported);
  CHECK(st.message().find("version 2") != std::string::npos);
  CHECK(st.message().find("version 1") != std::string::npos);
}

TEST_CASE("send stream: hostile lengths are bounded before anything is read for them") {
  auto s = SmallStream();
  SECTION("header length") {
    PutLE32(&s[12], 0xfffffff8u);
    CHECK(CodeOf(ParseAll(s)) == Code::kCorruption);
  }
  SECTION("a WRITE claiming 2^63 bytes") {
    const size_t rec = GetLE32(&s[12]);
    PutLE64(&s[rec + 16], uint64_t(1) << 63);
    CHECK(CodeOf(ParseAll(s)) == Code::kCorruption);
  }
  SECTION("offset + length wrapping around") {
    const size_t rec = GetLE32(&s[12]);
    PutLE64(&s[rec + 8], ~uint64_t(0) - kBs + 1);
    CHECK(CodeOf(ParseAll(s)) == Code::kCorruption);
  }
}

TEST_CASE("send stream: the writer refuses records out of order or outside the entry") {
  std::vector<uint8_t> out;
  StreamWriter w([&](std::span<const uint8_t> b) {
    out.insert(out.end(), b.begin(), b.end());
    return Status::Ok();
  });
  REQUIRE(w.WriteHeader(SmallHeader()).ok());
  std::vector<uint8_t> d(kBs, 1);
  REQUIRE(w.Write(2 * kBs, d).ok());
  CHECK(CodeOf(w.Write(kBs, d)) == Code::kInvalidArgument);         // backwards
  CHECK(CodeOf(w.Hole(16 * kBs, kBs)) == Code::kInvalidArgument);   // past the end
  CHECK(CodeOf(w.Write(4 * kBs + 1, d)) == Code::kInvalidArgument); // unaligned
  std::vector<uint8_t> big(kSendMaxWriteBytes + kBs, 0);
  CHECK(CodeOf(w.Write(4 * kBs, big)) == Code::kInvalidArgument);
  auto h = SmallHeader();
  h.volume = "a@b";
  CHECK(CodeOf(EncodeStreamHeader(h).status()) == Code::kInvalidArgument);
}

TEST_CASE("send and receive between in-memory pools, damage leaves nothing") {
  auto a = MemPool();
  REQUIRE(a->CreateVolume("vm", 64 * kBs, {}).ok());
  {
    auto dev = a->OpenVolume("vm", false);
    REQUIRE(dev.ok());
    std::vector<uint8_t> d(8 * kBs, 0x5a);
    REQUIRE((*dev)->Write(8 * kBs, d).ok());
    REQUIRE((*dev)->Flush().ok());
  }
  REQUIRE(a->Snapshot("vm", "vm@s1", {"note", {"t"}}).ok());
  std::vector<uint8_t> stream;
  auto rep = Send(*a, "vm@s1", "", [&](std::span<const uint8_t> b) {
    stream.insert(stream.end(), b.begin(), b.end());
    return Status::Ok();
  });
  REQUIRE(rep.ok());
  CHECK(rep->written_bytes == 8 * kBs);
  CHECK(rep->stream_bytes == stream.size());

  auto b = MemPool();
  auto bad = stream;
  bad[bad.size() / 2] ^= 1;
  CHECK(CodeOf(Receive(*b, FromBytes(bad), {}).status()) == Code::kCorruption);
  auto names = b->Names();
  REQUIRE(names.ok());
  CHECK(names->empty());
  auto check = b->Check();
  REQUIRE(check.ok());
  CHECK(check->ok);

  auto got = Receive(*b, FromBytes(stream), {});
  REQUIRE(got.ok());
  auto sa = a->Stat("vm@s1");
  auto sb = b->Stat("vm@s1");
  REQUIRE(sa.ok());
  REQUIRE(sb.ok());
  CHECK(sa->uuid == sb->uuid);
  CHECK(sa->parent_uuid == sb->parent_uuid);
  CHECK(sa->created_unix_ns == sb->created_unix_ns);
  CHECK(sb->note == "note");
  CHECK(CodeOf(Receive(*b, FromBytes(stream), {"other", false}).status()) ==
        Code::kAlreadyExists);
}
