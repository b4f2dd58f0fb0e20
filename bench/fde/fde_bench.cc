// Benchmarks of the encryption layer.
//   fde.xts_4k / fde.xts_1m   CryptDevice write throughput with 4 KiB / 1 MiB
//                             requests over a sink device (so the figure is
//                             the data path, not a fake disk), single thread,
//                             vs OpenSSL EVP aes-256-xts over the same buffer
//                             size in this process, in place with one IV per
//                             buffer: what `openssl speed -evp aes-256-xts
//                             -bytes N` measures (its own figure is a note).
//                             Reps alternate ours/anchor so that machine noise
//                             hits both; notes give the per-rep ratios.
//   fde.seq_write_file        CryptDevice over FileDevice, sequential 1 MiB
//                             writes + flush, vs FileDevice alone.
// Aliases: fde.xts_throughput = fde.xts_1m, fde.write_file = fde.seq_write_file.
#include <openssl/evp.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <sstream>
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

// Seconds to push `total` bytes through EVP aes-256-xts in `req` buffers, as
// `openssl speed -evp` does: one context keyed once, EVP_EncryptUpdate in
// place on one buffer (each update is one XTS data unit with the same IV).
double EvpSeconds(size_t req, uint64_t total) {
  std::vector<uint8_t> key(64), iv(16, 0), buf(req, 0x5a);
  for (size_t i = 0; i < key.size(); ++i) key[i] = uint8_t(i * 7 + 1);
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  if (ctx == nullptr ||
      EVP_EncryptInit_ex(ctx, EVP_aes_256_xts(), nullptr, key.data(), iv.data()) != 1) {
    sb::Die("EVP aes-256-xts init");
  }
  bool ok = true;
  double t = sb::TimeIt([&] {
    for (uint64_t done = 0; done < total; done += req) {
      int outl = 0;
      ok &= EVP_EncryptUpdate(ctx, buf.data(), &outl, buf.data(), int(req)) == 1;
    }
  });
  EVP_CIPHER_CTX_free(ctx);
  if (!ok) sb::Die("EVP aes-256-xts update");
  return t;
}

// `openssl speed -evp aes-256-xts -bytes N` itself (MB/s), as a cross-check of
// the in-process anchor; "n/a" if the tool is missing or its output unknown.
std::string OpensslSpeed(size_t req) {
  const std::string cmd = "openssl speed -seconds 1 -evp aes-256-xts -bytes " +
                          std::to_string(req) + " 2>/dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return "n/a";
  char line[512];
  std::string last;
  while (fgets(line, sizeof line, p) != nullptr) last = line;
  pclose(p);
  // Last line: "AES-256-XTS    3322641.59k" (thousands of bytes per second).
  std::istringstream in(last);
  std::string name, kbps;
  if (!(in >> name >> kbps) || kbps.empty() || kbps.back() != 'k') return "n/a";
  try {
    return std::to_string(int(std::stod(kbps) / 1000));
  } catch (...) {
    return "n/a";
  }
}

std::string RatioSpread(std::vector<double> r) {
  std::sort(r.begin(), r.end());
  char b[96];
  std::snprintf(b, sizeof b, "%.3f / %.3f / %.3f", r.front(), sb::Median(r), r.back());
  return b;
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
  std::vector<double> w, r, anchor, w2, ratio;
  for (int i = 0; i < o.reps; ++i) {
    // Alternate which side goes first, so neither always runs right after
    // the other's warm-up or a noisy neighbour's burst.
    if (i % 2 == 0) {
      w.push_back(run(*dev, true));
      anchor.push_back(EvpSeconds(req, total));
    } else {
      anchor.push_back(EvpSeconds(req, total));
      w.push_back(run(*dev, true));
    }
    ratio.push_back(anchor.back() / w.back());
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
                  "-byte buffers in place, same process (openssl speed -evp equivalent)";
  m.better = "higher";
  m.reps = o.reps;
  m.notes["ratio_per_rep_min_median_max"] = RatioSpread(ratio);
  m.notes["read_MBps"] = std::to_string(int(mb / sb::Median(r)));
  m.notes["write_2_threads_MBps"] = std::to_string(int(mb / sb::Median(w2)));
  m.notes["openssl_speed_MBps"] = o.quick ? "skipped (--quick)" : OpensslSpeed(req);
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
