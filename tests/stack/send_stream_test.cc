// The send stream parser (stack/send_stream.h) against hostile input: every
// single-bit flip and every truncation of a real stream is refused, lengths
// that would drive allocation are bounded, a newer version is Unsupported
// naming both versions. And compose::Send/Receive over in-memory pools: a
// receive of a damaged stream leaves nothing in the pool.
#include <catch2/catch.hpp>

#include <openssl/evp.h>

#include <cstring>
#include <set>

#include "block/endian.h"
#include "block/fault_device.h"
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
    // Completed before anything else (not rolled back yet: vm is unchanged
    // since the base, so the rollback is done then): the stream is then
    // already there, and the refusal says the earlier receive just landed.
    CHECK(CodeOf(again.status()) == Code::kAlreadyExists);
    CHECK(again.status().message().find("just completed") != std::string::npos);
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

namespace {

// A receiving pool in memory that can lose power: opened over a
// FaultDevice, cut at a chosen mutating operation of its store, then
// reopened from what the memory holds (the last commit), as after a kill.
class CutPool {
 public:
  CutPool() : storage_(std::make_shared<MemStorage>()) {
    storage_->block_size = 4096;
    storage_->block_count = 2048;
    pool::PoolCreateOptions o;
    o.size_bytes = 2048 * 4096;
    o.cache_bytes = 4 << 20;
    auto p = pool::Pool::Create(pool::MakeDeviceStore(std::make_unique<MemDevice>(storage_)), o);
    REQUIRE(p.ok());
  }
  CutPool Copy() const { return CutPool(storage_->Clone()); }

  // The pool as stored; `ctl` (if any) between it and the memory.
  std::unique_ptr<VolumeStore> Open(std::shared_ptr<FaultController> ctl = nullptr) {
    std::unique_ptr<BlockDevice> d = std::make_unique<MemDevice>(storage_);
    if (ctl) d = std::make_unique<FaultDevice>(std::move(d), ctl);
    pool::PoolOpenOptions o;
    o.cache_bytes = 4 << 20;
    auto p = pool::Pool::Open(pool::MakeDeviceStore(std::move(d)), o);
    REQUIRE(p.ok());
    return std::make_unique<PoolVolumeStore>(std::shared_ptr<pool::Pool>(std::move(p).value()));
  }

 private:
  explicit CutPool(std::shared_ptr<MemStorage> s) : storage_(std::move(s)) {}
  std::shared_ptr<MemStorage> storage_;
};

std::vector<uint8_t> ReadEntry(VolumeStore& p, const std::string& name) {
  auto e = p.Lookup(name);
  REQUIRE(e.ok());
  auto dev = p.OpenVolume(name, true);
  REQUIRE(dev.ok());
  std::vector<uint8_t> d(e->size_bytes);
  REQUIRE((*dev)->Read(0, d).ok());
  return d;
}

// The sender's pool: vm@s1, vm@s2 (writes, a discard, grown), vm@s3.
struct Sender {
  std::unique_ptr<VolumeStore> a = ::stack::testing::MemPool();
  std::vector<uint8_t> full1, inc12, inc23;
  Sender() {
    REQUIRE(a->CreateVolume("vm", 32 * kBs, {"vol note", {}}).ok());
    auto write = [&](uint64_t at, size_t blocks, uint8_t v) {
      auto dev = a->OpenVolume("vm", false);
      REQUIRE(dev.ok());
      std::vector<uint8_t> d(blocks * kBs, v);
      REQUIRE((*dev)->Write(at * kBs, d).ok());
      REQUIRE((*dev)->Flush().ok());
    };
    write(0, 6, 1);
    write(20, 3, 2);
    REQUIRE(a->Snapshot("vm", "vm@s1", {"one", {"t1"}}).ok());
    write(2, 2, 3);
    {
      auto dev = a->OpenVolume("vm", false);
      REQUIRE(dev.ok());
      REQUIRE((*dev)->Discard(20 * kBs, 3 * kBs).ok());
      REQUIRE((*dev)->Flush().ok());
    }
    REQUIRE(a->Resize("vm", 40 * kBs).ok());
    write(36, 2, 4);
    REQUIRE(a->Snapshot("vm", "vm@s2", {"two", {}}).ok());
    write(8, 1, 5);
    REQUIRE(a->Snapshot("vm", "vm@s3", {"three", {}}).ok());
    full1 = SendBytes(*a, "vm@s1", "");
    inc12 = SendBytes(*a, "vm@s2", "vm@s1");
    inc23 = SendBytes(*a, "vm@s3", "vm@s2");
  }
  std::string Uuid(const std::string& snap) {
    auto e = a->Lookup(snap);
    REQUIRE(e.ok());
    return e->uuid;
  }
};

// No receive left anything hidden, the pool checks clean, and each of
// `snaps` is the sender's: uuid, note, bytes. The volume's note is never a
// resume token.
void CheckFinal(VolumeStore& b, Sender& s, const std::vector<std::string>& snaps) {
  auto hidden = b.HiddenNames();
  REQUIRE(hidden.ok());
  CHECK(hidden->empty());
  auto check = b.file_pool()->Check();
  REQUIRE(check.ok());
  CHECK(check->ok);
  for (auto& n : snaps) {
    INFO(n);
    auto got = b.Lookup(n);
    REQUIRE(got.ok());
    auto want = s.a->Lookup(n);
    CHECK(got->uuid == want->uuid);
    CHECK(got->note == want->note);
    CHECK(ReadEntry(b, n) == ReadEntry(*s.a, n));
  }
  auto vm = b.Lookup("vm");
  REQUIRE(vm.ok());
  CHECK(!ParseResumeToken(vm->note).ok());
}

}  // namespace

// Every state a kill can leave in a receive, its publication included: the
// receiving pool loses power at each mutating operation of its store in
// turn (so after each commit, and inside each), is reopened, and then each
// way on is taken from that state: the same stream again, receive --abort,
// the next incremental, a resume stream when a token is listed. Each must
// end with the sender's snapshots and nothing hidden; the listing must say
// what the state is (a complete receive is never "received to 0 B").
TEST_CASE("a receive killed at any point is completed, resumed or dropped truthfully") {
  Sender s;
  const bool incremental = GENERATE(false, true);
  INFO((incremental ? "incremental" : "full"));
  CutPool base;
  if (incremental) {
    auto b = base.Open();
    REQUIRE(Receive(*b, FromBytes(s.full1), {}).ok());
  }
  const auto& stream = incremental ? s.inc12 : s.full1;
  const std::string snap = incremental ? "vm@s2" : "vm@s1";
  const std::string uuid = s.Uuid(snap);
  const std::vector<std::string> done =
      incremental ? std::vector<std::string>{"vm@s1", "vm@s2"} : std::vector<std::string>{"vm@s1"};
  int states = 0;
  std::set<std::string> seen;  // the kinds of state the kills left
  for (uint64_t k = 0;; ++k) {
    INFO("power cut at mutating op " << k);
    CutPool cut = base.Copy();
    auto ctl = std::make_shared<FaultController>();
    ctl->CutPowerAt(k);
    {
      auto b = cut.Open(ctl);
      auto got = Receive(*b, FromBytes(stream, 4096), {});
      if (!ctl->power_cut()) {
        REQUIRE(got.ok());
        CheckFinal(*b, s, done);
        break;
      }
      CHECK(!got.ok());
    }
    ++states;
    // What the listing says of the state the kill left.
    bool has_hidden_snap = false, complete = false, landed = false;
    std::string token;
    {
      auto b = cut.Open();
      landed = b->Lookup(snap).ok();  // the kill came after the last commit
      auto check = b->file_pool()->Check();
      REQUIRE(check.ok());
      CHECK(check->ok);
      auto hidden = b->HiddenNames();
      REQUIRE(hidden.ok());
      for (auto& n : *hidden) has_hidden_snap |= n.find('@') != std::string::npos;
      auto parts = ListPartialReceives(*b);
      REQUIRE(parts.ok());
      CHECK(parts->size() <= 1);
      for (auto& p : *parts) {
        CHECK(p.volume == "vm");
        CHECK(p.snapshot_uuid == uuid);
        if (p.stage == PartialReceive::Stage::kReceiving) {
          CHECK(!has_hidden_snap);  // END checked: never shown as still receiving
          CHECK(!p.token.empty());
          token = p.token;
        } else {
          complete = true;
          CHECK(p.snapshot == snap);
        }
        seen.insert(p.stage == PartialReceive::Stage::kReceiving ? "receiving"
                    : p.stage == PartialReceive::Stage::kPublished ? "published"
                    : p.abort_publishes                            ? "complete, rolled back"
                                                                   : "complete");
      }
      if (has_hidden_snap) CHECK(complete);
    }
    if (landed && !complete) seen.insert("landed");

    {
      INFO("then: the same stream again");
      CutPool c = cut.Copy();
      auto b = c.Open();
      auto again = Receive(*b, FromBytes(stream), {});
      if (complete || landed) {
        CHECK(CodeOf(again.status()) == Code::kAlreadyExists);
        CHECK((again.status().message().find("just completed") != std::string::npos) == complete);
      } else {
        CHECK(again.ok());
      }
      CheckFinal(*b, s, done);
    }
    {
      INFO("then: receive --abort, then the stream again");
      CutPool c = cut.Copy();
      auto b = c.Open();
      auto ab = AbortReceive(*b, "vm");
      if (!ab.ok()) CHECK(CodeOf(ab.status()) == Code::kNotFound);
      const bool published = ab.ok() && !ab->published.empty();
      if (published) CHECK(ab->published == snap);
      CHECK(b->Lookup(snap).ok() == (published || landed));
      auto again = Receive(*b, FromBytes(stream), {});
      CHECK(again.ok() != (published || landed));
      CheckFinal(*b, s, done);
    }
    {
      INFO("then: the next incremental");
      CutPool c = cut.Copy();
      auto b = c.Open();
      const auto& next = incremental ? s.inc23 : s.inc12;
      auto later = Receive(*b, FromBytes(next), {});
      // Never blocked by what the kill left: either it went on from the
      // completed receive, or its base is not there yet.
      if (!later.ok()) {
        CHECK(CodeOf(later.status()) == Code::kNotFound);
        REQUIRE(Receive(*b, FromBytes(stream), {}).ok());
        REQUIRE(Receive(*b, FromBytes(next), {}).ok());
      }
      auto all = done;
      all.push_back(incremental ? "vm@s3" : "vm@s2");
      CheckFinal(*b, s, all);
    }
    {
      INFO("then: a resume stream from the listed token");
      if (!token.empty()) {
        CutPool c = cut.Copy();
        auto b = c.Open();
        std::vector<uint8_t> rest;
        REQUIRE(Send(*s.a, "", "", [&](std::span<const uint8_t> x) {
                  rest.insert(rest.end(), x.begin(), x.end());
                  return Status::Ok();
                }, token).ok());
        auto got = Receive(*b, FromBytes(rest), {});
        CHECK(got.ok());
        CheckFinal(*b, s, done);
      }
    }
  }
  CHECK(states > 10);
  // Every window of the publication was hit.
  const std::set<std::string> want =
      incremental ? std::set<std::string>{"receiving", "complete", "complete, rolled back",
                                          "published", "landed"}
                  : std::set<std::string>{"receiving", "complete", "landed"};
  CHECK(seen == want);
}

// A stream's names follow the CLI's rules (ValidateName), full or
// incremental: a snapshot "-x" could be neither addressed nor removed by
// the commands afterwards. Refused before anything changes.
TEST_CASE("a stream whose names the CLI would refuse is refused before anything changes") {
  auto a = MemPool();
  REQUIRE(a->CreateVolume("vm", 16 * kBs, {}).ok());
  REQUIRE(a->Snapshot("vm", "vm@s1", {}).ok());
  const auto good = SendBytes(*a, "vm@s1", "");
  for (std::string bad : {"-x", ".x", ".."}) {
    INFO("snapshot " << bad);
    // The pool takes these names; only the CLI's rules refuse them.
    REQUIRE(a->Snapshot("vm", "vm@" + bad, {}).ok());
    for (bool incremental : {false, true}) {
      auto b = MemPool();
      if (incremental) REQUIRE(Receive(*b, FromBytes(good), {}).ok());
      auto before = b->Names();
      REQUIRE(before.ok());
      const auto s = SendBytes(*a, "vm@" + bad, incremental ? "vm@s1" : "");
      auto got = Receive(*b, FromBytes(s), {});
      CHECK(CodeOf(got.status()) == Code::kInvalidArgument);
      CHECK(got.status().message().find("the stream's snapshot name") != std::string::npos);
      auto after = b->Names();
      REQUIRE(after.ok());
      CHECK(*after == *before);
      auto hidden = b->HiddenNames();
      REQUIRE(hidden.ok());
      CHECK(hidden->empty());
    }
  }
  // The volume name too (a crafted header: the pool refuses "-v" as no name).
  auto h = SmallHeader();
  h.volume = "-v";
  auto b = MemPool();
  CHECK(CodeOf(Receive(*b, FromBytes(SmallStream(h)), {"ok", false}).status()) ==
        Code::kInvalidArgument);
  CHECK(b->Names()->empty());
}

namespace {
// The first `n` bytes of `s`: an input that ends early.
std::vector<uint8_t> Prefix(const std::vector<uint8_t>& s, size_t n) {
  return {s.begin(), s.begin() + static_cast<long>(n)};
}
std::vector<uint8_t> ResumeBytes(VolumeStore& a, const std::string& token) {
  std::vector<uint8_t> out;
  REQUIRE(Send(a, "", "", [&](std::span<const uint8_t> x) {
            out.insert(out.end(), x.begin(), x.end());
            return Status::Ok();
          }, token).ok());
  return out;
}
std::string TokenOf(VolumeStore& b, const std::string& volume) {
  auto parts = ListPartialReceives(b);
  REQUIRE(parts.ok());
  for (auto& p : *parts)
    if (p.volume == volume) return p.token;
  FAIL("no partial receive into " << volume);
  return "";
}
}  // namespace

// One partial receive per snapshot uuid: a second whole stream of the same
// snapshot into another volume would leave two partials that one resume
// stream cannot tell apart, and two volumes with the sender's volume uuid.
TEST_CASE("one partial receive per snapshot uuid, and no two volumes with one uuid") {
  Sender s;
  auto b = MemPool();
  const size_t cut = s.full1.size() / 2;
  CHECK(!Receive(*b, FromBytes(Prefix(s.full1, cut)), {"x", false}).ok());
  const std::string tx = TokenOf(*b, "x");
  REQUIRE(!tx.empty());
  // The same snapshot into y while x is being received: refused, naming x.
  auto y = Receive(*b, FromBytes(Prefix(s.full1, cut / 2)), {"y", false});
  CHECK(CodeOf(y.status()) == Code::kAlreadyExists);
  CHECK(y.status().message().find("'x'") != std::string::npos);
  CHECK(y.status().message().find(tx) != std::string::npos);
  CHECK(y.status().message().find("receive --abort x") != std::string::npos);
  auto hidden = b->HiddenNames();
  REQUIRE(hidden.ok());
  CHECK(*hidden == std::vector<std::string>{".recv-x"});
  // The same volume: started again (today's behaviour).
  CHECK(!Receive(*b, FromBytes(Prefix(s.full1, cut)), {"x", false}).ok());

  // Another snapshot of the same sender volume into z: z does not take the
  // sender's volume uuid, which the partial into x holds.
  const auto full3 = SendBytes(*s.a, "vm@s3", "");
  REQUIRE(Receive(*b, FromBytes(full3), {"z", false}).ok());
  REQUIRE(Receive(*b, FromBytes(ResumeBytes(*s.a, TokenOf(*b, "x"))), {}).ok());
  auto vx = b->Lookup("x");
  auto vz = b->Lookup("z");
  REQUIRE(vx.ok());
  REQUIRE(vz.ok());
  CHECK(vx->uuid == s.a->Lookup("vm")->uuid);
  CHECK(vz->uuid != vx->uuid);
  CHECK(ReadEntry(*b, "x@s1") == ReadEntry(*s.a, "vm@s1"));
}

// Pools made before the rule above may hold two partials of one snapshot:
// a resume stream then takes the one named by the volume argument.
TEST_CASE("a resume stream with several partials of its snapshot takes the named one") {
  Sender s;
  auto b = MemPool();
  CHECK(!Receive(*b, FromBytes(Prefix(s.full1, s.full1.size() / 2)), {"x", false}).ok());
  const std::string tx = TokenOf(*b, "x");
  // The second partial as an older stack made it: a copy under another name.
  REQUIRE(b->Clone(".recv-x", ".recv-y", {tx, {}}).ok());
  const auto rest = ResumeBytes(*s.a, tx);
  auto any = Receive(*b, FromBytes(rest), {});
  CHECK(CodeOf(any.status()) == Code::kInvalidArgument);
  CHECK(any.status().message().find("'x'") != std::string::npos);
  CHECK(any.status().message().find("'y'") != std::string::npos);
  auto got = Receive(*b, FromBytes(rest), {"x", false});
  REQUIRE(got.ok());
  CHECK(got->snapshot == "x@s1");
  CHECK(ReadEntry(*b, "x@s1") == ReadEntry(*s.a, "vm@s1"));
  // y's snapshot uuid is now published as x@s1: the listing says so, and
  // the next receive drops what is left of it.
  auto parts = ListPartialReceives(*b);
  REQUIRE(parts.ok());
  REQUIRE(parts->size() == 1);
  CHECK((*parts)[0].stage == PartialReceive::Stage::kPublished);
  CHECK((*parts)[0].snapshot == "x@s1");
  CHECK(Receive(*b, FromBytes(s.inc12), {}).ok());
  CHECK(b->HiddenNames()->empty());
}
