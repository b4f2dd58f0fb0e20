#include "fde_test_util.h"

#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>

#include "test_util.h"

namespace stack::fde::testing {

using stack::testing::RunCommand;
using stack::testing::TempDir;

Secret Pass(const std::string& s) {
  auto r = Secret::FromString(s);
  REQUIRE(r.ok());
  return std::move(r).value();
}

FormatOptions FastFormat(int version, uint32_t sector, KdfType kdf) {
  FormatOptions o;
  o.version = version;
  o.sector_size = sector;
  o.kdf = KdfParams::Fast(version == 1 ? KdfType::kPbkdf2 : kdf);
  o.digest_iterations = 1000;
  return o;
}

std::shared_ptr<MemStorage> Formatted(int version, const std::string& pass) {
  auto mem = std::make_unique<MemDevice>(4096, 20 * stack::testing::kMiB / 4096);
  auto storage = mem->storage();
  REQUIRE_OK(Format(std::move(mem), Pass(pass), FastFormat(version)));
  return storage;
}

std::string Hex(std::span<const uint8_t> b) {
  static const char* k = "0123456789abcdef";
  std::string s;
  for (uint8_t c : b) {
    s.push_back(k[c >> 4]);
    s.push_back(k[c & 15]);
  }
  return s;
}

std::vector<uint8_t> Unhex(const std::string& hex) {
  std::vector<uint8_t> out;
  auto v = [](char c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; };
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(uint8_t(v(hex[i]) * 16 + v(hex[i + 1])));
  }
  return out;
}

std::vector<uint8_t> ReadFileBytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  REQUIRE(f.good());
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

void WriteKey(const std::string& path, const std::string& pass) {
  WriteFileBytes(path, std::span(reinterpret_cast<const uint8_t*>(pass.data()), pass.size()));
}

void WriteFileBytes(const std::string& path, std::span<const uint8_t> bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  REQUIRE(f.good());
}

bool HaveTool(const std::string& name) {
  return RunCommand("command -v " + name + " >/dev/null 2>&1") == 0;
}

std::vector<uint8_t> PyXts(bool encrypt, std::span<const uint8_t> key,
                           std::span<const uint8_t> in, uint32_t sector_size, uint64_t first_iv) {
  TempDir dir;
  WriteFileBytes(dir.file("key"), key);
  WriteFileBytes(dir.file("in"), in);
  const std::string cmd = std::string("/usr/bin/python3 ") + FDE_TEST_SCRIPTS + "/xts_oracle.py " +
                          (encrypt ? "encrypt " : "decrypt ") + dir.file("key") + " " +
                          dir.file("in") + " " + dir.file("out") + " " +
                          std::to_string(sector_size) + " " + std::to_string(first_iv) + " 2>&1";
  std::string out;
  int rc = RunCommand(cmd, &out);
  INFO(out);
  REQUIRE(rc == 0);
  return ReadFileBytes(dir.file("out"));
}

std::vector<uint8_t> CryptsetupVolumeKey(const std::string& image, const std::string& keyfile) {
  std::string out;
  int rc = RunCommand("cryptsetup luksDump --dump-volume-key -q --key-file " + keyfile + " " +
                          image + " 2>&1",
                      &out);
  INFO(out);
  REQUIRE(rc == 0);
  // Hex bytes follow "MK dump:" up to the end.
  auto at = out.find("MK dump:");
  REQUIRE(at != std::string::npos);
  std::string hex;
  std::istringstream rest(out.substr(at + 8));
  std::string tok;
  while (rest >> tok) {
    if (tok.size() == 2 && std::isxdigit(tok[0]) && std::isxdigit(tok[1])) hex += tok;
  }
  return Unhex(hex);
}

int CryptsetupTestPassphrase(const std::string& image, const std::string& keyfile, int keyslot) {
  std::string cmd = "cryptsetup open --test-passphrase -q --key-file " + keyfile;
  if (keyslot >= 0) cmd += " --key-slot " + std::to_string(keyslot);
  cmd += " " + image + " >/dev/null 2>&1";
  return RunCommand(cmd);
}

std::string CryptsetupDump(const std::string& image, int* rc) {
  std::string out;
  *rc = RunCommand("cryptsetup luksDump " + image + " 2>&1", &out);
  return out;
}

std::unique_ptr<FileDevice> NewFile(const std::string& path, uint64_t size) {
  FileDeviceOptions o;
  o.block_size = 512;
  auto r = FileDevice::Create(path, size, o, true);
  REQUIRE(r.ok());
  return std::move(r).value();
}

std::unique_ptr<FileDevice> OpenFile(const std::string& path) {
  FileDeviceOptions o;
  o.block_size = 512;
  auto r = FileDevice::Open(path, o);
  REQUIRE(r.ok());
  return std::move(r).value();
}

}  // namespace stack::fde::testing
