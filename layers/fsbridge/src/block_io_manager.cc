#include "block_io_manager.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "ext2_status.h"

namespace stack::fsbridge {

// Per-device state shared by the channels libext2fs opens on the name.
struct IoBinding::Context {
  BlockDevice* dev = nullptr;
  uint64_t size = 0;
  uint32_t unit = 0;        // cache granule: a multiple of the device block
  size_t max_units = 0;
  bool read_only = false;
  bool discard = false;
  bool discard_zeroes = false;
  struct Unit {
    std::vector<uint8_t> data;
    bool dirty = false;
  };
  std::map<uint64_t, Unit> cache;  // unit index -> content
  std::vector<uint8_t> run_buf;    // WriteBackUnits' coalescing buffer, reused
  // Buffers of dropped units, reused: populating many small files cycles
  // through the cache, and a fresh allocation per unit showed as ~9% of a
  // build's CPU (malloc/free).
  std::vector<std::vector<uint8_t>> spare;
  // Whole-unit writes to uncached units that follow each other (file data:
  // the allocator hands consecutive files adjacent blocks) are gathered
  // here and reach the device as one write, bypassing the unit cache and
  // its copy at write-back. Invariant: no unit of [seq_first, SeqEnd()) is
  // in `cache`; anything else touching that range writes `seq` out first.
  std::vector<uint8_t> seq;
  uint64_t seq_first = 0;
  static constexpr size_t kSeqMax = 4 << 20;
  Status last_error;
  // Transfers at least this large bypass the cache.
  static constexpr uint64_t kDirectBytes = 64 * 1024;

  uint64_t SeqEnd() const { return seq_first + seq.size() / unit; }
  // Units [first, last] overlap the gathered run.
  bool SeqOverlaps(uint64_t first, uint64_t last) const {
    return !seq.empty() && first < SeqEnd() && last >= seq_first;
  }
  bool AnyCached(uint64_t first, uint64_t last) const {
    auto it = cache.lower_bound(first);
    return it != cache.end() && it->first <= last;
  }
  Status FlushSeq() {
    if (seq.empty()) return Status::Ok();
    // The device may take the buffer and give back another (no copy).
    Status s = dev->WriteBuffer(seq_first * unit, seq);
    seq.clear();
    return s;
  }
  // Writes the gathered run out if [first, last] touches it.
  errcode_t SeqFence(uint64_t first, uint64_t last) {
    if (!SeqOverlaps(first, last)) return 0;
    Status s = FlushSeq();
    return s.ok() ? 0 : Fail(s);
  }

  void Recycle(std::map<uint64_t, Unit>::iterator first, std::map<uint64_t, Unit>::iterator last) {
    for (auto it = first; it != last; ++it) {
      if (spare.size() < max_units) spare.push_back(std::move(it->second.data));
    }
    cache.erase(first, last);
  }

  errcode_t Fail(Status s) {
    if (last_error.ok()) last_error = s;
    return ErrcodeFromStatus(s);
  }

  // Loads (or finds) a unit. nullptr on device error (recorded).
  Unit* GetUnit(uint64_t idx, bool will_overwrite) {
    auto it = cache.find(idx);
    if (it != cache.end()) return &it->second;
    Unit u;
    if (!spare.empty()) {
      u.data = std::move(spare.back());
      spare.pop_back();
    }
    u.data.resize(unit);
    if (!will_overwrite) {
      Status s = dev->Read(idx * unit, u.data);
      if (!s.ok()) {
        Fail(s);
        return nullptr;
      }
    }
    return &cache.emplace(idx, std::move(u)).first->second;
  }

  errcode_t MaybeShrink() {
    if (cache.size() <= max_units) return 0;
    Status s = WriteBackUnits();
    if (!s.ok()) return Fail(s);
    Recycle(cache.begin(), cache.end());
    return 0;
  }

  // Everything written so far reaches the device (no device flush).
  Status WriteBackAll() {
    RETURN_IF_ERROR(WriteBackUnits());
    return FlushSeq();
  }

  // Writes dirty units in address order, coalescing neighbours.
  Status WriteBackUnits() {
    std::vector<uint8_t>& run = run_buf;
    run.clear();
    uint64_t run_start = 0, run_next = 0;
    auto emit = [&]() -> Status {
      if (run.empty()) return Status::Ok();
      Status s = dev->Write(run_start * unit, run);
      run.clear();
      return s;
    };
    for (auto& [idx, u] : cache) {
      if (!u.dirty) continue;
      if (run.empty() || idx != run_next || run.size() >= (8u << 20)) {
        RETURN_IF_ERROR(emit());
        run_start = idx;
      }
      run.insert(run.end(), u.data.begin(), u.data.end());
      run_next = idx + 1;
      u.dirty = false;
    }
    return emit();
  }

  bool InRange(uint64_t off, uint64_t len) const { return off <= size && len <= size - off; }

  errcode_t ReadBytes(uint64_t off, uint64_t len, uint8_t* out) {
    if (!InRange(off, len)) return Fail(Status::OutOfRange("read beyond the device end"));
    if (len == 0) return 0;
    const uint64_t first = off / unit, last = (off + len - 1) / unit;
    if (errcode_t e = SeqFence(first, last)) return e;
    if (len >= kDirectBytes) {
      // Large: one device read of the covering units, then overlay dirty
      // cached units (clean ones equal the device).
      const uint64_t a = first * unit, b = (last + 1) * unit;
      std::vector<uint8_t> tmp;
      uint8_t* dst = out;
      if (a != off || b != off + len) {
        tmp.resize(b - a);
        dst = tmp.data();
      }
      Status s = dev->Read(a, std::span<uint8_t>(dst, b - a));
      if (!s.ok()) return Fail(s);
      for (auto it = cache.lower_bound(first); it != cache.end() && it->first <= last; ++it) {
        if (it->second.dirty)
          std::memcpy(dst + (it->first - first) * unit, it->second.data.data(), unit);
      }
      if (!tmp.empty()) std::memcpy(out, tmp.data() + (off - a), len);
      return 0;
    }
    for (uint64_t i = first; i <= last; ++i) {
      Unit* u = GetUnit(i, false);
      if (!u) return ErrcodeFromStatus(last_error);
      const uint64_t us = i * unit;
      const uint64_t s = std::max(off, us), e = std::min(off + len, us + unit);
      std::memcpy(out + (s - off), u->data.data() + (s - us), e - s);
    }
    return MaybeShrink();
  }

  errcode_t WriteBytes(uint64_t off, uint64_t len, const uint8_t* in) {
    if (read_only) return Fail(Status::ReadOnly("device is read-only"));
    if (!InRange(off, len)) return Fail(Status::OutOfRange("write beyond the device end"));
    if (len == 0) return 0;
    const uint64_t first = off / unit, last = (off + len - 1) / unit;
    if (off % unit == 0 && len % unit == 0 && len < kDirectBytes && !AnyCached(first, last)) {
      if (!seq.empty() && first != SeqEnd()) {
        Status s = FlushSeq();
        if (!s.ok()) return Fail(s);
      }
      if (seq.empty()) seq_first = first;
      seq.insert(seq.end(), in, in + len);
      if (seq.size() >= kSeqMax) {
        Status s = FlushSeq();
        if (!s.ok()) return Fail(s);
      }
      return 0;
    }
    if (errcode_t e = SeqFence(first, last)) return e;
    uint64_t direct_a = 0, direct_b = 0;  // unit range written straight to the device
    if (len >= kDirectBytes) {
      direct_a = (off + unit - 1) / unit;
      direct_b = (off + len) / unit;
      if (direct_b <= direct_a) direct_a = direct_b = 0;
    }
    for (uint64_t i = first; i <= last; ++i) {
      if (i >= direct_a && i < direct_b) {
        i = direct_b - 1;
        continue;
      }
      const uint64_t us = i * unit;
      const uint64_t s = std::max(off, us), e = std::min(off + len, us + unit);
      Unit* u = GetUnit(i, s == us && e == us + unit);
      if (!u) return ErrcodeFromStatus(last_error);
      std::memcpy(u->data.data() + (s - us), in + (s - off), e - s);
      u->dirty = true;
    }
    if (direct_b > direct_a) {
      Recycle(cache.lower_bound(direct_a), cache.lower_bound(direct_b));
      const uint64_t a = direct_a * unit;
      Status s = dev->Write(a, std::span<const uint8_t>(in + (a - off), (direct_b - direct_a) * unit));
      if (!s.ok()) return Fail(s);
    }
    return MaybeShrink();
  }

  // Aligned unit subrange [a, b) of a byte range, as unit indexes.
  void Inner(uint64_t off, uint64_t len, uint64_t* a, uint64_t* b) const {
    *a = (off + unit - 1) / unit;
    *b = (off + len) / unit;
    if (*b < *a) *b = *a;
  }

  errcode_t Discard(uint64_t off, uint64_t len) {
    if (!discard) return EXT2_ET_UNIMPLEMENTED;
    if (read_only) return Fail(Status::ReadOnly("device is read-only"));
    if (!InRange(off, len)) return Fail(Status::OutOfRange("discard beyond the device end"));
    uint64_t a, b;
    Inner(off, len, &a, &b);
    if (b == a) return 0;
    if (errcode_t e = SeqFence(a, b - 1)) return e;
    cache.erase(cache.lower_bound(a), cache.lower_bound(b));
    Status s = dev->Discard(a * unit, (b - a) * unit);
    return s.ok() ? 0 : Fail(s);
  }

  errcode_t Zeroout(uint64_t off, uint64_t len) {
    if (read_only) return Fail(Status::ReadOnly("device is read-only"));
    if (!InRange(off, len)) return Fail(Status::OutOfRange("zeroout beyond the device end"));
    uint64_t a, b;
    Inner(off, len, &a, &b);
    if (b > a) {
      if (errcode_t e = SeqFence(a, b - 1)) return e;
      cache.erase(cache.lower_bound(a), cache.lower_bound(b));
      Status s = dev->WriteZeroes(a * unit, (b - a) * unit);
      if (!s.ok()) return Fail(s);
    }
    // Unaligned edges through the cache.
    std::vector<uint8_t> zeros(unit);
    const uint64_t head_end = b > a ? a * unit : off + len;
    for (uint64_t p = off; p < head_end;) {
      uint64_t n = std::min<uint64_t>(head_end - p, unit - p % unit);
      if (errcode_t e = WriteBytes(p, n, zeros.data())) return e;
      p += n;
    }
    if (b > a) {
      for (uint64_t p = b * unit; p < off + len;) {
        uint64_t n = std::min<uint64_t>(off + len - p, unit);
        if (errcode_t e = WriteBytes(p, n, zeros.data())) return e;
        p += n;
      }
    }
    return 0;
  }
};

namespace {

std::mutex g_registry_mu;
std::map<std::string, IoBinding::Context*>& Registry() {
  static auto* r = new std::map<std::string, IoBinding::Context*>();
  return *r;
}
std::atomic<uint64_t> g_next_id{1};

IoBinding::Context* Ctx(io_channel ch) { return static_cast<IoBinding::Context*>(ch->private_data); }

uint64_t Bytes(io_channel ch, long long count) {
  return count < 0 ? uint64_t(-count) : uint64_t(count) * uint64_t(ch->block_size);
}

errcode_t OpenCb(const char* name, int flags, io_channel* out);

errcode_t CloseCb(io_channel ch) {
  if (--ch->refcount > 0) return 0;
  Status s = Ctx(ch)->WriteBackAll();
  errcode_t err = s.ok() ? 0 : Ctx(ch)->Fail(s);
  std::free(ch->name);
  delete ch;
  return err;
}

errcode_t SetBlksizeCb(io_channel ch, int blksize) {
  if (blksize <= 0) return EXT2_ET_INVALID_ARGUMENT;
  ch->block_size = blksize;
  return 0;
}

errcode_t ReadBlk64Cb(io_channel ch, unsigned long long block, int count, void* data) {
  return Ctx(ch)->ReadBytes(block * uint64_t(ch->block_size), Bytes(ch, count),
                            static_cast<uint8_t*>(data));
}
errcode_t ReadBlkCb(io_channel ch, unsigned long block, int count, void* data) {
  return ReadBlk64Cb(ch, block, count, data);
}
errcode_t WriteBlk64Cb(io_channel ch, unsigned long long block, int count, const void* data) {
  return Ctx(ch)->WriteBytes(block * uint64_t(ch->block_size), Bytes(ch, count),
                             static_cast<const uint8_t*>(data));
}
errcode_t WriteBlkCb(io_channel ch, unsigned long block, int count, const void* data) {
  return WriteBlk64Cb(ch, block, count, data);
}
errcode_t WriteByteCb(io_channel ch, unsigned long offset, int count, const void* data) {
  if (count < 0) return EXT2_ET_INVALID_ARGUMENT;
  return Ctx(ch)->WriteBytes(offset, uint64_t(count), static_cast<const uint8_t*>(data));
}
errcode_t FlushCb(io_channel ch) {
  auto* c = Ctx(ch);
  Status s = c->WriteBackAll();
  if (s.ok() && !c->read_only) s = c->dev->Flush();
  return s.ok() ? 0 : c->Fail(s);
}
errcode_t SetOptionCb(io_channel, const char*, const char*) { return EXT2_ET_INVALID_ARGUMENT; }
errcode_t DiscardCb(io_channel ch, unsigned long long block, unsigned long long count) {
  return Ctx(ch)->Discard(block * uint64_t(ch->block_size), count * uint64_t(ch->block_size));
}
errcode_t ZerooutCb(io_channel ch, unsigned long long block, unsigned long long count) {
  return Ctx(ch)->Zeroout(block * uint64_t(ch->block_size), count * uint64_t(ch->block_size));
}

struct_io_manager g_manager = [] {
  struct_io_manager m;
  std::memset(&m, 0, sizeof m);
  m.magic = EXT2_ET_MAGIC_IO_MANAGER;
  m.name = "stack BlockDevice I/O manager";
  m.open = OpenCb;
  m.close = CloseCb;
  m.set_blksize = SetBlksizeCb;
  m.read_blk = ReadBlkCb;
  m.write_blk = WriteBlkCb;
  m.flush = FlushCb;
  m.write_byte = WriteByteCb;
  m.set_option = SetOptionCb;
  m.read_blk64 = ReadBlk64Cb;
  m.write_blk64 = WriteBlk64Cb;
  m.discard = DiscardCb;
  m.zeroout = ZerooutCb;
  // get_stats stays null: s_kbytes_written then never changes, which keeps
  // reproducible images identical.
  return m;
}();

errcode_t OpenCb(const char* name, int flags, io_channel* out) {
  if (!name) return EXT2_ET_BAD_DEVICE_NAME;
  IoBinding::Context* ctx = nullptr;
  {
    std::lock_guard<std::mutex> l(g_registry_mu);
    auto it = Registry().find(name);
    if (it == Registry().end()) return EXT2_ET_BAD_DEVICE_NAME;
    ctx = it->second;
  }
  if ((flags & IO_FLAG_RW) && ctx->read_only) return EROFS;
  auto* ch = new struct_io_channel;
  std::memset(ch, 0, sizeof *ch);
  ch->magic = EXT2_ET_MAGIC_IO_CHANNEL;
  ch->manager = &g_manager;
  ch->name = strdup(name);
  ch->block_size = 1024;
  ch->refcount = 1;
  ch->flags = (ctx->discard && ctx->discard_zeroes) ? CHANNEL_FLAGS_DISCARD_ZEROES : 0;
  ch->private_data = ctx;
  *out = ch;
  return 0;
}

}  // namespace

IoBinding::IoBinding(BlockDevice* device, size_t cache_bytes) : ctx_(std::make_unique<Context>()) {
  ctx_->dev = device;
  ctx_->size = device->size_bytes();
  const uint32_t bs = device->block_size();
  ctx_->unit = (bs < 4096 && ctx_->size % 4096 == 0) ? 4096 : bs;
  ctx_->max_units = std::max<size_t>(16, cache_bytes / ctx_->unit);
  const DeviceCapabilities caps = device->capabilities();
  ctx_->read_only = caps.read_only;
  ctx_->discard = caps.discard_supported;
  ctx_->discard_zeroes = caps.discard_zeroes;
  name_ = "stack:" + std::to_string(g_next_id.fetch_add(1)) + ":" + device->describe();
  std::lock_guard<std::mutex> l(g_registry_mu);
  Registry()[name_] = ctx_.get();
}

IoBinding::~IoBinding() {
  std::lock_guard<std::mutex> l(g_registry_mu);
  Registry().erase(name_);
}

io_manager IoBinding::manager() { return &g_manager; }

Status IoBinding::TakeLastError() {
  Status s = std::move(ctx_->last_error);
  ctx_->last_error = Status::Ok();
  return s;
}

Status IoBinding::WriteBack() { return ctx_->WriteBackAll(); }

Status IoBinding::WriteBuffer(uint64_t offset, std::vector<uint8_t>* data) {
  Context& c = *ctx_;
  const uint64_t len = data->size();
  if (len == 0) return Status::Ok();
  if (c.read_only || offset % c.unit || len % c.unit || !c.InRange(offset, len)) {
    if (c.WriteBytes(offset, len, data->data()) != 0) return TakeLastError();
    return Status::Ok();
  }
  const uint64_t first = offset / c.unit, last = (offset + len) / c.unit - 1;
  // A small file's whole run joins the gathered run (a copy of a few KiB):
  // handed down alone, each of a tree's many small files cost one queued
  // write, one encryption call, one pool mapping and one pwrite.
  if (len < Context::kDirectBytes && !c.AnyCached(first, last)) {
    if (c.WriteBytes(offset, len, data->data()) != 0) return TakeLastError();
    return Status::Ok();
  }
  if (c.SeqOverlaps(first, last)) RETURN_IF_ERROR(c.FlushSeq());
  c.Recycle(c.cache.lower_bound(first), c.cache.upper_bound(last));
  return c.dev->WriteBuffer(offset, *data);
}

}  // namespace stack::fsbridge
