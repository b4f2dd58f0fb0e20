// `stack blockdev ...`: inspect and manage plain file-backed block devices
// (the bottom of every stack). Useful to see what a sparse image holds.
#include <unistd.h>

#include <cerrno>
#include <iostream>

#include "block/file_device.h"
#include "command.h"
#include "output.h"
#include "stack/output_file.h"
#include "stack/sizes.h"
#include "units.h"

namespace stack::cli {
namespace {

struct BlockdevArgs {
  std::string path;
  std::string size = "64M";
  uint32_t block_size = 4096;
  std::string offset = "0";
  std::string length;
};

Result<std::unique_ptr<FileDevice>> OpenDev(const BlockdevArgs& a, bool writable) {
  FileDeviceOptions o;
  o.block_size = a.block_size;
  o.read_only = !writable;
  return FileDevice::Open(a.path, o);
}

Status Create(const BlockdevArgs& a, const CommandContext& ctx) {
  ASSIGN_OR_RETURN(uint64_t size, ParseSize(a.size, "--size"));
  if (a.block_size < 512 || (a.block_size & (a.block_size - 1)) != 0)
    return Status::InvalidArgument("--block-size " + std::to_string(a.block_size) +
                                   " is not a power of two >= 512");
  RETURN_IF_ERROR(compose::RequireWholeBlocks(size, a.block_size, "--size"));
  // Never over an existing file; the new file appears whole or not at all.
  ASSIGN_OR_RETURN(auto file, compose::OutputFile::Create(a.path, {}));
  if (::ftruncate(file->fd(), static_cast<off_t>(size)) != 0)
    return Status::FromErrno("size " + a.path, errno);
  RETURN_IF_ERROR(file->Commit());
  if (ctx.json) {
    PrintJson({{"path", a.path}, {"size_bytes", size}, {"block_size", a.block_size}});
  } else {
    std::cout << "created " << EscapeText(a.path) << ": " << FormatSize(size) << " in " << a.block_size
              << "-byte blocks\n";
  }
  return Status::Ok();
}

Status Info(const BlockdevArgs& a, const CommandContext& ctx) {
  ASSIGN_OR_RETURN(auto dev, OpenDev(a, false));
  ASSIGN_OR_RETURN(auto ext, dev->AllocatedExtents(0, dev->size_bytes()));
  uint64_t allocated = 0;
  for (auto& e : ext) allocated += e.length;
  if (ctx.json) {
    PrintJson({{"path", a.path},
               {"size_bytes", dev->size_bytes()},
               {"block_size", dev->block_size()},
               {"block_count", dev->block_count()},
               {"allocated_bytes", allocated},
               {"extents", ext.size()}});
  } else {
    std::cout << EscapeText(a.path) << ": " << FormatSize(dev->size_bytes()) << " (" << dev->block_count()
              << " x " << dev->block_size() << " B), " << FormatSize(allocated)
              << " allocated in " << ext.size() << " extent(s)\n";
  }
  return Status::Ok();
}

Status Map(const BlockdevArgs& a, const CommandContext& ctx) {
  ASSIGN_OR_RETURN(auto dev, OpenDev(a, false));
  ASSIGN_OR_RETURN(auto ext, dev->AllocatedExtents(0, dev->size_bytes()));
  if (ctx.json) {
    nlohmann::json arr = nlohmann::json::array();
    for (auto& e : ext) arr.push_back({{"offset", e.offset}, {"length", e.length}, {"data", true}});
    PrintJson(arr);
  } else {
    std::vector<std::vector<std::string>> rows;
    for (auto& e : ext)
      rows.push_back({std::to_string(e.offset), std::to_string(e.length), FormatSize(e.length)});
    PrintTable({"OFFSET", "LENGTH", "SIZE"}, rows);
  }
  return Status::Ok();
}

Status Discard(const BlockdevArgs& a, CommandContext& ctx) {
  ASSIGN_OR_RETURN(auto dev, OpenDev(a, true));
  ASSIGN_OR_RETURN(uint64_t off, ParseSize(a.offset, "--offset", true));
  uint64_t len = dev->size_bytes() - std::min(off, dev->size_bytes());
  if (!a.length.empty()) {
    ASSIGN_OR_RETURN(len, ParseSize(a.length, "--length"));
  }
  RETURN_IF_ERROR(dev->Discard(off, len));
  ctx.done = {{"path", a.path}, {"offset", off}, {"length", len}};
  return dev->Flush();
}

}  // namespace

void RegisterBlockdevCommands(CLI::App& app, CommandContext& ctx) {
  auto* bd = app.add_subcommand("blockdev", "Inspect and manage file-backed block devices");
  bd->require_subcommand(1);
  auto args = std::make_shared<BlockdevArgs>();

  auto* create = bd->add_subcommand("create", "Create a sparse file-backed device\n"
                                              "  example: stack blockdev create disk.img --size 1G");
  create->add_option("file", args->path, "Path of the new file")->required();
  create->add_option("--size", args->size,
                     std::string("Size, whole blocks: ") + kSizeHelp)->capture_default_str();
  create->add_option("--block-size", args->block_size, "Block size in bytes")
      ->capture_default_str();
  create->callback([&ctx, args] { ctx.action = [&ctx, args] { return Create(*args, ctx); }; });

  auto* info = bd->add_subcommand("info", "Show size and allocation of a device\n"
                                          "  example: stack --json blockdev info disk.img");
  info->add_option("file", args->path, "Device file")->required();
  info->add_option("--block-size", args->block_size, "Block size in bytes");
  info->callback([&ctx, args] { ctx.action = [&ctx, args] { return Info(*args, ctx); }; });

  auto* map = bd->add_subcommand("map", "List the ranges that hold data (holes are skipped)\n"
                                        "  example: stack blockdev map disk.img");
  map->add_option("file", args->path, "Device file")->required();
  map->add_option("--block-size", args->block_size, "Block size in bytes");
  map->callback([&ctx, args] { ctx.action = [&ctx, args] { return Map(*args, ctx); }; });

  auto* discard = bd->add_subcommand("discard", "Free a range (it then reads as zeros)\n"
                                                "  example: stack blockdev discard disk.img "
                                                "--offset 1M --length 4M");
  discard->add_option("file", args->path, "Device file")->required();
  discard->add_option("--offset", args->offset,
                      std::string("Start, block aligned: ") + kSizeHelp);
  discard->add_option("--length", args->length,
                      std::string("Length (default: to the end): ") + kSizeHelp);
  discard->add_option("--block-size", args->block_size, "Block size in bytes");
  discard->callback([&ctx, args] { ctx.action = [&ctx, args] { return Discard(*args, ctx); }; });
}

}  // namespace stack::cli
