// Output helpers shared by the commands: JSON documents on stdout, aligned
// human tables, and the one-line error format on stderr.
//
// Names come from users and from file systems: any bytes. Text output shows
// them through EscapeText (errors stay one line, a terminal gets no control
// sequences); JSON output stays valid JSON (control bytes are JSON escapes,
// bytes that are not UTF-8 become U+FFFD).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "block/status.h"
#include "block/text.h"

namespace stack::cli {

using stack::EscapeText;  // the one escaping rule (block/text.h)

// Prints a JSON document (pretty, one trailing newline) on stdout.
void PrintJson(const nlohmann::json& doc);

// Prints rows as a left-aligned table with a header line (cells escaped).
void PrintTable(const std::vector<std::string>& header,
                const std::vector<std::vector<std::string>>& rows);

// "stack: <Code>: <message>" on stderr, the message escaped: one line.
void PrintError(const Status& st);

}  // namespace stack::cli
