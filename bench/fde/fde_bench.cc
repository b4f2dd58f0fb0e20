// Benchmarks of the encryption layer.
//   fde.xts_4k / fde.xts_1m   CryptDevice write+read throughput with 4 KiB /
//                             1 MiB requests over a sink device (so the figure
//                             is the data path, not a fake disk), single
//                             thread, vs OpenSSL EVP aes-256-xts over the same
//                             buffer size in this process (what `openssl speed
//                             -evp aes-256-xts -bytes N` measures).
//   fde.seq_write_file        CryptDevice over FileDevice, sequential 1 MiB
//                             writes + flush, vs FileDevice alone.
// Aliases: fde.xts_throughput = fde.xts_1m, fde.write_file = fde.seq_write_file.
#include <openssl/evp.h>

#include <filesystem>
#include <vector>

#include "bench_util.h"
#include "block/file_device.h"
#include "block/mem_device.h"
#include "fde/luks.h"

namespace sb = stack::bench;
using namespace stack;
using namespace stack::fde;

namespace {

constexpr uint64_t kMiB = 1 << 20;

// Accepts every request and stores nothing: isolates the crypto data path.
class SinkDevice : public BlockDevice {
 public:
  explicit SinkDevice(uint64_t bytes) : blocks_(bytes / 4096) {}
  uint32_t block_size() const override { return 4096; }
  uint64_t block_count() const override { return blocks_; }
  DeviceCapabilities capabilities() const override { return {}; }
  std::string describe() const override { return "sink"; }

 protected:
  Status DoRead(uint64_t, std::span<uint8_t>) override { return Status::Ok(); }
  Status DoWrite(uint64_t, std::span<const uint8_t>) override { return Status::Ok(); }
  Status DoFlush() override { return Status::Ok(); }
  Status DoDiscard(uint64_t, uint64_t) override { return Status::Ok(); }

 private:
  uint64_t blocks_;
};

void Check(const Status& s) {
  if (!s.ok()) sb::Die(s.ToString());
}

Secret BenchPass() {
  auto s = Secret::FromString("bench");
  if (!s.ok()) sb::Die("secret");
  return std::move(s).value();
}

std::unique_ptr<CryptDevice> CryptOverSink(uint64_t data_bytes, unsigned threads) {
  auto lower = std::make_unique<SinkDevice>(16 * kMiB + data_bytes);
  // The sink cannot hold a header, so build the device from a known key.
  auto key = Secret::Random(64);
  if (!key.ok()) sb::Die("key");
  CryptDevice::Params p;
  p.data_offset = 16 * kMiB;
  p.sector_size = 4096;
  auto d = CryptDevice::Create(std::move(lower), std::move(key).value(), p);
  if (!d.ok()) sb::Die(d.status().ToString());
  (*d)->set_crypt_threads(threads, 256 * 1024);
  return std::move(d).value();
}

// Seconds to push `total` bytes through EVP aes-256-xts in `req` buffers.
double EvpSeconds(size_t req, uint64_t total) {
  std::vector<uint8_t> key(64), iv(16, 0), in(req, 0x5a), out(req);
  for (size_t i = 0; i < key.size(); ++i) key[i] = uint8_t(i * 7 + 1);
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  EVP_EncryptInit_ex(ctx, EVP_aes_256_xts(), nullptr, key.data(), iv.data());
  double t = sb::TimeIt([&] {
    for (uint64_t done = 0; done < total; done += req) {
      int outl = 0;
      EVP_EncryptUpdate(ctx, out.data(), &outl, in.data(), int(req));
    }
  });
  EVP_CIPHER_CTX_free(ctx);
  return t;
}

void XtsMetric(const sb::Options& o, const std::string& name, size_t req) {
  const uint64_t total = (o.quick ? 64 : 1024) * kMiB;
  const uint64_t span = 64 * kMiB;
  auto dev = CryptOverSink(span, 1);
  auto dev2 = CryptOverSink(span, 2);
  std::vector<uint8_t> buf(req, 0x33);
  auto run = [&](CryptDevice& d, bool write) {
    return sb::TimeIt([&] {
      uint64_t off = 0;
      for (uint64_t done = 0; done < total; done += req) {
        Check(write ? d.Write(off, buf) : d.Read(off, buf));
        off = (off + req) % span;
      }
    });
  };
  std::vector<double> w, r, anchor, w2;
  for (int i = 0; i < o.reps; ++i) {
    w.push_back(run(*dev, true));
    anchor.push_back(EvpSeconds(req, total));
    r.push_back(run(*dev, false));
    w2.push_back(run(*dev2, true));
  }
  const double mb = double(total) / 1e6;
  sb::Metric m;
  m.name = name;
  m.ours = mb / sb::Median(w);
  m.anchor = mb / sb::Median(anchor);
  m.unit = "MB/s";
  m.anchor_desc = "OpenSSL EVP aes-256-xts, " + std::to_string(req) +
                  "-byte buffers, same process (openssl speed -evp equivalent)";
  m.better = "higher";
  m.reps = o.reps;
  m.notes["read_MBps"] = std::to_string(int(mb / sb::Median(r)));
  m.notes["write_2_threads_MBps"] = std::to_string(int(mb / sb::Median(w2)));
  m.notes["lower"] = "sink device (stores nothing), 4096-byte sectors";
  sb::Emit(m);
}

void Xts4k(const sb::Options& o) { XtsMetric(o, "fde.xts_4k", 4096); }
void Xts1m(const sb::Options& o) { XtsMetric(o, "fde.xts_1m", kMiB); }
void XtsThroughput(const sb::Options& o) { XtsMetric(o, "fde.xts_throughput", kMiB); }

void SeqWriteFileMetric(const sb::Options& o, const std::string& name) {
  const uint64_t mib = o.quick ? 32 : 512;
  const std::string dir = sb::ScratchDir("fde");
  const std::string ours_path = dir + "/crypt.img", plain_path = dir + "/plain.img";
  std::vector<uint8_t> buf(kMiB);
  for (size_t i = 0; i < buf.size(); ++i) buf[i] = uint8_t(i * 131 + 7);
  KdfParams fast = KdfParams::Fast();
  FormatOptions fo;
  fo.kdf = fast;
  fo.digest_iterations = 1000;
  std::vector<double> ours, anchor;
  for (int r = 0; r < o.reps; ++r) {
    std::filesystem::remove(ours_path);
    std::filesystem::remove(plain_path);
    // Format outside the timed region: the metric is the data path.
    auto file = FileDevice::Create(ours_path, 16 * kMiB + (mib << 20));
    if (!file.ok()) sb::Die(file.status().ToString());
    auto dev = Format(std::move(file).value(), BenchPass(), fo);
    if (!dev.ok()) sb::Die(dev.status().ToString());
    Check((*dev)->Flush());
    ours.push_back(sb::TimeIt([&] {
      for (uint64_t i = 0; i < mib; ++i) Check((*dev)->Write(i << 20, buf));
      Check((*dev)->Flush());
    }));
    dev.value().reset();
    anchor.push_back(sb::TimeIt([&] {
      auto plain = FileDevice::Create(plain_path, mib << 20);
      if (!plain.ok()) sb::Die(plain.status().ToString());
      for (uint64_t i = 0; i < mib; ++i) Check((*plain)->Write(i << 20, buf));
      Check((*plain)->Flush());
    }));
  }
  std::filesystem::remove_all(dir);
  sb::Metric m;
  m.name = name;
  m.ours = double(mib) / sb::Median(ours);
  m.anchor = double(mib) / sb::Median(anchor);
  m.unit = "MiB/s";
  m.anchor_desc = "FileDevice alone, 1 MiB writes + flush, " + std::to_string(mib) + " MiB";
  m.better = "higher";
  m.reps = o.reps;
  sb::Emit(m);
}

void SeqWriteFile(const sb::Options& o) { SeqWriteFileMetric(o, "fde.seq_write_file"); }
void WriteFile(const sb::Options& o) { SeqWriteFileMetric(o, "fde.write_file"); }

}  // namespace

int main(int argc, char** argv) {
  return sb::BenchMain(argc, argv,
                       {{"fde.xts_4k", Xts4k},
                        {"fde.xts_1m", Xts1m},
                        {"fde.xts_throughput", XtsThroughput},
                        {"fde.seq_write_file", SeqWriteFile},
                        {"fde.write_file", WriteFile}});
}
