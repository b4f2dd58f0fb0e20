// `stack volume ...`, `stack snapshot ...` and `stack clone`: thin volumes,
// their snapshot history, and O(1) clones (forks) with overrides.
#include <algorithm>
#include <iostream>

#include "command.h"
#include "kdf_args.h"
#include "output.h"
#include "pool/pool.h"
#include "pool_format.h"
#include "target_args.h"
#include "stack/address.h"
#include "stack/clone.h"
#include "stack/control.h"
#include "stack/open_pool.h"
#include "stack/publish.h"
#include "stack/send.h"
#include "stack/resize.h"
#include "stack/sizes.h"
#include "stack/secrets.h"
#include "units.h"

namespace stack::cli {
namespace {

struct VolArgs {
  std::string pool;
  std::vector<std::string> pos;
  std::string size;
  std::string note;
  std::vector<std::string> tags;
  bool set_note = false;
  bool read_only = false, writable = false, all = false, force = false;
  bool no_fs_resize = false;
  std::string grep, tag_filter;
  // clone overrides
  std::string key_file, new_key_file;
  KdfArgs kdf;
  std::string cipher;
  uint32_t sector_size = 0;
};

// `changed`: the entry whose size or writability the command changes (Busy
// while a holder of the pool is writing it: an NBD client would see its
// disk change under it).
Result<std::shared_ptr<VolumeStore>> OpenPool(const VolArgs& a, bool writable,
                                              const std::string& changed = {}) {
  int removed = 0;
  ASSIGN_OR_RETURN(auto p, compose::OpenPool(a.pool, writable ? compose::PoolAccess::kWritable
                                                              : compose::PoolAccess::kReadOnly,
                                             {}, &removed, changed));
  if (removed) std::cerr << "stack: removed " << removed << " unfinished build(s)\n";
  return p;
}

Status Need(const VolArgs& a, size_t min, size_t max, const char* usage) {
  if (a.pos.size() < min || a.pos.size() > max)
    return Status::InvalidArgument(std::string("expected ") + usage);
  return Status::Ok();
}

pool::EntryMeta Meta(const VolArgs& a) { return pool::EntryMeta{a.note, a.tags}; }

Result<pool::EntryInfo> Show(VolumeStore& p, const std::string& name, const CommandContext& ctx,
                             const std::string& verb) {
  ASSIGN_OR_RETURN(auto e, p.Stat(name));
  if (ctx.json) PrintJson(EntryJson(e));
  else std::cout << verb << " " << e.name << " (" << e.uuid << ")\n";
  return e;
}

// What growing did to the file system inside (volume resize, clone --size).
nlohmann::json GrowJson(const compose::GrowReport& g, bool skipped) {
  nlohmann::json j = {{"grown", g.fs_grown},
                      {"bytes_before", g.fs_before},
                      {"bytes_after", g.fs_after}};
  j["note"] = skipped ? "--no-fs-resize" : g.fs_note;
  return j;
}

void PrintGrowText(const compose::GrowReport& g, bool skipped) {
  if (skipped) return;
  if (g.fs_grown)
    std::cout << "  file system grown: " << FormatSize(g.fs_before) << " -> "
              << FormatSize(g.fs_after) << "\n";
  else if (!g.fs_note.empty())
    std::cerr << "stack: note: " << g.fs_note << "\n";
}

// volume ------------------------------------------------------------------

Status VolCreate(VolArgs& a, const CommandContext& ctx) {
  RETURN_IF_ERROR(Need(a, 1, 1, "NAME"));
  RETURN_IF_ERROR(compose::ValidateName(a.pos[0], "volume"));
  if (a.size.empty()) return Status::InvalidArgument("--size is required");
  ASSIGN_OR_RETURN(uint64_t size, ParseSize(a.size, "--size"));
  ASSIGN_OR_RETURN(auto p, OpenPool(a, true));
  RETURN_IF_ERROR(compose::RequireWholeBlocks(size, p->block_size(), "--size"));
  RETURN_IF_ERROR(p->CreateVolume(a.pos[0], size, Meta(a)));
  return Show(*p, a.pos[0], ctx, "created volume").status();
}

Status VolList(VolArgs& a, const CommandContext& ctx, bool snapshots_only) {
  RETURN_IF_ERROR(Need(a, 0, 1, snapshots_only ? "[VOLUME]" : "[NAME]"));
  ASSIGN_OR_RETURN(auto p, OpenPool(a, false));
  // A named volume must exist: an empty table would say "no snapshots"
  // about a volume that is not there.
  const std::string named = a.pos.empty() ? "" : a.pos[0];
  if (!named.empty()) {
    auto e = p->Stat(named);
    if (!e.ok() && e.status().code() != Code::kNotFound) return e.status();
    if (!e.ok() || compose::IsHiddenEntry(named) ||
        (snapshots_only && e->kind == pool::EntryKind::kSnapshot))
      return Status::NotFound((snapshots_only ? "no volume " : "no entry ") + named +
                              " in the pool");
  }
  ASSIGN_OR_RETURN(auto entries, p->List());
  std::erase_if(entries, [&](const pool::EntryInfo& e) {
    if (compose::IsHiddenEntry(e.name)) return true;
    bool snap = e.kind == pool::EntryKind::kSnapshot;
    if (snapshots_only && !snap) return true;
    if (!snapshots_only && snap && !a.all) return true;
    if (snapshots_only && !named.empty() && e.name.rfind(named + "@", 0) != 0) return true;
    // volume list NAME: that entry (with --all, and its snapshots).
    if (!snapshots_only && !named.empty() && e.name != named &&
        !(a.all && e.name.rfind(named + "@", 0) == 0))
      return true;
    if (!a.tag_filter.empty() &&
        std::find(e.tags.begin(), e.tags.end(), a.tag_filter) == e.tags.end())
      return true;
    if (!a.grep.empty() && e.name.find(a.grep) == std::string::npos &&
        e.note.find(a.grep) == std::string::npos)
      return true;
    return false;
  });
  PrintEntries(entries, ctx.json);
  if (snapshots_only && !ctx.json) {  // snapshots still arriving
    ASSIGN_OR_RETURN(auto partials, compose::ListPartialReceives(*p));
    std::erase_if(partials, [&](const compose::PartialReceive& r) {
      return !named.empty() && r.volume != named;
    });
    PrintPartialReceives(partials);
  }
  return Status::Ok();
}

Status VolResize(VolArgs& a, const CommandContext& ctx) {
  for (auto& n : a.pos) RETURN_IF_ERROR(compose::RefuseHiddenEntry(n));
  RETURN_IF_ERROR(Need(a, 1, 1, "NAME"));
  if (a.size.empty()) return Status::InvalidArgument("--size is required");
  ASSIGN_OR_RETURN(uint64_t size, ParseSize(a.size, "--size"));
  ASSIGN_OR_RETURN(auto p, OpenPool(a, true, a.pos[0]));
  RETURN_IF_ERROR(compose::RequireWholeBlocks(size, p->block_size(), "--size"));
  // Only with --key-file is an encrypted volume opened (never a prompt).
  compose::SecretGetter pass;
  if (!a.key_file.empty()) {
    pass = [&a]() {
      compose::SecretSource s;
      s.key_file = a.key_file;
      return compose::ObtainSecret(s);
    };
  }
  const compose::SecretGetter* pass_ptr = a.key_file.empty() ? nullptr : &pass;
  ASSIGN_OR_RETURN(auto before, p->Stat(a.pos[0]));
  if (size <= before.size_bytes) {
    RETURN_IF_ERROR(compose::ResizeVolume(*p, a.pos[0], size, a.force, pass_ptr));
    return Show(*p, a.pos[0], ctx, "resized").status();
  }
  // Growing: the file system inside follows unless --no-fs-resize.
  ASSIGN_OR_RETURN(auto grown, compose::GrowVolume(*p, a.pos[0], size, !a.no_fs_resize, pass_ptr));
  ASSIGN_OR_RETURN(auto e, p->Stat(a.pos[0]));
  if (ctx.json) {
    auto j = EntryJson(e);
    j["filesystem"] = GrowJson(grown, a.no_fs_resize);
    PrintJson(j);
  } else {
    std::cout << "resized " << e.name << " (" << e.uuid << ")\n";
    PrintGrowText(grown, a.no_fs_resize);
  }
  return Status::Ok();
}

Status VolRename(VolArgs& a, const CommandContext& ctx) {
  for (auto& n : a.pos) RETURN_IF_ERROR(compose::RefuseHiddenEntry(n));
  RETURN_IF_ERROR(Need(a, 2, 2, "OLD NEW"));
  ASSIGN_OR_RETURN(auto addr, compose::ParseEntryAddress(a.pos[1]));
  (void)addr;
  ASSIGN_OR_RETURN(auto p, OpenPool(a, true));
  RETURN_IF_ERROR(p->Rename(a.pos[0], a.pos[1]));
  return Show(*p, a.pos[1], ctx, "renamed to").status();
}

Status VolFlatten(VolArgs& a, const CommandContext& ctx) {
  for (auto& n : a.pos) RETURN_IF_ERROR(compose::RefuseHiddenEntry(n));
  RETURN_IF_ERROR(Need(a, 1, 1, "NAME"));
  ASSIGN_OR_RETURN(auto p, OpenPool(a, true));
  bool flattened = false;
  RETURN_IF_ERROR(p->Flatten(a.pos[0], &flattened));
  ASSIGN_OR_RETURN(auto e, p->Stat(a.pos[0]));
  if (ctx.json) {
    auto j = EntryJson(e);
    j["flattened"] = flattened;
    PrintJson(j);
  } else {
    std::cout << (flattened ? "flattened " : "nothing to flatten: ") << e.name << "\n";
  }
  return Status::Ok();
}

Status VolRm(VolArgs& a, const CommandContext& ctx) {
  for (auto& n : a.pos) RETURN_IF_ERROR(compose::RefuseHiddenEntry(n));
  RETURN_IF_ERROR(Need(a, 1, 64, "NAME..."));
  ASSIGN_OR_RETURN(auto p, OpenPool(a, true));
  nlohmann::json freed = nlohmann::json::array();
  for (auto& n : a.pos) {
    ASSIGN_OR_RETURN(auto e, p->Stat(n));
    RETURN_IF_ERROR(p->Delete(n));
    freed.push_back({{"name", n}, {"freed_bytes", e.exclusive_bytes}});
    if (!ctx.json) std::cout << "deleted " << n << ", freed " << FormatSize(e.exclusive_bytes) << "\n";
  }
  if (ctx.json) PrintJson(freed);
  return Status::Ok();
}

Status VolSet(VolArgs& a, const CommandContext& ctx) {
  for (auto& n : a.pos) RETURN_IF_ERROR(compose::RefuseHiddenEntry(n));
  RETURN_IF_ERROR(Need(a, 1, 1, "NAME"));
  if (a.read_only && a.writable) return Status::InvalidArgument("--read-only or --writable, not both");
  ASSIGN_OR_RETURN(auto p, OpenPool(a, true, a.read_only ? a.pos[0] : std::string()));
  if (a.read_only || a.writable) RETURN_IF_ERROR(p->SetReadOnly(a.pos[0], a.read_only));
  if (a.set_note || !a.tags.empty()) {
    ASSIGN_OR_RETURN(auto e, p->Stat(a.pos[0]));
    pool::EntryMeta m{a.set_note ? a.note : e.note, a.tags.empty() ? e.tags : a.tags};
    RETURN_IF_ERROR(p->SetMeta(a.pos[0], m));
  }
  return Show(*p, a.pos[0], ctx, "updated").status();
}

// snapshot ----------------------------------------------------------------

// "V@S" or "V S" -> {"V", "V@S"}.
Result<std::pair<std::string, std::string>> SnapName(const VolArgs& a) {
  std::string full = a.pos.size() == 2 ? a.pos[0] + "@" + a.pos[1] : a.pos[0];
  ASSIGN_OR_RETURN(auto addr, compose::ParseEntryAddress(full));
  if (!addr.is_snapshot()) return Status::InvalidArgument("expected VOLUME@SNAPSHOT");
  return std::make_pair(addr.volume, addr.name());
}

Status SnapCreate(VolArgs& a, const CommandContext& ctx) {
  RETURN_IF_ERROR(Need(a, 1, 2, "VOLUME@SNAPSHOT (or VOLUME SNAPSHOT)"));
  ASSIGN_OR_RETURN(auto names, SnapName(a));
  ASSIGN_OR_RETURN(auto p, OpenPool(a, true));
  RETURN_IF_ERROR(p->Snapshot(names.first, names.second, Meta(a)));
  return Show(*p, names.second, ctx, "created snapshot").status();
}

Status SnapRm(VolArgs& a, const CommandContext& ctx) {
  RETURN_IF_ERROR(Need(a, 1, 1, "VOLUME@SNAPSHOT"));
  ASSIGN_OR_RETURN(auto names, SnapName(a));
  a.pos = {names.second};
  return VolRm(a, ctx);
}

Status SnapRollback(VolArgs& a, const CommandContext& ctx) {
  RETURN_IF_ERROR(Need(a, 1, 2, "VOLUME@SNAPSHOT"));
  ASSIGN_OR_RETURN(auto names, SnapName(a));
  ASSIGN_OR_RETURN(auto p, OpenPool(a, true));
  RETURN_IF_ERROR(p->Rollback(names.first, names.second));
  return Show(*p, names.first, ctx, "rolled back to " + names.second + ":").status();
}

// clone -------------------------------------------------------------------

Status Clone(VolArgs& a, const CommandContext& ctx) {
  RETURN_IF_ERROR(Need(a, 2, 2, "SOURCE NEW_NAME"));
  if (!a.cipher.empty() || a.sector_size)
    return Status::InvalidArgument(
        "a clone cannot change its cipher or sector size: it shares the source's blocks and "
        "volume key (re-encrypt with `stack export --format luks1` or a fresh build instead)");
  compose::CloneRequest req;
  req.source = a.pos[0];
  req.name = a.pos[1];
  req.meta = Meta(a);
  req.read_only = a.read_only;
  if (!a.size.empty()) {
    ASSIGN_OR_RETURN(req.size_bytes, ParseSize(a.size, "--size"));
  }
  req.grow_fs = !a.no_fs_resize;
  if (!a.key_file.empty() || !a.new_key_file.empty()) {
    // Used for a new passphrase, and to grow the file system of an
    // encrypted clone (--size); without -k and --new-key-file nothing asks.
    compose::SecretSource s;
    s.key_file = a.key_file;
    s.prompt = "Source passphrase: ";
    req.source_passphrase = s;
  }
  if (!a.new_key_file.empty()) {
    if (a.key_file == "-" && a.new_key_file == "-")
      return Status::InvalidArgument("--key-file and --new-key-file cannot both be stdin");
    compose::SecretSource n;
    n.key_file = a.new_key_file;
    n.prompt = "Clone's new passphrase: ";
    n.confirm = true;
    req.new_passphrase = n;
  }
  ASSIGN_OR_RETURN(req.kdf, a.kdf.Params());
  ASSIGN_OR_RETURN(auto p, OpenPool(a, true));
  // A clone with its own passphrase runs two KDFs: readers are answered meanwhile.
  auto server = compose::ServeWhileHolding(p, a.pool);
  auto cloned = compose::CloneEntry(*p, req);
  server.reset();  // before any output of ours (spec/control.md)
  ASSIGN_OR_RETURN(auto rep, std::move(cloned));
  if (ctx.json) {
    auto j = EntryJson(rep.clone);
    j["source"] = rep.source.name;
    j["source_uuid"] = rep.source.uuid;
    j["own_passphrase"] = rep.own_passphrase;
    if (rep.growth) j["filesystem"] = GrowJson(*rep.growth, a.no_fs_resize);
    PrintJson(j);
  } else {
    std::cout << "cloned " << rep.source.name << " -> " << rep.clone.name << " (" << rep.clone.uuid
              << ")" << (rep.own_passphrase ? ", with its own passphrase (same volume key)" : "")
              << "\n";
    if (rep.growth) PrintGrowText(*rep.growth, a.no_fs_resize);
  }
  return Status::Ok();
}

}  // namespace

void RegisterVolumeCommands(CLI::App& app, CommandContext& ctx) {
  auto a = std::make_shared<VolArgs>();
  auto bind = [&ctx, a](CLI::App* c, std::function<Status(VolArgs&, CommandContext&)> fn) {
    c->callback([&ctx, a, fn] {
      ctx.action = [&ctx, a, fn] { return fn(*a, ctx); };
      ctx.pool = a->pool;
    });
  };
  auto common = [&](CLI::App* c, const char* usage) {
    AddPoolOption(c, a->pool, "Pool file");
    c->add_option("args", a->pos, usage);
  };
  auto meta = [&](CLI::App* c) {
    c->add_option("--note", a->note, "Free-text note")->each([a](const std::string&) {
      a->set_note = true;
    });
    c->add_option("--tag", a->tags, "Tag (repeatable)");
  };

  auto* vol = app.add_subcommand("volume", "Thin volumes in a pool");
  vol->require_subcommand(1);
  auto* create = vol->add_subcommand("create", "Create an empty thin volume\n"
                                               "  example: stack volume create -p p.stk vm1 "
                                               "--size 20G");
  common(create, "NAME");
  create->add_option("--size", a->size,
                     std::string("Size, whole pool blocks: ") + kSizeHelp);
  meta(create);
  bind(create, [](VolArgs& x, CommandContext& c) { return VolCreate(x, c); });
  auto* list = vol->add_subcommand("list", "List volumes (--all: and snapshots) with space use\n"
                                           "  example: stack --json volume list -p p.stk");
  common(list, "[NAME]: only this entry (with --all, and its snapshots); NotFound if absent");
  list->add_flag("--all", a->all, "Include snapshots");
  list->add_option("--tag", a->tag_filter, "Only entries with this tag");
  list->add_option("--grep", a->grep, "Only entries whose name or note contains TEXT");
  bind(list, [](VolArgs& x, CommandContext& c) { return VolList(x, c, false); });
  auto* resize = vol->add_subcommand("resize", "Grow or shrink a volume (growing grows the ext4 in it; shrink\n"
                                               "frees the tail; it refuses to cut mapped data, a LUKS container\n"
                                               "or ext4 without --force)\n"
                                               "  example: stack volume resize -p p.stk vm1 "
                                               "--size 40G");
  common(resize, "NAME");
  resize->add_option("--size", a->size,
                     std::string("New size, whole pool blocks: ") + kSizeHelp);
  resize->add_flag("--force", a->force,
                   "Shrink even below the data, LUKS container or ext4 file system it holds "
                   "(destroys them); without it such a shrink exits 11 naming the size held");
  resize->add_option("--key-file,-k", a->key_file,
                     "Passphrase file of an encrypted volume: growing, the ext4 inside the LUKS "
                     "container grows too (without: only the volume grows, and a note says so); "
                     "shrinking, it is measured so the volume may shrink down to it (without: any "
                     "shrink cuts the container)");
  resize->add_flag("--no-fs-resize", a->no_fs_resize,
                   "Growing: leave the ext4 file system inside as it is (default: it grows to "
                   "fill the volume)");
  bind(resize, [](VolArgs& x, CommandContext& c) { return VolResize(x, c); });
  auto* rename = vol->add_subcommand("rename", "Rename a volume (its snapshots follow)\n"
                                               "  example: stack volume rename -p p.stk vm1 vm2");
  common(rename, "OLD NEW");
  bind(rename, [](VolArgs& x, CommandContext& c) { return VolRename(x, c); });
  auto* flatten = vol->add_subcommand(
      "flatten", "Make a clone independent of its source (on Ceph RBD: copy the parent's\n"
                 "data in, so reads stop walking the parent chain; a pool file's clones\n"
                 "need nothing)\n"
                 "  example: stack volume flatten -p rbd:stack vm1");
  common(flatten, "NAME");
  bind(flatten, [](VolArgs& x, CommandContext& c) { return VolFlatten(x, c); });
  auto* rm = vol->add_subcommand("rm", "Delete volumes, snapshots or clones, in any order\n"
                                       "  example: stack volume rm -p p.stk vm1");
  common(rm, "NAME...");
  bind(rm, [](VolArgs& x, CommandContext& c) { return VolRm(x, c); });
  auto* set = vol->add_subcommand("set", "Change a volume's note, tags or read-only flag\n"
                                         "  example: stack volume set -p p.stk vm1 --read-only");
  common(set, "NAME");
  meta(set);
  set->add_flag("--read-only", a->read_only, "Refuse writes");
  set->add_flag("--writable", a->writable, "Allow writes again");
  bind(set, [](VolArgs& x, CommandContext& c) { return VolSet(x, c); });

  auto* snap = app.add_subcommand("snapshot", "Read-only point-in-time snapshots (O(1))");
  snap->require_subcommand(1);
  auto* screate = snap->add_subcommand("create", "Snapshot a volume\n"
                                                 "  example: stack snapshot create -p p.stk "
                                                 "vm1@before-upgrade --note 'pre apt upgrade'");
  common(screate, "VOLUME@SNAPSHOT");
  meta(screate);
  bind(screate, [](VolArgs& x, CommandContext& c) { return SnapCreate(x, c); });
  auto* slist = snap->add_subcommand("list", "Snapshot history, oldest first\n"
                                             "  example: stack snapshot list -p p.stk vm1 "
                                             "--tag release");
  common(slist, "[VOLUME]");
  slist->add_option("--tag", a->tag_filter, "Only snapshots with this tag");
  slist->add_option("--grep", a->grep, "Only snapshots whose name or note contains TEXT");
  bind(slist, [](VolArgs& x, CommandContext& c) { return VolList(x, c, true); });
  auto* srm = snap->add_subcommand("rm", "Delete a snapshot\n"
                                         "  example: stack snapshot rm -p p.stk vm1@old");
  common(srm, "VOLUME@SNAPSHOT");
  bind(srm, [](VolArgs& x, CommandContext& c) { return SnapRm(x, c); });
  auto* rb = snap->add_subcommand("rollback", "Return a volume to a snapshot (O(1))\n"
                                              "  example: stack snapshot rollback -p p.stk "
                                              "vm1@before-upgrade");
  common(rb, "VOLUME@SNAPSHOT");
  bind(rb, [](VolArgs& x, CommandContext& c) { return SnapRollback(x, c); });

  auto* clone = app.add_subcommand(
      "clone", "Fork a volume or snapshot into a new writable volume in O(1).\n"
               "Overrides: --size (grow), --read-only, --note/--tag, and its own passphrase\n"
               "(--new-key-file: the clone's copy of the LUKS2 header gets new keyslots).\n"
               "Clones share the source's volume key: a new passphrase does not make the\n"
               "clone's data secret from whoever holds the source's key.\n"
               "  example: stack clone -p p.stk golden@v1 task-42 -k pass.txt "
               "--new-key-file task.txt");
  common(clone, "SOURCE NEW_NAME");
  meta(clone);
  clone->add_option("--size", a->size,
                    std::string("Grow the clone to this size, whole pool blocks, and the ext4 "
                                "in it with it: ") + kSizeHelp);
  clone->add_flag("--read-only", a->read_only, "Make the clone read-only");
  clone->add_option("--key-file,-k", a->key_file,
                    "Source passphrase file ('-' = stdin): for --new-key-file, and for --size "
                    "to grow the ext4 inside an encrypted clone (without it only the volume "
                    "grows, and a note says so)");
  clone->add_flag("--no-fs-resize", a->no_fs_resize,
                  "With --size: leave the ext4 file system inside as it is (default: it grows "
                  "to fill the clone)");
  clone->add_option("--new-key-file", a->new_key_file,
                    "Give the clone its own passphrase from this file ('-' = stdin)");
  a->kdf.AddTo(clone);
  clone->add_option("--cipher", a->cipher, "(refused: a clone keeps the source's cipher)");
  clone->add_option("--sector-size", a->sector_size,
                    "(refused: a clone keeps the source's sector size)");
  bind(clone, [](VolArgs& x, CommandContext& c) { return Clone(x, c); });
}

}  // namespace stack::cli
