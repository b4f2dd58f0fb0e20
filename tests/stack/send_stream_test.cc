// The send stream parser (stack/send_stream.h) against hostile input: every
// single-bit flip and every truncation of a real stream is refused, lengths
// that would drive allocation are bounded, a newer version is Unsupported
// naming both versions. And compose::Send/Receive over in-memory pools: a
// receive of a damaged stream leaves nothing in the pool.
#include <catch2/catch.hpp>

#include <openssl/evp.h>

#include <cstring>

#include "block/endian.h"
#include "block/mem_device.h"
#include "pool/pool.h"
#include "stack/volume_store.h"
#include "stack/send.h"
#include "stack/send_stream.h"
#include "mem_pool_store.h"
#include "test_util.h"

using namespace stack;
using namespace stack::compose;
using stack::testing::CodeOf;
using stack::testing::MemPool;

namespace {

using ::stack::testing::kBs;

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

StreamHeader SmallHeader(uint32_t version) {
  StreamHeader h = SmallHeader();
  h.version = version;
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
  const uint32_t version = GENERATE(1u, 2u);
  INFO("version " << version);
  auto s = SmallStream(SmallHeader(version));
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
  const uint32_t version = GENERATE(1u, 2u);
  INFO("version " << version);
  auto s = SmallStream(SmallHeader(version));
  for (size_t n = 0; n < s.size(); ++n) {
    std::vector<uint8_t> cut(s.begin(), s.begin() + static_cast<long>(n));
    INFO("length " << n);
    CHECK(CodeOf(ParseAll(cut)) == Code::kCorruption);
  }
  s.push_back(0);
  CHECK(CodeOf(ParseAll(s)) == Code::kCorruption);
}

TEST_CASE("send stream: an unknown version is Unsupported naming the versions read") {
  for (uint32_t v : {0u, 3u}) {
    auto s = SmallStream();
    PutLE32(&s[8], v);
    Status st = ParseAll(s);
    CHECK(st.code() == Code::kUnsupported);
    CHECK(st.message().find("version " + std::to_string(v)) != std::string::npos);
    CHECK(st.message().find("versions 1 to 2") != std::string::npos);
  }
  auto h = SmallHeader(3);
  CHECK(CodeOf(EncodeStreamHeader(h).status()) == Code::kInvalidArgument);
}

// The final digest as spec/send-stream.md defines it, computed here from the
// bytes: version 1 over every byte before it; version 2 over the header and
// each record's 32 bytes, WRITE payloads left out (their XXH3-64 is in those).
TEST_CASE("send stream: the final digest is what the spec says, per version") {
  for (uint32_t v : {1u, 2u}) {
    INFO("version " << v);
    auto s = SmallStream(SmallHeader(v));
    std::vector<StreamRecord> recs;
    StreamHeader h;
    REQUIRE(ParseAll(s, &recs, &h).ok());
    CHECK(h.version == v);
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    REQUIRE(EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) == 1);
    const size_t hlen = GetLE32(&s[12]);
    EVP_DigestUpdate(ctx, s.data(), hlen);
    size_t at = hlen;
    while (at < s.size() - kSendDigestBytes) {
      const uint32_t type = GetLE32(&s[at]);
      const uint64_t len = GetLE64(&s[at + 16]);
      const size_t payload = type == uint32_t(SendRecordType::kWrite) ? len : 0;
      EVP_DigestUpdate(ctx, &s[at], kSendRecordBytes + (v == 1 ? payload : 0));
      at += kSendRecordBytes + payload;
    }
    REQUIRE(at == s.size() - kSendDigestBytes);
    uint8_t want[32];
    unsigned n = 0;
    EVP_DigestFinal_ex(ctx, want, &n);
    EVP_MD_CTX_free(ctx);
    CHECK(std::memcmp(want, &s[at], 32) == 0);
    // The parser hands out each record's checksum (the receive chain uses it).
    CHECK(recs[0].checksum == GetLE64(&s[hlen + 24]));
  }
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
  const uint32_t version = GENERATE(1u, 2u);  // an older sender's stream too
  INFO("version " << version);
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
  }, "", nullptr, version);
  REQUIRE(rep.ok());
  CHECK(GetLE32(&stream[8]) == version);
  CHECK(rep->written_bytes == 8 * kBs);
  CHECK(rep->stream_bytes == stream.size());

  auto b = MemPool();
  auto bad = stream;
  bad[bad.size() / 2] ^= 1;
  CHECK(CodeOf(Receive(*b, FromBytes(bad), {}).status()) == Code::kCorruption);
  auto names = b->Names();
  REQUIRE(names.ok());
  CHECK(names->empty());
  auto check = b->file_pool()->Check();
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
  {
    auto dev = b->OpenVolume("vm@s1", true);
    REQUIRE(dev.ok());
    std::vector<uint8_t> got_data(16 * kBs), want(16 * kBs, 0);
    std::fill(want.begin() + 8 * kBs, want.end(), 0x5a);
    REQUIRE((*dev)->Read(0, got_data).ok());
    CHECK(got_data == want);
  }
  CHECK(CodeOf(Receive(*b, FromBytes(stream), {"other", false}).status()) ==
        Code::kAlreadyExists);
}

TEST_CASE("resume tokens round-trip and refuse any altered character") {
  ResumePoint p;
  p.uuid = SmallHeader().uuid;
  p.base_uuid = SmallHeader().parent_uuid;
  p.offset = 12 * kBs;
  p.records = 7;
  p.written_bytes = 5 * kBs;
  p.digest.fill(0xa5);
  const std::string t = FormatResumeToken(p);
  auto back = ParseResumeToken(t);
  REQUIRE(back.ok());
  CHECK(*back == p);
  for (size_t i = 0; i < t.size(); ++i) {
    std::string bad = t;
    bad[i] = bad[i] == '0' ? '1' : '0';
    CHECK(CodeOf(ParseResumeToken(bad).status()) == Code::kInvalidArgument);
  }
  CHECK(CodeOf(ParseResumeToken(t.substr(0, t.size() - 2)).status()) == Code::kInvalidArgument);
}

TEST_CASE("a resume stream header round-trips and unknown flags stay refused") {
  StreamHeader h = SmallHeader();
  h.flags = kSendFlagResume;
  h.resume.offset = 4 * kBs;
  h.resume.records = 2;
  h.resume.written_bytes = kBs;
  h.resume.digest.fill(7);
  std::vector<uint8_t> out;
  StreamWriter w([&](std::span<const uint8_t> b) {
    out.insert(out.end(), b.begin(), b.end());
    return Status::Ok();
  });
  REQUIRE(w.WriteHeader(h).ok());
  // Records before the resume offset are refused by the writer.
  std::vector<uint8_t> d(kBs, 1);
  CHECK(CodeOf(w.Write(0, d)) == Code::kInvalidArgument);
  REQUIRE(w.Write(4 * kBs, d).ok());
  REQUIRE(w.Finish().ok());
  StreamHeader got;
  REQUIRE(ParseAll(out, nullptr, &got).ok());
  CHECK(got.resumed());
  CHECK(got.resume.offset == 4 * kBs);
  CHECK(got.resume.records == 2);
  CHECK(got.resume.digest == h.resume.digest);
  CHECK(got.resume.uuid == h.uuid);
  // An unknown flag bit is still Unsupported.
  h.flags = 4;
  CHECK(CodeOf(EncodeStreamHeader(h).status()) == Code::kInvalidArgument);
}

namespace {
std::vector<uint8_t> SendBytes(VolumeStore& p, const std::string& snap, const std::string& from) {
  std::vector<uint8_t> s;
  auto rep = Send(p, snap, from, [&](std::span<const uint8_t> b) {
    s.insert(s.end(), b.begin(), b.end());
    return Status::Ok();
  });
  REQUIRE(rep.ok());
  return s;
}
}  // namespace

TEST_CASE("an incremental publication cut short by a kill is completed or resumed") {
  auto a = MemPool();
  REQUIRE(a->CreateVolume("vm", 64 * kBs, {}).ok());
  auto write = [&](uint64_t at, uint8_t v) {
    auto dev = a->OpenVolume("vm", false);
    REQUIRE(dev.ok());
    std::vector<uint8_t> d(4 * kBs, v);
    REQUIRE((*dev)->Write(at, d).ok());
    REQUIRE((*dev)->Flush().ok());
  };
  write(0, 1);
  REQUIRE(a->Snapshot("vm", "vm@s1", {}).ok());
  write(16 * kBs, 2);
  REQUIRE(a->Snapshot("vm", "vm@s2", {"two", {}}).ok());
  const auto full = SendBytes(*a, "vm@s1", "");
  const auto inc = SendBytes(*a, "vm@s2", "vm@s1");
  auto s2 = a->Stat("vm@s2");
  REQUIRE(s2.ok());

  for (bool rolled_back : {true, false}) {
    auto b = MemPool();
    REQUIRE(Receive(*b, FromBytes(full), {}).ok());
    REQUIRE(Receive(*b, FromBytes(inc), {}).ok());
    // The state a kill leaves between the publication's commits: the hidden
    // clone and its snapshot with the sender's identity, V rolled back (or
    // not yet), V@S missing.
    auto got = b->Stat("vm@s2");
    REQUIRE(got.ok());
    ResumePoint p;
    REQUIRE(ParseUuidText(got->uuid).ok());
    p.uuid = *ParseUuidText(got->uuid);
    p.base_uuid = *ParseUuidText(b->Stat("vm@s1")->uuid);
    REQUIRE(b->Clone("vm@s2", ".recv-vm", {FormatResumeToken(p), {}}).ok());
    REQUIRE(b->Snapshot(".recv-vm", ".recv-vm@s2", {got->note, got->tags},
                        {got->uuid, got->parent_uuid, got->created_unix_ns})
                .ok());
    REQUIRE(b->Delete("vm@s2").ok());
    if (!rolled_back) REQUIRE(b->Rollback("vm", "vm@s1").ok());
    auto again = Receive(*b, FromBytes(inc), {});
    if (rolled_back) {
      // Completed before anything else: the stream is then already there.
      CHECK(CodeOf(again.status()) == Code::kAlreadyExists);
    } else {
      // Not rolled back: the partial is kept, and the whole stream starts it again.
      CHECK(again.ok());
    }
    auto done = b->Stat("vm@s2");
    REQUIRE(done.ok());
    CHECK(done->uuid == s2->uuid);
    CHECK(done->note == "two");
    auto names = b->Names();
    REQUIRE(names.ok());
    for (auto& n : *names) CHECK(n.rfind(".recv-", 0) != 0);
    auto check = b->file_pool()->Check();
    REQUIRE(check.ok());
    CHECK(check->ok);
  }
}

TEST_CASE("a full publication cut short before its rename is completed") {
  auto a = MemPool();
  REQUIRE(a->CreateVolume("vm", 16 * kBs, {}).ok());
  REQUIRE(a->Snapshot("vm", "vm@s1", {"one", {}}).ok());
  const auto full = SendBytes(*a, "vm@s1", "");
  auto s1 = a->Stat("vm@s1");
  REQUIRE(s1.ok());
  auto b = MemPool();
  // The hidden volume, its token already cleared, and its snapshot with the
  // sender's identity: what a kill just before the rename leaves.
  REQUIRE(b->CreateVolume(".recv-vm", 16 * kBs, {}).ok());
  REQUIRE(b->Snapshot(".recv-vm", ".recv-vm@s1", {"one", {}},
                      {s1->uuid, s1->parent_uuid, s1->created_unix_ns})
              .ok());
  CHECK(CodeOf(Receive(*b, FromBytes(full), {}).status()) == Code::kAlreadyExists);
  auto got = b->Stat("vm@s1");
  REQUIRE(got.ok());
  CHECK(got->uuid == s1->uuid);
  CHECK(b->Stat("vm")->note.empty());
  auto names = b->Names();
  REQUIRE(names.ok());
  for (auto& n : *names) CHECK(n.rfind(".recv-", 0) != 0);
}
