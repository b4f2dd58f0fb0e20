// WriteBehindDevice: the contract, read-after-write (Write and WriteBuffer)
// against a model under a tiny queue, reads served from the queue while the
// device below is busy, a drained queue's buffers handed back for reuse, and
// a failed queued write surfacing on the next call with its code.
#include <catch2/catch.hpp>
#include <atomic>
#include <future>
#include <random>

#include "block/fault_device.h"
#include "block/mem_device.h"
#include "block/passthrough_device.h"
#include "block/write_behind_device.h"
#include "contract.h"
#include "test_util.h"

using namespace stack;
using namespace stack::testing;

namespace {

// Holds every write until Open() is called (the device below is "busy").
class GateDevice : public PassthroughDevice {
 public:
  explicit GateDevice(std::unique_ptr<BlockDevice> inner, std::shared_future<void> gate)
      : PassthroughDevice(std::move(inner)), gate_(std::move(gate)) {}
  std::atomic<int> writes_started{0};

 protected:
  Status DoWrite(uint64_t offset, std::span<const uint8_t> data) override {
    ++writes_started;
    gate_.wait();
    return PassthroughDevice::DoWrite(offset, data);
  }

 private:
  std::shared_future<void> gate_;
};
}  // namespace

TEST_CASE("WriteBehindDevice meets the BlockDevice contract") {
  for (size_t queue : {size_t(kBs), size_t(1) << 20}) {
    std::shared_ptr<MemStorage> storage;
    ContractTarget t;
    t.make = [&] {
      auto m = std::make_unique<MemDevice>(kBs, 64);
      storage = m->storage();
      return std::make_unique<WriteBehindDevice>(std::move(m), queue);
    };
    t.reopen = [&] {
      return std::make_unique<WriteBehindDevice>(std::make_unique<MemDevice>(storage), queue);
    };
    t.random_ops = 2000;
    RunBlockDeviceContract(t);
  }
}

TEST_CASE("WriteBehindDevice reads see every earlier write, whatever is queued") {
  constexpr uint64_t kBlocks = 32;
  auto mem = std::make_unique<MemDevice>(kBs, kBlocks);
  auto storage = mem->storage();
  WriteBehindDevice dev(std::move(mem), 3 * kBs);
  std::vector<uint8_t> model(kBlocks * kBs, 0);
  std::mt19937_64 rng(5);
  for (int op = 0; op < 20000; ++op) {
    const uint64_t first = rng() % kBlocks;
    const uint64_t n = 1 + rng() % std::min<uint64_t>(6, kBlocks - first);
    if (rng() % 3 != 0) {
      auto data = RandomBytes(n * kBs, op);
      if (op % 2) {
        REQUIRE_OK(dev.Write(first * kBs, data));
      } else {
        auto owned = data;  // queued as is; a spare comes back
        REQUIRE_OK(dev.WriteBuffer(first * kBs, owned));
        owned.assign(owned.size(), 0xEE);
      }
      std::copy(data.begin(), data.end(), model.begin() + first * kBs);
    } else {
      std::vector<uint8_t> got(n * kBs);
      REQUIRE_OK(dev.Read(first * kBs, got));
      REQUIRE(std::equal(got.begin(), got.end(), model.begin() + first * kBs));
    }
  }
  REQUIRE_OK(dev.Flush());
  MemDevice below(storage);
  std::vector<uint8_t> all(kBlocks * kBs);
  REQUIRE_OK(below.Read(0, all));
  REQUIRE(all == model);
}

TEST_CASE("WriteBehindDevice serves queued data while the device below is busy") {
  std::promise<void> open;
  auto mem = std::make_unique<MemDevice>(kBs, 16);
  auto storage = mem->storage();
  auto gate = std::make_unique<GateDevice>(std::move(mem), open.get_future().share());
  GateDevice* g = gate.get();
  WriteBehindDevice dev(std::move(gate), 1 << 20);
  auto a = RandomBytes(2 * kBs, 1), b = RandomBytes(kBs, 2), c = RandomBytes(kBs, 3);
  REQUIRE_OK(dev.Write(0, a));        // blocks 0-1: the worker is stuck writing it
  REQUIRE_OK(dev.Write(kBs, b));      // block 1 again, queued behind
  REQUIRE_OK(dev.Write(3 * kBs, c));  // block 3, queued
  while (g->writes_started.load() == 0) std::this_thread::yield();
  // Fully queued ranges come back at once, newest data on top.
  std::vector<uint8_t> got(2 * kBs);
  REQUIRE_OK(dev.Read(0, got));
  REQUIRE(std::equal(a.begin(), a.begin() + kBs, got.begin()));
  REQUIRE(std::equal(b.begin(), b.end(), got.begin() + kBs));
  std::vector<uint8_t> one(kBs);
  REQUIRE_OK(dev.Read(3 * kBs, one));
  REQUIRE(one == c);
  REQUIRE(g->writes_started.load() == 1);  // nothing else reached the device
  open.set_value();
  REQUIRE_OK(dev.Flush());
  MemDevice below(storage);
  std::vector<uint8_t> all(4 * kBs);
  REQUIRE_OK(below.Read(0, all));
  REQUIRE(std::equal(a.begin(), a.begin() + kBs, all.begin()));
  REQUIRE(std::equal(b.begin(), b.end(), all.begin() + kBs));
  REQUIRE(std::all_of(all.begin() + 2 * kBs, all.begin() + 3 * kBs, [](uint8_t x) { return x == 0; }));
  REQUIRE(std::equal(c.begin(), c.end(), all.begin() + 3 * kBs));
}

TEST_CASE("WriteBehindDevice hands the buffers of a drained queue back to WriteBuffer") {
  // Eight writes queued behind a busy device, then drained: the next eight
  // WriteBuffer calls each get one of those buffers back (a caller refilling
  // them allocates, and faults in, nothing new).
  std::promise<void> open;
  auto gate = std::make_unique<GateDevice>(std::make_unique<MemDevice>(kBs, 64),
                                           open.get_future().share());
  WriteBehindDevice dev(std::move(gate), 8 * 4 * kBs);
  std::vector<const uint8_t*> queued;
  std::vector<uint8_t> buf;
  for (int i = 0; i < 8; ++i) {
    buf = RandomBytes(4 * kBs, 100 + i);
    queued.push_back(buf.data());
    REQUIRE_OK(dev.WriteBuffer(uint64_t(i) * 4 * kBs, buf));
    REQUIRE(buf.empty());  // nothing written yet: no spare to give
  }
  open.set_value();
  REQUIRE_OK(dev.Drain());
  std::vector<const uint8_t*> back;
  for (int i = 0; i < 8; ++i) {
    buf = RandomBytes(4 * kBs, 200 + i);
    REQUIRE_OK(dev.WriteBuffer(uint64_t(8 + i) * 4 * kBs, buf));
    REQUIRE(buf.capacity() >= 4 * kBs);
    back.push_back(buf.data());
  }
  for (const uint8_t* p : back) REQUIRE(std::count(queued.begin(), queued.end(), p) == 1);
  REQUIRE_OK(dev.Flush());
  std::vector<uint8_t> got(4 * kBs);
  REQUIRE_OK(dev.Read(15 * 4 * kBs, got));
  REQUIRE(got == RandomBytes(4 * kBs, 207));
}

TEST_CASE("WriteBehindDevice reports a failed queued write on the next call, code kept") {
  auto mem = std::make_unique<MemDevice>(kBs, 16);
  auto storage = mem->storage();
  auto ctl = std::make_shared<FaultController>();
  WriteBehindDevice dev(std::make_unique<FaultDevice>(std::move(mem), ctl), 1 << 20);
  ctl->FailOperation(1, Code::kNoSpace);  // the second write below fails
  REQUIRE_OK(dev.Write(0, RandomBytes(kBs, 1)));
  REQUIRE_OK(dev.Write(kBs, RandomBytes(kBs, 2)));  // queued; fails below
  // Whatever comes next (here a flush) returns that error, naming the write.
  Status st = dev.Flush();
  REQUIRE(st.code() == Code::kNoSpace);
  REQUIRE(st.message().find("at byte 4096") != std::string::npos);
  // The device stays broken: writes, reads and flushes all say so, and
  // nothing queued after the failure reached the device below.
  REQUIRE(dev.Write(2 * kBs, RandomBytes(kBs, 3)).code() == Code::kNoSpace);
  std::vector<uint8_t> buf(kBs);
  REQUIRE(dev.Read(0, buf).code() == Code::kNoSpace);
  REQUIRE(dev.Flush().code() == Code::kNoSpace);
  MemDevice below(storage);
  REQUIRE_OK(below.Read(2 * kBs, buf));
  REQUIRE(buf == std::vector<uint8_t>(kBs, 0));
  REQUIRE_OK(below.Read(0, buf));
  REQUIRE(buf == RandomBytes(kBs, 1));
}

TEST_CASE("WriteBehindDevice::Drain waits for the queue without flushing, and reports its error") {
  auto mem = std::make_unique<MemDevice>(kBs, 16);
  auto storage = mem->storage();
  auto ctl = std::make_shared<FaultController>();
  WriteBehindDevice dev(std::make_unique<FaultDevice>(std::move(mem), ctl), 1 << 20);
  std::vector<uint8_t> owned = RandomBytes(4 * kBs, 7);
  REQUIRE_OK(dev.WriteBuffer(0, owned));
  REQUIRE_OK(dev.Drain());
  const uint64_t ops = ctl->ops();
  MemDevice below(storage);
  std::vector<uint8_t> buf(4 * kBs);
  REQUIRE_OK(below.Read(0, buf));
  REQUIRE(buf == RandomBytes(4 * kBs, 7));  // written below by the time Drain returns
  REQUIRE_OK(dev.Drain());
  REQUIRE(ctl->ops() == ops);  // nothing queued: no flush or write below
  REQUIRE(ctl->flushes() == 0);
  ctl->FailOperation(ops, Code::kIoError);  // the next write below fails
  REQUIRE_OK(dev.Write(8 * kBs, RandomBytes(kBs, 8)));
  REQUIRE(dev.Drain().code() == Code::kIoError);
}
