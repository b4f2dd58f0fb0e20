// Addressing: how every command names what it works on.
//
// A pool is a file; inside it, entries are named like ZFS datasets:
//   VOLUME              a writable volume (clones are volumes too)
//   VOLUME@SNAPSHOT     a read-only snapshot taken of VOLUME
// The pool file comes from --pool FILE (or $STACK_POOL). Names use
// [A-Za-z0-9._:+-], 1..128 bytes, and may not start with '.' or '-'.
// A snapshot keeps its full name even if its volume is later deleted.
//
// Thread-safety: pure values and functions.
#pragma once

#include <optional>
#include <string>

#include "block/status.h"

namespace stack::compose {

struct EntryAddress {
  std::string volume;
  std::optional<std::string> snapshot;
  bool is_snapshot() const { return snapshot.has_value(); }
  // "vol" or "vol@snap": the entry's name in the pool.
  std::string name() const { return snapshot ? volume + "@" + *snapshot : volume; }
};

// Parses "vol" or "vol@snap"; InvalidArgument naming the bad part otherwise.
Result<EntryAddress> ParseEntryAddress(const std::string& text);
// Validates one name component (volume or snapshot).
Status ValidateName(const std::string& name, const char* what);

}  // namespace stack::compose
