// Key management over memory devices: add/remove/change/replace, the last
// keyslot rule, header backup and restore.
#include <catch2/catch.hpp>

#include "fde_test_util.h"
#include "luks2_header.h"
#include "test_util.h"

using namespace stack;
using namespace stack::fde;
using namespace stack::fde::testing;
using stack::testing::CodeOf;
using stack::testing::RandomBytes;
using stack::testing::TempDir;

namespace {

using ::stack::testing::kMiB;

}  // namespace

TEST_CASE("Keys: add, change, remove, the last keyslot needs force") {
  for (int version : {2, 1}) {
    DYNAMIC_SECTION("LUKS" << version) {
      auto storage = Formatted(version, "p0");
      MemDevice dev(storage);
      const KdfParams kdf = KdfParams::Fast(version == 1 ? KdfType::kPbkdf2 : KdfType::kArgon2id);
      auto s1 = AddKey(dev, Pass("p0"), Pass("p1"), kdf);
      REQUIRE_OK(s1);
      CHECK(*s1 == 1);
      auto info = Dump(dev);
      REQUIRE_OK(info);
      CHECK(info->keyslots.size() == 2);
      REQUIRE_OK(Open(std::make_unique<MemDevice>(storage), Pass("p1")));
      REQUIRE_OK(ChangeKey(dev, Pass("p1"), Pass("p2"), kdf));
      CHECK(CodeOf(Open(std::make_unique<MemDevice>(storage), Pass("p1"))) == Code::kAuthFailed);
      REQUIRE_OK(Open(std::make_unique<MemDevice>(storage), Pass("p2")));
      auto removed = RemoveKey(dev, Pass("p0"), false);
      REQUIRE_OK(removed);
      CHECK(*removed == 0);
      CHECK(CodeOf(Open(std::make_unique<MemDevice>(storage), Pass("p0"))) == Code::kAuthFailed);
      CHECK(CodeOf(RemoveKey(dev, Pass("p2"), false)) == Code::kInvalidArgument);
      REQUIRE_OK(Open(std::make_unique<MemDevice>(storage), Pass("p2")));
      REQUIRE_OK(RemoveKey(dev, Pass("p2"), true));
      // No keyslot left: nothing to try a passphrase on, so not AuthFailed,
      // and CheckOpenable says so before any passphrase is asked for.
      CHECK(CodeOf(Open(std::make_unique<MemDevice>(storage), Pass("p2"))) == Code::kNotFound);
      CHECK(CodeOf(CheckOpenable(dev)) == Code::kNotFound);
    }
  }
}

TEST_CASE("Keys: ReplaceKeyslots keeps the data readable under the new passphrase") {
  for (int version : {2, 1}) {
    DYNAMIC_SECTION("LUKS" << version) {
      auto storage = Formatted(version, "old");
      const KdfParams kdf = KdfParams::Fast(version == 1 ? KdfType::kPbkdf2 : KdfType::kArgon2id);
      auto data = RandomBytes(64 * 1024, 5);
      {
        auto d = Open(std::make_unique<MemDevice>(storage), Pass("old"));
        REQUIRE_OK(d);
        REQUIRE_OK((*d)->Write(4096 * 10, data));
        REQUIRE_OK(AddKey((*d)->lower(), Pass("old"), Pass("other"), kdf));
      }
      MemDevice dev(storage);
      REQUIRE_OK(ReplaceKeyslots(dev, Pass("old"), Pass("new"), kdf));
      CHECK(CodeOf(Open(std::make_unique<MemDevice>(storage), Pass("old"))) == Code::kAuthFailed);
      CHECK(CodeOf(Open(std::make_unique<MemDevice>(storage), Pass("other"))) == Code::kAuthFailed);
      auto d = Open(std::make_unique<MemDevice>(storage), Pass("new"));
      REQUIRE_OK(d);
      std::vector<uint8_t> back(data.size());
      REQUIRE_OK((*d)->Read(4096 * 10, back));
      CHECK(back == data);
      auto info = Dump(dev);
      REQUIRE_OK(info);
      CHECK(info->keyslots.size() == 1);
    }
  }
}

TEST_CASE("Keys: header backup and validated restore") {
  for (int version : {2, 1}) {
    DYNAMIC_SECTION("LUKS" << version) {
      TempDir dir;
      auto storage = Formatted(version, "pw");
      MemDevice dev(storage);
      REQUIRE_OK(BackupHeader(dev, dir.file("hdr")));
      CHECK(CodeOf(BackupHeader(dev, dir.file("hdr"))) == Code::kAlreadyExists);
      // Destroy the header (and keyslots) entirely.
      std::vector<uint8_t> zeros(1 << 20);
      REQUIRE_OK(dev.Write(0, zeros));
      CHECK(CodeOf(Open(std::make_unique<MemDevice>(storage), Pass("pw"))) == Code::kNotFound);
      REQUIRE_OK(RestoreHeader(dev, dir.file("hdr")));
      REQUIRE_OK(Open(std::make_unique<MemDevice>(storage), Pass("pw")));
      // A corrupted backup is refused and nothing is written.
      auto bytes = ReadFileBytes(dir.file("hdr"));
      bytes[600] ^= 0xff;  // LUKS2: inside the JSON area; LUKS1: key material
      bytes[0] = 'X';
      WriteFileBytes(dir.file("bad"), bytes);
      auto before = storage->Clone();
      CHECK(!RestoreHeader(dev, dir.file("bad")).ok());
      CHECK(storage->blocks == before->blocks);
      CHECK(CodeOf(RestoreHeader(dev, dir.file("missing"))) == Code::kNotFound);
    }
  }
}

TEST_CASE("Keys: the JSON we do not understand survives a rewrite") {
  auto storage = Formatted(2, "pw");
  MemDevice dev(storage);
  {
    // Inject unknown members through the internal codec.
    auto hdr = stack::fde::internal::ReadLuks2Header(dev);
    REQUIRE_OK(hdr);
    hdr->md.doc["tokens"]["3"] = {{"type", "x-unknown"}, {"keyslots", {"0"}}, {"blob", {1, 2, 3}}};
    hdr->md.doc["keyslots"]["0"]["x_extra"] = "kept";
    hdr->md.doc["config"]["x_note"] = {{"a", 1}};
    hdr->md.doc["x_top"] = "top";
    REQUIRE_OK(stack::fde::internal::WriteLuks2Header(dev, &*hdr));
  }
  REQUIRE_OK(AddKey(dev, Pass("pw"), Pass("pw2"), KdfParams::Fast()));
  REQUIRE_OK(ChangeKey(dev, Pass("pw"), Pass("pw3"), KdfParams::Fast()));
  auto hdr = stack::fde::internal::ReadLuks2Header(dev);
  REQUIRE_OK(hdr);
  const auto& doc = hdr->md.doc;
  CHECK(doc["tokens"]["3"]["type"] == "x-unknown");
  CHECK(doc["tokens"]["3"]["blob"].size() == 3);
  CHECK(doc["keyslots"]["0"]["x_extra"] == "kept");
  CHECK(doc["config"]["x_note"]["a"] == 1);
  CHECK(doc["x_top"] == "top");
  CHECK(hdr->bin.seqid == 4);
}

TEST_CASE("Keys: unknown mandatory requirements -> read-only, key management refused") {
  auto storage = Formatted(2, "pw");
  MemDevice dev(storage);
  {
    auto hdr = stack::fde::internal::ReadLuks2Header(dev);
    REQUIRE_OK(hdr);
    hdr->md.doc["config"]["requirements"] = {{"mandatory", {"x-future-feature"}}};
    REQUIRE_OK(stack::fde::internal::WriteLuks2Header(dev, &*hdr));
  }
  auto d = Open(std::make_unique<MemDevice>(storage), Pass("pw"));
  REQUIRE_OK(d);
  CHECK((*d)->capabilities().read_only);
  REQUIRE((*d)->warnings().size() == 1);
  CHECK((*d)->warnings()[0].find("x-future-feature") != std::string::npos);
  std::vector<uint8_t> buf(4096);
  CHECK(CodeOf((*d)->Write(0, buf)) == Code::kReadOnly);
  CHECK(CodeOf(AddKey(dev, Pass("pw"), Pass("x"), KdfParams::Fast())) == Code::kReadOnly);
}

TEST_CASE("Keys: TestPassphrase and Dump renderings") {
  auto storage = Formatted(2, "pw");
  MemDevice dev(storage);
  REQUIRE_OK(AddKey(dev, Pass("pw"), Pass("pbk"), KdfParams::Fast(KdfType::kPbkdf2)));
  auto before = storage->Clone();
  auto slot = TestPassphrase(dev, Pass("pbk"));
  REQUIRE_OK(slot);
  CHECK(*slot == 1);
  CHECK(CodeOf(TestPassphrase(dev, Pass("nope"))) == Code::kAuthFailed);
  CHECK(CodeOf(TestPassphrase(dev, Pass("pw"), 1)) == Code::kAuthFailed);
  CHECK(storage->blocks == before->blocks);
  auto info = Dump(dev);
  REQUIRE_OK(info);
  auto j = nlohmann::json::parse(DumpJson(*info));
  CHECK(j["kind"] == "luks2");
  CHECK(j["sector_size"] == 4096);
  CHECK(j["data_offset"] == 16 * kMiB);
  CHECK(j["key_bits"] == 512);
  REQUIRE(j["keyslots"].size() == 2);
  CHECK(j["keyslots"][0]["kdf"] == "argon2id");
  CHECK(j["keyslots"][1]["kdf"] == "pbkdf2");
  CHECK(j["keyslots"][1]["iterations"] == 1000);
  const std::string text = DumpText(*info);
  CHECK(text.find("aes-xts-plain64") != std::string::npos);
  CHECK(text.find("argon2id") != std::string::npos);
}
