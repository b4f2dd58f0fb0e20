// TableEntry: one volume or snapshot of the pool, and its on-disk record
// (spec/pool-format.md, "Entry records"). The records live in the entry
// tree (entry_table.h), cut into 16-byte pieces.
// Thread-safety: pure functions.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "block/status.h"

namespace stack::pool {

struct TableEntry {
  uint64_t id = 0;
  bool snapshot = false;
  bool read_only = false;
  std::string name;
  std::array<uint8_t, 16> uuid{};
  std::array<uint8_t, 16> parent{};  // all zero: none
  uint64_t created_ns = 0;
  uint64_t size_bytes = 0;
  uint64_t root = 0;  // btree root block, 0 = empty
  uint64_t mapped_blocks = 0;
  std::string note;
  std::vector<std::string> tags;
};

constexpr size_t kMaxNameLen = 255;
constexpr size_t kMaxNoteLen = 4096;
constexpr size_t kMaxTags = 64;
constexpr size_t kMaxTagLen = 255;

// Fixed part of a record: the bytes besides name, note and tags.
constexpr size_t kRecordFixedBytes = 4 + 82;
// Largest record the limits above allow.
constexpr size_t kMaxRecordBytes =
    kRecordFixedBytes + kMaxNameLen + kMaxNoteLen + kMaxTags * (2 + kMaxTagLen);

// Size of e's record in bytes.
size_t RecordBytes(const TableEntry& e);
// The record: u32 length of what follows, then the fields.
std::vector<uint8_t> EncodeRecord(const TableEntry& e);
// Parses and bounds-checks every field of one record (trailing bytes after
// the length are padding and must be zero); Corruption on any
// inconsistency. nr_blocks bounds the tree root.
Result<TableEntry> DecodeRecord(std::span<const uint8_t> rec, uint64_t nr_blocks);

}  // namespace stack::pool
