// Helpers for the fsbridge tests: the devices every test runs over (add a
// kind here, e.g. CryptDevice, and every parameterised test covers it),
// dumping a device to an image file for the oracles (e2fsck, debugfs), and
// building a host tree with every file type.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "block/block_device.h"
#include "fsbridge/filesystem.h"
#include "test_util.h"

namespace stack::testing {

// kGarbage: never-written blocks read as pseudo-random bytes and discard is
// refused, as over an encrypting device (nothing may assume zeros).
// kCrypt: a LUKS2 container (fde layer) over a memory device: the stack
// the product runs fsbridge on.
enum class DevKind { kMem, kFile, kGarbage, kCrypt };
// The device kinds parameterised tests run over (add CryptDevice here).
inline std::vector<DevKind> DevicesUnderTest() {
  return {DevKind::kMem, DevKind::kFile, DevKind::kGarbage, DevKind::kCrypt};
}
const char* DevName(DevKind k);

// A fresh device of `bytes` (file devices live in dir).
std::unique_ptr<BlockDevice> MakeDevice(DevKind k, uint64_t bytes, const TempDir& dir,
                                        const std::string& name, uint32_t block_size = 4096);
// Writes the device's content to a sparse image file and returns its path.
std::string DumpImage(BlockDevice& dev, const TempDir& dir, const std::string& name);
// `e2fsck -fn image`: returns its exit status; output in *out.
int E2fsck(const std::string& image, std::string* out);
// Byte-for-byte comparison of two whole devices.
bool SameContent(BlockDevice& a, BlockDevice& b);
// Makes a tree with every file type under root (as root: devices, owners,
// security.capability; otherwise the parts a user can make).
void MakeRichTree(const std::string& root);
// A file of the image, whole; throws (a test failure) when it cannot be read.
std::string ReadAll(fsbridge::Filesystem& fs, const std::string& path);
// Writes bytes to a host file; throws when it cannot.
void WriteHostFile(const std::string& path, const std::vector<uint8_t>& data);

}  // namespace stack::testing
