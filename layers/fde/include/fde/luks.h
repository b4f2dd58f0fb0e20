// LUKS containers: probe, format, open, and key management.
//
// What we write is a container cryptsetup 2.6 (and so the kernel) opens:
// LUKS2 by default (aes-xts-plain64, 512-bit key, 4096-byte sectors, header
// geometry as cryptsetup's defaults, an argon2id keyslot, a pbkdf2 digest),
// or LUKS1 for QEMU. What cryptsetup or qemu-img write opens here. Profiles,
// field by field: spec/fde.md.
//
// All functions take the device holding the container (a whole BlockDevice;
// the container starts at byte 0). Except Probe and Format, each is a thin
// wrapper over fde::Container (fde/container.h): it reads the header once and
// makes one or two calls; a caller doing several steps on one container
// (check, unlock, open) can hold a Container and read the header only once.
// Contracts:
//   Probe        None/Luks1/Luks2 from the magic (a LUKS2 with a damaged
//                primary is still Luks2 if a secondary copy exists).
//   Format       writes a new container over the device (its old header and
//                keyslot area are wiped), returns the opened CryptDevice.
//                InvalidArgument on bad options or a device too small.
//   Open         takes ownership of dev (destroyed on failure; use
//                TestPassphrase first to retry without losing it);
//                validates the header (both copies for LUKS2) and that we can
//                open it (CheckOpenable), tries the keyslots (only
//                opts.keyslot if given; else priority 2 before 1, never 0),
//                checks the digest in constant time. Wrong passphrase ->
//                AuthFailed, and nothing is written. A keyslot that cannot be
//                read (I/O, checksum error below) is skipped; if no other
//                keyslot opens, its error is returned with its own code. Unknown
//                mandatory requirements force read-only (a warning says why).
//                A damaged or stale header copy is reported in warnings(),
//                never repaired by Open.
//   TestPassphrase  Open's unlock step alone, on a borrowed device.
//   AddKey       adds a keyslot for `added`, unlocking with `existing`.
//   RemoveKey    removes the keyslot `passphrase` opens; the last keyslot only
//                with force (else InvalidArgument). KillKeyslot by number.
//   ChangeKey    replaces the keyslot `old_pass` opens by one for new_pass
//                (same keyslot number, new area, old area wiped).
//   ReplaceKeyslots  all keyslots go; one new keyslot 0 holds the same volume
//                key under new_pass (a clone getting its own passphrase),
//                and the header gets a new random UUID.
//   Dump         header summary (no secrets) like `cryptsetup luksDump`.
//   BackupHeader / RestoreHeader: the header and keyslot area to/from a
//                file; restore validates the file first and refuses a file
//                whose data offset or kind differs from the container's.
// Every rewrite of a LUKS2 header bumps seqid and writes both copies; keyslot
// material is written (and flushed) before the header that points at it, and
// old material is wiped only after the new header is durable. Key management
// on a header with unknown mandatory requirements is refused (ReadOnly).
// LUKS1 key management: AddKey, RemoveKey, KillKeyslot, ChangeKey and
// ReplaceKeyslots work on LUKS1 too (PBKDF2 keyslots only).
//
// Thread-safety: none; one caller per device.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "block/block_device.h"
#include "fde/crypt_device.h"
#include "fde/header_info.h"
#include "fde/secret.h"

namespace stack::fde {

enum class KdfType { kArgon2id, kArgon2i, kPbkdf2 };

struct KdfParams {
  KdfType type = KdfType::kArgon2id;
  // > 0: measure this machine and pick the cost that takes about this long
  // (argon2: time cost with memory/parallelism fixed, at least 4, memory
  // lowered towards 64 MiB if 4 passes take longer; pbkdf2:
  // iterations, at least 1000). 0: use time_cost / iterations as given.
  uint32_t time_ms = 1000;
  uint32_t time_cost = 4;          // argon2 passes when time_ms == 0
  uint32_t iterations = 1000000;   // pbkdf2 when time_ms == 0
  uint32_t memory_kib = 256 * 1024;  // argon2; default bounded for small machines
  uint32_t parallelism = 0;        // argon2 lanes; 0 = min(4, cores)
  std::string hash = "sha256";     // pbkdf2 hash

  // Cheap parameters for tests (argon2id t=4, 64 KiB, 2 lanes; pbkdf2 1000).
  static KdfParams Fast(KdfType type = KdfType::kArgon2id);
};

// The KDF parameters a new keyslot got, reported when they were
// benchmarked: a slow or busy machine (a CI runner) benchmarks to weaker
// keyslots than a quiet laptop, and the user should see it and can pin
// them (time_ms == 0 with time_cost / iterations).
struct KdfChoice {
  std::string type;           // "argon2id", "argon2i" or "pbkdf2"
  uint32_t target_ms = 0;     // what the benchmark aimed at
  uint32_t time_cost = 0;     // argon2 passes
  uint32_t memory_kib = 0;    // argon2 memory chosen
  uint32_t asked_memory_kib = 0;  // argon2 memory asked for
  uint32_t parallelism = 0;   // argon2 lanes
  uint32_t iterations = 0;    // pbkdf2
  // The benchmark wanted less than the minimum (pbkdf2 1000 iterations;
  // argon2 4 passes at 64 MiB): the keyslot is as weak as this build makes
  // them, and slower to open than target_ms here.
  bool floor_hit = false;
  // argon2 memory was lowered below what was asked (4 passes took longer
  // than target_ms).
  bool memory_lowered = false;
};

// Where each benchmarked KdfChoice goes, from the thread that made the
// keyslot (the CLI prints it). Set it once, before keyslots are made;
// unset by default.
void SetKdfChoiceSink(std::function<void(const KdfChoice&)> sink);

struct FormatOptions {
  int version = 2;             // 1 or 2
  uint32_t sector_size = 4096; // LUKS2: 512 or 4096; LUKS1 always 512
  KdfParams kdf;               // LUKS1 requires kPbkdf2
  uint32_t digest_iterations = 0;  // 0 = kdf.time_ms/8 benchmarked (>= 1000); 1000 if time_ms == 0
  std::string label;           // LUKS2 only, < 48 bytes
  std::string subsystem;       // LUKS2 only, < 48 bytes
  std::string uuid;            // empty = random v4
  bool allow_discards = false; // LUKS2 config.flags "allow-discards"
  uint32_t key_bytes = 64;     // 64 = AES-256-XTS, 32 = AES-128-XTS
};

struct OpenOptions {
  bool read_only = false;
  std::optional<int> keyslot;
  // Decrypt/encrypt large requests on up to this many threads (1 = off).
  unsigned crypt_threads = 1;
};

Result<ContainerKind> Probe(BlockDevice& dev);

// Whether this build can open the container, from its header alone: what a
// caller checks BEFORE asking for a passphrase (Open and TestPassphrase check
// it too, before running any KDF). Errors:
//   NotFound        no LUKS header; `keyslot` absent or inactive; no keyslot
//                   to try (all priority 0).
//   Corruption      the header is damaged (LUKS2: each copy's problem named),
//                   or the device ends before the data segment starts.
//   IoError         reading the header failed.
//   InvalidArgument `keyslot` out of range for the version (CheckKeyslotNumber).
//   Unsupported     naming what: data segment type or cipher (only crypt
//                   aes-xts-plain64), key size (only 256/512 bits), LUKS1
//                   cipher/hash, and, when no keyslot is named, why each
//                   keyslot cannot be tried (type, area cipher, area key size,
//                   KDF, hash, no digest); with `keyslot`, why that one cannot.
Status CheckOpenable(BlockDevice& dev, std::optional<int> keyslot = std::nullopt);

// Keyslot numbers are 0..31 for LUKS2 and 0..7 for LUKS1; InvalidArgument
// otherwise (any other kind is checked as LUKS2).
Status CheckKeyslotNumber(ContainerKind kind, int keyslot);

Result<std::unique_ptr<CryptDevice>> Format(std::unique_ptr<BlockDevice> dev,
                                            const Secret& passphrase, const FormatOptions& opts);
Result<std::unique_ptr<CryptDevice>> Open(std::unique_ptr<BlockDevice> dev,
                                          const Secret& passphrase, const OpenOptions& opts = {});

// Checks a passphrase without taking ownership of the device or writing
// anything (for retry loops before Open): the keyslot it opens, AuthFailed
// otherwise.
Result<int> TestPassphrase(BlockDevice& dev, const Secret& passphrase,
                           std::optional<int> keyslot = std::nullopt);

// Returns the new keyslot number.
Result<int> AddKey(BlockDevice& dev, const Secret& existing, const Secret& added,
                   const KdfParams& kdf);
// Returns the removed keyslot number.
Result<int> RemoveKey(BlockDevice& dev, const Secret& passphrase, bool force);
Status KillKeyslot(BlockDevice& dev, int keyslot, bool force);
// Returns the keyslot number that now holds new_pass.
Result<int> ChangeKey(BlockDevice& dev, const Secret& old_pass, const Secret& new_pass,
                      const KdfParams& kdf);
Status ReplaceKeyslots(BlockDevice& dev, const Secret& old_pass, const Secret& new_pass,
                       const KdfParams& kdf);

Result<HeaderInfo> Dump(BlockDevice& dev);

Status BackupHeader(BlockDevice& dev, const std::string& path);
Status RestoreHeader(BlockDevice& dev, const std::string& path);

}  // namespace stack::fde
