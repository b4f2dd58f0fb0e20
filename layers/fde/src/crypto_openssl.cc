// Hashes and PBKDF2 through OpenSSL's EVP: OpenSSL's one job in the layer.
#include <openssl/evp.h>

#include <string>

#include "crypto.h"

namespace stack::fde::internal {
namespace {

const EVP_MD* Md(std::string_view hash) {
  if (hash == "sha1") return EVP_sha1();
  if (hash == "sha256") return EVP_sha256();
  if (hash == "sha384") return EVP_sha384();
  if (hash == "sha512") return EVP_sha512();
  return nullptr;
}

struct MdCtx {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  ~MdCtx() { EVP_MD_CTX_free(ctx); }
};

}  // namespace

size_t HashSize(std::string_view hash) {
  const EVP_MD* md = Md(hash);
  return md ? size_t(EVP_MD_get_size(md)) : 0;
}

Status Hash(std::string_view hash, std::initializer_list<std::span<const uint8_t>> parts,
            std::span<uint8_t> out) {
  const EVP_MD* md = Md(hash);
  if (md == nullptr) return Status::Unsupported("hash " + std::string(hash));
  if (out.size() != size_t(EVP_MD_get_size(md))) return Status::Internal("hash output size");
  MdCtx c;
  bool ok = c.ctx != nullptr && EVP_DigestInit_ex(c.ctx, md, nullptr) == 1;
  for (const auto& part : parts) {
    ok = ok && EVP_DigestUpdate(c.ctx, part.data(), part.size()) == 1;
  }
  unsigned int len = 0;
  if (!ok || EVP_DigestFinal_ex(c.ctx, out.data(), &len) != 1 || len != out.size()) {
    return Status::Internal("OpenSSL digest failed");
  }
  return Status::Ok();
}

Status Pbkdf2(std::string_view hash, std::span<const uint8_t> password,
              std::span<const uint8_t> salt, uint32_t iterations, std::span<uint8_t> out) {
  const EVP_MD* md = Md(hash);
  if (md == nullptr) return Status::Unsupported("pbkdf2 hash " + std::string(hash));
  if (iterations == 0 || iterations > 0x7fffffffu) {
    return Status::InvalidArgument("pbkdf2 iterations out of range");
  }
  static const char kEmpty = 0;
  const char* pw = password.empty() ? &kEmpty : reinterpret_cast<const char*>(password.data());
  if (PKCS5_PBKDF2_HMAC(pw, int(password.size()), salt.data(), int(salt.size()),
                        int(iterations), md, int(out.size()), out.data()) != 1) {
    return Status::Internal("OpenSSL PBKDF2 failed");
  }
  return Status::Ok();
}

}  // namespace stack::fde::internal
