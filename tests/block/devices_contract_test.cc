// The contract suite over the standard devices.
#include <catch2/catch.hpp>

#include "block/fault_device.h"
#include "block/file_device.h"
#include "block/mem_device.h"
#include "block/passthrough_device.h"
#include "contract.h"
#include "test_util.h"

using namespace stack;
using namespace stack::testing;

TEST_CASE("MemDevice meets the BlockDevice contract") {
  for (uint32_t bs : {512u, 4096u}) {
    std::shared_ptr<MemStorage> storage;
    ContractTarget t;
    t.make = [&] {
      auto d = std::make_unique<MemDevice>(bs, 64);
      storage = d->storage();
      return d;
    };
    t.reopen = [&] { return std::make_unique<MemDevice>(storage); };
    RunBlockDeviceContract(t);
  }
}

TEST_CASE("FileDevice meets the BlockDevice contract") {
  TempDir dir;
  const std::string path = dir.file("dev.img");
  for (bool direct : {false, true}) {
    ContractTarget t;
    t.make = [&]() -> std::unique_ptr<BlockDevice> {
      FileDeviceOptions o;
      o.direct = direct;
      auto d = FileDevice::Create(path, 64 * 4096, o, /*overwrite=*/true);
      REQUIRE_OK(d);
      return std::move(d).value();
    };
    t.reopen = [&]() -> std::unique_ptr<BlockDevice> {
      auto d = FileDevice::Open(path);
      REQUIRE_OK(d);
      return std::move(d).value();
    };
    t.reopen_read_only = [&]() -> std::unique_ptr<BlockDevice> {
      FileDeviceOptions o;
      o.read_only = true;
      auto d = FileDevice::Open(path, o);
      REQUIRE_OK(d);
      return std::move(d).value();
    };
    RunBlockDeviceContract(t);
  }
}

TEST_CASE("PassthroughDevice meets the BlockDevice contract") {
  std::shared_ptr<MemStorage> storage;
  ContractTarget t;
  t.make = [&] {
    auto m = std::make_unique<MemDevice>(4096, 32);
    storage = m->storage();
    return std::make_unique<PassthroughDevice>(std::move(m));
  };
  t.reopen = [&] {
    return std::make_unique<PassthroughDevice>(std::make_unique<MemDevice>(storage));
  };
  RunBlockDeviceContract(t);
}

namespace {
// Intercepts DoWrite only, as the test devices built on PassthroughDevice do.
class WriteCounter : public PassthroughDevice {
 public:
  using PassthroughDevice::PassthroughDevice;
  int writes = 0;

 protected:
  Status DoWrite(uint64_t offset, std::span<const uint8_t> data) override {
    ++writes;
    return PassthroughDevice::DoWrite(offset, data);
  }
};
}  // namespace

TEST_CASE("PassthroughDevice: a subclass intercepting DoWrite sees WriteBuffer writes too") {
  // Forwarding WriteBuffer past DoWrite once made counting and fault
  // devices miss the io_manager's gathered writes.
  WriteCounter dev(std::make_unique<MemDevice>(4096, 8));
  std::vector<uint8_t> buf = RandomBytes(2 * 4096, 9);
  const std::vector<uint8_t> copy = buf;
  REQUIRE_OK(dev.WriteBuffer(4096, buf));
  CHECK(dev.writes == 1);
  std::vector<uint8_t> back(copy.size());
  REQUIRE_OK(dev.Read(4096, back));
  REQUIRE(back == copy);
}

TEST_CASE("FaultDevice without faults meets the BlockDevice contract") {
  ContractTarget t;
  t.make = [&] {
    return std::make_unique<FaultDevice>(std::make_unique<MemDevice>(4096, 32),
                                         std::make_shared<FaultController>());
  };
  RunBlockDeviceContract(t);
}
