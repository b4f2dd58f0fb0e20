// Import into an existing volume: the way back for a raw image that was
// exported (stack/transfer.h), used by a consumer that only takes files
// (a VM runtime), and changed.
//
// Only what differs from the volume's current content is written; every
// other block stays shared with the volume's snapshots and clones. The
// comparison is per pool block, on the view the file holds:
//   kStored  the volume's bytes as stored (a LUKS2 container as is). A block
//            differs when its bytes differ (a block the pool never mapped
//            reads as zeros); a differing all-zero block (a hole in the
//            file) is unmapped: holes become discards.
//   kPlain   the decrypted image (`export --format plain`), compared with
//            the volume's plaintext under the volume's own key (XTS is
//            deterministic per sector, so unchanged plaintext is unchanged
//            ciphertext), and differing blocks are written encrypted. A
//            block the pool never mapped holds no ciphertext (a plain export
//            leaves a hole there): a hole in the file over it is unchanged,
//            file data over it (zeros included) is written. A hole over a
//            mapped block whose plaintext is not zeros is written as
//            encrypted zeros, not discarded: under LUKS a discarded block
//            reads back as noise, and a hole in a raw file means zeros (a
//            guest's write-zeroes may have made it). The LUKS header (before
//            the data segment) is never touched.
//            On a pool file (blocks holding whole sectors, the data segment
//            block-aligned), a mapped block is compared without reading it:
//            the file's plaintext is encrypted with the volume's key and its
//            checksum compared with the one the pool keeps for the block
//            (pool::Pool::SameStored; XXH3-64 seeded with the block's
//            location). The file's author does not hold the key, so the
//            ciphertext cannot be chosen to collide: a changed block is
//            taken for unchanged with probability 2^-64. A block whose
//            stored sectors are partly all-zero ciphertext (never written,
//            reading as zeros) is rewritten as encrypted zeros: the same
//            plaintext, a few extra bytes.
//            On an unencrypted volume kPlain is kStored.
// The file must be exactly as large as the view (the volume keeps its size).
//
// Atomic like build (stack/publish.h): the changes are made in a hidden
// clone `.build-V`, which is snapshotted and published with one Rollback of
// V (one pool commit); a failed or killed import leaves V as it was (a
// killed one leaves hidden entries that the next writable open removes).
// With `snapshot`, V@snapshot is taken afterwards (a second commit: a kill
// between the two leaves V imported without the snapshot).
//
// Thread-safety: none (the pool lock keeps other processes out).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "block/status.h"
#include "stack/progress.h"
#include "stack/unlock.h"

namespace stack::compose {

enum class ImportIntoFormat { kAuto, kStored, kPlain };
// auto|stored|plain
Result<ImportIntoFormat> ParseImportIntoFormat(const std::string& text);

struct ImportIntoOptions {
  std::string pool_path;
  std::string in_path;
  std::string volume;    // an existing, writable volume (not a snapshot)
  std::string snapshot;  // "" = none; else V@snapshot is taken of the result
  // kAuto: kStored when the file holds a LUKS header or the volume holds
  // none, else kPlain.
  ImportIntoFormat format = ImportIntoFormat::kAuto;
  SecretGetter passphrase;  // kPlain of an encrypted volume
  Progress* progress = nullptr;
};

struct ImportIntoReport {
  std::string volume, snapshot;  // snapshot: V@S taken, or ""
  std::string format;            // "stored" or "plain"
  std::string encryption;        // the volume's: "none", "LUKS1", "LUKS2"
  uint64_t file_bytes = 0;       // bytes of the file compared
  uint64_t changed_bytes = 0;    // written + discarded (of the view)
  uint64_t written_bytes = 0;    // blocks written (encrypted for kPlain)
  uint64_t discarded_bytes = 0;  // blocks unmapped
  uint64_t pool_used_before = 0, pool_used_after = 0;  // PoolInfo::used_bytes
  std::vector<std::string> notes;  // for the user (e.g. the file's LUKS header was not taken)
};

// A stored image of an encrypted volume must hold that volume's container
// (a build-openable header with its LUKS uuid, volume key and data
// segment), and only its data segment is taken: the volume keeps its own
// header and keyslots (a note says so when the file's differs).
// NotFound for a missing pool, volume or file; InvalidArgument for a
// snapshot, a file whose size is not the view's, a file whose kind does not
// fit the format (a stored image given as plain, no LUKS header in a stored
// image of an encrypted volume), another volume's container; Corruption or
// Unsupported for a header this build cannot open; ReadOnly for a read-only volume; AlreadyExists for
// an existing V@snapshot (all before any change); AuthFailed for a wrong
// passphrase; Busy while V is open elsewhere.
Result<ImportIntoReport> ImportInto(const ImportIntoOptions& opts);

}  // namespace stack::compose
