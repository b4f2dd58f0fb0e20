// Rendering of pool values for the CLI (tables and JSON).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "pool/pool.h"
#include "stack/send.h"

namespace stack::cli {

nlohmann::json EntryJson(const pool::EntryInfo& e);
nlohmann::json PoolInfoJson(const pool::PoolInfo& i);
void PrintEntries(const std::vector<pool::EntryInfo>& entries, bool json);
std::string TimeNsText(int64_t unix_ns);
// Partial receives (stack/send.h): where each stopped and its resume token.
nlohmann::json PartialReceiveJson(const compose::PartialReceive& r);
void PrintPartialReceives(const std::vector<compose::PartialReceive>& partials);

}  // namespace stack::cli
