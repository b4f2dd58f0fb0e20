// `stack luks ...`: LUKS2/LUKS1 containers on a pool volume or an image file:
// format, dump, keyslots, header backup and restore.
#include <climits>
#include <iostream>

#include "command.h"
#include "kdf_args.h"
#include "output.h"
#include "target_args.h"

namespace stack::cli {
namespace {

struct LuksArgs {
  TargetArgs t;
  KdfArgs kdf;
  uint32_t sector_size = 4096;
  std::string label, uuid;
  bool allow_discards = false;
  bool luks1 = false;
  bool force = false;
  int slot = kNoSlot;  // --slot; any given value is validated, -1 included
  static constexpr int kNoSlot = INT_MIN;
};

// Opens the target's raw device for a header operation.
Result<std::pair<std::unique_ptr<compose::Target>, std::unique_ptr<BlockDevice>>> Raw(
    LuksArgs& a, bool writable) {
  ASSIGN_OR_RETURN(auto spec, a.t.Spec(writable));
  ASSIGN_OR_RETURN(auto target, compose::Target::Open(spec));
  auto dev = target->TakeDevice();
  return std::make_pair(std::move(target), std::move(dev));
}

// What every command that will ask for a passphrase checks first: that the
// header is one we can open (else Unsupported/Corruption/NotFound, no prompt).
Status CheckBeforePrompt(BlockDevice& dev) { return fde::CheckOpenable(dev); }

Status Finish(std::unique_ptr<compose::Target>& target, std::unique_ptr<BlockDevice>& dev) {
  RETURN_IF_ERROR(dev->Flush());
  dev.reset();
  return target->Finish();
}

Status Format(LuksArgs& a, const CommandContext& ctx) {
  ASSIGN_OR_RETURN(auto spec, a.t.Spec(true));
  RETURN_IF_ERROR(a.t.NeedArgs(0, 0, "no arguments after the target"));
  fde::FormatOptions o;
  o.version = a.luks1 ? 1 : 2;
  o.sector_size = a.luks1 ? 512 : a.sector_size;
  ASSIGN_OR_RETURN(o.kdf, a.kdf.Params());
  if (a.luks1 && o.kdf.type != fde::KdfType::kPbkdf2) {
    if (a.kdf.kdf != "argon2id")  // explicitly asked for argon2 on LUKS1
      return Status::InvalidArgument("LUKS1 keyslots use pbkdf2 only");
    o.kdf.type = fde::KdfType::kPbkdf2;
  }
  o.label = a.label;
  o.uuid = a.uuid;
  o.allow_discards = a.allow_discards;
  ASSIGN_OR_RETURN(fde::Secret pass, a.t.NewPassphrase()());
  ASSIGN_OR_RETURN(auto target, compose::Target::Open(spec));
  ASSIGN_OR_RETURN(auto crypt, fde::Format(target->TakeDevice(), pass, o));
  ASSIGN_OR_RETURN(fde::HeaderInfo info, fde::Dump(crypt->lower()));
  RETURN_IF_ERROR(crypt->Flush());
  crypt.reset();
  RETURN_IF_ERROR(target->Finish());
  if (ctx.json) {
    PrintJson(nlohmann::json::parse(fde::DumpJson(info)));
  } else {
    std::cout << "formatted " << target->describe() << " as LUKS" << info.version << " ("
              << info.cipher << ", " << info.sector_size << "-byte sectors), uuid "
              << info.uuid << "\n";
  }
  return Status::Ok();
}

Status Dump(LuksArgs& a, const CommandContext& ctx) {
  ASSIGN_OR_RETURN(auto raw, Raw(a, false));
  RETURN_IF_ERROR(a.t.NeedArgs(0, 0, "no arguments after the target"));
  ASSIGN_OR_RETURN(fde::HeaderInfo info, fde::Dump(*raw.second));
  if (ctx.json) {
    PrintJson(nlohmann::json::parse(fde::DumpJson(info)));
  } else {
    std::cout << fde::DumpText(info);
  }
  return Status::Ok();
}

Status AddKey(LuksArgs& a, const CommandContext& ctx) {
  ASSIGN_OR_RETURN(auto raw, Raw(a, true));
  RETURN_IF_ERROR(a.t.NeedArgs(0, 0, "no arguments after the target"));
  ASSIGN_OR_RETURN(auto kdf, a.kdf.Params());
  RETURN_IF_ERROR(CheckBeforePrompt(*raw.second));
  ASSIGN_OR_RETURN(fde::Secret old, a.t.Passphrase("Existing passphrase: ")());
  ASSIGN_OR_RETURN(fde::Secret added, a.t.NewPassphrase()());
  ASSIGN_OR_RETURN(int slot, fde::AddKey(*raw.second, old, added, kdf));
  RETURN_IF_ERROR(Finish(raw.first, raw.second));
  if (ctx.json) PrintJson({{"keyslot", slot}});
  else std::cout << "added keyslot " << slot << "\n";
  return Status::Ok();
}

Status RemoveKey(LuksArgs& a, const CommandContext& ctx) {
  ASSIGN_OR_RETURN(auto raw, Raw(a, true));
  RETURN_IF_ERROR(a.t.NeedArgs(0, 0, "no arguments after the target"));
  int slot = a.slot;
  if (slot != LuksArgs::kNoSlot) {
    RETURN_IF_ERROR(fde::KillKeyslot(*raw.second, slot, a.force));
  } else {
    RETURN_IF_ERROR(CheckBeforePrompt(*raw.second));
    ASSIGN_OR_RETURN(fde::Secret pass, a.t.Passphrase("Passphrase to remove: ")());
    ASSIGN_OR_RETURN(slot, fde::RemoveKey(*raw.second, pass, a.force));
  }
  RETURN_IF_ERROR(Finish(raw.first, raw.second));
  if (ctx.json) PrintJson({{"removed_keyslot", slot}});
  else std::cout << "removed keyslot " << slot << "\n";
  return Status::Ok();
}

Status ChangeKey(LuksArgs& a, const CommandContext& ctx) {
  ASSIGN_OR_RETURN(auto raw, Raw(a, true));
  RETURN_IF_ERROR(a.t.NeedArgs(0, 0, "no arguments after the target"));
  ASSIGN_OR_RETURN(auto kdf, a.kdf.Params());
  RETURN_IF_ERROR(CheckBeforePrompt(*raw.second));
  ASSIGN_OR_RETURN(fde::Secret old, a.t.Passphrase("Current passphrase: ")());
  ASSIGN_OR_RETURN(fde::Secret added, a.t.NewPassphrase()());
  ASSIGN_OR_RETURN(int slot, fde::ChangeKey(*raw.second, old, added, kdf));
  RETURN_IF_ERROR(Finish(raw.first, raw.second));
  if (ctx.json) PrintJson({{"keyslot", slot}});
  else std::cout << "changed passphrase in keyslot " << slot << "\n";
  return Status::Ok();
}

Status Backup(LuksArgs& a, CommandContext& ctx) {
  ASSIGN_OR_RETURN(auto raw, Raw(a, false));
  RETURN_IF_ERROR(a.t.NeedArgs(1, 1, "FILE (the backup to write)"));
  RETURN_IF_ERROR(fde::BackupHeader(*raw.second, a.t.pos[0]));
  ctx.done = {{"target", raw.first->describe()}, {"backup", a.t.pos[0]}};
  return Status::Ok();
}

Status Restore(LuksArgs& a, CommandContext& ctx) {
  ASSIGN_OR_RETURN(auto raw, Raw(a, true));
  RETURN_IF_ERROR(a.t.NeedArgs(1, 1, "FILE (the backup to restore)"));
  RETURN_IF_ERROR(fde::RestoreHeader(*raw.second, a.t.pos[0]));
  ctx.done = {{"target", raw.first->describe()}, {"restored_from", a.t.pos[0]}};
  return Finish(raw.first, raw.second);
}

}  // namespace

void RegisterLuksCommands(CLI::App& app, CommandContext& ctx) {
  auto* luks = app.add_subcommand("luks", "LUKS2/LUKS1 encryption: format, keys, header");
  luks->require_subcommand(1);
  auto a = std::make_shared<LuksArgs>();
  auto bind = [&ctx, a](CLI::App* c, std::function<Status(LuksArgs&, CommandContext&)> fn) {
    c->callback([&ctx, a, fn] {
      ctx.action = [&ctx, a, fn] { return fn(*a, ctx); };
      ctx.pool = a->t.PoolNamed();
    });
  };

  auto* format = luks->add_subcommand(
      "format", "Format a volume or image as a LUKS2 (or --luks1) container\n"
                "  example: stack luks format -p pool.stk vm1 --new-key-file pass.txt");
  a->t.AddTo(format, "[VOLUME]");
  a->t.AddNewKeyFile(format);
  a->kdf.AddTo(format);
  format->add_option("--sector-size", a->sector_size, "Encryption sector: 4096 or 512")
      ->capture_default_str();
  format->add_option("--label", a->label, "LUKS2 label");
  format->add_option("--uuid", a->uuid, "Container UUID (default: random)");
  format->add_flag("--allow-discards", a->allow_discards,
                   "Pass discards down (reveals which blocks are free)");
  format->add_flag("--luks1", a->luks1, "Write LUKS1 (for QEMU); pbkdf2 keyslots");
  bind(format, [](LuksArgs& x, CommandContext& c) { return Format(x, c); });

  auto* dump = luks->add_subcommand(
      "dump", "Show the header like luksDump (no secrets)\n"
              "  example: stack --json luks dump -p pool.stk golden@v1");
  a->t.AddTo(dump, "[ENTRY]");
  bind(dump, [](LuksArgs& x, CommandContext& c) { return Dump(x, c); });

  auto* add = luks->add_subcommand(
      "add-key", "Add a keyslot for a new passphrase\n"
                 "  example: stack luks add-key -p pool.stk vm1 -k old.txt --new-key-file new.txt");
  a->t.AddTo(add, "[VOLUME]");
  a->t.AddKeyFile(add);
  a->t.AddNewKeyFile(add);
  a->kdf.AddTo(add);
  bind(add, [](LuksArgs& x, CommandContext& c) { return AddKey(x, c); });

  auto* rm = luks->add_subcommand(
      "remove-key", "Remove the keyslot a passphrase opens (or --slot N)\n"
                    "  example: stack luks remove-key -p pool.stk vm1 -k old.txt");
  a->t.AddTo(rm, "[VOLUME]");
  a->t.AddKeyFile(rm);
  rm->add_option("--slot", a->slot,
                 "Remove this keyslot number (0..31 LUKS2, 0..7 LUKS1) without a passphrase");
  rm->add_flag("--force", a->force, "Allow removing the last keyslot (data becomes unreadable)");
  bind(rm, [](LuksArgs& x, CommandContext& c) { return RemoveKey(x, c); });

  auto* change = luks->add_subcommand(
      "change-key", "Change a passphrase (same keyslot number)\n"
                    "  example: stack luks change-key -p pool.stk vm1 -k old.txt "
                    "--new-key-file new.txt");
  a->t.AddTo(change, "[VOLUME]");
  a->t.AddKeyFile(change);
  a->t.AddNewKeyFile(change);
  a->kdf.AddTo(change);
  bind(change, [](LuksArgs& x, CommandContext& c) { return ChangeKey(x, c); });

  auto* backup = luks->add_subcommand(
      "backup", "Save the header and keyslots to a file\n"
                "  example: stack luks backup -p pool.stk vm1 vm1.hdr");
  a->t.AddTo(backup, "[ENTRY] FILE");
  bind(backup, [](LuksArgs& x, CommandContext& c) { return Backup(x, c); });

  auto* restore = luks->add_subcommand(
      "restore", "Restore the header and keyslots from a backup file\n"
                 "  example: stack luks restore -p pool.stk vm1 vm1.hdr");
  a->t.AddTo(restore, "[VOLUME] FILE");
  bind(restore, [](LuksArgs& x, CommandContext& c) { return Restore(x, c); });
}

}  // namespace stack::cli
