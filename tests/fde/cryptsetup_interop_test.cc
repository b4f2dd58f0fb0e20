// Interop with the real cryptsetup (2.6) on plain image files, both ways.
#include <catch2/catch.hpp>

#include "fde_test_util.h"
#include "test_util.h"

using namespace stack;
using namespace stack::fde;
using namespace stack::fde::testing;
using stack::testing::CodeOf;
using stack::testing::RandomBytes;
using stack::testing::RunCommand;
using stack::testing::TempDir;

namespace {

using ::stack::testing::kMiB;

// Writes plaintext through dev at a few offsets beyond the first sector and
// checks the ciphertext on disk decrypts with `key` through python's XTS.
void CheckDataWithKey(CryptDevice& dev, std::span<const uint8_t> key) {
  const uint32_t ss = dev.block_size();
  const uint64_t offsets[] = {0, uint64_t(ss), 7 * uint64_t(ss), 129 * uint64_t(ss)};
  for (uint64_t off : offsets) {
    auto d = RandomBytes(3 * ss, off + 1);
    REQUIRE_OK(dev.Write(off, d));
    std::vector<uint8_t> c(d.size());
    REQUIRE_OK(dev.lower().Read(dev.data_offset() + off, c));
    CHECK(PyXts(false, key, c, ss, off / 512) == d);
  }
  REQUIRE_OK(dev.Flush());
}

}  // namespace

TEST_CASE("Interop: cryptsetup opens what we format") {
  REQUIRE(HaveTool("cryptsetup"));
  struct Case {
    uint32_t sector;
    KdfType kdf;
    bool discards;
  };
  for (Case cs : {Case{4096, KdfType::kArgon2id, true}, Case{512, KdfType::kPbkdf2, false},
                  Case{4096, KdfType::kArgon2i, false}}) {
    DYNAMIC_SECTION("sector " << cs.sector << " kdf " << int(cs.kdf)) {
      TempDir dir;
      const std::string img = dir.file("ours.img");
      WriteKey(dir.file("right"), "right passphrase");
      WriteKey(dir.file("wrong"), "wrong passphrase");
      auto opts = FastFormat(2, cs.sector, cs.kdf);
      opts.kdf.parallelism = 4;
      opts.label = "stack-test";
      opts.allow_discards = cs.discards;
      auto dev = Format(NewFile(img, 18 * kMiB), Pass("right passphrase"), opts);
      REQUIRE_OK(dev);
      auto key = (*dev)->CopyVolumeKey();
      REQUIRE_OK(key);
      CheckDataWithKey(**dev, key->bytes());
      dev.value().reset();

      int rc = 0;
      std::string dump = CryptsetupDump(img, &rc);
      INFO(dump);
      REQUIRE(rc == 0);
      CHECK(dump.find("stack-test") != std::string::npos);
      CHECK(dump.find(cs.sector == 4096 ? "sector: 4096" : "sector: 512") != std::string::npos);
      CHECK((dump.find("allow-discards") != std::string::npos) == cs.discards);
      CHECK(CryptsetupTestPassphrase(img, dir.file("right")) == 0);
      CHECK(CryptsetupTestPassphrase(img, dir.file("wrong")) != 0);
      CHECK(Hex(CryptsetupVolumeKey(img, dir.file("right"))) == Hex(key->bytes()));
    }
  }
}

TEST_CASE("Interop: we open what cryptsetup formats") {
  REQUIRE(HaveTool("cryptsetup"));
  struct Case {
    const char* args;
    uint32_t sector;
  };
  for (Case cs : {Case{"--pbkdf argon2id --pbkdf-memory 64 --pbkdf-force-iterations 4 "
                       "--pbkdf-parallel 4",
                       4096},
                  Case{"--pbkdf pbkdf2 --pbkdf-force-iterations 1000", 512},
                  Case{"--pbkdf argon2i --pbkdf-memory 128 --pbkdf-force-iterations 5", 512}}) {
    DYNAMIC_SECTION(cs.args) {
      TempDir dir;
      const std::string img = dir.file("cs.img");
      REQUIRE(RunCommand("truncate -s 20M " + img) == 0);
      WriteKey(dir.file("k0"), "first");
      WriteKey(dir.file("k1"), "second one");
      std::string out;
      const std::string common = std::string(" -q ") + cs.args;
      int rc = RunCommand("cryptsetup luksFormat --type luks2 --label cs-label --sector-size " +
                              std::to_string(cs.sector) + common + " --key-file " + dir.file("k0") + " " + img + " 2>&1",
                          &out);
      INFO(out);
      REQUIRE(rc == 0);
      rc = RunCommand("cryptsetup luksAddKey" + common + " --key-file " + dir.file("k0") + " " +
                          img + " " + dir.file("k1") + " 2>&1",
                      &out);
      INFO(out);
      REQUIRE(rc == 0);
      const auto cs_key = CryptsetupVolumeKey(img, dir.file("k0"));
      REQUIRE(cs_key.size() == 64);

      auto info = Dump(*OpenFile(img));
      REQUIRE_OK(info);
      CHECK(info->label == "cs-label");
      CHECK(info->keyslots.size() == 2);
      CHECK(info->sector_size == cs.sector);

      CHECK(CodeOf(Open(OpenFile(img), Pass("nope"))) == Code::kAuthFailed);
      for (const char* pass : {"first", "second one"}) {
        auto dev = Open(OpenFile(img), Pass(pass));
        REQUIRE_OK(dev);
        CHECK((*dev)->block_size() == cs.sector);
        auto key = (*dev)->CopyVolumeKey();
        REQUIRE_OK(key);
        CHECK(Hex(key->bytes()) == Hex(cs_key));
        CheckDataWithKey(**dev, cs_key);
      }
    }
  }
}

TEST_CASE("Interop: cryptsetup accepts every passphrase left after our keyslot changes") {
  REQUIRE(HaveTool("cryptsetup"));
  TempDir dir;
  const std::string img = dir.file("k.img");
  REQUIRE(RunCommand("truncate -s 20M " + img) == 0);
  WriteKey(dir.file("a"), "alpha");
  REQUIRE(RunCommand("cryptsetup luksFormat -q --type luks2 --pbkdf pbkdf2 "
                     "--pbkdf-force-iterations 1000 --key-file " +
                     dir.file("a") + " " + img) == 0);
  // A token of a type we do not know must survive our rewrites.
  const std::string token = R"({"type":"stack-test-token","keyslots":["0"],"note":"keep me"})";
  WriteKey(dir.file("token.json"), token);
  REQUIRE(RunCommand("cryptsetup token import --json-file " + dir.file("token.json") + " " + img) ==
          0);
  auto kdf = KdfParams::Fast();
  {
    auto dev = OpenFile(img);
    auto b = AddKey(*dev, Pass("alpha"), Pass("bravo"), kdf);
    REQUIRE_OK(b);
    CHECK(*b == 1);
    auto c = AddKey(*dev, Pass("bravo"), Pass("charlie"), KdfParams::Fast(KdfType::kPbkdf2));
    REQUIRE_OK(c);
    auto changed = ChangeKey(*dev, Pass("charlie"), Pass("delta"), kdf);
    REQUIRE_OK(changed);
    CHECK(*changed == 2);
    auto removed = RemoveKey(*dev, Pass("alpha"), false);
    REQUIRE_OK(removed);
    CHECK(*removed == 0);
  }
  for (auto [name, pass] : {std::pair{"b", "bravo"}, {"c", "charlie"}, {"d", "delta"}, {"a", "alpha"}}) {
    WriteKey(dir.file(name), pass);
  }
  CHECK(CryptsetupTestPassphrase(img, dir.file("b")) == 0);
  CHECK(CryptsetupTestPassphrase(img, dir.file("d"), 2) == 0);
  CHECK(CryptsetupTestPassphrase(img, dir.file("c")) != 0);
  CHECK(CryptsetupTestPassphrase(img, dir.file("a")) != 0);
  std::string exported;
  REQUIRE(RunCommand("cryptsetup token export --token-id 0 " + img, &exported) == 0);
  CHECK(exported.find("stack-test-token") != std::string::npos);
  CHECK(exported.find("keep me") != std::string::npos);
  int rc = 0;
  std::string dump = CryptsetupDump(img, &rc);
  INFO(dump);
  CHECK(rc == 0);
  CHECK(dump.find("stack-test-token") != std::string::npos);
}

TEST_CASE("Interop: a replaced keyslot set keeps the volume key (cryptsetup oracle)") {
  REQUIRE(HaveTool("cryptsetup"));
  TempDir dir;
  const std::string img = dir.file("r.img");
  auto dev = Format(NewFile(img, 18 * kMiB), Pass("old"), FastFormat());
  REQUIRE_OK(dev);
  auto key = (*dev)->CopyVolumeKey();
  REQUIRE_OK(key);
  REQUIRE_OK(AddKey((*dev)->lower(), Pass("old"), Pass("old2"), KdfParams::Fast()));
  REQUIRE_OK(ReplaceKeyslots((*dev)->lower(), Pass("old"), Pass("new"), KdfParams::Fast()));
  dev.value().reset();
  WriteKey(dir.file("new"), "new");
  WriteKey(dir.file("old"), "old");
  WriteKey(dir.file("old2"), "old2");
  CHECK(CryptsetupTestPassphrase(img, dir.file("new")) == 0);
  CHECK(CryptsetupTestPassphrase(img, dir.file("old")) != 0);
  CHECK(CryptsetupTestPassphrase(img, dir.file("old2")) != 0);
  CHECK(Hex(CryptsetupVolumeKey(img, dir.file("new"))) == Hex(key->bytes()));
  auto info = Dump(*OpenFile(img));
  REQUIRE_OK(info);
  CHECK(info->keyslots.size() == 1);
}

TEST_CASE("Interop: header backups cross between cryptsetup and us") {
  REQUIRE(HaveTool("cryptsetup"));
  TempDir dir;
  const std::string img = dir.file("b.img");
  auto dev = Format(NewFile(img, 18 * kMiB), Pass("pw"), FastFormat());
  REQUIRE_OK(dev);
  dev.value().reset();
  WriteKey(dir.file("pw"), "pw");
  // Ours -> cryptsetup luksHeaderRestore.
  {
    auto f = OpenFile(img);
    REQUIRE_OK(BackupHeader(*f, dir.file("ours.hdr")));
  }
  REQUIRE(RunCommand("dd if=/dev/zero of=" + img + " bs=1M count=16 conv=notrunc status=none") == 0);
  CHECK(CryptsetupTestPassphrase(img, dir.file("pw")) != 0);
  std::string out;
  int rc = RunCommand("cryptsetup luksHeaderRestore -q --header-backup-file " +
                          dir.file("ours.hdr") + " " + img + " 2>&1",
                      &out);
  INFO(out);
  REQUIRE(rc == 0);
  CHECK(CryptsetupTestPassphrase(img, dir.file("pw")) == 0);
  // cryptsetup luksHeaderBackup -> ours.
  REQUIRE(RunCommand("cryptsetup luksHeaderBackup --header-backup-file " + dir.file("cs.hdr") +
                     " " + img) == 0);
  CHECK(ReadFileBytes(dir.file("cs.hdr")).size() == ReadFileBytes(dir.file("ours.hdr")).size());
  REQUIRE(RunCommand("dd if=/dev/zero of=" + img + " bs=1M count=16 conv=notrunc status=none") == 0);
  {
    auto f = OpenFile(img);
    REQUIRE_OK(RestoreHeader(*f, dir.file("cs.hdr")));
  }
  REQUIRE_OK(Open(OpenFile(img), Pass("pw")));
}

TEST_CASE("Interop: a wrong passphrase leaves a cryptsetup image byte-identical") {
  REQUIRE(HaveTool("cryptsetup"));
  TempDir dir;
  const std::string img = dir.file("w.img");
  REQUIRE(RunCommand("truncate -s 20M " + img) == 0);
  WriteKey(dir.file("k"), "the key");
  REQUIRE(RunCommand("cryptsetup luksFormat -q --type luks2 --pbkdf pbkdf2 "
                     "--pbkdf-force-iterations 1000 --key-file " + dir.file("k") + " " + img) == 0);
  const auto before = ReadFileBytes(img);
  CHECK(CodeOf(Open(OpenFile(img), Pass("not the key"))) == Code::kAuthFailed);
  CHECK(CodeOf(AddKey(*OpenFile(img), Pass("not the key"), Pass("x"), KdfParams::Fast())) ==
        Code::kAuthFailed);
  CHECK(CodeOf(ReplaceKeyslots(*OpenFile(img), Pass("not the key"), Pass("x"),
                               KdfParams::Fast())) == Code::kAuthFailed);
  CHECK(ReadFileBytes(img) == before);
}

TEST_CASE("Interop: benchmarked (non-test) KDF parameters open in cryptsetup") {
  REQUIRE(HaveTool("cryptsetup"));
  TempDir dir;
  const std::string img = dir.file("bm.img");
  FormatOptions o;  // production defaults, with a short time budget
  o.kdf.time_ms = 100;
  auto dev = Format(NewFile(img, 18 * kMiB), Pass("benchmarked"), o);
  REQUIRE_OK(dev);
  dev.value().reset();
  auto info = Dump(*OpenFile(img));
  REQUIRE_OK(info);
  REQUIRE(info->keyslots.size() == 1);
  CHECK(info->keyslots[0].kdf == "argon2id");
  CHECK(info->keyslots[0].time_cost >= 4);
  CHECK(info->keyslots[0].memory_kib >= 64 * 1024);
  CHECK(info->digest_iterations >= 1000);
  WriteKey(dir.file("k"), "benchmarked");
  CHECK(CryptsetupTestPassphrase(img, dir.file("k")) == 0);
}
