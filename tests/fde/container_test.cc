// fde::Container: one header reading per command, the same operations for
// LUKS1 and LUKS2, and header state worded the same by Open and Dump.
#include <catch2/catch.hpp>

#include "fde/container.h"
#include "fde_test_util.h"
#include "luks2_header.h"
#include "test_util.h"

using namespace stack;
using namespace stack::fde;
using namespace stack::fde::testing;
using stack::testing::CodeOf;

namespace {

using ::stack::testing::kMiB;

KdfParams FastKdf(int version) {
  return KdfParams::Fast(version == 1 ? KdfType::kPbkdf2 : KdfType::kArgon2id);
}

}  // namespace

TEST_CASE("Container: one reading answers the whole command, for both versions") {
  for (int version : {2, 1}) {
    DYNAMIC_SECTION("LUKS" << version) {
      auto storage = Formatted(version, "p0");
      MemDevice dev(storage);
      auto c = Container::Read(dev);
      REQUIRE_OK(c);
      CHECK((*c)->kind() == (version == 2 ? ContainerKind::kLuks2 : ContainerKind::kLuks1));
      CHECK((*c)->Keyslots() == std::vector<int>{0});
      REQUIRE_OK((*c)->CheckOpenable(std::nullopt));
      CHECK(CodeOf((*c)->Unlock(Pass("wrong"), std::nullopt)) == Code::kAuthFailed);
      auto key = (*c)->Unlock(Pass("p0"), std::nullopt);
      REQUIRE_OK(key);
      CHECK(key->keyslot == 0);
      // Key management keeps the in-memory header in step with the disk.
      auto added = (*c)->AddKey(*key, Pass("p1"), FastKdf(version));
      REQUIRE_OK(added);
      CHECK(*added == 1);
      CHECK((*c)->Keyslots() == std::vector<int>{0, 1});
      REQUIRE_OK((*c)->KillKeyslot(0, false));
      CHECK((*c)->Keyslots() == std::vector<int>{1});
      CHECK(CodeOf((*c)->KillKeyslot(1, false)) == Code::kInvalidArgument);  // last one
      auto fresh = Container::Read(dev);
      REQUIRE_OK(fresh);
      CHECK((*fresh)->Keyslots() == std::vector<int>{1});
      CHECK((*fresh)->Info().keyslots.size() == 1);
      // Open through the container gives the same data path as fde::Open.
      auto k1 = (*fresh)->Unlock(Pass("p1"), std::nullopt);
      REQUIRE_OK(k1);
      CHECK(k1->keyslot == 1);
      auto crypt =
          (*fresh)->Open(std::make_unique<MemDevice>(storage), std::move(*k1), OpenOptions{});
      REQUIRE_OK(crypt);
      CHECK((*crypt)->keyslot() == 1);
      CHECK((*crypt)->data_offset() == (*fresh)->DataOffset());
    }
  }
}

TEST_CASE("Container: the header is read once (later damage is not re-read mid-command)") {
  auto storage = Formatted(2, "pw");
  MemDevice dev(storage);
  auto c = Container::Read(dev);
  REQUIRE_OK(c);
  // Wipe the primary binary header after the reading: the command still works
  // from what it read, and reports no damage it never saw.
  REQUIRE_OK(dev.Write(0, std::vector<uint8_t>(4096, 0)));
  CHECK((*c)->Warnings().empty());
  CHECK((*c)->Info().warnings.empty());
  REQUIRE_OK((*c)->Unlock(Pass("pw"), std::nullopt));
  // A new reading (the next command) sees it.
  auto again = Container::Read(dev);
  REQUIRE_OK(again);
  CHECK((*again)->Warnings().size() == 1);
}

TEST_CASE("Container: Open and Dump word the header's state identically") {
  SECTION("damaged primary copy") {
    auto storage = Formatted(2, "pw");
    MemDevice dev(storage);
    REQUIRE_OK(dev.Write(0, std::vector<uint8_t>(4096, 0)));
    auto d = Open(std::make_unique<MemDevice>(storage), Pass("pw"));
    REQUIRE_OK(d);
    auto info = Dump(dev);
    REQUIRE_OK(info);
    REQUIRE(info->warnings.size() == 1);
    CHECK((*d)->warnings() == info->warnings);
    CHECK(info->warnings[0].find("LUKS2 primary header copy is damaged: ") == 0);
  }
  SECTION("stale secondary copy") {
    auto storage = Formatted(2, "pw");
    MemDevice dev(storage);
    auto old_secondary = storage->Clone();
    REQUIRE_OK(AddKey(dev, Pass("pw"), Pass("pw2"), KdfParams::Fast()));
    // Put the older secondary copy back: a valid copy with a lower seqid.
    auto hdr = internal::ReadLuks2Header(dev);
    REQUIRE_OK(hdr);
    const uint64_t hs = hdr->bin.hdr_size;
    MemDevice old(old_secondary);
    std::vector<uint8_t> copy(hs);
    REQUIRE_OK(old.Read(hs, copy));
    REQUIRE_OK(dev.Write(hs, copy));
    auto d = Open(std::make_unique<MemDevice>(storage), Pass("pw"));
    REQUIRE_OK(d);
    auto info = Dump(dev);
    REQUIRE_OK(info);
    REQUIRE(info->warnings.size() == 1);
    CHECK((*d)->warnings() == info->warnings);
    CHECK(info->warnings[0].find("LUKS2 secondary header copy is stale") == 0);
  }
  SECTION("unknown mandatory requirements") {
    auto storage = Formatted(2, "pw");
    MemDevice dev(storage);
    auto hdr = internal::ReadLuks2Header(dev);
    REQUIRE_OK(hdr);
    hdr->md.doc["config"]["requirements"] = {{"mandatory", {"x-future-feature"}}};
    REQUIRE_OK(internal::WriteLuks2Header(dev, &*hdr));
    auto d = Open(std::make_unique<MemDevice>(storage), Pass("pw"));
    REQUIRE_OK(d);
    CHECK((*d)->capabilities().read_only);
    auto info = Dump(dev);
    REQUIRE_OK(info);
    REQUIRE(info->warnings.size() == 1);
    CHECK((*d)->warnings() == info->warnings);
    CHECK(info->warnings[0].find("x-future-feature") != std::string::npos);
  }
}

TEST_CASE("Container: no LUKS header is NotFound") {
  auto mem = std::make_unique<MemDevice>(4096, 64);
  CHECK(CodeOf(Container::Read(*mem)) == Code::kNotFound);
}
