// `stack diff`: the block ranges where one entry of a pool differs from
// another (stack/diff.h). The file-level view (--files) is not here yet.
#include <iostream>

#include "command.h"
#include "output.h"
#include "target_args.h"
#include "stack/diff.h"
#include "stack/open_pool.h"
#include "units.h"

namespace stack::cli {
namespace {

struct DiffArgs {
  std::string pool;
  std::vector<std::string> pos;
};

const char* KindName(pool::DiffKind k) {
  return k == pool::DiffKind::kWritten ? "written" : "discarded";
}

nlohmann::json ReportJson(const compose::BlockDiffReport& r) {
  nlohmann::json ranges = nlohmann::json::array();
  for (auto& d : r.ranges) {
    ranges.push_back({{"offset", d.offset}, {"length", d.length}, {"kind", KindName(d.kind)}});
  }
  return {{"from", r.from},
          {"to", r.to},
          {"from_size_bytes", r.from_size_bytes},
          {"to_size_bytes", r.to_size_bytes},
          {"block_size", r.block_size},
          {"ranges", ranges},
          {"written_bytes", r.stats.written_bytes},
          {"discarded_bytes", r.stats.discarded_bytes},
          {"by_address", r.stats.by_address},
          {"nodes_visited", r.stats.nodes_visited}};
}

void PrintReport(const compose::BlockDiffReport& r) {
  for (auto& d : r.ranges) {
    std::cout << KindName(d.kind) << (d.kind == pool::DiffKind::kWritten ? "   " : " ")
              << " offset " << d.offset << " length " << d.length << "\n";
  }
  std::cout << r.from << " -> " << r.to << ": " << r.ranges.size() << " range"
            << (r.ranges.size() == 1 ? "" : "s") << ", written " << FormatSize(r.stats.written_bytes)
            << ", discarded " << FormatSize(r.stats.discarded_bytes) << "\n";
  if (r.from_size_bytes != r.to_size_bytes) {
    std::cout << "size " << FormatSize(r.from_size_bytes) << " -> " << FormatSize(r.to_size_bytes)
              << " (" << r.from_size_bytes << " -> " << r.to_size_bytes << " bytes)\n";
  }
  std::cout << (r.stats.by_address
                    ? "lineage shortcut: yes (shared subtrees skipped by address)"
                    : "lineage shortcut: no (unrelated lineages: every mapping compared)")
            << ", " << r.stats.nodes_visited << " metadata nodes read\n";
}

Status Diff(const DiffArgs& a, const CommandContext& ctx) {
  if (a.pos.size() != 2) return Status::InvalidArgument("expected FROM TO (VOLUME or VOLUME@SNAPSHOT)");
  if (a.pool.empty()) return Status::InvalidArgument("name the pool: --pool FILE (or $STACK_POOL)");
  ASSIGN_OR_RETURN(auto p, compose::OpenPool(a.pool, compose::PoolAccess::kReadOnly));
  ASSIGN_OR_RETURN(auto r, compose::DiffEntries(*p, a.pos[0], a.pos[1]));
  if (ctx.json) PrintJson(ReportJson(r));
  else PrintReport(r);
  return Status::Ok();
}

}  // namespace

void RegisterDiffCommands(CLI::App& app, CommandContext& ctx) {
  auto a = std::make_shared<DiffArgs>();
  auto* diff = app.add_subcommand(
      "diff", "Block ranges where TO differs from FROM (two entries of one pool): written\n"
              "(TO holds other data there) or discarded (FROM held data, TO holds a hole).\n"
              "Entries of one lineage (snapshot, its volume, clones) are compared by skipping\n"
              "shared metadata, in time proportional to the change; unrelated ones mapping by\n"
              "mapping (the report says which)\n"
              "  example: stack diff -p p.stk vm1@monday vm1");
  AddPoolOption(diff, a->pool, "Pool file");
  diff->add_option("args", a->pos, "FROM TO (VOLUME or VOLUME@SNAPSHOT)");
  diff->callback([&ctx, a] {
    ctx.action = [&ctx, a] { return Diff(*a, ctx); };
    ctx.pool = a->pool;
  });
}

}  // namespace stack::cli
