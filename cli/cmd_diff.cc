// `stack diff`: the block ranges where one entry of a pool differs from
// another (stack/diff.h), or with --files the files that differ
// (stack/diff_files.h).
#include <iostream>

#include "command.h"
#include "output.h"
#include "target_args.h"
#include "stack/diff.h"
#include "stack/diff_files.h"
#include "block/text.h"
#include "stack/open_pool.h"
#include "units.h"

namespace stack::cli {
namespace {

struct DiffArgs {
  std::string pool;
  std::vector<std::string> pos;
  bool files = false;
  bool full_scan = false;
  TargetArgs keys;  // only its --key-file is used
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

const char* TypeName(fsbridge::FileType t) {
  switch (t) {
    case fsbridge::FileType::kRegular: return "file";
    case fsbridge::FileType::kDirectory: return "dir";
    case fsbridge::FileType::kSymlink: return "symlink";
    case fsbridge::FileType::kCharDevice: return "chardev";
    case fsbridge::FileType::kBlockDevice: return "blockdev";
    case fsbridge::FileType::kFifo: return "fifo";
    case fsbridge::FileType::kSocket: return "socket";
    default: return "unknown";
  }
}

nlohmann::json FilesJson(const compose::FileDiffReport& r) {
  nlohmann::json changes = nlohmann::json::array();
  for (auto& c : r.changes) {
    nlohmann::json j = {{"kind", compose::FileChangeKindName(c.kind)},
                        {"path", EscapeText(c.path)},
                        {"type", TypeName(c.type)}};
    if (c.kind == compose::FileChange::Kind::kRenamed) j["old_path"] = EscapeText(c.old_path);
    if (!c.what.empty()) j["what"] = c.what;
    changes.push_back(std::move(j));
  }
  return {{"from", r.from},
          {"to", r.to},
          {"changes", changes},
          {"changed_bytes", r.changed_bytes},
          {"inodes_examined", r.inodes_examined},
          {"full_scan", r.full_scan},
          {"warnings", r.warnings}};
}

void PrintFiles(const compose::FileDiffReport& r) {
  for (auto& c : r.changes) {
    const char tag = c.kind == compose::FileChange::Kind::kAdded     ? 'A'
                     : c.kind == compose::FileChange::Kind::kRemoved ? 'D'
                     : c.kind == compose::FileChange::Kind::kRenamed ? 'R'
                                                                     : 'M';
    std::cout << tag << " ";
    if (c.kind == compose::FileChange::Kind::kRenamed) std::cout << EscapeText(c.old_path) << " -> ";
    std::cout << EscapeText(c.path);
    if (!c.what.empty()) {
      std::cout << " (";
      for (size_t i = 0; i < c.what.size(); ++i) std::cout << (i ? ", " : "") << c.what[i];
      std::cout << ")";
    }
    std::cout << "\n";
  }
  std::cout << r.from << " -> " << r.to << ": " << r.changes.size() << " change"
            << (r.changes.size() == 1 ? "" : "s") << ", " << r.inodes_examined
            << " inodes examined" << (r.full_scan ? " (full scan)" : " (changed inode blocks)")
            << "\n";
  for (auto& w : r.warnings) std::cerr << "stack: warning: " << w << "\n";
}

Status Diff(const DiffArgs& a, const CommandContext& ctx) {
  if (a.pos.size() != 2) return Status::InvalidArgument("expected FROM TO (VOLUME or VOLUME@SNAPSHOT)");
  if (a.pool.empty()) return Status::InvalidArgument("name the pool: --pool FILE (or $STACK_POOL)");
  ASSIGN_OR_RETURN(auto p, compose::OpenPool(a.pool, compose::PoolAccess::kReadOnly));
  if (a.files) {
    compose::FileDiffOptions fo;
    fo.full_scan = a.full_scan;
    ASSIGN_OR_RETURN(auto r, compose::DiffFiles(*p, a.pos[0], a.pos[1], a.keys.Passphrase(),
                                                !a.keys.key_file.empty(), fo));
    if (ctx.json) PrintJson(FilesJson(r));
    else PrintFiles(r);
    return Status::Ok();
  }
  if (a.full_scan) return Status::InvalidArgument("--full-scan goes with --files");
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
              "  example: stack diff -p p.stk vm1@monday vm1\n"
              "  example: stack diff -p p.stk --files -k key.txt vm1@monday vm1");
  AddPoolOption(diff, a->pool, "Pool file");
  diff->add_option("args", a->pos, "FROM TO (VOLUME or VOLUME@SNAPSHOT)");
  diff->add_flag("--files", a->files,
                 "Files added (A), removed (D), renamed (R) and modified (M: content, type, mode,\n"
                 "owner, xattrs, link, mtime, links), read from the two ext4 images; only inodes\n"
                 "in changed inode-table blocks are compared (every ext4 change rewrites the\n"
                 "inode)");
  diff->add_flag("--full-scan", a->full_scan,
                 "With --files: compare every inode in use (also sees data written below the\n"
                 "file system)");
  a->keys.AddKeyFile(diff);
  diff->callback([&ctx, a] {
    ctx.action = [&ctx, a] { return Diff(*a, ctx); };
    ctx.pool = a->pool;
  });
}

}  // namespace stack::cli
