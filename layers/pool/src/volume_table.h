// VolumeTable: the list of volumes and snapshots (one flat namespace) and
// its serialised form, stored as a chain of kTable blocks
// (spec/pool-format.md, "Volume table").
//
// The table is small (a few hundred bytes per entry) and held in memory;
// it is rewritten as a whole at every commit that changed it. Entries are
// kept in creation order (ascending id).
// Thread-safety: none.
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

std::vector<uint8_t> EncodeTable(const std::vector<TableEntry>& entries);
// Parses and bounds-checks every field; Corruption on any inconsistency.
Result<std::vector<TableEntry>> DecodeTable(std::span<const uint8_t> blob, uint64_t nr_blocks);

// Payload bytes a table block carries.
inline size_t TableBlockPayload(uint32_t block_size) { return block_size - 48; }

}  // namespace stack::pool
