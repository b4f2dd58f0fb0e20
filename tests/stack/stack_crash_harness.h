// All-layers crash harness: ext4 edits through fsbridge over LUKS2 (fde)
// over a pool volume over a FaultDevice, a power cut at a chosen mutating
// operation of the store, then a reboot and a check of every layer
// (spec/composition.md "Crash soak through all layers").
//
// A workload is a seeded list of filesystem edits (put, rm, mkdir,
// populate from a host tree, symlink, chmod) with explicit commit points (the
// filesystem's Flush, or closing and reopening the whole chain), and the
// model of the tree after each op. Host files it copies are written under
// a directory the workload owns.
//
// Thread-safety: none; each thread (process) runs its own workloads.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "block/fault_device.h"
#include "block/mem_device.h"
#include "fde/crypt_device.h"
#include "fde/secret.h"
#include "test_util.h"

namespace stack::soak {

// One path of the model tree: a directory, a regular file (its bytes) or a
// symlink (its target).
struct Node {
  enum Type { kDir, kFile, kSymlink } type = kDir;
  std::vector<uint8_t> data;  // file content, or symlink target
  uint32_t mode = 0;  // permission bits; 0: not tracked (taken from a host file)
};
// Absolute path ("/a/b") -> node; the root and lost+found are left out.
using FsModel = std::map<std::string, Node>;
// `got` (read back, every mode filled in) is the tree `want` describes.
bool Matches(const FsModel& want, const FsModel& got);

struct FsOp {
  enum Kind { kPut, kRemove, kMkdir, kPopulate, kSymlink, kChmod, kFlush, kRemount };
  Kind kind = kPut;
  std::string path;  // in the filesystem
  std::string host;  // host file or directory (put, populate); target (symlink)
  bool recursive = false;
  uint32_t mode = 0;  // chmod
  // Ends a durable state: the model after it is what a crash after it
  // must show.
  bool commits() const { return kind == kFlush || kind == kRemount; }
};
const char* KindName(FsOp::Kind k);

struct Workload {
  uint64_t seed = 0;
  std::vector<FsOp> ops;
  std::vector<FsModel> states;  // states[i]: after ops[0..i)
  // A WriteBehindDevice between ext4 and LUKS2 during the edits, as `build`
  // composes it (writes reach LUKS2 and the pool on a second thread).
  bool write_behind = false;
  std::shared_ptr<testing::TempDir> host;  // host files the ops copy
  // n_ops edits and commits; a closing commit (session close) follows them.
  static Workload Generate(uint64_t seed, int n_ops);
  std::string Describe() const;  // the op list, one per line
};

// The freshly built image every run starts from: a pool holding volume
// "img" = LUKS2 (fast KDF) + ext4, committed. Built once per process.
// The edits open LUKS2 with the volume key kept here (the passphrase unlock
// costs more than a whole crash point); every reboot after a cut unlocks
// with the passphrase, as the product does.
struct BaseImage {
  std::shared_ptr<const MemStorage> storage;
  std::shared_ptr<const fde::Secret> volume_key;
  fde::CryptDevice::Params crypt;
  // The header and keyslot area as stored: its mapped extents and their
  // bytes (every reboot checks the volume still holds exactly these).
  std::vector<Extent> header_extents;
  std::vector<uint8_t> header_bytes;
  static const BaseImage& Get();
};

// Deliberate defects, so tests can show the checks catch them.
enum class Sabotage {
  kNone,
  kSwallowFlush,  // flushes below the filesystem are dropped (nothing commits)
  kCommitEveryWrite,  // the pool commits after every write the filesystem makes
};

struct RunOptions {
  int64_t cut_at = -1;  // mutating store op (0-based, from the start of the edits); -1: none
  CutMode mode = CutMode::kDropAll;
  uint64_t cut_seed = 0;
  // Also export the recovered filesystem and run e2fsck -fn, then write a
  // file through the recovered stack, commit, reboot, check and read it.
  bool e2fsck = false;
  // Unlock the recovered volume with the passphrase (else with the volume
  // key; the header area is compared byte for byte with the base's either
  // way, so the passphrase would open it as it opened the base).
  bool passphrase = true;
  Sabotage sabotage = Sabotage::kNone;
};

struct RunResult {
  bool ok = true;
  std::string error;          // the inconsistency (empty when ok)
  uint64_t mutating_ops = 0;  // mutating store ops of the whole workload (when not cut)
  bool cut = false;           // the power cut happened
  bool e2fsck_ran = false;
  bool journal_replayed = false;  // the exported copy needed e2fsck's journal replay
};

// Runs the workload on a copy of the base image, cutting the power as
// asked; reboots (pool, LUKS and ext4 reopened from what the store
// holds) and checks: pool Check() clean; the LUKS2 header area unchanged
// and (opts.passphrase) the passphrase unlocking the same volume key;
// the tree equals the model at the last completed commit, or at the commit
// in flight when the power went; with opts.e2fsck, e2fsck -fn is clean
// (after journal replay if the copy needs it) and the recovered stack
// takes a new file and keeps it across another reboot.
RunResult RunCase(const Workload& w, const RunOptions& opts);

}  // namespace stack::soak
