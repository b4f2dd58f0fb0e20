// Atomic publication (stack/publish.h) with the pool's rule that an entry
// with an open device stays put: a fill that fails after opening the hidden
// volume has released its device by the time PublishEntry deletes the
// hidden entry, so a failure leaves nothing (build, import and clone fill
// this way).
#include <catch2/catch.hpp>

#include <algorithm>

#include "block/mem_device.h"
#include "pool/pool.h"
#include "stack/volume_store.h"
#include "stack/publish.h"
#include "mem_pool_store.h"
#include "test_util.h"

using namespace stack;
using stack::testing::CodeOf;
using stack::testing::MemPool;

TEST_CASE("a publication whose fill fails with the hidden volume open leaves nothing") {
  auto p = MemPool();
  Status st = compose::PublishVolume(*p, "v", 16 * 4096, {}, [&](const std::string& hidden) {
    ASSIGN_OR_RETURN(auto dev, p->OpenVolume(hidden, false, "the fill"));
    std::vector<uint8_t> block(4096, 0x5a);
    RETURN_IF_ERROR(dev->Write(0, block));
    return Status::IoError("source unreadable");  // dev closes on the way out
  });
  REQUIRE(CodeOf(st) == Code::kIoError);
  auto names = p->Names();
  REQUIRE(names.ok());
  REQUIRE(names->empty());
  auto rep = p->file_pool()->Check();
  REQUIRE(rep.ok());
  REQUIRE(rep->ok);
}

TEST_CASE("a published volume is free of its fill's device") {
  auto p = MemPool();
  Status st = compose::PublishVolume(*p, "v", 16 * 4096, {}, [&](const std::string& hidden) {
    ASSIGN_OR_RETURN(auto dev, p->OpenVolume(hidden, false, "the fill"));
    std::vector<uint8_t> block(4096, 0x5a);
    return dev->Write(0, block);
  });
  REQUIRE(st.ok());
  // Nothing still holds it: it can be renamed and deleted at once.
  REQUIRE(p->Rename("v", "w").ok());
  REQUIRE(p->Delete("w").ok());
}

TEST_CASE("a snapshot the fill takes is published with the volume, or removed with it") {
  auto p = MemPool();
  auto fill_and_snapshot = [&](const std::string& hidden, Status outcome) {
    ASSIGN_OR_RETURN(auto dev, p->OpenVolume(hidden, false, "the fill"));
    std::vector<uint8_t> block(4096, 0x5a);
    RETURN_IF_ERROR(dev->Write(0, block));
    dev.reset();
    RETURN_IF_ERROR(p->Snapshot(hidden, hidden + "@golden", {}));
    return outcome;
  };
  SECTION("the fill fails after its snapshot: neither is left, hidden or not") {
    Status st = compose::PublishVolume(*p, "v", 16 * 4096, {}, [&](const std::string& hidden) {
      return fill_and_snapshot(hidden, Status::IoError("source unreadable"));
    });
    REQUIRE(CodeOf(st) == Code::kIoError);
    auto names = p->Names();
    REQUIRE(names.ok());
    REQUIRE(names->empty());
  }
  SECTION("the fill succeeds: the one rename publishes both") {
    Status st = compose::PublishVolume(*p, "v", 16 * 4096, {}, [&](const std::string& hidden) {
      return fill_and_snapshot(hidden, Status::Ok());
    });
    REQUIRE(st.ok());
    auto names = p->Names();
    REQUIRE(names.ok());
    std::vector<std::string> sorted = *names;
    std::sort(sorted.begin(), sorted.end());
    REQUIRE(sorted == std::vector<std::string>{"v", "v@golden"});
    auto hidden = p->HiddenNames();
    REQUIRE(hidden.ok());
    REQUIRE(hidden->empty());
  }
  auto rep = p->file_pool()->Check();
  REQUIRE(rep.ok());
  REQUIRE(rep->ok);
}

// Commands that take an entry by name refuse the hidden ones, saying what
// each is; names that are merely odd (an older version let them in) stay
// operable, so nothing becomes undeletable.
TEST_CASE("RefuseHiddenEntry names what a hidden entry is, and only hidden ones") {
  for (const char* name : {".recv-vm", ".recv-vm@s1"}) {
    Status st = compose::RefuseHiddenEntry(name);
    CHECK(st.code() == Code::kInvalidArgument);
    CHECK(st.message().find("partial receive into 'vm'") != std::string::npos);
    CHECK(st.message().find("stack receive --abort vm") != std::string::npos);
  }
  Status st = compose::RefuseHiddenEntry(".build-x");
  CHECK(st.code() == Code::kInvalidArgument);
  CHECK(st.message().find("unfinished build") != std::string::npos);
  for (const char* name : {"vm", "vm@s1", "evil@-x", "evil@.x", "vm@.recv-x", ".odd"})
    CHECK(compose::RefuseHiddenEntry(name).ok());
}
