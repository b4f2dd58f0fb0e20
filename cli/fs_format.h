// Rendering of fsbridge values for the CLI (text and JSON) and parsing of
// the small argument types fs commands take (modes, owners, uuids).
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>

#include "block/status.h"
#include "fsbridge/types.h"

namespace stack::cli {

Result<fsbridge::MkfsOptions> MkfsOptionsFrom(const std::string& label, const std::string& uuid,
                                              uint32_t block_size, uint32_t inode_size,
                                              uint32_t inode_ratio, double reserved_ratio,
                                              std::optional<int64_t> timestamp);
// The fixed time for reproducible images: the --timestamp flag when given
// (>= 0), else $SOURCE_DATE_EPOCH, else none (use the clock).
std::optional<int64_t> ResolveTimestamp(int64_t flag);
// "8-4-4-4-12" hex to 16 bytes.
Result<std::array<uint8_t, 16>> ParseUuid(const std::string& text);
// Octal permission bits, at most 07777.
Result<uint32_t> ParseMode(const std::string& text);
// "UID" or "UID:GID" (numeric); gid UINT32_MAX when absent.
Result<std::pair<uint32_t, uint32_t>> ParseOwner(const std::string& text);

nlohmann::json InodeJson(const fsbridge::InodeInfo& st);
nlohmann::json DfJson(const fsbridge::DfInfo& df);
nlohmann::json StatsJson(const fsbridge::PopulateStats& s);
std::string StatsText(const fsbridge::PopulateStats& s);
std::string DfText(const fsbridge::DfInfo& df);
std::string StatText(const std::string& path, const fsbridge::InodeInfo& st);
// "drwxr-xr-x  2 0 0  4096 2024-01-01 00:00 name -> target"
std::string LongLine(const std::string& name, const fsbridge::InodeInfo& st);

}  // namespace stack::cli
