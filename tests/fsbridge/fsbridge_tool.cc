// fsbridge_tool: a test driver. `fsbridge_tool mkfs IMAGE SIZE_MIB SRC_DIR`
// creates IMAGE (a plain file) holding ext4 populated from SRC_DIR.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "block/file_device.h"
#include "fsbridge/filesystem.h"

int main(int argc, char** argv) {
  if (argc != 5 || std::string(argv[1]) != "mkfs") {
    std::fprintf(stderr, "usage: fsbridge_tool mkfs IMAGE SIZE_MIB SRC_DIR\n");
    return 2;
  }
  auto dev = stack::FileDevice::Create(argv[2], std::strtoull(argv[3], nullptr, 10) << 20, {}, true);
  if (!dev.ok()) {
    std::fprintf(stderr, "%s\n", dev.status().ToString().c_str());
    return 1;
  }
  auto fs = stack::fsbridge::Filesystem::Mkfs(std::move(dev).value(), {});
  if (!fs.ok()) {
    std::fprintf(stderr, "%s\n", fs.status().ToString().c_str());
    return 1;
  }
  auto st = (*fs)->PopulateFromDirectory(argv[4], "/", {});
  if (!st.ok()) {
    std::fprintf(stderr, "%s\n", st.status().ToString().c_str());
    return 1;
  }
  auto s = (*fs)->Close();
  if (!s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 1;
  }
  return 0;
}
