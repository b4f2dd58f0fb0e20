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
#include "fde/luks.h"

namespace stack::cli {

using stack::EscapeText;  // the one escaping rule (block/text.h)

// Prints a JSON document (pretty, one trailing newline) on stdout.
void PrintJson(const nlohmann::json& doc);

// Prints rows as a left-aligned table with a header line (cells escaped).
void PrintTable(const std::vector<std::string>& header,
                const std::vector<std::vector<std::string>>& rows);

// "stack: <Code>: <message>" on stderr, the message escaped: one line.
void PrintError(const Status& st);

// A failed command: PrintError, and with --json also
// {"error": {"code": "<Code>", "message": "..."}} on stdout, unless the
// command already printed its document there (pool check's report comes
// with its Corruption status: stdout stays one JSON document).
void ReportError(const Status& st, bool json);

// Whether the running command has written on stdout (a document, a table,
// or raw data such as `fs cat`). RunCli resets it before each command and,
// with --json, prints the command's "what I did" object only when nothing
// was written. Per thread: a forwarded command runs in the control
// server's worker beside the holder's own command.
void ResetCommandOutput();  // also forgets the KDF choices below
void NoteStdoutUsed();      // for commands that write raw data on stdout
bool StdoutUsed();
// Once per process, before any command: std::cout notes every write in
// StdoutUsed (so a command printing with std::cout needs no NoteStdoutUsed).
void TrackStdout();

// A benchmarked keyslot KDF of the running command (fde::KdfChoice):
// printed on stderr at once, with a warning when the benchmark hit its
// floor or lowered the memory, and added as "kdf" (an array) to the JSON
// object the command prints, so a pipeline sees what its keyslots got.
void ReportKdfChoice(const fde::KdfChoice& choice);

}  // namespace stack::cli
