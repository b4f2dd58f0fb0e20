#include "luks2_header.h"

#include <cstring>
#include <functional>

#include "byte_io.h"
#include "crypto.h"

namespace stack::fde::internal {
namespace {

using Reader = std::function<Status(uint64_t, std::span<uint8_t>)>;

struct Copy {
  Status status;  // OK, Corruption (with why) or an I/O error
  Luks2Binary bin;
  Metadata md;
};

Copy ReadCopy(const Reader& read, uint64_t size, uint64_t at) {
  Copy c;
  if (at + kLuks2BinarySize > size) {
    c.status = Status::Corruption("device too small for a header at " + std::to_string(at));
    return c;
  }
  std::vector<uint8_t> bin(kLuks2BinarySize);
  if (Status s = read(at, bin); !s.ok()) {
    c.status = s;
    return c;
  }
  auto decoded = DecodeLuks2Binary(bin, at);
  if (!decoded.ok()) {
    c.status = decoded.status();
    return c;
  }
  c.bin = *decoded;
  if (at + c.bin.hdr_size > size) {
    c.status = Status::Corruption("header area runs past the end of the device");
    return c;
  }
  std::vector<uint8_t> area(c.bin.hdr_size);
  std::memcpy(area.data(), bin.data(), kLuks2BinarySize);
  if (Status s = read(at + kLuks2BinarySize, std::span(area).subspan(kLuks2BinarySize)); !s.ok()) {
    c.status = s;
    return c;
  }
  std::array<uint8_t, kLuks2CsumLen> csum;
  if (Status s = Luks2Checksum(c.bin.csum_alg, area, &csum); !s.ok()) {
    c.status = s;
    return c;
  }
  if (!ConstantTimeEqual(csum, c.bin.csum)) {
    c.status = Status::Corruption("checksum mismatch");
    return c;
  }
  const char* json = reinterpret_cast<const char*>(area.data() + kLuks2BinarySize);
  const size_t json_area = c.bin.hdr_size - kLuks2BinarySize;
  const size_t len = strnlen(json, json_area);
  if (len == json_area) {
    c.status = Status::Corruption("JSON area is not NUL-terminated");
    return c;
  }
  auto md = ParseMetadata(std::string_view(json, len), c.bin.hdr_size);
  if (!md.ok()) {
    c.status = md.status();
    return c;
  }
  c.md = std::move(*md);
  return c;
}

std::string Why(const Status& s) { return s.message(); }

Result<Luks2Header> ReadBoth(const Reader& read, uint64_t size) {
  Copy p = ReadCopy(read, size, 0);
  if (p.status.Is(Code::kIoError)) return p.status.WithContext("reading LUKS2 primary header");
  Copy s;
  if (p.status.ok()) {
    s = ReadCopy(read, size, p.bin.hdr_size);
    if (!s.status.ok()) {
      s.status = Status(s.status.code(), "at " + std::to_string(p.bin.hdr_size) + ": " +
                                             s.status.message());
    }
  } else {
    // The primary's hdr_size is unknown: try every legal place. Report what
    // was found at each (a copy with the secondary magic first: that is
    // the one that was meant).
    std::string with_magic, without_magic;  // reasons; offsets
    bool found = false;
    for (uint64_t cand : Luks2SecondaryCandidates()) {
      if (cand + kLuks2BinarySize > size) break;
      Copy c = ReadCopy(read, size, cand);
      if (c.status.Is(Code::kIoError) || c.status.ok()) {
        s = std::move(c);
        found = true;
        break;
      }
      if (c.status.message().rfind("no LUKS2 magic", 0) == 0) {
        without_magic += (without_magic.empty() ? "" : ", ") + std::to_string(cand);
      } else {
        with_magic += std::string(with_magic.empty() ? "" : "; ") + "at " + std::to_string(cand) + ": " +
                      c.status.message();
      }
    }
    if (!found) {
      s.status = Status::Corruption(
          with_magic.empty() ? "not found: no LUKS2 magic at any legal offset (" + without_magic + ")"
                             : with_magic);
    }
  }
  if (s.status.Is(Code::kIoError)) return s.status.WithContext("reading LUKS2 secondary header");
  Luks2Header h;
  if (p.status.ok() && s.status.ok()) {
    if (p.bin.hdr_size != s.bin.hdr_size) {
      s.status = Status::Corruption("hdr_size differs from the primary");
    } else if (s.bin.seqid < p.bin.seqid) {
      h.secondary_problem = "stale (seqid " + std::to_string(s.bin.seqid) + " < " +
                            std::to_string(p.bin.seqid) + ")";
    } else if (p.bin.seqid < s.bin.seqid) {
      h.primary_problem = "stale (seqid " + std::to_string(p.bin.seqid) + " < " +
                          std::to_string(s.bin.seqid) + ")";
      h.bin = s.bin;
      h.md = std::move(s.md);
    }
    if (s.status.ok() && h.primary_problem.empty()) {
      h.bin = p.bin;
      h.md = std::move(p.md);
    }
  }
  if (!p.status.ok() && !s.status.ok()) {
    return Status::Corruption("both LUKS2 header copies are invalid (primary at 0: " +
                              Why(p.status) + "; secondary " + Why(s.status) + ")");
  }
  if (!p.status.ok()) {
    h.primary_problem = Why(p.status);
    h.bin = s.bin;
    h.md = std::move(s.md);
  } else if (!s.status.ok()) {
    h.secondary_problem = Why(s.status);
    h.bin = p.bin;
    h.md = std::move(p.md);
  }
  h.bin.secondary = false;
  h.bin.hdr_offset = 0;
  return h;
}

}  // namespace

Result<Luks2Header> ReadLuks2Header(BlockDevice& dev) {
  Reader r = [&dev](uint64_t off, std::span<uint8_t> out) { return ReadAt(dev, off, out); };
  return ReadBoth(r, dev.size_bytes());
}

Result<Luks2Header> ParseLuks2Image(std::span<const uint8_t> image) {
  Reader r = [image](uint64_t off, std::span<uint8_t> out) {
    if (off > image.size() || out.size() > image.size() - off) {
      return Status::Corruption("image truncated");
    }
    std::memcpy(out.data(), image.data() + off, out.size());
    return Status::Ok();
  };
  return ReadBoth(r, image.size());
}

Status EncodeLuks2Copy(const Luks2Header& hdr, bool secondary, std::vector<uint8_t>* out) {
  const std::string text = SerializeMetadata(hdr.md);
  if (text.size() + 1 > hdr.bin.hdr_size - kLuks2BinarySize) {
    return Status::NoSpace("LUKS2 JSON metadata (" + std::to_string(text.size()) +
                           " bytes) does not fit the JSON area");
  }
  out->assign(hdr.bin.hdr_size, 0);
  Luks2Binary b = hdr.bin;
  b.secondary = secondary;
  b.hdr_offset = secondary ? b.hdr_size : 0;
  RandomFill(b.salt);
  b.csum.fill(0);
  RETURN_IF_ERROR(EncodeLuks2Binary(b, *out));
  std::memcpy(out->data() + kLuks2BinarySize, text.data(), text.size());
  RETURN_IF_ERROR(Luks2Checksum(b.csum_alg, *out, &b.csum));
  return EncodeLuks2Binary(b, *out);
}

Status WriteLuks2Header(BlockDevice& dev, Luks2Header* hdr) {
  RETURN_IF_ERROR(Reparse(&hdr->md, hdr->bin.hdr_size));  // never write what we cannot read
  hdr->bin.seqid += 1;
  std::vector<uint8_t> primary, secondary;
  RETURN_IF_ERROR(EncodeLuks2Copy(*hdr, false, &primary));
  RETURN_IF_ERROR(EncodeLuks2Copy(*hdr, true, &secondary));
  RETURN_IF_ERROR(WriteAt(dev, 0, primary));
  RETURN_IF_ERROR(dev.Flush());
  RETURN_IF_ERROR(WriteAt(dev, hdr->bin.hdr_size, secondary));
  RETURN_IF_ERROR(dev.Flush());
  hdr->primary_problem.clear();
  hdr->secondary_problem.clear();
  return Status::Ok();
}

}  // namespace stack::fde::internal
