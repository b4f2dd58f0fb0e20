// Export and import of whole images between a pool and standalone files.
//
// Export (a volume or snapshot -> a new raw image file, sparse):
//   kStored   the volume's bytes as stored: for an encrypted volume the
//             LUKS2 container as is (opens with cryptsetup anywhere);
//   kLuks1    decrypted and re-encrypted into a new LUKS1 container (PBKDF2)
//             for QEMU, which cannot read LUKS2; same passphrase unless a
//             new one is given; new volume key;
//   kPlain    the decrypted filesystem image.
// Only the extents the pool reports as allocated are read; all-zero blocks
// are not written (kStored, kPlain) so holes stay holes. Blocks the volume
// never wrote read as zeros in a kPlain export (in the pool they hold no
// ciphertext at all). The copy method is reported, never changed silently.
// A kStored export of a pool entry can be offloaded to the kernel
// (stack/stored_copy.h): reflink, where the file system shares extents (the
// export then costs a checksum read and no space), or copy_file_range.
// kAuto picks the best offered and reports what it skipped and why;
// an explicit method that is not offered fails with Unsupported.
// The output is written through an OutputFile (stack/output_file.h): into a
// temporary file renamed over out_path only when the export succeeded, so a
// failure or a kill never leaves a partial image under its final name and
// never loses an existing file replaced with overwrite.
//
// A stream as out_path ("-" for stdout, or an existing pipe, socket or
// character device such as /dev/null) gets every byte in order instead:
// no holes, no temporary file, method "stream"; kStored and kPlain only
// (kLuks1 writes its header last: Unsupported).
//
// Import (a raw image file -> a new volume): the file's kind is detected
// (plain, LUKS1, LUKS2) and its bytes are copied as they are; holes and
// all-zero blocks stay unallocated in the pool. Atomic like build: the
// volume appears only when complete.
//
// Thread-safety: none.
#pragma once

#include <string>
#include <vector>

#include "fde/luks.h"
#include "stack/file_offload.h"
#include "stack/open_pool.h"
#include "stack/sparse_copy.h"
#include "stack/target.h"
#include "stack/unlock.h"

namespace stack::compose {

enum class ExportFormat { kStored, kLuks1, kPlain };
Result<ExportFormat> ParseExportFormat(const std::string& text);  // stored|luks1|plain

struct ExportOptions {
  TargetSpec source;  // writable ignored (opened read-only)
  std::string out_path;
  ExportFormat format = ExportFormat::kStored;
  bool overwrite = false;  // replace an existing out_path (only on success)
  // Durable on return (write-behind + fdatasync). Off by default, like cp
  // and qemu-img convert: the output is a new artifact (the pool is never at
  // risk), and after a power loss it may be incomplete.
  bool sync = false;
  CopyMethod method = CopyMethod::kAuto;  // offloads apply to kStored of a pool entry
  SecretGetter passphrase;      // for kLuks1 / kPlain of an encrypted source
  SecretGetter new_passphrase;  // kLuks1: optional; default = passphrase
  fde::KdfParams luks1_kdf;     // kLuks1 keyslot (pbkdf2)
  Progress* progress = nullptr;
};

struct ExportReport {
  std::string format;  // "stored", "luks1", "plain"
  std::string source_encryption;  // "none", "LUKS1", "LUKS2"
  CopyReport copy;
  uint64_t file_size = 0;
  uint64_t file_allocated = 0;  // bytes the output file occupies on disk
};

Result<ExportReport> ExportImage(const ExportOptions& opts);

// The descriptor an output name stands for: "-" and /dev/stdout are 1,
// /dev/stderr 2, /dev/fd/N and /proc/self/fd/N are N (symlinks into /proc,
// written through, never replaced); -1 for any other name.
int OutputDescriptor(const std::string& path);

struct ImportOptions {
  std::string pool_path;
  std::string in_path;
  std::string volume;
  std::string note;
  std::vector<std::string> tags;
  NewPoolOptions new_pool;  // a missing pool is created, as by build
  Progress* progress = nullptr;
  // A LUKS header this build cannot open (fde::CheckOpenable fails: cipher,
  // KDF..., or a damaged header) is refused unless force; with force the
  // image is imported as is and the reason is in ImportReport::warnings.
  bool force = false;
};

struct ImportReport {
  std::string volume;
  std::string detected;  // "plain", "LUKS1", "LUKS2"
  bool created_pool = false;
  uint64_t size_bytes = 0;
  CopyReport copy;
  std::vector<std::string> warnings;
};

Result<ImportReport> ImportImage(const ImportOptions& opts);

}  // namespace stack::compose
