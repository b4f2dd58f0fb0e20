// `stack pool ...`: create, inspect, check, verify and grow a pool file.
#include <algorithm>
#include <iostream>

#include "command.h"
#include "output.h"
#include "pool/pool.h"
#include "pool_format.h"
#include "target_args.h"
#include "stack/publish.h"
#include "stack/send.h"
#include "stack/progress.h"
#include "stack/open_pool.h"
#include "stack/sizes.h"
#include "units.h"

namespace stack::cli {
namespace {

constexpr uint64_t kDefaultMaxSize = uint64_t{64} << 30;

struct PoolArgs {
  std::string pool;
  std::string file;
  std::string size = "1G";
  std::string max_size;  // pool create: default max(64G, --size)
  uint32_t block_size = 0;
  std::string cache = "64M";
  bool accept_lost = false;  // --accept-lost-generation
  int clone_depth_limit = 0;  // pool set
  std::string path() const { return file.empty() ? pool : file; }
};

Result<std::shared_ptr<VolumeStore>> OpenPool(const PoolArgs& a, bool writable) {
  if (a.path().empty()) return Status::InvalidArgument("name the pool: FILE or --pool FILE");
  pool::PoolOpenOptions o;
  o.accept_lost_generation = a.accept_lost;
  ASSIGN_OR_RETURN(o.cache_bytes, ParseSize(a.cache, "--cache", true));
  return compose::OpenPool(a.path(),
                           writable ? compose::PoolAccess::kWritable : compose::PoolAccess::kReadOnly,
                           o);
}

Status Create(const PoolArgs& a, const CommandContext& ctx) {
  if (a.path().empty()) return Status::InvalidArgument("name the pool file to create");
  pool::PoolCreateOptions o;
  if (a.block_size) o.block_size = a.block_size;
  ASSIGN_OR_RETURN(o.size_bytes, ParseSize(a.size, "--size"));
  if (o.block_size < 4096 || o.block_size > (1u << 20) || (o.block_size & (o.block_size - 1)))
    return Status::InvalidArgument("--block-size " + std::to_string(o.block_size) +
                                   " is not a power of two from 4096 to 1048576");
  RETURN_IF_ERROR(compose::RequireWholeBlocks(o.size_bytes, o.block_size, "--size"));
  if (a.max_size.empty()) {
    o.max_bytes = std::max(kDefaultMaxSize, o.size_bytes);
  } else {
    ASSIGN_OR_RETURN(o.max_bytes, ParseSize(a.max_size, "--max-size"));
    RETURN_IF_ERROR(compose::RequireWholeBlocks(o.max_bytes, o.block_size, "--max-size"));
    if (o.max_bytes < o.size_bytes)
      return Status::InvalidArgument("--max-size " + std::to_string(o.max_bytes) +
                                     " is below --size " + std::to_string(o.size_bytes));
  }
  ASSIGN_OR_RETURN(o.cache_bytes, ParseSize(a.cache, "--cache", true));
  ASSIGN_OR_RETURN(auto p, pool::Pool::Create(a.path(), o));
  ASSIGN_OR_RETURN(auto info, p->Info());
  if (ctx.json) PrintJson(PoolInfoJson(info));
  else std::cout << "created pool " << EscapeText(a.path()) << " (" << info.uuid << "): "
                 << FormatSize(info.size_bytes) << " now, growing to at most "
                 << FormatSize(info.max_bytes) << ", " << info.block_size << "-byte blocks\n";
  return Status::Ok();
}

Status Info(const PoolArgs& a, const CommandContext& ctx) {
  ASSIGN_OR_RETURN(auto p, OpenPool(a, false));
  ASSIGN_OR_RETURN(auto info, p->Info());
  ASSIGN_OR_RETURN(auto entries, p->List());
  std::erase_if(entries, [](const pool::EntryInfo& e) { return compose::IsHiddenEntry(e.name); });
  ASSIGN_OR_RETURN(auto partials, compose::ListPartialReceives(*p));
  if (ctx.json) {
    auto j = PoolInfoJson(info);
    j["path"] = a.path();
    if (info.host_known) {
      j["host_allocated_bytes"] = info.host_allocated_bytes;
      j["host_unused_bytes"] = info.host_unused_bytes;
    }
    nlohmann::json arr = nlohmann::json::array();
    for (auto& e : entries) arr.push_back(EntryJson(e));
    j["volumes"] = arr;
    nlohmann::json parts = nlohmann::json::array();
    for (auto& r : partials) parts.push_back(PartialReceiveJson(r));
    j["partial_receives"] = parts;
    PrintJson(j);
    return Status::Ok();
  }
  std::cout << "pool " << EscapeText(a.path()) << " (" << info.uuid << ")\n"
            << "  block size " << info.block_size << ", generation " << info.generation << "\n"
            << "  size " << FormatSize(info.size_bytes) << " of at most "
            << FormatSize(info.max_bytes) << "; used " << FormatSize(info.used_bytes)
            << ", free " << FormatSize(info.free_bytes) << ", reserved "
            << FormatSize(info.reserved_bytes) << "\n";
  if (info.host_known) {
    std::cout << "  on the host: " << FormatSize(info.host_allocated_bytes)
              << " allocated, of which " << FormatSize(info.host_unused_bytes)
              << " beyond the used blocks (free blocks not given back)\n";
  }
  std::cout << "\n";
  PrintEntries(entries, false);
  PrintPartialReceives(partials);
  return Status::Ok();
}

Status Check(const PoolArgs& a, const CommandContext& ctx) {
  ASSIGN_OR_RETURN(auto store, OpenPool(a, false));
  ASSIGN_OR_RETURN(auto p, RequireFilePool(*store, "pool check"));
  ASSIGN_OR_RETURN(auto rep, p->Check());
  if (ctx.json) {
    NoteStdoutUsed();
    std::cout << rep.ToJson() << "\n";
  } else {
    for (auto& w : rep.warnings) std::cout << "warning: " << w << "\n";
    for (auto& e : rep.errors) std::cout << "error: " << e << "\n";
    std::cout << (rep.ok ? "clean" : "NOT CLEAN") << ": " << rep.entries << " entries, "
              << rep.btree_nodes << " tree nodes, " << rep.data_blocks << " data blocks, "
              << rep.metadata_blocks << " metadata blocks, " << rep.leaked_blocks
              << " leaked, " << rep.refcount_errors << " refcount errors\n";
  }
  if (!rep.ok)
    return Status::Corruption("pool check found " + std::to_string(rep.errors.size()) +
                              " problem(s)");
  return Status::Ok();
}

Status Verify(const PoolArgs& a, const CommandContext& ctx) {
  ASSIGN_OR_RETURN(auto store, OpenPool(a, false));
  ASSIGN_OR_RETURN(auto p, RequireFilePool(*store, "pool verify"));
  compose::Progress progress("verify", 0);
  if (progress.enabled()) {
    ASSIGN_OR_RETURN(auto info, p->Info());
    progress.SetTotal(info.used_bytes);
  }
  ASSIGN_OR_RETURN(auto rep, p->Verify([&progress](uint64_t n) { progress.Advance(n); }));
  progress.Finish();
  if (ctx.json) {
    NoteStdoutUsed();
    std::cout << rep.ToJson() << "\n";
  } else {
    for (auto& e : rep.errors) std::cout << "bad: " << e << "\n";
    std::cout << (rep.ok ? "verified" : "FAILED") << ": " << rep.blocks_checked
              << " blocks read, " << rep.bad_blocks << " bad\n";
  }
  if (!rep.ok)
    return Status::Corruption("verify found " + std::to_string(rep.bad_blocks) + " bad block(s)");
  return Status::Ok();
}

// Opens the pool writable, which rewrites disagreeing superblock copies
// and, with --accept-lost-generation, commits the older generation.
Status Recover(const PoolArgs& a, const CommandContext& ctx) {
  ASSIGN_OR_RETURN(auto p, OpenPool(a, true));
  RETURN_IF_ERROR(p->Commit());
  ASSIGN_OR_RETURN(auto info, p->Info());
  if (ctx.json) {
    auto j = PoolInfoJson(info);
    j["repaired"] = p->open_warnings();
    PrintJson(j);
  } else {
    std::cout << (p->open_warnings().empty() ? "nothing to recover" : "recovered")
              << ": pool at generation " << info.generation << "\n";
  }
  return Status::Ok();
}

Status Grow(const PoolArgs& a, const CommandContext& ctx) {
  ASSIGN_OR_RETURN(auto store, OpenPool(a, true));
  ASSIGN_OR_RETURN(auto p, RequireFilePool(*store, "pool grow"));
  ASSIGN_OR_RETURN(uint64_t max, ParseSize(a.max_size, "--max-size"));
  RETURN_IF_ERROR(compose::RequireWholeBlocks(max, p->block_size(), "--max-size"));
  RETURN_IF_ERROR(p->Grow(max));
  ASSIGN_OR_RETURN(auto info, p->Info());
  if (ctx.json) PrintJson(PoolInfoJson(info));
  else std::cout << "pool may now grow to " << FormatSize(info.max_bytes) << "\n";
  return Status::Ok();
}

Status Set(const PoolArgs& a, const CommandContext& ctx) {
  ASSIGN_OR_RETURN(auto p, OpenPool(a, a.clone_depth_limit != 0));
  if (a.clone_depth_limit != 0) RETURN_IF_ERROR(p->SetCloneDepthLimit(a.clone_depth_limit));
  ASSIGN_OR_RETURN(int limit, p->CloneDepthLimit());
  if (ctx.json) PrintJson({{"path", a.path()}, {"clone_depth_limit", limit}});
  else std::cout << "clone depth limit of " << EscapeText(a.path()) << ": "
                 << (limit ? std::to_string(limit) : "none") << "\n";
  return Status::Ok();
}

}  // namespace

void RegisterPoolCommands(CLI::App& app, CommandContext& ctx) {
  auto* pool = app.add_subcommand("pool", "Create, inspect, check and grow pool files");
  pool->require_subcommand(1);
  auto a = std::make_shared<PoolArgs>();
  auto bind = [&ctx, a](CLI::App* c, std::function<Status(PoolArgs&, CommandContext&)> fn) {
    c->callback([&ctx, a, fn] {
      ctx.action = [&ctx, a, fn] { return fn(*a, ctx); };
      ctx.pool = a->path();
    });
  };
  auto common = [&](CLI::App* c) {
    c->add_option("file", a->file, "Pool file (or --pool / STACK_POOL)");
    AddPoolOption(c, a->pool, "Pool file");
    c->add_option("--cache", a->cache, std::string("Metadata cache size (0 = none): ") + kSizeHelp)
        ->capture_default_str();
  };
  auto accept_lost = [&](CLI::App* c) {
    c->add_flag("--accept-lost-generation", a->accept_lost,
                "Open the newest readable generation even when a newer one may have been "
                "committed and is unreadable (its changes are lost)");
  };
  auto* create = pool->add_subcommand(
      "create", "Create a pool file (sparse; grows on demand up to --max-size)\n"
                "  example: stack pool create images.stk --max-size 200G");
  common(create);
  create->add_option("--size", a->size,
                     std::string("Initial size, whole blocks: ") + kSizeHelp)
      ->capture_default_str();
  create->add_option("--max-size", a->max_size,
                     std::string("Largest size the pool may grow to, whole blocks, not below "
                                 "--size (default 64G, or --size if larger): ") + kSizeHelp);
  create->add_option("--block-size", a->block_size,
                     "Physical block size, 4K..1M power of two (default: see spec)");
  bind(create, [](PoolArgs& x, CommandContext& c) { return Create(x, c); });

  auto* info = pool->add_subcommand(
      "info", "Sizes and space use, per volume: mapped, exclusive and shared bytes\n"
              "  example: stack --json pool info images.stk");
  common(info);
  accept_lost(info);
  bind(info, [](PoolArgs& x, CommandContext& c) { return Info(x, c); });

  auto* check = pool->add_subcommand(
      "check", "Metadata consistency check: superblocks, trees, metadata checksums, reference\n"
               "counts (leaked blocks summarised); exit 7 if not clean. It reads no data\n"
               "blocks: `stack pool verify` checks their checksums.\n"
               "  example: stack pool check images.stk");
  common(check);
  accept_lost(check);
  bind(check, [](PoolArgs& x, CommandContext& c) { return Check(x, c); });

  auto* verify = pool->add_subcommand(
      "verify", "Read every data block and verify its checksum; exit 7 if any is bad\n"
                "  example: stack --json pool verify images.stk");
  common(verify);
  accept_lost(verify);
  bind(verify, [](PoolArgs& x, CommandContext& c) { return Verify(x, c); });

  auto* recover = pool->add_subcommand(
      "recover", "Rewrite damaged or torn superblock copies from their intact twin; with\n"
                 "--accept-lost-generation, settle on the newest readable generation\n"
                 "  example: stack pool recover images.stk --accept-lost-generation");
  common(recover);
  accept_lost(recover);
  bind(recover, [](PoolArgs& x, CommandContext& c) { return Recover(x, c); });

  auto* set = pool->add_subcommand(
      "set", "Show or change a pool's settings (RBD pools: the clone depth past which a new\n"
             "clone is flattened, spec/ceph.md)\n"
             "  example: stack pool set -p rbd:images --clone-depth-limit 4");
  common(set);
  set->add_option("--clone-depth-limit", a->clone_depth_limit,
                  "Flatten a new clone that would read through more ancestors than this (>= 1)")
      ->check(CLI::Range(1, 1 << 20));
  bind(set, [](PoolArgs& x, CommandContext& c) { return Set(x, c); });

  auto* grow = pool->add_subcommand(
      "grow", "Raise the size the pool may grow to\n"
              "  example: stack pool grow images.stk --max-size 500G");
  common(grow);
  accept_lost(grow);
  grow->add_option("--max-size", a->max_size,
                   std::string("New maximum size, whole blocks: ") + kSizeHelp)->required();
  bind(grow, [](PoolArgs& x, CommandContext& c) { return Grow(x, c); });
}

}  // namespace stack::cli
