// `stack build`, `stack export`, `stack import`: whole-image pipelines.
#include <unistd.h>

#include <iostream>

#include "command.h"
#include "fs_format.h"
#include "kdf_args.h"
#include "output.h"
#include "stack/address.h"
#include "stack/build.h"
#include "stack/import_into.h"
#include "stack/transfer.h"
#include "target_args.h"
#include "units.h"

namespace stack::cli {
namespace {

struct ImageArgs {
  TargetArgs t;
  KdfArgs kdf;
  std::string from, size, snapshot = "golden", manifest, note;
  std::vector<std::string> tags;
  std::string label, uuid;
  int64_t timestamp = -1;
  bool no_encrypt = false, no_discards = false, no_owners = false, force = false, sync = false,
       lenient = false;
  uint32_t sector_size = 4096;
  uint32_t pool_block_size = 0;
  std::string pool_max = "64G";
  std::string format = "stored";
  std::string into, into_format = "auto", into_snapshot;
  CLI::Option* into_opt = nullptr;  // given, even empty ("--into ''" is a mistake)
  std::string method = "auto";
  std::string platform = "linux/amd64";
  bool layer_snapshots = false;
};

// A missing pool is created by build and import alike (compose::OpenOrCreatePool).
Result<compose::NewPoolOptions> NewPool(const ImageArgs& a) {
  compose::NewPoolOptions n;
  n.block_size = a.pool_block_size;
  ASSIGN_OR_RETURN(n.max_bytes, ParseSize(a.pool_max, "--pool-max-size"));
  return n;
}

void AddNewPoolOptions(CLI::App* c, ImageArgs& a) {
  c->add_option("--pool-block-size", a.pool_block_size, "Block size of a new pool");
  c->add_option("--pool-max-size", a.pool_max,
                std::string("Maximum size of a new pool, whole blocks: ") + kSizeHelp)
      ->capture_default_str();
}

Status Build(ImageArgs& a, const CommandContext& ctx) {
  if (a.t.pool.empty()) return Status::InvalidArgument("--pool FILE (or STACK_POOL) is required");
  if (a.t.pos.size() != 1) return Status::InvalidArgument("expected VOLUME");
  compose::BuildOptions o;
  o.pool_path = a.t.pool;
  o.volume = a.t.pos[0];
  RETURN_IF_ERROR(compose::ValidateName(o.volume, "volume"));
  if (!a.snapshot.empty()) RETURN_IF_ERROR(compose::ValidateName(a.snapshot, "snapshot"));
  if (a.size.empty()) return Status::InvalidArgument("--size is required");
  ASSIGN_OR_RETURN(o.size_bytes, ParseSize(a.size, "--size"));
  ASSIGN_OR_RETURN(o.new_pool, NewPool(a));
  o.snapshot = a.snapshot;
  o.source = a.from;
  o.platform = a.platform;
  o.layer_snapshots = a.layer_snapshots;
  o.note = a.note;
  o.tags = a.tags;
  o.encrypt = !a.no_encrypt;
  o.luks.sector_size = a.sector_size;
  o.luks.allow_discards = !a.no_discards;
  ASSIGN_OR_RETURN(o.luks.kdf, a.kdf.Params());
  ASSIGN_OR_RETURN(o.mkfs, MkfsOptionsFrom(a.label, a.uuid, 0, 0, 0, 0.05, ResolveTimestamp(a.timestamp)));
  o.populate.manifest_path = a.manifest;
  o.populate.lenient_manifest = a.lenient;
  o.populate.timestamp = ResolveTimestamp(a.timestamp);
  o.populate.keep_owners = !a.no_owners;
  std::optional<fde::Secret> pass;
  if (o.encrypt) {
    compose::SecretSource s;
    s.key_file = a.t.key_file;
    s.prompt = "Passphrase for the new image: ";
    s.confirm = true;
    ASSIGN_OR_RETURN(pass, compose::ObtainSecret(s));
  }
  compose::Progress progress("build", 0);
  o.progress = &progress;
  ASSIGN_OR_RETURN(auto rep, compose::BuildImage(o, pass ? &*pass : nullptr));
  for (const auto& w : rep.stats.warnings) std::cerr << "stack: warning: " << EscapeText(w) << "\n";
  if (ctx.json) {
    nlohmann::json j = {{"volume", rep.volume},
                        {"snapshot", rep.snapshot},
                        {"encrypted", rep.encrypted},
                        {"created_pool", rep.created_pool},
                        {"populate", StatsJson(rep.stats)},
                        {"filesystem", DfJson(rep.df)},
                        {"seconds", rep.seconds}};
    if (rep.image)
      j["image"] = {{"digest", rep.image->digest},
                    {"image_id", rep.image->image_id},
                    {"layers", rep.image->layers},
                    {"members", rep.image->members},
                    {"skipped_members", rep.image->skipped_members},
                    {"skipped_bytes", rep.image->skipped_bytes},
                    {"reused_layers", rep.image->reused_layers},
                    {"bytes_written", rep.stats.bytes}};
    PrintJson(j);
  } else {
    std::cout << "built " << rep.volume << (rep.encrypted ? " (LUKS2, ext4)" : " (ext4)")
              << " in " << rep.seconds << " s: " << StatsText(rep.stats) << "\n";
    if (rep.image)
      std::cout << "image " << rep.image->digest << ": " << rep.image->layers << " layers, "
                << rep.image->skipped_members << " members deleted or replaced by a later "
                << "layer (" << rep.image->skipped_bytes << " bytes not written)\n";
    if (!rep.snapshot.empty()) std::cout << "snapshot " << rep.snapshot << "\n";
  }
  return Status::Ok();
}

Status Export(ImageArgs& a, const CommandContext& ctx) {
  compose::ExportOptions o;
  ASSIGN_OR_RETURN(o.source, a.t.Spec(false));
  if (a.t.pos.size() != 1) return Status::InvalidArgument("expected OUTPUT_FILE");
  o.out_path = a.t.pos[0];
  ASSIGN_OR_RETURN(o.format, compose::ParseExportFormat(a.format));
  o.overwrite = a.force;
  o.sync = a.sync;
  ASSIGN_OR_RETURN(o.method, compose::ParseCopyMethod(a.method));
  o.passphrase = a.t.Passphrase();
  if (!a.t.new_key_file.empty()) o.new_passphrase = a.t.NewPassphrase();
  ASSIGN_OR_RETURN(o.luks1_kdf, a.kdf.Params());
  o.luks1_kdf.type = fde::KdfType::kPbkdf2;
  compose::Progress progress("export", 0);
  o.progress = &progress;
  // Exported to stdout: the image is the output; the report goes to stderr.
  const bool to_stdout = compose::OutputDescriptor(o.out_path) == STDOUT_FILENO;
  ASSIGN_OR_RETURN(auto rep, compose::ExportImage(o));
  if (to_stdout) NoteStdoutUsed();
  std::ostream& out = to_stdout ? std::cerr : std::cout;
  if (ctx.json && to_stdout) {
    // stdout holds the image: no document after it.
  } else if (ctx.json) {
    PrintJson({{"output", o.out_path},
               {"format", rep.format},
               {"source_encryption", rep.source_encryption},
               {"method", rep.copy.method},
               {"method_note", rep.copy.method_note},
               {"synced", o.sync},
               {"file_size", rep.file_size},
               {"file_allocated_bytes", rep.file_allocated},
               {"source_allocated_bytes", rep.copy.allocated_bytes},
               {"written_bytes", rep.copy.written_bytes},
               {"shared_bytes", rep.copy.shared_bytes},
               {"zero_bytes_skipped", rep.copy.zero_bytes}});
  } else {
    out << "exported " << EscapeText(o.source.entry + o.source.image_path) << " -> "
              << EscapeText(o.out_path)
              << " (" << rep.format << ", " << FormatSize(rep.file_size) << ", "
              << FormatSize(rep.file_allocated) << " on disk, method " << rep.copy.method
              << ")\n";
    if (!rep.copy.method_note.empty()) out << "  (" << rep.copy.method_note << ")\n";
  }
  return Status::Ok();
}

// import --into VOL: only the blocks that differ from VOL are written.
Status ImportInto(ImageArgs& a, const CommandContext& ctx) {
  if (a.t.pos.size() != 1) return Status::InvalidArgument("expected IMAGE_FILE (with --into VOLUME)");
  if (!a.note.empty() || !a.tags.empty() || a.force)
    return Status::InvalidArgument("--note, --tag and --force apply to a new volume, not --into");
  compose::ImportIntoOptions o;
  o.pool_path = a.t.pool;
  o.in_path = a.t.pos[0];
  o.volume = a.into;
  RETURN_IF_ERROR(compose::ValidateName(o.volume, "volume"));
  if (!a.into_snapshot.empty()) RETURN_IF_ERROR(compose::ValidateName(a.into_snapshot, "snapshot"));
  o.snapshot = a.into_snapshot;
  ASSIGN_OR_RETURN(o.format, compose::ParseImportIntoFormat(a.into_format));
  o.passphrase = a.t.Passphrase();
  compose::Progress progress("import", 0);
  o.progress = &progress;
  ASSIGN_OR_RETURN(auto rep, compose::ImportInto(o));
  if (ctx.json) {
    PrintJson({{"volume", rep.volume},
               {"snapshot", rep.snapshot},
               {"format", rep.format},
               {"encryption", rep.encryption},
               {"file_bytes", rep.file_bytes},
               {"changed_bytes", rep.changed_bytes},
               {"written_bytes", rep.written_bytes},
               {"discarded_bytes", rep.discarded_bytes},
               {"pool_used_before", rep.pool_used_before},
               {"pool_used_after", rep.pool_used_after}});
  } else {
    std::cout << "imported " << EscapeText(o.in_path) << " (" << rep.format << ") into "
              << rep.volume << ": " << FormatSize(rep.changed_bytes) << " changed ("
              << FormatSize(rep.written_bytes) << " written, " << FormatSize(rep.discarded_bytes)
              << " discarded) of " << FormatSize(rep.file_bytes) << "\n";
    if (!rep.snapshot.empty()) std::cout << "snapshot " << rep.snapshot << "\n";
  }
  for (const auto& n : rep.notes) std::cerr << "stack: note: " << EscapeText(n) << "\n";
  return Status::Ok();
}

Status Import(ImageArgs& a, const CommandContext& ctx) {
  if (a.t.pool.empty()) return Status::InvalidArgument("--pool FILE (or STACK_POOL) is required");
  if (a.into.empty() && a.into_opt && a.into_opt->count() > 0)
    return Status::InvalidArgument("--into: the volume name is empty");
  if (!a.into.empty()) return ImportInto(a, ctx);
  if (!a.into_snapshot.empty() || a.into_format != "auto" || !a.t.key_file.empty())
    return Status::InvalidArgument("--snapshot, --format and --key-file go with --into VOLUME");
  if (a.t.pos.size() != 2) return Status::InvalidArgument("expected IMAGE_FILE VOLUME");
  compose::ImportOptions o;
  o.pool_path = a.t.pool;
  o.in_path = a.t.pos[0];
  o.volume = a.t.pos[1];
  RETURN_IF_ERROR(compose::ValidateName(o.volume, "volume"));
  o.note = a.note;
  o.tags = a.tags;
  o.force = a.force;
  ASSIGN_OR_RETURN(o.new_pool, NewPool(a));
  compose::Progress progress("import", 0);
  o.progress = &progress;
  ASSIGN_OR_RETURN(auto rep, compose::ImportImage(o));
  for (const auto& w : rep.warnings) std::cerr << "stack: warning: " << EscapeText(w) << "\n";
  if (rep.created_pool && !ctx.json)
    std::cout << "created pool " << EscapeText(o.pool_path) << "\n";
  if (ctx.json) {
    PrintJson({{"volume", rep.volume},
               {"created_pool", rep.created_pool},
               {"detected", rep.detected},
               {"size_bytes", rep.size_bytes},
               {"method", rep.copy.method},
               {"source_allocated_bytes", rep.copy.allocated_bytes},
               {"written_bytes", rep.copy.written_bytes},
               {"zero_bytes_skipped", rep.copy.zero_bytes}});
  } else {
    std::cout << "imported " << EscapeText(o.in_path) << " (" << rep.detected << ") as " << rep.volume
              << ": " << FormatSize(rep.copy.written_bytes) << " written, "
              << FormatSize(rep.copy.zero_bytes) << " of zeros left as holes\n";
  }
  return Status::Ok();
}

}  // namespace

void RegisterImageCommands(CLI::App& app, CommandContext& ctx) {
  auto a = std::make_shared<ImageArgs>();
  auto bind = [&ctx, a](CLI::App* c, std::function<Status(ImageArgs&, CommandContext&)> fn) {
    c->callback([&ctx, a, fn] {
      ctx.action = [&ctx, a, fn] { return fn(*a, ctx); };
      ctx.pool = a->t.PoolNamed();
    });
  };

  auto* build = app.add_subcommand(
      "build", "Build an encrypted ext4 golden image from a directory or tarball and\n"
               "snapshot it, in one step (the pool is created if missing). The volume\n"
               "appears only when complete.\n"
               "  example: stack build -p images.stk base --from rootfs/ --size 4G "
               "-k pass.txt --snapshot v1");
  AddPoolOption(build, a->t.pool, "Pool file");
  build->add_option("args", a->t.pos, "VOLUME");
  build->add_option("--from", a->from,
                    "Source directory, tarball, - (tar on stdin), or a container image:\n"
                    "oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:REPO:TAG]\n"
                    "(local only: fetch with skopeo copy docker://... oci:DIR:TAG)");
  build->add_option("--platform", a->platform,
                    "The image to take from a multi-platform index (OS/ARCH[/VARIANT])")
      ->capture_default_str();
  build->add_option("--size", a->size,
                    std::string("Volume size (thin), whole pool blocks: ") + kSizeHelp);
  build->add_option("--snapshot", a->snapshot, "Snapshot name (\"\" for none)")
      ->capture_default_str();
  build->add_flag("--layer-snapshots", a->layer_snapshots,
                  "Image builds: snapshot after each layer (VOLUME@oci-<chain id>) and start\n"
                  "from a clone of the deepest layer snapshot in the pool whose layers match");
  build->add_option("--manifest", a->manifest, "Owner/mode/time overrides (spec/fsbridge.md)");
  build->add_flag("--no-owners", a->no_owners, "Files owned by 0:0 unless the manifest says");
  build->add_flag("--lenient", a->lenient,
                  "Manifest lines naming paths not in the source are warnings, not errors");
  build->add_option("--label", a->label, "Filesystem label");
  build->add_option("--uuid", a->uuid, "Filesystem UUID (reproducible builds)");
  build->add_option("--timestamp", a->timestamp, "Fixed time (default $SOURCE_DATE_EPOCH)");
  build->add_option("--note", a->note, "Note on the volume and snapshot");
  build->add_option("--tag", a->tags, "Tag (repeatable)");
  build->add_flag("--no-encrypt", a->no_encrypt, "Plain ext4, no LUKS2");
  build->add_flag("--no-discards", a->no_discards,
                  "LUKS2 header without allow-discards (cryptsetup's default); space freed\n"
                  "inside the volume then stays mapped in the pool");
  build->add_option("--sector-size", a->sector_size, "LUKS2 sector size")->capture_default_str();
  build->add_option("--key-file,-k", a->t.key_file, "Passphrase file ('-' = stdin)");
  AddNewPoolOptions(build, *a);
  a->kdf.AddTo(build);
  bind(build, [](ImageArgs& x, CommandContext& c) { return Build(x, c); });

  auto* ex = app.add_subcommand(
      "export", "Write a volume or snapshot to a standalone sparse raw image (or, with\n"
                "OUTPUT_FILE - , a pipe or /dev/null, stream every byte; not luks1):\n"
                "  --format stored  the LUKS2 container as stored (cryptsetup opens it)\n"
                "  --format luks1   re-encrypted as LUKS1 for QEMU (qemu-img reads it)\n"
                "  --format plain   the decrypted ext4 image\n"
                "A stored export is copied by the kernel where the file system allows:\n"
                "reflink (shares extents: no data written) or copy_file_range; the method\n"
                "used is printed, and why a better one was not.\n"
                "  example: stack export -p images.stk base@v1 base.img --format luks1 -k p.txt\n"
                "  example: stack export -p images.stk base@v1 base.img --method reflink");
  a->t.AddTo(ex, "[ENTRY] OUTPUT_FILE");
  a->t.AddKeyFile(ex);
  a->t.AddNewKeyFile(ex);
  ex->add_option("--format", a->format, "stored, luks1 or plain")->capture_default_str();
  ex->add_flag("--force", a->force, "Overwrite OUTPUT_FILE");
  ex->add_option("--method", a->method,
                 "auto, reflink, copy-range or read-write (an explicit method that the "
                 "file system does not offer is an error)")
      ->capture_default_str();
  ex->add_flag("--sync", a->sync,
               "Return only when the image is on disk (fdatasync; by default, like cp and "
               "qemu-img convert, it may still be in the page cache)");
  a->kdf.AddTo(ex);
  bind(ex, [](ImageArgs& x, CommandContext& c) { return Export(x, c); });

  auto* im = app.add_subcommand(
      "import", "Import a raw image (plain, LUKS1 or LUKS2: detected) as a new volume;\n"
                "holes and zero blocks stay unallocated. The pool is created if missing\n"
                "(as by build).\n"
                "With --into VOLUME, bring a changed export back into the volume it came\n"
                "from: only blocks whose content differs are written (a plain image is\n"
                "encrypted with the volume's key first), the rest stays shared with its\n"
                "snapshots and clones; all or nothing. Holes in a stored image become\n"
                "discards; in a plain image of an encrypted volume, encrypted zeros (a\n"
                "discard there would read back as noise, not zeros).\n"
                "  example: stack import -p images.stk disk.img vm7\n"
                "  example: stack import -p images.stk vm7.img --into vm7 --format plain "
                "-k p.txt --snapshot after");
  AddPoolOption(im, a->t.pool, "Pool file");
  im->add_option("args", a->t.pos, "IMAGE_FILE VOLUME (IMAGE_FILE with --into)");
  a->into_opt =
      im->add_option("--into", a->into, "Existing volume to bring the image's changes into");
  im->add_option("--format", a->into_format,
                 "With --into: what the file holds: stored (as export --format stored), plain\n"
                 "(decrypted; needs -k) or auto (a LUKS header in the file: stored)")
      ->capture_default_str();
  im->add_option("--snapshot", a->into_snapshot, "With --into: snapshot the result as VOLUME@NAME");
  a->t.AddKeyFile(im);
  im->add_option("--note", a->note, "Note");
  AddNewPoolOptions(im, *a);
  im->add_option("--tag", a->tags, "Tag (repeatable)");
  im->add_flag("--force", a->force,
               "Import a LUKS image even if its header cannot be opened by this build "
               "(unsupported cipher or KDF, damaged header): the bytes are copied as is");
  bind(im, [](ImageArgs& x, CommandContext& c) { return Import(x, c); });
}

}  // namespace stack::cli
