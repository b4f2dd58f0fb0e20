#include "af_split.h"

#include <vector>

#include "block/endian.h"
#include "crypto.h"

namespace stack::fde::internal {
namespace {

// scratch: at least HashSize(hash) bytes. The digests are the diffused AF
// state (the key once XORed with the last stripe): a Secret, not the stack.
Status Diffuse(std::span<uint8_t> block, std::string_view hash, Secret& scratch) {
  const size_t ds = HashSize(hash);
  if (ds == 0) return Status::Unsupported("AF hash " + std::string(hash));
  if (scratch.size() < ds) return Status::Internal("AF scratch size");
  std::span<uint8_t> digest = scratch.mutable_bytes().first(ds);
  uint8_t counter[4];
  for (size_t j = 0, off = 0; off < block.size(); ++j, off += ds) {
    const size_t len = std::min(ds, block.size() - off);
    PutBE32(counter, uint32_t(j));
    RETURN_IF_ERROR(Hash(hash, {counter, block.subspan(off, len)}, digest));
    std::copy(digest.begin(), digest.begin() + long(len), block.begin() + long(off));
  }
  return Status::Ok();
}

}  // namespace

Status AfSplit(std::span<const uint8_t> key, uint32_t stripes, std::string_view hash,
               std::span<uint8_t> out) {
  const size_t n = key.size();
  if (stripes == 0 || out.size() != n * stripes) return Status::Internal("AF split size");
  ASSIGN_OR_RETURN(Secret acc, Secret::Zeroed(n));
  ASSIGN_OR_RETURN(Secret scratch, Secret::Zeroed(64));
  RandomFill(out.subspan(0, n * (stripes - 1)));
  for (uint32_t i = 0; i + 1 < stripes; ++i) {
    for (size_t k = 0; k < n; ++k) acc.data()[k] ^= out[i * n + k];
    RETURN_IF_ERROR(Diffuse(acc.mutable_bytes(), hash, scratch));
  }
  for (size_t k = 0; k < n; ++k) out[(stripes - 1) * n + k] = acc.data()[k] ^ key[k];
  return Status::Ok();
}

Status AfMerge(std::span<const uint8_t> in, uint32_t stripes, std::string_view hash,
               Secret* key) {
  const size_t n = key->size();
  if (stripes == 0 || in.size() != n * stripes) return Status::Internal("AF merge size");
  ASSIGN_OR_RETURN(Secret acc, Secret::Zeroed(n));
  ASSIGN_OR_RETURN(Secret scratch, Secret::Zeroed(64));
  for (uint32_t i = 0; i + 1 < stripes; ++i) {
    for (size_t k = 0; k < n; ++k) acc.data()[k] ^= in[i * n + k];
    RETURN_IF_ERROR(Diffuse(acc.mutable_bytes(), hash, scratch));
  }
  for (size_t k = 0; k < n; ++k) key->data()[k] = acc.data()[k] ^ in[(stripes - 1) * n + k];
  return Status::Ok();
}

}  // namespace stack::fde::internal
