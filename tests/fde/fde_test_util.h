// Helpers for the fde tests: fast format options, passphrases, hex, files,
// and the independent oracles (python3-cryptography's AES-XTS; cryptsetup).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "block/file_device.h"
#include "block/mem_device.h"
#include "fde/luks.h"

namespace stack::fde::testing {

Secret Pass(const std::string& s);
// Version/sector with cheap KDFs (argon2id 4 passes 64 KiB, digest 1000).
FormatOptions FastFormat(int version = 2, uint32_t sector = 4096,
                         KdfType kdf = KdfType::kArgon2id);
// A 20 MiB in-memory device formatted with FastFormat(version) and one
// passphrase; its storage (open it again with a MemDevice over it).
std::shared_ptr<MemStorage> Formatted(int version, const std::string& pass);
std::string Hex(std::span<const uint8_t> b);
std::vector<uint8_t> Unhex(const std::string& hex);

std::vector<uint8_t> ReadFileBytes(const std::string& path);
void WriteFileBytes(const std::string& path, std::span<const uint8_t> bytes);
// Writes a passphrase as a key file (exact bytes, no newline).
void WriteKey(const std::string& path, const std::string& pass);

// Whether the external tools exist (tests that need them fail loudly if not:
// they are part of the declared environment).
bool HaveTool(const std::string& name);

// Decrypts (or encrypts) `in` with AES-XTS-plain64 through /usr/bin/python3's
// cryptography package: sectors of sector_size, IV of sector k = first_iv +
// k * sector_size / 512.
std::vector<uint8_t> PyXts(bool encrypt, std::span<const uint8_t> key,
                           std::span<const uint8_t> in, uint32_t sector_size, uint64_t first_iv);

// `cryptsetup luksDump --dump-volume-key` with a key file: the volume key.
std::vector<uint8_t> CryptsetupVolumeKey(const std::string& image, const std::string& keyfile);
// `cryptsetup open --test-passphrase`: exit status.
int CryptsetupTestPassphrase(const std::string& image, const std::string& keyfile,
                             int keyslot = -1);
// `cryptsetup luksDump` output (exit status in *rc).
std::string CryptsetupDump(const std::string& image, int* rc);

// A FileDevice of the given size at path (created sparse).
std::unique_ptr<FileDevice> NewFile(const std::string& path, uint64_t size);
std::unique_ptr<FileDevice> OpenFile(const std::string& path);

}  // namespace stack::fde::testing
