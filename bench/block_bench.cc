// Benchmarks of the block layer's own devices.
#include <filesystem>
#include <vector>

#include "bench_util.h"
#include "block/file_device.h"

namespace sb = stack::bench;

namespace {

// FileDevice sequential 1 MiB writes + one flush vs dd conv=fdatasync.
void FileSeqWrite(const sb::Options& o) {
  const uint64_t mib = o.quick ? 32 : 512;
  const std::string dir = sb::ScratchDir("block");
  const std::string ours_path = dir + "/ours.img", dd_path = dir + "/dd.img";
  std::vector<uint8_t> buf(1 << 20);
  for (size_t i = 0; i < buf.size(); ++i) buf[i] = uint8_t(i * 131 + 7);
  std::vector<double> ours, anchor;
  for (int r = 0; r < o.reps; ++r) {
    std::filesystem::remove(ours_path);
    std::filesystem::remove(dd_path);
    ours.push_back(sb::TimeIt([&] {
      auto dev = stack::FileDevice::Create(ours_path, mib << 20);
      if (!dev.ok()) sb::Die(dev.status().ToString());
      for (uint64_t i = 0; i < mib; ++i) {
        auto st = (*dev)->Write(i << 20, buf);
        if (!st.ok()) sb::Die(st.ToString());
      }
      auto st = (*dev)->Flush();
      if (!st.ok()) sb::Die(st.ToString());
    }));
    anchor.push_back(sb::TimeShell("dd if=/dev/zero of=" + dd_path + " bs=1M count=" +
                                   std::to_string(mib) + " conv=fdatasync status=none"));
  }
  std::filesystem::remove_all(dir);
  sb::Metric m;
  m.name = "block.file_seq_write";
  m.ours = double(mib) / sb::Median(ours);
  m.anchor = double(mib) / sb::Median(anchor);
  m.unit = "MiB/s";
  m.anchor_desc = "dd bs=1M conv=fdatasync, " + std::to_string(mib) + " MiB";
  m.better = "higher";
  m.reps = o.reps;
  sb::Emit(m);
}

}  // namespace

int main(int argc, char** argv) {
  return sb::BenchMain(argc, argv, {{"block.file_seq_write", FileSeqWrite}});
}
