// Power cuts during header rewrites. For every key-management operation, a
// power cut is injected at every mutating device operation it performs (in
// each FaultDevice cut mode); after "reboot" the container must still be a
// readable LUKS container whose volume key is unchanged and which opens with
// a passphrase that was valid either before or after the operation.
#include <catch2/catch.hpp>
#include <functional>

#include "block/fault_device.h"
#include "block/mem_device.h"
#include "fde_test_util.h"
#include "test_util.h"

using namespace stack;
using namespace stack::fde;
using namespace stack::fde::testing;

namespace {

using ::stack::testing::kMiB;

struct Op {
  const char* name;
  std::function<Status(BlockDevice&, const KdfParams&)> run;
  std::vector<std::string> acceptable;  // at least one must open afterwards
  std::vector<std::string> must_open;   // every one must open afterwards
};

// The volume key `pass` opens, or an error.
Result<Secret> KeyOf(const std::shared_ptr<MemStorage>& storage, const std::string& pass) {
  ASSIGN_OR_RETURN(auto c, Open(std::make_unique<MemDevice>(storage), Pass(pass)));
  return c->CopyVolumeKey();
}

}  // namespace

TEST_CASE("Header rewrites survive a power cut at every write and flush") {
  uint64_t points = 0;
  for (int version : {2, 1}) {
    const KdfParams kdf =
        KdfParams::Fast(version == 1 ? KdfType::kPbkdf2 : KdfType::kArgon2id);
    std::vector<Op> ops = {
        {"add-key",
         [](BlockDevice& d, const KdfParams& k) {
           return AddKey(d, Pass("old"), Pass("new"), k).status();
         },
         {"old"}, {"old"}},
        {"change-key",
         [](BlockDevice& d, const KdfParams& k) {
           return ChangeKey(d, Pass("old"), Pass("new"), k).status();
         },
         {"old", "new"}, {"extra"}},
        {"remove-key",
         [](BlockDevice& d, const KdfParams&) {
           return RemoveKey(d, Pass("extra"), false).status();
         },
         {"old"}, {"old"}},
        {"replace-keyslots",
         [](BlockDevice& d, const KdfParams& k) {
           return ReplaceKeyslots(d, Pass("old"), Pass("new"), k);
         },
         {"old", "new"}, {}},
    };
    // The starting container: keyslots for "old" and "extra".
    auto base = std::make_shared<MemStorage>();
    {
      auto mem = std::make_unique<MemDevice>(4096, 20 * kMiB / 4096);
      base = mem->storage();
      REQUIRE_OK(Format(std::move(mem), Pass("old"), FastFormat(version)));
      MemDevice dev(base);
      REQUIRE_OK(AddKey(dev, Pass("old"), Pass("extra"), kdf));
    }
    auto key = KeyOf(base, "old");
    REQUIRE_OK(key);

    for (const Op& op : ops) {
      DYNAMIC_SECTION("LUKS" << version << " " << op.name) {
        // How many mutating operations does it take without a cut?
        uint64_t total = 0;
        {
          auto ctl = std::make_shared<FaultController>();
          FaultDevice dev(std::make_unique<MemDevice>(base->Clone()), ctl);
          REQUIRE_OK(op.run(dev, kdf));
          total = ctl->mutating_ops();
        }
        REQUIRE(total > 0);
        for (uint64_t cut = 0; cut < total; ++cut) {
          for (CutMode mode : {CutMode::kDropAll, CutMode::kTearLast, CutMode::kRandomSubset}) {
            INFO("cut at mutating op " << cut << " of " << total << ", mode "
                                       << static_cast<int>(mode));
            auto storage = base->Clone();
            auto ctl = std::make_shared<FaultController>();
            ctl->CutPowerAt(cut, mode, cut * 7 + 1);
            {
              FaultDevice dev(std::make_unique<MemDevice>(storage), ctl);
              CHECK_FALSE(op.run(dev, kdf).ok());
            }
            REQUIRE(ctl->power_cut());
            ++points;
            MemDevice after(storage);
            auto kind = Probe(after);
            REQUIRE_OK(kind);
            CHECK(*kind == (version == 1 ? ContainerKind::kLuks1 : ContainerKind::kLuks2));
            REQUIRE_OK(Dump(after));
            int opened = 0;
            for (const auto& p : op.acceptable) {
              auto k = KeyOf(storage, p);
              if (!k.ok()) {
                CHECK(k.status().code() == Code::kAuthFailed);
                continue;
              }
              ++opened;
              CHECK(k->Equals(key->bytes()));
            }
            CHECK(opened >= 1);
            for (const auto& p : op.must_open) {
              auto k = KeyOf(storage, p);
              REQUIRE_OK(k);
              CHECK(k->Equals(key->bytes()));
            }
          }
        }
      }
    }
  }
  INFO(points << " power-cut points");
  CHECK(points > 0);
}
