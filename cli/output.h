// Output helpers shared by the commands: JSON documents on stdout, aligned
// human tables, and the one-line error format on stderr.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "block/status.h"

namespace stack::cli {

// Prints a JSON document (pretty, one trailing newline) on stdout.
void PrintJson(const nlohmann::json& doc);

// Prints rows as a left-aligned table with a header line.
void PrintTable(const std::vector<std::string>& header,
                const std::vector<std::vector<std::string>>& rows);

// "stack: <Code>: <message>" on stderr.
void PrintError(const Status& st);

}  // namespace stack::cli
