// Parsing and printing of sizes: "4096", "64K", "64KiB", "1.5G", "2T".
// Suffixes are binary (K = 1024). Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string>

#include "block/status.h"

namespace stack::cli {

Result<uint64_t> ParseSize(const std::string& text);
// "1.5 GiB", "512 B".
std::string FormatSize(uint64_t bytes);

}  // namespace stack::cli
