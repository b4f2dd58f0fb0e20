// Dump: a luksDump-like summary of a container, as a struct, text or JSON.
#include "fde/header_info.h"

#include <nlohmann/json.hpp>
#include <sstream>

#include "crypto.h"
#include "fde/luks.h"
#include "unlock.h"

namespace stack::fde {

using namespace internal;  // NOLINT

Result<HeaderInfo> Dump(BlockDevice& dev) {
  ASSIGN_OR_RETURN(ContainerKind kind, Probe(dev));
  HeaderInfo info;
  info.kind = kind;
  if (kind == ContainerKind::kLuks1) {
    ASSIGN_OR_RETURN(Luks1Header h, ReadLuks1Header(dev));
    info.version = 1;
    info.uuid = h.uuid;
    info.data_offset = uint64_t(h.payload_offset) * 512;
    info.sector_size = 512;
    info.cipher = h.cipher_name + "-" + h.cipher_mode;
    info.key_bytes = h.key_bytes;
    info.digest_hash = h.hash_spec;
    info.digest_iterations = h.mk_digest_iterations;
    for (size_t i = 0; i < kLuks1Slots; ++i) {
      const Luks1Slot& s = h.slots[i];
      if (s.active != kLuks1Active) continue;
      KeyslotInfo k;
      k.id = int(i);
      k.type = "luks1";
      k.usable = true;
      k.key_bytes = h.key_bytes;
      k.kdf = "pbkdf2";
      k.iterations = s.iterations;
      k.hash = h.hash_spec;
      k.af_hash = h.hash_spec;
      k.stripes = s.stripes;
      k.area_offset = uint64_t(s.key_material_offset) * 512;
      k.area_size = Luks1MaterialSectors(h.key_bytes, s.stripes) * 512;
      k.area_cipher = info.cipher;
      info.keyslots.push_back(k);
    }
    return info;
  }
  if (kind != ContainerKind::kLuks2) return Status::NotFound("no LUKS header on " + dev.describe());
  ASSIGN_OR_RETURN(Luks2Header h, ReadLuks2Header(dev));
  info.version = 2;
  info.uuid = h.bin.uuid;
  info.label = h.bin.label;
  info.subsystem = h.bin.subsystem;
  info.seqid = h.bin.seqid;
  info.hdr_size = h.bin.hdr_size;
  info.keyslots_size = h.md.keyslots_size;
  info.flags = h.md.flags;
  info.requirements = h.md.requirements;
  info.tokens = h.md.token_count;
  info.allow_discards =
      std::find(info.flags.begin(), info.flags.end(), "allow-discards") != info.flags.end();
  if (!h.primary_problem.empty()) info.warnings.push_back("primary header: " + h.primary_problem);
  if (!h.secondary_problem.empty()) {
    info.warnings.push_back("secondary header: " + h.secondary_problem);
  }
  if (!h.md.segments.empty()) {
    const Segment& s = h.md.segments.begin()->second;
    info.data_offset = s.offset;
    info.sector_size = s.sector_size;
    info.iv_tweak = s.iv_tweak;
    info.cipher = s.encryption;
  }
  if (!h.md.digests.empty()) {
    const Digest& d = h.md.digests.begin()->second;
    info.digest_hash = d.hash;
    info.digest_iterations = d.iterations;
  }
  for (const auto& [id, k] : h.md.keyslots) {
    KeyslotInfo ki;
    ki.id = id;
    ki.type = k.type;
    ki.usable = k.usable;
    ki.priority = k.priority;
    ki.key_bytes = k.key_size;
    ki.kdf = k.kdf.type;
    ki.time_cost = k.kdf.time;
    ki.memory_kib = k.kdf.memory_kib;
    ki.parallelism = k.kdf.cpus;
    ki.iterations = k.kdf.iterations;
    ki.hash = k.kdf.hash;
    ki.af_hash = k.af_hash;
    ki.stripes = k.stripes;
    ki.area_offset = k.area_offset;
    ki.area_size = k.area_size;
    ki.area_cipher = k.area_encryption;
    if (k.usable && info.key_bytes == 0) info.key_bytes = k.key_size;
    info.keyslots.push_back(ki);
  }
  return info;
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
