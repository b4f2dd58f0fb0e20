// `stack fs ...`: ext4 inside a volume (encrypted or not) or an image file,
// without mounting: mkfs, populate, ls, stat, cat, get, put, mkdir, rm,
// chmod, chown, symlink, extract, df, trim, resize.
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <span>

#include <ctime>
#include <filesystem>
#include <iostream>

#include "command.h"
#include "fs_format.h"
#include "fsbridge/names.h"
#include "output.h"
#include "stack/address.h"
#include "stack/open_pool.h"
#include "stack/populate.h"
#include "stack/resize.h"
#include "stack/sizes.h"
#include "stack/fs_session.h"
#include "stack/output_file.h"
#include "target_args.h"
#include "units.h"

namespace stack::cli {
namespace {

struct FsArgs {
  TargetArgs t;
  // mkfs
  std::string label, uuid;
  uint32_t block_size = 0, inode_size = 0, inode_ratio = 0;
  double reserved_ratio = 0.05;
  int64_t timestamp = -1;
  // populate / put
  std::string from, dest = "/", manifest;
  bool no_owners = false, lenient = false;
  // misc
  bool parents = false, recursive = false, long_format = false;
  std::string mode = "0755";
  std::string to_dir, to_tar;
  // resize
  std::string size;
};

// Opens the file system. Commands check their arguments between a.t.Spec()
// and this, so a malformed command never opens (or writes) anything.
Result<std::unique_ptr<compose::FsSession>> Session(FsArgs& a, const compose::TargetSpec& spec) {
  auto s = compose::FsSession::Open(spec, a.t.Passphrase(), !a.t.key_file.empty());
  if (s.ok())
    for (auto& w : (*s)->warnings()) std::cerr << "stack: warning: " << EscapeText(w) << "\n";
  return s;
}

fsbridge::PopulateOptions PopOpts(const FsArgs& a) {
  fsbridge::PopulateOptions o;
  o.manifest_path = a.manifest;
  o.lenient_manifest = a.lenient;
  o.timestamp = ResolveTimestamp(a.timestamp);
  o.keep_owners = !a.no_owners;
  return o;
}

Status Mkfs(FsArgs& a, const CommandContext& ctx) {
  ASSIGN_OR_RETURN(auto spec, a.t.Spec(true));
  RETURN_IF_ERROR(a.t.NeedArgs(0, 0, "no arguments after the target"));
  ASSIGN_OR_RETURN(auto o, MkfsOptionsFrom(a.label, a.uuid, a.block_size, a.inode_size,
                                           a.inode_ratio, a.reserved_ratio, ResolveTimestamp(a.timestamp)));
  ASSIGN_OR_RETURN(auto s, compose::FsSession::Mkfs(spec, a.t.Passphrase(), o,
                                                             !a.t.key_file.empty()));
  ASSIGN_OR_RETURN(auto df, s->fs().Df());
  RETURN_IF_ERROR(s->Close());
  if (ctx.json) PrintJson(DfJson(df));
  else std::cout << "made ext4 " << df.uuid << ": " << df.blocks_total << " blocks of "
                 << df.block_size << " B, " << df.inodes_total << " inodes\n";
  return Status::Ok();
}

Status Populate(FsArgs& a, const CommandContext& ctx) {
  ASSIGN_OR_RETURN(auto spec, a.t.Spec(true));
  RETURN_IF_ERROR(a.t.NeedArgs(0, 0, "no arguments after the target (use --from)"));
  if (a.from.empty()) return Status::InvalidArgument("--from DIR|TARBALL|- is required");
  ASSIGN_OR_RETURN(auto s, Session(a, spec));
  compose::Progress progress("populate", 0);
  auto st = compose::PopulateFrom(s->fs(), a.from, a.dest, PopOpts(a), &progress);
  RETURN_IF_ERROR(st.status());
  RETURN_IF_ERROR(s->Close());
  for (const auto& w : st->warnings) std::cerr << "stack: warning: " << EscapeText(w) << "\n";
  if (ctx.json) PrintJson(StatsJson(*st));
  else std::cout << StatsText(*st) << "\n";
  return Status::Ok();
}

Status Ls(FsArgs& a, const CommandContext& ctx) {
  ASSIGN_OR_RETURN(auto spec, a.t.Spec(false));
  RETURN_IF_ERROR(a.t.NeedArgs(0, 1, "[PATH]"));
  ASSIGN_OR_RETURN(auto s, Session(a, spec));
  std::string path = a.t.pos.empty() ? "/" : a.t.pos[0];
  ASSIGN_OR_RETURN(auto st, s->fs().Stat(path));
  std::vector<fsbridge::DirEntryInfo> entries;
  if (st.type == fsbridge::FileType::kDirectory) {
    ASSIGN_OR_RETURN(entries, s->fs().List(path));
  } else {
    entries.push_back({std::filesystem::path(path).filename().string(), st});
  }
  if (ctx.json) {
    nlohmann::json arr = nlohmann::json::array();
    for (auto& e : entries) {
      auto j = InodeJson(e.info);
      j["name"] = e.name;
      arr.push_back(j);
    }
    PrintJson(arr);  // names are bytes: invalid UTF-8 becomes U+FFFD
  } else {
    // One line per entry, whatever bytes the image holds (fsbridge/names.h).
    for (auto& e : entries) {
      const std::string name = EscapeText(e.name);
      std::cout << (a.long_format ? LongLine(name, e.info) : name) << "\n";
    }
  }
  return s->Close();
}

Status Stat(FsArgs& a, const CommandContext& ctx) {
  ASSIGN_OR_RETURN(auto spec, a.t.Spec(false));
  RETURN_IF_ERROR(a.t.NeedArgs(1, 1, "PATH"));
  ASSIGN_OR_RETURN(auto s, Session(a, spec));
  ASSIGN_OR_RETURN(auto st, s->fs().Stat(a.t.pos[0]));
  if (ctx.json) {
    auto j = InodeJson(st);
    j["path"] = a.t.pos[0];
    PrintJson(j);
  } else {
    std::cout << StatText(EscapeText(a.t.pos[0]), st);
  }
  return s->Close();
}

Status Cat(FsArgs& a) {
  ASSIGN_OR_RETURN(auto spec, a.t.Spec(false));
  RETURN_IF_ERROR(a.t.NeedArgs(1, 1, "PATH"));
  ASSIGN_OR_RETURN(auto s, Session(a, spec));
  RETURN_IF_ERROR(s->fs().Stat(a.t.pos[0]).status());  // a missing path: a JSON error
  NoteStdoutUsed();  // the file's bytes are the output, --json or not
  RETURN_IF_ERROR(s->fs().ReadFile(a.t.pos[0], std::cout));
  std::cout.flush();
  if (!std::cout) return Status::IoError("writing to stdout failed");
  return s->Close();
}

Status Get(FsArgs& a, CommandContext& ctx) {
  ASSIGN_OR_RETURN(auto spec, a.t.Spec(false));
  RETURN_IF_ERROR(a.t.NeedArgs(2, 2, "PATH HOST_DEST"));
  ASSIGN_OR_RETURN(auto s, Session(a, spec));
  ASSIGN_OR_RETURN(auto st, s->fs().Stat(a.t.pos[0]));
  const std::string& dest = a.t.pos[1];
  if (st.type == fsbridge::FileType::kDirectory) {
    std::filesystem::create_directories(dest);
    RETURN_IF_ERROR(s->fs().ExtractToDirectory(a.t.pos[0], dest));
    ctx.done = {{"path", a.t.pos[0]}, {"to", dest}};
    return s->Close();
  }
  if (st.type == fsbridge::FileType::kSymlink)
    return Status::InvalidArgument(a.t.pos[0] + " is a symbolic link (to " + st.symlink_target +
                                   "): fs get copies regular files and directories");
  if (st.type != fsbridge::FileType::kRegular)
    return Status::InvalidArgument(a.t.pos[0] + " is not a regular file or directory");
  std::string out = dest;
  if (std::filesystem::is_directory(dest))
    out = (std::filesystem::path(dest) / std::filesystem::path(a.t.pos[0]).filename()).string();
  // Replaces an existing file (as cp does), but only once the copy is whole.
  compose::OutputFileOptions fo;
  fo.overwrite = true;
  fo.mode = st.mode & 07777;
  fo.apply_umask = false;  // the file's own mode, as before
  fo.inputs = {a.t.PoolNamed(), a.t.image};
  ASSIGN_OR_RETURN(auto file, compose::OutputFile::Create(out, fo));
  // Holes stay holes (as cp --sparse=auto keeps them).
  RETURN_IF_ERROR(s->fs().ReadFileTo(a.t.pos[0], file->fd(), file->temp_path()));
  RETURN_IF_ERROR(file->Commit());
  ctx.done = {{"path", a.t.pos[0]}, {"to", out}, {"bytes", st.size}};
  return s->Close();
}

Status Put(FsArgs& a, CommandContext& ctx) {
  ASSIGN_OR_RETURN(auto spec, a.t.Spec(true));
  RETURN_IF_ERROR(a.t.NeedArgs(2, 2, "HOST_SRC PATH"));
  ASSIGN_OR_RETURN(auto s, Session(a, spec));
  RETURN_IF_ERROR(s->fs().PutFile(a.t.pos[0], a.t.pos[1], PopOpts(a)));
  ctx.done = {{"from", a.t.pos[0]}, {"path", a.t.pos[1]}};
  return s->Close();
}

Status Mkdir(FsArgs& a, CommandContext& ctx) {
  ASSIGN_OR_RETURN(auto spec, a.t.Spec(true));
  RETURN_IF_ERROR(a.t.NeedArgs(1, 64, "PATH..."));
  ASSIGN_OR_RETURN(uint32_t mode, ParseMode(a.mode));
  ASSIGN_OR_RETURN(auto s, Session(a, spec));
  for (auto& p : a.t.pos) RETURN_IF_ERROR(s->fs().Mkdir(p, a.parents, mode));
  ctx.done = {{"made", a.t.pos}};
  return s->Close();
}

Status Rm(FsArgs& a, CommandContext& ctx) {
  ASSIGN_OR_RETURN(auto spec, a.t.Spec(true));
  RETURN_IF_ERROR(a.t.NeedArgs(1, 64, "PATH..."));
  ASSIGN_OR_RETURN(auto s, Session(a, spec));
  for (auto& p : a.t.pos) RETURN_IF_ERROR(s->fs().Remove(p, a.recursive));
  ctx.done = {{"removed", a.t.pos}};
  return s->Close();
}

Status Chmod(FsArgs& a, CommandContext& ctx) {
  ASSIGN_OR_RETURN(auto spec, a.t.Spec(true));
  RETURN_IF_ERROR(a.t.NeedArgs(2, 64, "MODE PATH..."));
  ASSIGN_OR_RETURN(uint32_t mode, ParseMode(a.t.pos[0]));
  ASSIGN_OR_RETURN(auto s, Session(a, spec));
  for (size_t i = 1; i < a.t.pos.size(); ++i) RETURN_IF_ERROR(s->fs().Chmod(a.t.pos[i], mode));
  ctx.done = {{"mode", mode}, {"paths", std::vector<std::string>(a.t.pos.begin() + 1, a.t.pos.end())}};
  return s->Close();
}

Status Chown(FsArgs& a, CommandContext& ctx) {
  ASSIGN_OR_RETURN(auto spec, a.t.Spec(true));
  RETURN_IF_ERROR(a.t.NeedArgs(2, 64, "UID[:GID] PATH..."));
  ASSIGN_OR_RETURN(auto ids, ParseOwner(a.t.pos[0]));
  ASSIGN_OR_RETURN(auto s, Session(a, spec));
  for (size_t i = 1; i < a.t.pos.size(); ++i) {
    uint32_t gid = ids.second;
    if (gid == UINT32_MAX) {
      ASSIGN_OR_RETURN(auto st, s->fs().Stat(a.t.pos[i]));
      gid = st.gid;
    }
    RETURN_IF_ERROR(s->fs().Chown(a.t.pos[i], ids.first, gid));
  }
  ctx.done = {{"uid", ids.first},
              {"paths", std::vector<std::string>(a.t.pos.begin() + 1, a.t.pos.end())}};
  if (ids.second != UINT32_MAX) ctx.done["gid"] = ids.second;
  return s->Close();
}

Status Symlink(FsArgs& a, CommandContext& ctx) {
  ASSIGN_OR_RETURN(auto spec, a.t.Spec(true));
  RETURN_IF_ERROR(a.t.NeedArgs(2, 2, "TARGET LINK_PATH"));
  ASSIGN_OR_RETURN(auto s, Session(a, spec));
  RETURN_IF_ERROR(s->fs().Symlink(a.t.pos[0], a.t.pos[1]));
  ctx.done = {{"link", a.t.pos[1]}, {"target", a.t.pos[0]}};
  return s->Close();
}

Status Extract(FsArgs& a, CommandContext& ctx) {
  ASSIGN_OR_RETURN(auto spec, a.t.Spec(false));
  RETURN_IF_ERROR(a.t.NeedArgs(0, 1, "[PATH]"));
  if (a.to_dir.empty() == a.to_tar.empty())
    return Status::InvalidArgument("give exactly one of --to DIR or --tar FILE|-");
  ASSIGN_OR_RETURN(auto s, Session(a, spec));
  std::string path = a.t.pos.empty() ? "/" : a.t.pos[0];
  if (!a.to_dir.empty()) {
    std::filesystem::create_directories(a.to_dir);
    RETURN_IF_ERROR(s->fs().ExtractToDirectory(path, a.to_dir));
    ctx.done = {{"path", path}, {"to", a.to_dir}};
  } else if (a.to_tar == "-") {
    RETURN_IF_ERROR(s->fs().Stat(path).status());
    NoteStdoutUsed();  // the tar stream is the output
    RETURN_IF_ERROR(s->fs().ExtractToTar(path, a.to_tar));
  } else {
    // An existing tar file is replaced (as before), but only by a whole one.
    compose::OutputFileOptions fo;
    fo.overwrite = true;
    fo.inputs = {a.t.PoolNamed(), a.t.image};
    ASSIGN_OR_RETURN(auto file, compose::OutputFile::Create(a.to_tar, fo));
    RETURN_IF_ERROR(s->fs().ExtractToTar(path, file->temp_path()));
    RETURN_IF_ERROR(file->Commit());
    ctx.done = {{"path", path}, {"tar", a.to_tar}};
  }
  return s->Close();
}

Status Df(FsArgs& a, const CommandContext& ctx) {
  ASSIGN_OR_RETURN(auto spec, a.t.Spec(false));
  RETURN_IF_ERROR(a.t.NeedArgs(0, 0, "no arguments after the target"));
  ASSIGN_OR_RETURN(auto s, Session(a, spec));
  ASSIGN_OR_RETURN(auto df, s->fs().Df());
  // What `fs trim` would give back: free blocks the volume still maps.
  ASSIGN_OR_RETURN(auto trimmable, s->fs().TrimmableBytes());
  if (ctx.json) {
    auto j = DfJson(df);
    j["trimmable_bytes"] = trimmable ? nlohmann::json(*trimmable) : nlohmann::json(nullptr);
    PrintJson(j);
  } else {
    std::cout << DfText(df);
    if (trimmable) std::cout << "  trimmable: " << FormatSize(*trimmable) << " (stack fs trim)\n";
    else std::cout << "  trimmable: none (the device takes no discards: LUKS2 without allow-discards?)\n";
  }
  return s->Close();
}

// Like fstrim: every free block range is discarded; on a pool volume the
// bytes the pool stopped mapping are reported too (a range of an encrypted
// volume frees only whole pool blocks, and blocks a snapshot shares stay).
Status Trim(FsArgs& a, const CommandContext& ctx) {
  ASSIGN_OR_RETURN(auto spec, a.t.Spec(true));
  RETURN_IF_ERROR(a.t.NeedArgs(0, 0, "no arguments after the target"));
  ASSIGN_OR_RETURN(auto s, Session(a, spec));
  ASSIGN_OR_RETURN(auto before, s->MappedBytes());
  ASSIGN_OR_RETURN(auto t, s->fs().Trim());
  ASSIGN_OR_RETURN(auto after, s->MappedBytes());
  RETURN_IF_ERROR(s->Close());
  std::optional<uint64_t> freed;
  if (before && after) freed = *before > *after ? *before - *after : 0;
  if (ctx.json) {
    nlohmann::json j = {{"trimmed_bytes", t.trimmed_bytes}, {"ranges", t.ranges}};
    j["freed_bytes"] = freed ? nlohmann::json(*freed) : nlohmann::json(nullptr);
    j["mapped_bytes"] = after ? nlohmann::json(*after) : nlohmann::json(nullptr);
    PrintJson(j);
  } else {
    std::cout << "trimmed " << FormatSize(t.trimmed_bytes) << " (" << t.ranges << " free ranges)";
    if (freed) std::cout << ", the pool freed " << FormatSize(*freed);
    std::cout << "\n";
  }
  return Status::Ok();
}

// Grows the file system to fill its volume (or image file), growing the
// volume first to --size. Never shrinks: a smaller --size is Unsupported.
Status Resize(FsArgs& a, const CommandContext& ctx) {
  ASSIGN_OR_RETURN(auto spec, a.t.Spec(true));
  RETURN_IF_ERROR(a.t.NeedArgs(0, 0, "no arguments after the target"));
  uint64_t size = 0;  // 0: as it is
  if (!a.size.empty()) {
    ASSIGN_OR_RETURN(size, ParseSize(a.size, "--size"));
  }
  compose::GrowReport g;
  if (!spec.image_path.empty()) {
    struct stat st;
    if (::stat(spec.image_path.c_str(), &st) != 0)
      return errno == ENOENT ? Status::NotFound(spec.image_path + ": no such file") : Status::FromErrno("opening " + spec.image_path, errno);
    g.volume_before = g.volume_after = uint64_t(st.st_size);
    if (size && size < g.volume_before)
      return Status::Unsupported(spec.image_path + " is " + std::to_string(g.volume_before) +
                                 " bytes: shrinking is not supported");
    if (size > g.volume_before) {
      RETURN_IF_ERROR(compose::RequireWholeBlocks(size, 4096, "--size"));
      if (::truncate(spec.image_path.c_str(), off_t(size)) != 0)
        return Status::FromErrno("growing " + spec.image_path, errno);
      g.volume_after = size;
    }
    auto grow = [&]() -> Status {
      ASSIGN_OR_RETURN(auto s, Session(a, spec));
      g.encryption = s->encryption();
      ASSIGN_OR_RETURN(auto df, s->fs().Df());
      g.fs_before = df.blocks_total * df.block_size;
      ASSIGN_OR_RETURN(g.fs_after, s->fs().Grow(0));
      return s->Close();
    };
    Status grown = grow();
    // Refused (no file system, the layout's limit, a wrong passphrase):
    // the file goes back to its size.
    if (!grown.ok() && g.volume_after > g.volume_before)
      (void)::truncate(spec.image_path.c_str(), off_t(g.volume_before));
    RETURN_IF_ERROR(grown);
    g.fs_grown = g.fs_after > g.fs_before;
    if (!g.fs_grown) g.fs_note = "the file system already fills " + spec.image_path;
  } else {
    ASSIGN_OR_RETURN(auto addr, compose::ParseEntryAddress(spec.entry));
    if (addr.is_snapshot())
      return Status::ReadOnly(spec.entry + " is a snapshot: clone it to grow it");
    int removed = 0;
    ASSIGN_OR_RETURN(auto p, compose::OpenPool(spec.pool_path, compose::PoolAccess::kWritable, {},
                                               &removed, addr.volume));
    if (removed) std::cerr << "stack: removed " << removed << " unfinished build(s)\n";
    if (size) RETURN_IF_ERROR(compose::RequireWholeBlocks(size, p->block_size(), "--size"));
    const compose::SecretGetter pass = a.t.Passphrase();
    ASSIGN_OR_RETURN(g, compose::GrowVolume(*p, addr.name(), size, true, &pass, true));
  }
  if (ctx.json) {
    PrintJson(nlohmann::json{{"volume_bytes_before", g.volume_before},
                             {"volume_bytes_after", g.volume_after},
                             {"fs_bytes_before", g.fs_before},
                             {"fs_bytes_after", g.fs_after},
                             {"grown", g.fs_grown},
                             {"note", g.fs_note}});
  } else if (g.fs_grown) {
    std::cout << "grew the file system " << FormatSize(g.fs_before) << " -> "
              << FormatSize(g.fs_after) << "\n";
  } else {
    std::cout << g.fs_note << "\n";
  }
  return Status::Ok();
}

}  // namespace

void RegisterFsCommands(CLI::App& app, CommandContext& ctx) {
  auto* fs = app.add_subcommand("fs", "ext4 inside a volume or image, without mounting");
  fs->require_subcommand(1);
  auto a = std::make_shared<FsArgs>();
  auto bind = [&ctx, a](CLI::App* c, std::function<Status(FsArgs&, CommandContext&)> fn) {
    c->callback([&ctx, a, fn] {
      ctx.action = [&ctx, a, fn] { return fn(*a, ctx); };
      ctx.pool = a->t.PoolNamed();
    });
  };
  auto cmd = [&](const char* name, const char* help, const char* usage, bool key = true) {
    auto* c = fs->add_subcommand(name, help);
    a->t.AddTo(c, usage);
    if (key) a->t.AddKeyFile(c);
    return c;
  };
  auto ts = [&](CLI::App* c) {
    c->add_option("--timestamp", a->timestamp,
                  "Fixed time for reproducible images (default: $SOURCE_DATE_EPOCH, else now)");
  };

  auto* mkfs = cmd("mkfs", "Make an ext4 filesystem (Debian's default features, journal)\n"
                           "  example: stack fs mkfs -p pool.stk vm1 -k pass.txt --label root",
                   "[VOLUME]");
  mkfs->add_option("--label", a->label, "Filesystem label (16 bytes)");
  mkfs->add_option("--uuid", a->uuid, "Filesystem UUID (default random)");
  mkfs->add_option("--block-size", a->block_size, "Block size (default: 4096)");
  mkfs->add_option("--inode-size", a->inode_size, "Inode size (default 256)");
  mkfs->add_option("--inode-ratio", a->inode_ratio, "Bytes per inode (default 16384)");
  mkfs->add_option("--reserved-ratio", a->reserved_ratio, "Fraction reserved for root");
  ts(mkfs);
  bind(mkfs, [](FsArgs& x, CommandContext& c) { return Mkfs(x, c); });

  auto* pop = cmd("populate", "Copy a directory tree or a tarball (.tar, .gz, .zst, .xz) in\n"
                              "  example: stack fs populate -p pool.stk vm1 -k pass.txt "
                              "--from rootfs/",
                  "[VOLUME]");
  pop->add_option("--from", a->from, "Source directory, tarball, or - (tar on stdin)");
  pop->add_option("--dest", a->dest, "Directory inside the filesystem")->capture_default_str();
  pop->add_option("--manifest", a->manifest, "Owner/mode/time overrides (spec/fsbridge.md)");
  pop->add_flag("--no-owners", a->no_owners, "Make every file 0:0 unless the manifest says");
  pop->add_flag("--lenient", a->lenient,
                "Manifest lines naming paths not in the source are warnings, not errors");
  ts(pop);
  bind(pop, [](FsArgs& x, CommandContext& c) { return Populate(x, c); });

  auto* ls = cmd("ls", "List a directory\n  example: stack fs ls -p pool.stk golden@v1 /etc -l",
                 "[ENTRY] [PATH]");
  ls->add_flag("-l,--long", a->long_format, "Long format");
  bind(ls, [](FsArgs& x, CommandContext& c) { return Ls(x, c); });

  auto* stat = cmd("stat", "Show a path's attributes\n"
                           "  example: stack --json fs stat -p pool.stk vm1 /etc/hostname",
                   "[ENTRY] PATH");
  bind(stat, [](FsArgs& x, CommandContext& c) { return Stat(x, c); });

  auto* cat = cmd("cat", "Write a file's content to stdout\n"
                         "  example: stack fs cat -p pool.stk vm1 /etc/hostname",
                  "[ENTRY] PATH");
  bind(cat, [](FsArgs& x, CommandContext&) { return Cat(x); });

  auto* get = cmd("get", "Copy a file or tree out to the host\n"
                         "  example: stack fs get -p pool.stk vm1 /etc ./etc-copy",
                  "[ENTRY] PATH HOST_DEST");
  bind(get, [](FsArgs& x, CommandContext& c) { return Get(x, c); });

  auto* put = cmd("put", "Copy a host file or tree in\n"
                         "  example: stack fs put -p pool.stk vm1 ./motd /etc/motd",
                  "[VOLUME] HOST_SRC PATH");
  ts(put);
  bind(put, [](FsArgs& x, CommandContext& c) { return Put(x, c); });

  auto* mkdir = cmd("mkdir", "Make directories\n  example: stack fs mkdir -p pool.stk vm1 "
                             "--parents /srv/app/data",
                    "[VOLUME] PATH...");
  mkdir->add_flag("--parents", a->parents, "Make parents as needed; no error if present");
  mkdir->add_option("--mode", a->mode, "Permission bits (octal)")->capture_default_str();
  bind(mkdir, [](FsArgs& x, CommandContext& c) { return Mkdir(x, c); });

  auto* rm = cmd("rm", "Remove files or (with -r) trees\n"
                       "  example: stack fs rm -p pool.stk vm1 -r /tmp/cache",
                 "[VOLUME] PATH...");
  rm->add_flag("-r,--recursive", a->recursive, "Remove directories and their content");
  bind(rm, [](FsArgs& x, CommandContext& c) { return Rm(x, c); });

  auto* chmod = cmd("chmod", "Change permission bits\n"
                             "  example: stack fs chmod -p pool.stk vm1 0600 /etc/shadow",
                    "[VOLUME] MODE PATH...");
  bind(chmod, [](FsArgs& x, CommandContext& c) { return Chmod(x, c); });

  auto* chown = cmd("chown", "Change owner (numeric)\n"
                             "  example: stack fs chown -p pool.stk vm1 1000:1000 /home/u",
                    "[VOLUME] UID[:GID] PATH...");
  bind(chown, [](FsArgs& x, CommandContext& c) { return Chown(x, c); });

  auto* sym = cmd("symlink", "Make a symbolic link\n"
                             "  example: stack fs symlink -p pool.stk vm1 /usr/bin/python3 "
                             "/usr/local/bin/py",
                  "[VOLUME] TARGET LINK_PATH");
  bind(sym, [](FsArgs& x, CommandContext& c) { return Symlink(x, c); });

  auto* ex = cmd("extract", "Extract a tree to a host directory or a tar stream\n"
                            "  example: stack fs extract -p pool.stk golden@v1 --tar - > root.tar",
                 "[ENTRY] [PATH]");
  ex->add_option("--to", a->to_dir, "Host directory to extract into");
  ex->add_option("--tar", a->to_tar, "Tar file to write (- = stdout)");
  bind(ex, [](FsArgs& x, CommandContext& c) { return Extract(x, c); });

  auto* df = cmd("df", "Free blocks and inodes\n  example: stack fs df -p pool.stk vm1",
                 "[ENTRY]");
  bind(df, [](FsArgs& x, CommandContext& c) { return Df(x, c); });

  auto* trim = cmd("trim", "Discard every free block (like fstrim), giving it back to the pool\n"
                           "  example: stack fs trim -p pool.stk vm1 -k pass.txt",
                   "[VOLUME]");
  bind(trim, [](FsArgs& x, CommandContext& c) { return Trim(x, c); });

  auto* resize = cmd("resize", "Grow the file system to fill its volume (or image file), growing\n"
                               "that first with --size; in place, through an encrypted volume's\n"
                               "LUKS container too. Shrinking is not supported.\n"
                               "  example: stack fs resize -p pool.stk vm1 --size 6G -k pass.txt",
                     "[VOLUME]");
  resize->add_option("--size", a->size,
                     std::string("New size of the volume or image (default: as it is), never "
                                 "smaller: ") + kSizeHelp);
  bind(resize, [](FsArgs& x, CommandContext& c) { return Resize(x, c); });
}

}  // namespace stack::cli
