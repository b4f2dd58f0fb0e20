// Rendering of pool values for the CLI (tables and JSON).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "pool/pool.h"

namespace stack::cli {

nlohmann::json EntryJson(const pool::EntryInfo& e);
nlohmann::json PoolInfoJson(const pool::PoolInfo& i);
void PrintEntries(const std::vector<pool::EntryInfo>& entries, bool json);
std::string TimeNsText(int64_t unix_ns);

}  // namespace stack::cli
