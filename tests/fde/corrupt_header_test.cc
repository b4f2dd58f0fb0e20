// The corrupt-header suite: one generator per case, each saying what it
// breaks and what must happen. Every case also checks that opening wrote
// nothing.
#include <catch2/catch.hpp>
#include <functional>
#include <tuple>

#include "block/endian.h"
#include "block/passthrough_device.h"
#include "fde_test_util.h"
#include "luks1_header.h"
#include "unlock.h"
#include "luks2_header.h"
#include "test_util.h"

using namespace stack;
using namespace stack::fde;
using namespace stack::fde::testing;
using stack::fde::internal::EncodeLuks2Copy;
using stack::fde::internal::Luks2Checksum;
using stack::fde::internal::Luks2Header;
using stack::fde::internal::ReadLuks2Header;
using stack::testing::CodeOf;
using json = nlohmann::json;

namespace {

using ::stack::testing::kMiB;
constexpr uint64_t kHdr = 16384;

struct Fixture {
  std::shared_ptr<MemStorage> storage;
  Fixture() {
    auto mem = std::make_unique<MemDevice>(4096, 20 * kMiB / 4096);
    storage = mem->storage();
    REQUIRE_OK(Format(std::move(mem), Pass("pw"), FastFormat()));
  }
  std::unique_ptr<MemDevice> Dev() { return std::make_unique<MemDevice>(storage); }
  std::vector<uint8_t> Bytes(uint64_t off, size_t n) {
    std::vector<uint8_t> b(n);
    REQUIRE_OK(Dev()->Read(off, b));
    return b;
  }
  void Put(uint64_t off, std::span<const uint8_t> b) { REQUIRE_OK(Dev()->Write(off, b)); }
  // Edits the JSON (no validation) and writes the chosen copies with valid checksums.
  void EditJson(const std::function<void(json&)>& edit, bool primary = true,
                bool secondary = true) {
    auto hdr = ReadLuks2Header(*Dev());
    REQUIRE_OK(hdr);
    edit(hdr->md.doc);
    WriteCopies(*hdr, primary, secondary);
  }
  void WriteCopies(const Luks2Header& hdr, bool primary, bool secondary) {
    std::vector<uint8_t> img;
    if (primary) {
      REQUIRE_OK(EncodeLuks2Copy(hdr, false, &img));
      Put(0, img);
    }
    if (secondary) {
      REQUIRE_OK(EncodeLuks2Copy(hdr, true, &img));
      Put(kHdr, img);
    }
  }
  // Patches bytes of one copy, then re-seals its checksum.
  void PatchBinary(uint64_t copy_at, const std::function<void(std::vector<uint8_t>&)>& patch) {
    auto area = Bytes(copy_at, kHdr);
    patch(area);
    std::array<uint8_t, 64> csum;
    REQUIRE_OK(Luks2Checksum("sha256", area, &csum));
    std::copy(csum.begin(), csum.end(), area.begin() + 448);
    Put(copy_at, area);
  }
  // Open must fail with `code` and leave every byte as it was.
  void ExpectOpenFails(Code code) {
    auto before = storage->Clone();
    auto r = Open(Dev(), Pass("pw"));
    INFO(r.status().ToString());
    CHECK(CodeOf(r) == code);
    CHECK(!r.status().message().empty());
    CHECK(storage->blocks == before->blocks);
  }
  // Open must succeed with a warning mentioning `what`, writing nothing.
  void ExpectOpensWithWarning(const std::string& what) {
    auto before = storage->Clone();
    auto r = Open(Dev(), Pass("pw"));
    REQUIRE_OK(r);
    REQUIRE(!(*r)->warnings().empty());
    INFO((*r)->warnings()[0]);
    CHECK((*r)->warnings()[0].find(what) != std::string::npos);
    r.value().reset();
    CHECK(storage->blocks == before->blocks);
  }
};

}  // namespace

TEST_CASE("Corrupt: bad magic in the primary -> opens from the secondary, reported") {
  Fixture f;
  f.Put(0, std::vector<uint8_t>(4096, 0));  // primary binary header gone
  f.ExpectOpensWithWarning("primary");
  auto info = Dump(*f.Dev());
  REQUIRE_OK(info);
  CHECK(info->warnings.size() == 1);
}

TEST_CASE("Corrupt: bad checksum in the primary -> secondary used, reported, not repaired") {
  Fixture f;
  auto b = f.Bytes(0, 4096);
  b[4096 - 1] ^= 1;  // padding of the binary header: covered by the checksum
  f.Put(0, b);
  f.ExpectOpensWithWarning("checksum");
}

TEST_CASE("Corrupt: bad checksum in the secondary -> primary used, reported") {
  Fixture f;
  auto b = f.Bytes(kHdr + 4096, 4096);
  b[100] ^= 0x20;  // inside the JSON text
  f.Put(kHdr + 4096, b);
  f.ExpectOpensWithWarning("secondary");
}

TEST_CASE("Corrupt: bad checksum in both copies -> Corruption") {
  Fixture f;
  for (uint64_t at : {uint64_t(0), kHdr}) {
    auto b = f.Bytes(at + 8192, 4096);
    b[0] ^= 0xff;
    f.Put(at + 8192, b);
  }
  f.ExpectOpenFails(Code::kCorruption);
}

TEST_CASE("Corrupt: seqid rollback -> the newer copy wins, the stale one is reported") {
  Fixture f;
  auto old_primary = f.Bytes(0, kHdr);
  REQUIRE_OK(AddKey(*f.Dev(), Pass("pw"), Pass("second"), KdfParams::Fast()));
  f.Put(0, old_primary);  // a valid primary with seqid 1 against secondary's 2
  auto r = Open(f.Dev(), Pass("second"));
  REQUIRE_OK(r);
  REQUIRE(!(*r)->warnings().empty());
  CHECK((*r)->warnings()[0].find("stale") != std::string::npos);
  auto info = Dump(*f.Dev());
  REQUIRE_OK(info);
  CHECK(info->seqid == 2);
}

TEST_CASE("Corrupt: truncated JSON (valid checksum) -> Corruption") {
  Fixture f;
  for (uint64_t at : {uint64_t(0), kHdr}) {
    f.PatchBinary(at, [](std::vector<uint8_t>& a) {
      std::string text(reinterpret_cast<const char*>(a.data() + 4096));
      std::fill(a.begin() + 4096, a.end(), 0);
      std::copy_n(text.begin(), text.size() / 2, a.begin() + 4096);
    });
  }
  f.ExpectOpenFails(Code::kCorruption);
}

TEST_CASE("Corrupt: JSON area without a terminating NUL -> Corruption") {
  Fixture f;
  for (uint64_t at : {uint64_t(0), kHdr}) {
    f.PatchBinary(at, [](std::vector<uint8_t>& a) {
      for (size_t i = 4096; i < a.size(); ++i) {
        if (a[i] == 0) a[i] = ' ';
      }
    });
  }
  f.ExpectOpenFails(Code::kCorruption);
}

TEST_CASE("Corrupt: illegal hdr_size and misplaced hdr_offset -> Corruption") {
  for (int which = 0; which < 2; ++which) {
    DYNAMIC_SECTION("case " << which) {
      Fixture f;
      for (uint64_t at : {uint64_t(0), kHdr}) {
        f.PatchBinary(at, [&](std::vector<uint8_t>& a) {
          if (which == 0) PutBE64(a.data() + 8, 12345);
          if (which == 1) PutBE64(a.data() + 256, at + 4096);
        });
      }
      f.ExpectOpenFails(Code::kCorruption);
    }
  }
}

TEST_CASE("Corrupt: offsets and sizes out of range -> Corruption") {
  const std::vector<std::pair<const char*, std::function<void(json&)>>> cases = {
      {"keyslot area past the keyslots area",
       [](json& d) { d["keyslots"]["0"]["area"]["offset"] = "16777216"; }},
      {"keyslot area inside the header",
       [](json& d) { d["keyslots"]["0"]["area"]["offset"] = "4096"; }},
      {"area size overflow",
       [](json& d) { d["keyslots"]["0"]["area"]["size"] = "18446744073709551615"; }},
      {"area too small for the AF material",
       [](json& d) { d["keyslots"]["0"]["area"]["size"] = "4096"; }},
      {"segment inside the keyslots area", [](json& d) { d["segments"]["0"]["offset"] = "65536"; }},
      {"segment offset not a number", [](json& d) { d["segments"]["0"]["offset"] = "16M"; }},
      {"sector size 1000", [](json& d) { d["segments"]["0"]["sector_size"] = 1000; }},
      {"json_size mismatch", [](json& d) { d["config"]["json_size"] = "4096"; }},
      {"keyslots_size huge", [](json& d) { d["config"]["keyslots_size"] = "99999999999999999"; }},
      {"missing segments", [](json& d) { d.erase("segments"); }},
      {"digest names a missing keyslot", [](json& d) { d["digests"]["0"]["keyslots"] = {"7"}; }},
      {"stripes zero", [](json& d) { d["keyslots"]["0"]["af"]["stripes"] = 0; }},
      {"key size absurd", [](json& d) { d["keyslots"]["0"]["key_size"] = 100000; }},
      {"bad base64 salt", [](json& d) { d["keyslots"]["0"]["kdf"]["salt"] = "@@@@"; }},
      // Found by the fuzz soak: these threw from json::value() and aborted.
      {"kdf type a number", [](json& d) { d["keyslots"]["0"]["kdf"]["type"] = 1; }},
      {"pbkdf2 hash an array",
       [](json& d) {
         d["keyslots"]["0"]["kdf"] = {{"type", "pbkdf2"}, {"hash", {1, 2}},
                                      {"iterations", 1000}, {"salt", "AAAA"}};
       }},
      {"keyslot id out of range",
       [](json& d) { d["keyslots"]["99"] = d["keyslots"]["0"]; d["keyslots"].erase("0"); }},
  };
  for (const auto& [name, edit] : cases) {
    DYNAMIC_SECTION(name) {
      Fixture f;
      f.EditJson(edit);
      f.ExpectOpenFails(Code::kCorruption);
    }
  }
}

TEST_CASE("Corrupt: absurd KDF parameters -> clear Corruption before any KDF runs") {
  const std::vector<std::pair<const char*, std::function<void(json&)>>> cases = {
      {"argon2 memory 2 TiB", [](json& d) { d["keyslots"]["0"]["kdf"]["memory"] = 2147483648u; }},
      {"argon2 time 4 billion", [](json& d) { d["keyslots"]["0"]["kdf"]["time"] = 4000000000u; }},
      {"argon2 zero lanes", [](json& d) { d["keyslots"]["0"]["kdf"]["cpus"] = 0; }},
      {"argon2 negative memory", [](json& d) { d["keyslots"]["0"]["kdf"]["memory"] = -1; }},
      {"pbkdf2 4 billion iterations",
       [](json& d) {
         d["keyslots"]["0"]["kdf"] = {{"type", "pbkdf2"}, {"hash", "sha256"},
                                      {"iterations", 4000000000u}, {"salt", "AAAA"}};
       }},
      {"digest zero iterations", [](json& d) { d["digests"]["0"]["iterations"] = 0; }},
  };
  for (const auto& [name, edit] : cases) {
    DYNAMIC_SECTION(name) {
      Fixture f;
      f.EditJson(edit);
      f.ExpectOpenFails(Code::kCorruption);
    }
  }
}

TEST_CASE("Corrupt: damaged key material -> AuthFailed, nothing written") {
  Fixture f;
  f.Put(32768 + 4096, std::vector<uint8_t>(4096, 0x5a));
  f.ExpectOpenFails(Code::kAuthFailed);
}

TEST_CASE("Corrupt: device shorter than its header -> no crash") {
  Fixture f;
  auto head = f.Bytes(0, 24 * 1024);
  auto small = std::make_unique<MemDevice>(4096, 6);
  REQUIRE_OK(small->Write(0, head));
  auto r = Open(std::move(small), Pass("pw"));
  CHECK(!r.ok());
}

TEST_CASE("Corrupt: LUKS1 header records -> Corruption") {
  const std::vector<std::pair<const char*, std::function<void(std::vector<uint8_t>&)>>> cases = {
      {"keyslot state neither active nor disabled",
       [](std::vector<uint8_t>& h) { PutBE32(h.data() + 208 + 48 * 3, 0x12345678); }},
      {"key material past the payload",
       [](std::vector<uint8_t>& h) { PutBE32(h.data() + 208 + 48 * 2 + 40, 5000); }},
      {"key material inside the header",
       [](std::vector<uint8_t>& h) { PutBE32(h.data() + 208 + 40, 0); }},
      {"stripes zero", [](std::vector<uint8_t>& h) { PutBE32(h.data() + 208 + 48 * 5 + 44, 0); }},
      {"overlapping keyslots",
       [](std::vector<uint8_t>& h) { PutBE32(h.data() + 208 + 48 + 40, 10); }},
      {"key size absurd", [](std::vector<uint8_t>& h) { PutBE32(h.data() + 108, 4096); }},
      {"unterminated cipher name",
       [](std::vector<uint8_t>& h) { std::fill_n(h.begin() + 8, 32, 'a'); }},
  };
  for (const auto& [name, patch] : cases) {
    DYNAMIC_SECTION(name) {
      auto mem = std::make_unique<MemDevice>(4096, 8 * kMiB / 4096);
      auto storage = mem->storage();
      REQUIRE_OK(Format(std::move(mem), Pass("pw"), FastFormat(1)));
      MemDevice dev(storage);
      std::vector<uint8_t> h(4096);
      REQUIRE_OK(dev.Read(0, h));
      patch(h);
      REQUIRE_OK(dev.Write(0, h));
      auto before = storage->Clone();
      auto r = Open(std::make_unique<MemDevice>(storage), Pass("pw"));
      INFO(r.status().ToString());
      CHECK(CodeOf(r) == Code::kCorruption);
      CHECK(storage->blocks == before->blocks);
    }
  }
}

// ---- issue 12 defect 13: what cannot be read is not a wrong passphrase ------

namespace {

// Fails every read that touches [lo, hi) with the given status, like a pool
// whose block checksum does not match, or a disk with a bad sector.
class FailingRange : public PassthroughDevice {
 public:
  FailingRange(std::unique_ptr<BlockDevice> inner, uint64_t lo, uint64_t hi, Status why)
      : PassthroughDevice(std::move(inner)), lo_(lo), hi_(hi), why_(std::move(why)) {}

 protected:
  Status DoRead(uint64_t offset, std::span<uint8_t> out) override {
    if (offset < hi_ && offset + out.size() > lo_) return why_;
    return PassthroughDevice::DoRead(offset, out);
  }

 private:
  uint64_t lo_, hi_;
  Status why_;
};

constexpr uint64_t kArea0 = 2 * kHdr;  // keyslot 0's area, as Format writes it

}  // namespace

TEST_CASE("Keyslot area unreadable: the error below keeps its code, never AuthFailed") {
  Fixture f;
  for (const Status& why : {Status::Corruption("pool block checksum mismatch"),
                            Status::IoError("bad sector")}) {
    auto dev = std::make_unique<FailingRange>(f.Dev(), kArea0, kArea0 + 4096, why);
    auto r = Open(std::move(dev), Pass("pw"));
    INFO(r.status().ToString());
    CHECK(CodeOf(r) == why.code());
    CHECK(r.status().message().find("keyslot 0") != std::string::npos);
    // Same with a wrong passphrase: we cannot know it is wrong.
    FailingRange again(f.Dev(), kArea0, kArea0 + 4096, why);
    CHECK(CodeOf(TestPassphrase(again, Pass("wrong"))) == why.code());
  }
}

TEST_CASE("Keyslot area unreadable: another keyslot still opens, wrong everywhere is AuthFailed") {
  Fixture f;
  auto added = AddKey(*f.Dev(), Pass("pw"), Pass("second"), KdfParams::Fast());
  REQUIRE_OK(added);
  FailingRange dev(f.Dev(), kArea0, kArea0 + 4096, Status::Corruption("checksum"));
  auto slot = TestPassphrase(dev, Pass("second"));
  REQUIRE_OK(slot);
  CHECK(*slot == *added);
  // Readable keyslots all tried, none matched, one unreadable: not AuthFailed.
  CHECK(CodeOf(TestPassphrase(dev, Pass("wrong"))) == Code::kCorruption);
  // Nothing unreadable: a plain wrong passphrase.
  CHECK(CodeOf(TestPassphrase(*f.Dev(), Pass("wrong"))) == Code::kAuthFailed);
}

TEST_CASE("LUKS1 keyslot area unreadable: Corruption, not AuthFailed") {
  auto mem = std::make_unique<MemDevice>(512, 20 * kMiB / 512);
  auto storage = mem->storage();
  REQUIRE_OK(Format(std::move(mem), Pass("pw"), FastFormat(1, 512, KdfType::kPbkdf2)));
  auto hdr = internal::ReadLuks1Header(*std::make_unique<MemDevice>(storage));
  REQUIRE_OK(hdr);
  const uint64_t at = uint64_t(hdr->slots[0].key_material_offset) * 512;
  FailingRange dev(std::make_unique<MemDevice>(storage), at, at + 512,
                   Status::Corruption("pool block checksum mismatch"));
  CHECK(CodeOf(TestPassphrase(dev, Pass("pw"))) == Code::kCorruption);
}

TEST_CASE("Unsupported data cipher: Unsupported naming it, before any KDF runs") {
  Fixture f;
  f.EditJson([](json& doc) {
    doc["segments"]["0"]["encryption"] = "aes-cbc-essiv:sha256";
    doc["keyslots"]["0"]["area"]["encryption"] = "aes-cbc-essiv:sha256";
  });
  auto st = CheckOpenable(*f.Dev());
  CHECK(CodeOf(st) == Code::kUnsupported);
  CHECK(st.message().find("aes-cbc-essiv:sha256") != std::string::npos);
  f.ExpectOpenFails(Code::kUnsupported);
  // The same answer whatever the passphrase: it is not an authentication question.
  auto r = Open(f.Dev(), Pass("wrong"));
  CHECK(CodeOf(r) == Code::kUnsupported);
}

TEST_CASE("Unsupported keyslot KDF or area cipher: Unsupported naming the keyslot") {
  Fixture f;
  f.EditJson([](json& doc) { doc["keyslots"]["0"]["area"]["encryption"] = "serpent-xts-plain64"; });
  auto st = CheckOpenable(*f.Dev());
  CHECK(CodeOf(st) == Code::kUnsupported);
  CHECK(st.message().find("keyslot 0") != std::string::npos);
  CHECK(st.message().find("serpent-xts-plain64") != std::string::npos);
  CHECK(CodeOf(Open(f.Dev(), Pass("pw"))) == Code::kUnsupported);
}

TEST_CASE("Keyslot numbers are checked against the version's range before anything") {
  Fixture f;
  for (int bad : {-1, 32, 1000}) {
    CHECK(CodeOf(CheckOpenable(*f.Dev(), bad)) == Code::kInvalidArgument);
    CHECK(CodeOf(KillKeyslot(*f.Dev(), bad, true)) == Code::kInvalidArgument);
    OpenOptions o;
    o.keyslot = bad;
    CHECK(CodeOf(Open(f.Dev(), Pass("pw"), o)) == Code::kInvalidArgument);
  }
  CHECK(CodeOf(CheckOpenable(*f.Dev(), 31)) == Code::kNotFound);  // in range, absent
  CHECK(CodeOf(CheckKeyslotNumber(ContainerKind::kLuks1, 8)) == Code::kInvalidArgument);
  CHECK(CheckKeyslotNumber(ContainerKind::kLuks1, 7).ok());
  CHECK(CheckKeyslotNumber(ContainerKind::kLuks2, 31).ok());
}

// ---- issue 12 defect 15: both copies damaged: say what each one was --------

TEST_CASE("Both copies damaged: the message says what was found in each") {
  Fixture f;
  // Primary: checksum broken. Secondary: magic wiped.
  auto b = f.Bytes(4096, 4096);
  b[0] ^= 0xff;
  f.Put(4096, b);
  f.Put(kHdr, std::vector<uint8_t>(4096, 0));
  auto r = Open(f.Dev(), Pass("pw"));
  REQUIRE(CodeOf(r) == Code::kCorruption);
  const std::string m = r.status().message();
  INFO(m);
  CHECK(m.find("primary at 0: checksum mismatch") != std::string::npos);
  CHECK(m.find("secondary") != std::string::npos);
  CHECK(m.find("no LUKS2 magic") != std::string::npos);
  CHECK(m.find("16384") != std::string::npos);
  CHECK(m.find("no secondary header") == std::string::npos);
}

TEST_CASE("Both copies damaged, secondary magic present: its own reason is given") {
  Fixture f;
  for (uint64_t at : {uint64_t(0), kHdr}) {
    auto b = f.Bytes(at + 8192, 4096);
    b[0] ^= 0xff;
    f.Put(at + 8192, b);
  }
  auto r = Open(f.Dev(), Pass("pw"));
  REQUIRE(CodeOf(r) == Code::kCorruption);
  const std::string m = r.status().message();
  INFO(m);
  CHECK(m.find("primary at 0: checksum mismatch") != std::string::npos);
  CHECK(m.find("secondary at 16384: checksum mismatch") != std::string::npos);
}

TEST_CASE("Well-formed keyslot using an algorithm we lack: Unsupported naming it, no KDF run") {
  const std::vector<std::tuple<const char*, std::function<void(json&)>, const char*>> cases = {
      {"unknown kdf", [](json& d) { d["keyslots"]["0"]["kdf"]["type"] = "scrypt"; }, "scrypt"},
      {"pbkdf2 unknown hash",
       [](json& d) {
         d["keyslots"]["0"]["kdf"] = {{"type", "pbkdf2"}, {"hash", "md4"},
                                      {"iterations", 1000}, {"salt", "AAAA"}};
       },
       "md4"},
      {"af hash", [](json& d) { d["keyslots"]["0"]["af"]["hash"] = "whirlpool"; }, "whirlpool"},
      {"area type", [](json& d) { d["keyslots"]["0"]["area"]["type"] = "datasync"; }, "datasync"},
  };
  for (const auto& [name, edit, what] : cases) {
    DYNAMIC_SECTION(name) {
      Fixture f;
      f.EditJson(edit);
      auto st = CheckOpenable(*f.Dev());
      CHECK(CodeOf(st) == Code::kUnsupported);
      CHECK(st.message().find(what) != std::string::npos);
      CHECK(st.message().find("keyslot 0") != std::string::npos);
      f.ExpectOpenFails(Code::kUnsupported);
    }
  }
}
