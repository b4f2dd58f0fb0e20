#include "pool_format.h"

#include <ctime>
#include <iostream>

#include "output.h"
#include "stack/oci_image.h"
#include "units.h"

namespace stack::cli {

std::string TimeNsText(int64_t unix_ns) {
  std::time_t t = static_cast<std::time_t>(unix_ns / 1000000000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

nlohmann::json EntryJson(const pool::EntryInfo& e) {
  nlohmann::json j = {{"name", e.name},
                      {"uuid", e.uuid},
                      {"kind", e.kind == pool::EntryKind::kSnapshot ? "snapshot" : "volume"},
                      {"size_bytes", e.size_bytes},
                      {"created", TimeNsText(e.created_unix_ns)},
                      {"created_unix_ns", e.created_unix_ns},
                      {"parent_uuid", e.parent_uuid},
                      {"note", e.note},
                      {"tags", e.tags},
                      {"read_only", e.read_only},
                      {"mapped_bytes", e.mapped_bytes},
                      {"exclusive_bytes", e.exclusive_bytes},
                      {"shared_bytes", e.shared_bytes}};
  // An entry built from a container image: its digest and runtime config,
  // kept in oci.* tags (spec/oci.md "Metadata"), as one object.
  const std::string oci = compose::oci::MetadataJson(e.tags);
  if (!oci.empty()) j["image"] = nlohmann::json::parse(oci);
  return j;
}

nlohmann::json PoolInfoJson(const pool::PoolInfo& i) {
  return {{"uuid", i.uuid},
          {"block_size", i.block_size},
          {"size_bytes", i.size_bytes},
          {"max_bytes", i.max_bytes},
          {"used_bytes", i.used_bytes},
          {"free_bytes", i.free_bytes},
          {"reserved_bytes", i.reserved_bytes},
          {"generation", i.generation},
          {"entries", i.entries},
          {"cache_bytes", i.cache_bytes}};
}

void PrintEntries(const std::vector<pool::EntryInfo>& entries, bool json) {
  if (json) {
    nlohmann::json arr = nlohmann::json::array();
    for (auto& e : entries) arr.push_back(EntryJson(e));
    PrintJson(arr);
    return;
  }
  std::vector<std::vector<std::string>> rows;
  for (auto& e : entries) {
    std::string tags;
    for (auto& t : e.tags) tags += (tags.empty() ? "" : ",") + t;
    rows.push_back({e.name, e.kind == pool::EntryKind::kSnapshot ? "snapshot" : "volume",
                    FormatSize(e.size_bytes), FormatSize(e.mapped_bytes),
                    FormatSize(e.exclusive_bytes), FormatSize(e.shared_bytes),
                    e.read_only ? "ro" : "rw", TimeNsText(e.created_unix_ns), tags, e.note});
  }
  PrintTable({"NAME", "KIND", "SIZE", "MAPPED", "EXCLUSIVE", "SHARED", "MODE", "CREATED", "TAGS",
              "NOTE"},
             rows);
}

const char* StageText(compose::PartialReceive::Stage s) {
  switch (s) {
    case compose::PartialReceive::Stage::kComplete: return "complete";
    case compose::PartialReceive::Stage::kPublished: return "published";
    case compose::PartialReceive::Stage::kReceiving: break;
  }
  return "receiving";
}

nlohmann::json PartialReceiveJson(const compose::PartialReceive& r) {
  return {{"volume", r.volume},
          {"state", StageText(r.stage)},
          {"snapshot", r.snapshot},
          {"snapshot_uuid", r.snapshot_uuid},
          {"base_uuid", compose::FormatUuidText(r.point.base_uuid)},
          {"size_bytes", r.size_bytes},
          {"received_to", r.point.offset},
          {"records", r.point.records},
          {"written_bytes", r.point.written_bytes},
          {"resume_token", r.token}};
}

void PrintPartialReceives(const std::vector<compose::PartialReceive>& partials) {
  using Stage = compose::PartialReceive::Stage;
  for (auto& r : partials) {
    const std::string uuid = r.snapshot_uuid.empty() ? "unknown" : r.snapshot_uuid;
    // A receive a kill cut short in its publication: its data are complete
    // and checked, so "received to 0 B" (an old token) would mislead.
    if (r.stage == Stage::kComplete) {
      std::cout << "interrupted receive into " << r.volume << " (snapshot uuid " << uuid
                << "): complete and checked, not yet published as " << r.snapshot << "\n"
                << "  the next receive into this pool publishes it; stack receive --abort "
                << r.volume << (r.abort_publishes ? " publishes it too (" + r.volume +
                                                        " already holds its content)\n"
                                                  : " drops it\n");
      continue;
    }
    if (r.stage == Stage::kPublished) {
      std::cout << "interrupted receive into " << r.volume << " (snapshot uuid " << uuid
                << "): published as " << r.snapshot << "; hidden leftovers remain\n"
                << "  the next receive into this pool or stack receive --abort " << r.volume
                << " removes them\n";
      continue;
    }
    std::cout << "partial receive into " << r.volume << " (snapshot uuid " << uuid
              << "): received to " << FormatSize(r.point.offset) << " of "
              << FormatSize(r.size_bytes) << "\n";
    if (r.token.empty())
      std::cout << "  no resume token (stack receive --abort " << r.volume << " drops it)\n";
    else
      std::cout << "  resume: stack send --resume " << r.token << "\n";
  }
}

}  // namespace stack::cli
