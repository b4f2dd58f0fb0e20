#include "luks2_metadata.h"

#include <algorithm>

#include "crypto.h"
#include "luks2_disk.h"

namespace stack::fde::internal {
namespace {

using json = nlohmann::json;

Status Bad(const std::string& what) { return Status::Corruption("LUKS2 metadata: " + what); }

Result<uint64_t> ParseU64String(const json& v, const std::string& what) {
  if (!v.is_string()) return Bad(what + " is not a string");
  const std::string& s = v.get_ref<const std::string&>();
  if (s.empty() || s.size() > 20) return Bad(what + " is not a decimal number");
  uint64_t r = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return Bad(what + " is not a decimal number");
    uint64_t d = uint64_t(c - '0');
    if (r > (UINT64_MAX - d) / 10) return Bad(what + " overflows");
    r = r * 10 + d;
  }
  return r;
}

Result<uint32_t> ParseU32(const json& obj, const char* key, const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end()) return Bad(where + "." + key + " missing");
  // Text parses non-negative integers as unsigned; documents built in memory
  // may hold signed ones.
  const bool non_negative =
      it->is_number_unsigned() || (it->is_number_integer() && it->get<int64_t>() >= 0);
  if (!non_negative) return Bad(where + "." + key + " is not an unsigned integer");
  uint64_t v = it->get<uint64_t>();
  if (v > UINT32_MAX) return Bad(where + "." + key + " out of range");
  return uint32_t(v);
}

Result<std::string> ParseString(const json& obj, const char* key, const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_string()) return Bad(where + "." + key + " missing or not a string");
  return it->get<std::string>();
}

// An optional string: empty when missing, Corruption when of another type
// (json::value() would throw there; a fuzzer found {"type": 1}).
Result<std::string> OptionalString(const json& obj, const char* key, const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end()) return std::string();
  if (!it->is_string()) return Bad(where + "." + key + " is not a string");
  return it->get<std::string>();
}

Result<std::vector<uint8_t>> ParseB64(const json& obj, const char* key, const std::string& where) {
  ASSIGN_OR_RETURN(std::string s, ParseString(obj, key, where));
  auto r = Base64Decode(s);
  if (!r.ok()) return Bad(where + "." + key + " is not valid base64");
  return r;
}

Result<int> ParseId(const std::string& key, const std::string& where, int max) {
  if (key.empty() || key.size() > 3) return Bad(where + " id '" + key + "' invalid");
  int v = 0;
  for (char c : key) {
    if (c < '0' || c > '9') return Bad(where + " id '" + key + "' invalid");
    v = v * 10 + (c - '0');
  }
  if (v >= max) return Bad(where + " id " + key + " out of range");
  return v;
}

Result<std::vector<int>> ParseIdArray(const json& obj, const char* key, const std::string& where,
                                      int max) {
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_array()) return Bad(where + "." + key + " is not an array");
  std::vector<int> out;
  for (const json& e : *it) {
    if (!e.is_string()) return Bad(where + "." + key + " holds a non-string");
    ASSIGN_OR_RETURN(int id, ParseId(e.get<std::string>(), where + "." + key, max));
    out.push_back(id);
  }
  return out;
}

Result<Kdf> ParseKdf(const json& k, const std::string& where) {
  if (!k.is_object()) return Bad(where + " is not an object");
  Kdf kdf;
  ASSIGN_OR_RETURN(kdf.type, ParseString(k, "type", where));
  ASSIGN_OR_RETURN(kdf.salt, ParseB64(k, "salt", where));
  if (kdf.type == "pbkdf2") {
    ASSIGN_OR_RETURN(kdf.hash, ParseString(k, "hash", where));
    ASSIGN_OR_RETURN(kdf.iterations, ParseU32(k, "iterations", where));
    if (HashSize(kdf.hash) == 0) return Bad(where + ": unsupported hash " + kdf.hash);
    if (kdf.iterations == 0 || kdf.iterations > kMaxPbkdf2Iterations) {
      return Bad(where + ": pbkdf2 iterations " + std::to_string(kdf.iterations) +
                 " out of range");
    }
  } else if (kdf.type == "argon2i" || kdf.type == "argon2id") {
    ASSIGN_OR_RETURN(kdf.time, ParseU32(k, "time", where));
    ASSIGN_OR_RETURN(kdf.memory_kib, ParseU32(k, "memory", where));
    ASSIGN_OR_RETURN(kdf.cpus, ParseU32(k, "cpus", where));
    if (kdf.time == 0 || kdf.time > kMaxArgon2Time) {
      return Bad(where + ": argon2 time " + std::to_string(kdf.time) + " out of range");
    }
    if (kdf.cpus == 0 || kdf.cpus > kMaxKdfThreads) {
      return Bad(where + ": argon2 cpus " + std::to_string(kdf.cpus) + " out of range");
    }
    if (kdf.memory_kib < 8 * kdf.cpus || kdf.memory_kib > kMaxArgon2MemoryKib) {
      return Bad(where + ": argon2 memory " + std::to_string(kdf.memory_kib) +
                 " KiB out of range");
    }
  } else {
    return Bad(where + ": unknown kdf type '" + kdf.type + "'");
  }
  if (kdf.salt.empty() || kdf.salt.size() > 256) return Bad(where + ": bad salt length");
  return kdf;
}

Result<Keyslot> ParseKeyslot(int id, const json& j, uint64_t hdr_size, uint64_t keyslots_size) {
  const std::string where = "keyslots." + std::to_string(id);
  if (!j.is_object()) return Bad(where + " is not an object");
  Keyslot k;
  k.id = id;
  ASSIGN_OR_RETURN(k.type, ParseString(j, "type", where));
  auto area = j.find("area");
  if (area == j.end() || !area->is_object()) return Bad(where + ".area missing");
  ASSIGN_OR_RETURN(k.area_offset, ParseU64String(area->value("offset", json()), where + ".area.offset"));
  ASSIGN_OR_RETURN(k.area_size, ParseU64String(area->value("size", json()), where + ".area.size"));
  const uint64_t lo = 2 * hdr_size, hi = 2 * hdr_size + keyslots_size;
  if (k.area_offset < lo || k.area_size > hi || k.area_offset > hi - k.area_size ||
      k.area_size == 0) {
    return Bad(where + ".area lies outside the keyslots area");
  }
  if (k.type != "luks2") return k;  // kept, never opened
  ASSIGN_OR_RETURN(k.key_size, ParseU32(j, "key_size", where));
  if (k.key_size == 0 || k.key_size > kMaxKeySize) return Bad(where + ".key_size out of range");
  if (j.contains("priority")) {
    ASSIGN_OR_RETURN(uint32_t p, ParseU32(j, "priority", where));
    if (p > 2) return Bad(where + ".priority out of range");
    k.priority = int(p);
  }
  // Well-formed but beyond this build (an algorithm we do not have): the
  // keyslot is kept, never tried, and the reason is reported (Unsupported
  // when no other keyslot can be tried). Malformed values stay Corruption.
  auto unusable = [&k](std::string why) -> Result<Keyslot> {
    k.usable = false;
    k.unusable_why = std::move(why);
    return k;
  };
  auto af = j.find("af");
  if (af == j.end() || !af->is_object()) return Bad(where + ".af missing");
  ASSIGN_OR_RETURN(std::string af_type, ParseString(*af, "type", where + ".af"));
  ASSIGN_OR_RETURN(k.stripes, ParseU32(*af, "stripes", where + ".af"));
  ASSIGN_OR_RETURN(k.af_hash, ParseString(*af, "hash", where + ".af"));
  if (k.stripes == 0 || k.stripes > 65536) return Bad(where + ".af.stripes out of range");
  ASSIGN_OR_RETURN(std::string area_type, ParseString(*area, "type", where + ".area"));
  ASSIGN_OR_RETURN(k.area_encryption, ParseString(*area, "encryption", where + ".area"));
  ASSIGN_OR_RETURN(k.area_key_size, ParseU32(*area, "key_size", where + ".area"));
  if (k.area_key_size == 0 || k.area_key_size > kMaxKeySize) {
    return Bad(where + ".area.key_size out of range");
  }
  if (uint64_t(k.key_size) * k.stripes > k.area_size) {
    return Bad(where + ".area too small for its key material");
  }
  auto kdf = j.find("kdf");
  if (kdf == j.end() || !kdf->is_object()) return Bad(where + ".kdf missing");
  if (af_type != "luks1") return unusable("af type " + af_type);
  if (HashSize(k.af_hash) == 0) return unusable("af hash " + k.af_hash);
  if (area_type != "raw") return unusable("area type " + area_type);
  ASSIGN_OR_RETURN(const std::string kdf_type, OptionalString(*kdf, "type", where + ".kdf"));
  if (kdf_type != "pbkdf2" && kdf_type != "argon2i" && kdf_type != "argon2id") {
    return unusable("kdf " + (kdf_type.empty() ? std::string("(none)") : kdf_type));
  }
  if (kdf_type == "pbkdf2") {
    ASSIGN_OR_RETURN(const std::string h, OptionalString(*kdf, "hash", where + ".kdf"));
    if (HashSize(h) == 0) return unusable("pbkdf2 hash " + h);
  }
  ASSIGN_OR_RETURN(k.kdf, ParseKdf(*kdf, where + ".kdf"));
  k.usable = true;
  return k;
}

Result<Segment> ParseSegment(int id, const json& j) {
  const std::string where = "segments." + std::to_string(id);
  if (!j.is_object()) return Bad(where + " is not an object");
  Segment s;
  s.id = id;
  ASSIGN_OR_RETURN(s.type, ParseString(j, "type", where));
  ASSIGN_OR_RETURN(s.offset, ParseU64String(j.value("offset", json()), where + ".offset"));
  auto size = j.find("size");
  if (size == j.end() || !size->is_string()) return Bad(where + ".size missing");
  if (size->get<std::string>() == "dynamic") {
    s.dynamic = true;
  } else {
    s.dynamic = false;
    ASSIGN_OR_RETURN(s.size, ParseU64String(*size, where + ".size"));
  }
  if (s.type != "crypt") return s;
  ASSIGN_OR_RETURN(s.iv_tweak, ParseU64String(j.value("iv_tweak", json()), where + ".iv_tweak"));
  ASSIGN_OR_RETURN(s.encryption, ParseString(j, "encryption", where));
  ASSIGN_OR_RETURN(s.sector_size, ParseU32(j, "sector_size", where));
  if (s.sector_size < 512 || s.sector_size > 4096 || (s.sector_size & (s.sector_size - 1))) {
    return Bad(where + ".sector_size " + std::to_string(s.sector_size) + " invalid");
  }
  if (s.offset % s.sector_size != 0) return Bad(where + ".offset not sector aligned");
  if (!s.dynamic && s.size % s.sector_size != 0) return Bad(where + ".size not sector aligned");
  return s;
}

Result<Digest> ParseDigest(int id, const json& j) {
  const std::string where = "digests." + std::to_string(id);
  if (!j.is_object()) return Bad(where + " is not an object");
  Digest d;
  d.id = id;
  ASSIGN_OR_RETURN(d.type, ParseString(j, "type", where));
  ASSIGN_OR_RETURN(d.keyslots, ParseIdArray(j, "keyslots", where, 32));
  ASSIGN_OR_RETURN(d.segments, ParseIdArray(j, "segments", where, 32));
  if (d.type != "pbkdf2") return Bad(where + ": digest type '" + d.type + "' unsupported");
  ASSIGN_OR_RETURN(d.hash, ParseString(j, "hash", where));
  ASSIGN_OR_RETURN(d.iterations, ParseU32(j, "iterations", where));
  ASSIGN_OR_RETURN(d.salt, ParseB64(j, "salt", where));
  ASSIGN_OR_RETURN(d.digest, ParseB64(j, "digest", where));
  if (HashSize(d.hash) == 0) return Bad(where + ": unsupported hash " + d.hash);
  if (d.iterations == 0 || d.iterations > kMaxPbkdf2Iterations) {
    return Bad(where + ": iterations out of range");
  }
  if (d.digest.empty() || d.digest.size() > 64 || d.salt.empty() || d.salt.size() > 256) {
    return Bad(where + ": bad digest or salt length");
  }
  return d;
}

}  // namespace

Status Reparse(Metadata* md, uint64_t hdr_size) {
  const json& doc = md->doc;
  if (!doc.is_object()) return Bad("top level is not an object");
  for (const char* key : {"keyslots", "tokens", "segments", "digests", "config"}) {
    auto it = doc.find(key);
    if (it == doc.end() || !it->is_object()) return Bad(std::string(key) + " missing");
  }
  const json& config = doc["config"];
  ASSIGN_OR_RETURN(md->json_size, ParseU64String(config.value("json_size", json()), "config.json_size"));
  ASSIGN_OR_RETURN(md->keyslots_size,
                   ParseU64String(config.value("keyslots_size", json()), "config.keyslots_size"));
  if (md->json_size != hdr_size - kLuks2BinarySize) {
    return Bad("config.json_size does not match hdr_size");
  }
  if (md->keyslots_size % 4096 != 0 || md->keyslots_size > (uint64_t(1) << 40)) {
    return Bad("config.keyslots_size invalid");
  }
  md->flags.clear();
  md->requirements.clear();
  if (auto f = config.find("flags"); f != config.end()) {
    if (!f->is_array()) return Bad("config.flags is not an array");
    for (const json& e : *f) {
      if (!e.is_string()) return Bad("config.flags holds a non-string");
      md->flags.push_back(e.get<std::string>());
    }
  }
  if (auto r = config.find("requirements"); r != config.end()) {
    if (!r->is_object()) return Bad("config.requirements is not an object");
    if (auto m = r->find("mandatory"); m != r->end()) {
      if (!m->is_array()) return Bad("config.requirements.mandatory is not an array");
      for (const json& e : *m) {
        if (!e.is_string()) return Bad("config.requirements.mandatory holds a non-string");
        md->requirements.push_back(e.get<std::string>());
      }
    }
  }
  md->keyslots.clear();
  md->segments.clear();
  md->digests.clear();
  for (auto it = doc["keyslots"].begin(); it != doc["keyslots"].end(); ++it) {
    ASSIGN_OR_RETURN(int id, ParseId(it.key(), "keyslots", 32));
    ASSIGN_OR_RETURN(Keyslot k, ParseKeyslot(id, it.value(), hdr_size, md->keyslots_size));
    md->keyslots[id] = std::move(k);
  }
  // Areas must not overlap.
  std::vector<std::pair<uint64_t, uint64_t>> areas;
  for (const auto& [id, k] : md->keyslots) areas.emplace_back(k.area_offset, k.area_size);
  std::sort(areas.begin(), areas.end());
  for (size_t i = 1; i < areas.size(); ++i) {
    if (areas[i - 1].first + areas[i - 1].second > areas[i].first) {
      return Bad("keyslot areas overlap");
    }
  }
  for (auto it = doc["segments"].begin(); it != doc["segments"].end(); ++it) {
    ASSIGN_OR_RETURN(int id, ParseId(it.key(), "segments", 32));
    ASSIGN_OR_RETURN(Segment s, ParseSegment(id, it.value()));
    if (s.offset < 2 * hdr_size + md->keyslots_size) {
      return Bad("segment " + std::to_string(id) + " overlaps the header or keyslots area");
    }
    md->segments[id] = std::move(s);
  }
  for (auto it = doc["digests"].begin(); it != doc["digests"].end(); ++it) {
    ASSIGN_OR_RETURN(int id, ParseId(it.key(), "digests", 32));
    ASSIGN_OR_RETURN(Digest d, ParseDigest(id, it.value()));
    for (int k : d.keyslots) {
      if (!md->keyslots.count(k)) return Bad("digest references a missing keyslot");
    }
    for (int s : d.segments) {
      if (!md->segments.count(s)) return Bad("digest references a missing segment");
    }
    md->digests[id] = std::move(d);
  }
  md->token_count = doc["tokens"].size();
  return Status::Ok();
}

Result<Metadata> ParseMetadata(std::string_view text, uint64_t hdr_size) {
  Metadata md;
  md.doc = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (md.doc.is_discarded()) return Bad("JSON does not parse");
  // The parse above cannot throw; the checks below are written not to
  // either, and a json::exception one of them still raises on hostile
  // input is a refused header, not a crash.
  try {
    RETURN_IF_ERROR(Reparse(&md, hdr_size));
  } catch (const json::exception& e) {
    return Bad(std::string("unexpected JSON shape (") + e.what() + ")");
  }
  return md;
}

std::string SerializeMetadata(const Metadata& md) {
  return md.doc.dump(-1, ' ', false, json::error_handler_t::replace);
}

json KeyslotToJson(const Keyslot& k) {
  json kdf = {{"type", k.kdf.type}, {"salt", Base64Encode(k.kdf.salt)}};
  if (k.kdf.type == "pbkdf2") {
    kdf["hash"] = k.kdf.hash;
    kdf["iterations"] = k.kdf.iterations;
  } else {
    kdf["time"] = k.kdf.time;
    kdf["memory"] = k.kdf.memory_kib;
    kdf["cpus"] = k.kdf.cpus;
  }
  json j = {
      {"type", "luks2"},
      {"key_size", k.key_size},
      {"af", {{"type", "luks1"}, {"stripes", k.stripes}, {"hash", k.af_hash}}},
      {"area",
       {{"type", "raw"},
        {"offset", std::to_string(k.area_offset)},
        {"size", std::to_string(k.area_size)},
        {"encryption", k.area_encryption},
        {"key_size", k.area_key_size}}},
      {"kdf", kdf},
  };
  if (k.priority != 1) j["priority"] = uint32_t(k.priority);
  return j;
}

json SegmentToJson(const Segment& s) {
  return {{"type", "crypt"},
          {"offset", std::to_string(s.offset)},
          {"size", s.dynamic ? std::string("dynamic") : std::to_string(s.size)},
          {"iv_tweak", std::to_string(s.iv_tweak)},
          {"encryption", s.encryption},
          {"sector_size", s.sector_size}};
}

json DigestToJson(const Digest& d) {
  json ks = json::array(), seg = json::array();
  for (int k : d.keyslots) ks.push_back(std::to_string(k));
  for (int s : d.segments) seg.push_back(std::to_string(s));
  return {{"type", "pbkdf2"},        {"keyslots", ks},
          {"segments", seg},         {"hash", d.hash},
          {"iterations", d.iterations}, {"salt", Base64Encode(d.salt)},
          {"digest", Base64Encode(d.digest)}};
}

std::string Base64Encode(std::span<const uint8_t> in) {
  static const char* kAlpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    uint32_t v = (uint32_t(in[i]) << 16) | (uint32_t(in[i + 1]) << 8) | in[i + 2];
    for (int s = 18; s >= 0; s -= 6) out.push_back(kAlpha[(v >> s) & 63]);
  }
  if (size_t rest = in.size() - i; rest > 0) {
    uint32_t v = uint32_t(in[i]) << 16;
    if (rest == 2) v |= uint32_t(in[i + 1]) << 8;
    out.push_back(kAlpha[(v >> 18) & 63]);
    out.push_back(kAlpha[(v >> 12) & 63]);
    out.push_back(rest == 2 ? kAlpha[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

Result<std::vector<uint8_t>> Base64Decode(std::string_view in) {
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  if (in.size() % 4 != 0) return Status::InvalidArgument("base64 length");
  std::vector<uint8_t> out;
  out.reserve(in.size() / 4 * 3);
  for (size_t i = 0; i < in.size(); i += 4) {
    int pad = 0;
    uint32_t v = 0;
    for (size_t k = 0; k < 4; ++k) {
      char c = in[i + k];
      if (c == '=' && i + 4 == in.size() && k >= 2) {
        ++pad;
        v <<= 6;
        continue;
      }
      int x = val(c);
      if (x < 0 || pad > 0) return Status::InvalidArgument("base64 character");
      v = (v << 6) | uint32_t(x);
    }
    out.push_back(uint8_t(v >> 16));
    if (pad < 2) out.push_back(uint8_t(v >> 8));
    if (pad < 1) out.push_back(uint8_t(v));
  }
  return out;
}

}  // namespace stack::fde::internal
