// Dump: a luksDump-like summary of a container, as a struct, text or JSON.
#include "fde/header_info.h"

#include <nlohmann/json.hpp>
#include <sstream>

#include "fde/container.h"

namespace stack::fde {

Result<HeaderInfo> Dump(BlockDevice& dev) {
  ASSIGN_OR_RETURN(auto c, Container::Read(dev));
  return c->Info();
}

std::string DumpText(const HeaderInfo& i) {
  std::ostringstream o;
  o << "LUKS header information\n";
  o << "Version:       " << i.version << "\n";
  if (i.version == 2) o << "Epoch:         " << i.seqid << "\n";
  o << "UUID:          " << i.uuid << "\n";
  if (i.version == 2) {
    o << "Label:         " << (i.label.empty() ? "(no label)" : i.label) << "\n";
    o << "Subsystem:     " << (i.subsystem.empty() ? "(no subsystem)" : i.subsystem) << "\n";
    o << "Metadata area: " << i.hdr_size << " [bytes]\n";
    o << "Keyslots area: " << i.keyslots_size << " [bytes]\n";
    o << "Flags:         ";
    if (i.flags.empty()) o << "(no flags)";
    for (const auto& f : i.flags) o << f << " ";
    o << "\n";
    if (!i.requirements.empty()) {
      o << "Requirements:  ";
      for (const auto& r : i.requirements) o << r << " ";
      o << "\n";
    }
  }
  o << "Data offset:   " << i.data_offset << " [bytes]\n";
  o << "Sector size:   " << i.sector_size << " [bytes]\n";
  o << "Cipher:        " << i.cipher << "\n";
  o << "Key:           " << i.key_bytes * 8 << " bits\n";
  o << "Digest:        pbkdf2 " << i.digest_hash << ", " << i.digest_iterations
    << " iterations\n";
  o << "Keyslots:\n";
  for (const auto& k : i.keyslots) {
    o << "  " << k.id << ": " << k.type << (k.usable ? "" : " (not usable here)") << "\n";
    if (!k.usable) continue;
    o << "\tPBKDF:      " << k.kdf << "\n";
    if (k.kdf == "pbkdf2") {
      o << "\tHash:       " << k.hash << "\n\tIterations: " << k.iterations << "\n";
    } else {
      o << "\tTime cost:  " << k.time_cost << "\n\tMemory:     " << k.memory_kib
        << "\n\tThreads:    " << k.parallelism << "\n";
    }
    o << "\tPriority:   " << k.priority << "\n";
    o << "\tArea:       " << k.area_offset << " +" << k.area_size << " [bytes]\n";
  }
  if (i.version == 2) o << "Tokens:        " << i.tokens << "\n";
  for (const auto& w : i.warnings) o << "WARNING: " << w << "\n";
  return o.str();
}

std::string DumpJson(const HeaderInfo& i) {
  using json = nlohmann::json;
  json ks = json::array();
  for (const auto& k : i.keyslots) {
    json j = {{"id", k.id},           {"type", k.type},           {"usable", k.usable},
              {"priority", k.priority}, {"key_bits", k.key_bytes * 8}, {"kdf", k.kdf},
              {"af_hash", k.af_hash}, {"stripes", k.stripes},     {"area_offset", k.area_offset},
              {"area_size", k.area_size}, {"area_cipher", k.area_cipher}};
    if (k.kdf == "pbkdf2") {
      j["hash"] = k.hash;
      j["iterations"] = k.iterations;
    } else {
      j["time_cost"] = k.time_cost;
      j["memory_kib"] = k.memory_kib;
      j["parallelism"] = k.parallelism;
    }
    ks.push_back(j);
  }
  json j = {{"kind", std::string(ContainerKindName(i.kind))},
            {"version", i.version},
            {"uuid", i.uuid},
            {"label", i.label},
            {"subsystem", i.subsystem},
            {"seqid", i.seqid},
            {"hdr_size", i.hdr_size},
            {"keyslots_size", i.keyslots_size},
            {"data_offset", i.data_offset},
            {"sector_size", i.sector_size},
            {"iv_tweak", i.iv_tweak},
            {"cipher", i.cipher},
            {"key_bits", i.key_bytes * 8},
            {"allow_discards", i.allow_discards},
            {"flags", i.flags},
            {"requirements", i.requirements},
            {"digest", {{"type", "pbkdf2"}, {"hash", i.digest_hash}, {"iterations", i.digest_iterations}}},
            {"keyslots", ks},
            {"tokens", i.tokens},
            {"warnings", i.warnings}};
  return j.dump(2, ' ', false, json::error_handler_t::replace);
}

}  // namespace stack::fde
