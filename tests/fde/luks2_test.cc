// Format and Open of LUKS2 (and the shared paths) over in-memory devices.
#include <catch2/catch.hpp>

#include "fde_test_util.h"
#include "test_util.h"

using namespace stack;
using namespace stack::fde;
using namespace stack::fde::testing;
using stack::testing::CodeOf;
using stack::testing::RandomBytes;

namespace {

using ::stack::testing::kMiB;

std::shared_ptr<MemStorage> NewStorage(uint64_t bytes, uint32_t bs = 4096) {
  MemDevice d(bs, bytes / bs);
  return d.storage();
}

std::unique_ptr<BlockDevice> Attach(const std::shared_ptr<MemStorage>& s) {
  return std::make_unique<MemDevice>(s);
}

}  // namespace

TEST_CASE("LUKS2: format, write, reopen, read, both sector sizes") {
  for (uint32_t sector : {4096u, 512u}) {
    DYNAMIC_SECTION("sector " << sector) {
      auto storage = NewStorage(24 * kMiB);
      auto opts = FastFormat(2, sector);
      opts.label = "golden";
      opts.uuid = "01234567-89ab-4cde-8f01-23456789abcd";
      auto dev = Format(Attach(storage), Pass("pw one"), opts);
      REQUIRE_OK(dev);
      CHECK((*dev)->block_size() == sector);
      CHECK((*dev)->data_offset() == 16 * kMiB);
      CHECK((*dev)->block_count() == 8 * kMiB / sector);
      auto data = RandomBytes(256 * 1024, sector);
      REQUIRE_OK((*dev)->Write(3 * kMiB, data));
      REQUIRE_OK((*dev)->Flush());
      dev.value().reset();

      auto probe = Probe(*Attach(storage));
      REQUIRE_OK(probe);
      CHECK(*probe == ContainerKind::kLuks2);
      auto again = Open(Attach(storage), Pass("pw one"));
      REQUIRE_OK(again);
      CHECK((*again)->warnings().empty());
      std::vector<uint8_t> back(data.size());
      REQUIRE_OK((*again)->Read(3 * kMiB, back));
      CHECK(back == data);

      auto info = Dump(*Attach(storage));
      REQUIRE_OK(info);
      CHECK(info->label == "golden");
      CHECK(info->uuid == opts.uuid);
      CHECK(info->sector_size == sector);
      CHECK(info->keyslots.size() == 1);
      CHECK(info->keyslots[0].kdf == "argon2id");
      CHECK(info->seqid == 1);
    }
  }
}

TEST_CASE("LUKS2: wrong passphrase is AuthFailed and writes nothing") {
  auto storage = NewStorage(20 * kMiB);
  REQUIRE_OK(Format(Attach(storage), Pass("right"), FastFormat()));
  auto before = storage->Clone();
  CHECK(CodeOf(Open(Attach(storage), Pass("wrong"))) == Code::kAuthFailed);
  CHECK(CodeOf(AddKey(*Attach(storage), Pass("wrong"), Pass("x"), KdfParams::Fast())) ==
        Code::kAuthFailed);
  CHECK(CodeOf(ChangeKey(*Attach(storage), Pass("wrong"), Pass("x"), KdfParams::Fast())) ==
        Code::kAuthFailed);
  CHECK(CodeOf(RemoveKey(*Attach(storage), Pass("wrong"), true)) == Code::kAuthFailed);
  CHECK(storage->blocks == before->blocks);
}

TEST_CASE("LUKS2: read-only open refuses writes, keyslot selection") {
  auto storage = NewStorage(20 * kMiB);
  REQUIRE_OK(Format(Attach(storage), Pass("a"), FastFormat()));
  OpenOptions ro;
  ro.read_only = true;
  auto dev = Open(Attach(storage), Pass("a"), ro);
  REQUIRE_OK(dev);
  std::vector<uint8_t> buf(4096);
  CHECK(CodeOf((*dev)->Write(0, buf)) == Code::kReadOnly);
  OpenOptions slot1;
  slot1.keyslot = 1;
  CHECK(CodeOf(Open(Attach(storage), Pass("a"), slot1)) == Code::kNotFound);
  OpenOptions slot0;
  slot0.keyslot = 0;
  REQUIRE_OK(Open(Attach(storage), Pass("a"), slot0));
}

TEST_CASE("LUKS2: format refuses bad options and small devices") {
  auto o = FastFormat();
  o.sector_size = 1024;
  CHECK(CodeOf(Format(Attach(NewStorage(20 * kMiB)), Pass("a"), o)) == Code::kInvalidArgument);
  o = FastFormat();
  o.label = std::string(48, 'x');
  CHECK(CodeOf(Format(Attach(NewStorage(20 * kMiB)), Pass("a"), o)) == Code::kInvalidArgument);
  o = FastFormat();
  o.uuid = "not-a-uuid";
  CHECK(CodeOf(Format(Attach(NewStorage(20 * kMiB)), Pass("a"), o)) == Code::kInvalidArgument);
  CHECK(CodeOf(Format(Attach(NewStorage(16 * kMiB)), Pass("a"), FastFormat())) ==
        Code::kInvalidArgument);
  CHECK(CodeOf(Open(Attach(NewStorage(20 * kMiB)), Pass("a"))) == Code::kNotFound);
}
