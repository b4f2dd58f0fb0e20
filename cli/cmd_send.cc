// `stack send` and `stack receive`: ship a snapshot between pools as a send
// stream (spec/send-stream.md), raw (no passphrase), full or incremental.
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <iostream>
#include <vector>

#include "block/unique_fd.h"
#include "command.h"
#include "output.h"
#include "stack/open_pool.h"
#include "stack/output_file.h"
#include "stack/progress.h"
#include "stack/send.h"
#include "target_args.h"
#include "units.h"

namespace stack::cli {
namespace {

struct SendArgs {
  std::string pool;
  std::vector<std::string> pos;
  std::string from, output, input, resume;
  uint32_t stream_version = compose::kSendVersion;
  bool force = false, sync = false, abort = false;
  CLI::Option* output_opt = nullptr;  // given at all (`-o ''` is not stdout)
};

// Pipes get 1 MiB of buffer (the system's default bound for unprivileged
// users): a 64 KiB pipe makes sender and receiver take turns per 64 KiB.
// Best effort: not a pipe, or a lower limit, leaves it as it is.
void WidenPipe(int fd) {
  struct stat sb {};
  if (::fstat(fd, &sb) == 0 && S_ISFIFO(sb.st_mode)) (void)::fcntl(fd, F_SETPIPE_SZ, 1 << 20);
}

Status WriteFd(int fd, std::span<const uint8_t> data, const std::string& what) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno("write " + what, errno);
    }
    data = data.subspan(static_cast<size_t>(n));
  }
  return Status::Ok();
}

// Gathers the stream's small pieces (record headers) with the payloads that
// follow them into writes of about kBytes: a syscall per 32-byte header
// and a pipe's reader woken per piece cost more than the copy.
class BufferedOut {
 public:
  static constexpr size_t kBytes = 1 << 20;
  BufferedOut(int fd, std::string what) : fd_(fd), what_(std::move(what)) { buf_.reserve(kBytes); }

  Status Write(std::span<const uint8_t> b) {
    // A payload goes out with what is gathered before it (its record
    // header) in one writev: no copy, and the reader is not woken for 32
    // bytes alone.
    if (b.size() >= kBytes / 2) return WriteGathered(b);
    if (buf_.size() + b.size() > kBytes) RETURN_IF_ERROR(Flush());
    buf_.insert(buf_.end(), b.begin(), b.end());
    return Status::Ok();
  }
  Status Flush() {
    Status st = WriteFd(fd_, buf_, what_);
    buf_.clear();
    return st;
  }

 private:
  // buf_ then b, whole (writev may write part: the rest is written on).
  Status WriteGathered(std::span<const uint8_t> b) {
    std::span<const uint8_t> head = buf_;
    while (!head.empty()) {
      iovec iov[2] = {{const_cast<uint8_t*>(head.data()), head.size()},
                      {const_cast<uint8_t*>(b.data()), b.size()}};
      ssize_t n = ::writev(fd_, iov, 2);
      if (n < 0) {
        if (errno == EINTR) continue;
        buf_.clear();
        return Status::FromErrno("write " + what_, errno);
      }
      const size_t from_head = std::min(head.size(), static_cast<size_t>(n));
      head = head.subspan(from_head);
      b = b.subspan(static_cast<size_t>(n) - from_head);
    }
    buf_.clear();
    return WriteFd(fd_, b, what_);
  }

  int fd_;
  std::string what_;
  std::vector<uint8_t> buf_;
};

// Reads the stream in chunks of up to kBytes and hands it out in the
// pieces the parser asks for; a request of kBytes or more, once the buffer
// is drained, is read straight into the caller's memory (a WRITE payload is
// then copied at most kBytes of it). `idle()` is true when the next read
// would wait: nothing buffered here and nothing arriving on the fd within
// 50 ms (a sender merely slower than us would otherwise cost a commit per
// record).
class BufferedIn {
 public:
  static constexpr size_t kBytes = 64 << 10;
  BufferedIn(int fd, std::string what, compose::Progress& progress)
      : fd_(fd), what_(std::move(what)), progress_(progress), buf_(kBytes) {}

  Result<size_t> Read(std::span<uint8_t> out) {
    if (at_ == end_) {
      // A large request goes straight to the caller's buffer.
      if (out.size() >= kBytes) return Fill(out);
      ASSIGN_OR_RETURN(size_t n, Fill(buf_));
      at_ = 0;
      end_ = n;
      if (n == 0) return size_t{0};
    }
    const size_t n = std::min(out.size(), end_ - at_);
    std::memcpy(out.data(), buf_.data() + at_, n);
    at_ += n;
    return n;
  }

  bool idle() const {
    if (at_ != end_) return false;
    pollfd pf{fd_, POLLIN, 0};
    return ::poll(&pf, 1, 50) == 0;
  }

 private:
  Result<size_t> Fill(std::span<uint8_t> to) {
    for (;;) {
      ssize_t n = ::read(fd_, to.data(), to.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        return Status::FromErrno("read " + what_, errno);
      }
      progress_.Advance(static_cast<uint64_t>(n));
      return static_cast<size_t>(n);
    }
  }

  int fd_;
  std::string what_;
  compose::Progress& progress_;
  std::vector<uint8_t> buf_;
  size_t at_ = 0, end_ = 0;
};

Status Send(SendArgs& a, const CommandContext& ctx) {
  if (a.pos.size() > 1 || (a.pos.empty() && a.resume.empty()))
    return Status::InvalidArgument("expected VOLUME@SNAPSHOT (or --resume TOKEN)");
  // An empty -o (an unset shell variable) is a mistake, not a request for stdout.
  if (a.output.empty() && a.output_opt && a.output_opt->count() > 0)
    return Status::InvalidArgument("-o: the output file name is empty");
  if (a.output.empty() && ::isatty(STDOUT_FILENO))
    return Status::InvalidArgument(
        "refusing to write a binary stream to a terminal: give -o FILE or a pipe");
  ASSIGN_OR_RETURN(auto p, compose::OpenPool(a.pool, compose::PoolAccess::kReadOnly));
  std::unique_ptr<compose::OutputFile> file;
  int fd = STDOUT_FILENO;
  std::string what = "standard output";
  if (a.output.empty()) NoteStdoutUsed();  // the stream is the output, --json or not
  if (!a.output.empty()) {
    compose::OutputFileOptions fo;
    fo.overwrite = a.force;
    fo.sync = a.sync;
    fo.inputs = {a.pool};
    ASSIGN_OR_RETURN(file, compose::OutputFile::Create(a.output, fo));
    fd = file->fd();
    what = file->temp_path();
  }
  compose::Progress progress("send", 0);
  WidenPipe(fd);
  BufferedOut out(fd, what);
  ASSIGN_OR_RETURN(auto rep, compose::Send(*p, a.pos.empty() ? "" : a.pos[0], a.from,
                                           [&](std::span<const uint8_t> b) {
                                             progress.Advance(b.size());
                                             return out.Write(b);
                                           },
                                           a.resume, &progress, a.stream_version));
  RETURN_IF_ERROR(out.Flush());
  progress.Finish();
  if (file) RETURN_IF_ERROR(file->Commit());
  // With the stream on stdout the report goes to stderr.
  std::ostream& os = a.output.empty() ? std::cerr : std::cout;
  if (ctx.json) {
    nlohmann::json j = {{"snapshot", rep.snapshot},   {"uuid", rep.uuid},
                        {"incremental", !rep.base.empty()}, {"resumed", !a.resume.empty()},
                        {"base", rep.base},           {"base_uuid", rep.base_uuid},
                        {"size_bytes", rep.size_bytes}, {"stream_bytes", rep.stream_bytes},
                        {"written_bytes", rep.written_bytes}, {"hole_bytes", rep.hole_bytes},
                        {"records", rep.records},     {"output", a.output}};
    os << j.dump(2) << "\n";
  } else {
    os << (a.resume.empty() ? "sent " : "sent the rest of ") << EscapeText(rep.snapshot)
       << (rep.base.empty() ? "" : " since " + EscapeText(rep.base)) << ": "
       << FormatSize(rep.stream_bytes) << " stream, " << FormatSize(rep.written_bytes)
       << " written, " << FormatSize(rep.hole_bytes) << " holes\n";
  }
  return Status::Ok();
}

Status Abort(SendArgs& a, const CommandContext& ctx) {
  if (a.pos.size() != 1) return Status::InvalidArgument("--abort takes the VOLUME being received");
  if (!a.input.empty() || a.force) return Status::InvalidArgument("--abort reads no stream");
  ASSIGN_OR_RETURN(auto p, compose::OpenPool(a.pool, compose::PoolAccess::kWritable));
  ASSIGN_OR_RETURN(auto rep, compose::AbortReceive(*p, a.pos[0]));
  const std::string& name = a.pos[0];
  if (ctx.json) {
    PrintJson({{"volume", name},
               {"aborted", rep.published.empty()},
               {"published", rep.published}});
  } else if (const std::string v = EscapeText(name); rep.published.empty()) {
    std::cout << "dropped the partial receive into " << v << "\n";
  } else {
    // Not dropped: V already had the received content (or V@S), so the
    // abort finished the publication; say so, on one line.
    std::cout << (rep.already_published ? "removed what was left of the receive into "
                                        : "completed the receive into ")
              << v << ": " << EscapeText(rep.published) << "\n";
    std::cerr << "stack: note: the receive into " << v << " had completed before it was cut "
              << "short: "
              << (rep.already_published
                      ? EscapeText(rep.published) +
                            " was already published; its hidden leftovers are gone"
                      : v + " holds its content, so " + EscapeText(rep.published) +
                            " is published instead of dropping it")
              << "\n";
  }
  return Status::Ok();
}

Status Receive(SendArgs& a, const CommandContext& ctx) {
  if (a.abort) return Abort(a, ctx);
  if (a.pos.size() > 1) return Status::InvalidArgument("expected [VOLUME]");
  int fd = STDIN_FILENO;
  UniqueFd in;
  if (!a.input.empty()) {
    in.reset(::open(a.input.c_str(), O_RDONLY | O_CLOEXEC));
    if (in.get() < 0) return Status::FromErrno("open " + a.input, errno);
    fd = in.get();
  } else if (::isatty(STDIN_FILENO)) {
    return Status::InvalidArgument("refusing to read a stream from a terminal: give -i FILE or a pipe");
  }
  int removed = 0;
  ASSIGN_OR_RETURN(auto p, compose::OpenPool(a.pool, compose::PoolAccess::kWritable, {}, &removed));
  if (removed) std::cerr << "stack: removed " << removed << " unfinished build(s)\n";
  // The stream's size when the input is a file: rate, percentage and ETA.
  struct stat sb {};
  const bool sized = ::fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode);
  compose::Progress progress("receive", sized ? static_cast<uint64_t>(sb.st_size) : 0);
  compose::ReceiveOptions o;
  o.volume = a.pos.empty() ? "" : a.pos[0];
  o.force = a.force;
  WidenPipe(fd);
  BufferedIn in_buf(fd, a.input.empty() ? "standard input" : a.input, progress);
  o.input_idle = [&in_buf] { return in_buf.idle(); };
  ASSIGN_OR_RETURN(auto rep, compose::Receive(*p, [&](std::span<uint8_t> out) {
    return in_buf.Read(out);
  }, o));
  progress.Finish();
  for (auto& c : rep.completed)
    std::cerr << "stack: note: completed an earlier receive a kill had cut short: "
              << EscapeText(c) << "\n";
  if (ctx.json) {
    PrintJson({{"volume", rep.volume}, {"snapshot", rep.snapshot}, {"uuid", rep.uuid},
               {"incremental", rep.incremental}, {"resumed", rep.resumed},
               {"base_uuid", rep.base_uuid},
               {"size_bytes", rep.size_bytes}, {"stream_bytes", rep.stream_bytes},
               {"written_bytes", rep.written_bytes}, {"hole_bytes", rep.hole_bytes}});
  } else {
    std::cout << (rep.resumed ? "received the rest of " : "received ")
              << EscapeText(rep.snapshot) << " (" << rep.uuid << "): "
              << FormatSize(rep.stream_bytes) << " stream, " << FormatSize(rep.written_bytes)
              << " written, " << FormatSize(rep.hole_bytes) << " holes\n";
  }
  return Status::Ok();
}

}  // namespace

void RegisterSendCommands(CLI::App& app, CommandContext& ctx) {
  auto a = std::make_shared<SendArgs>();
  auto bind = [&ctx, a](CLI::App* c, std::function<Status(SendArgs&, CommandContext&)> fn) {
    c->callback([&ctx, a, fn] {
      ctx.action = [&ctx, a, fn] { return fn(*a, ctx); };
      ctx.pool = a->pool;
    });
  };
  auto* send = app.add_subcommand(
      "send",
      "Write a snapshot as a send stream (spec/send-stream.md): the blocks as stored\n"
      "(ciphertext for encrypted volumes; no passphrase), full or, with --from, only\n"
      "what changed since a base snapshot. The report goes to stderr when the stream\n"
      "goes to stdout.\n"
      "  stack send -p pool.stk vm@v2 --from vm@v1 -o vm-v2.stream\n"
      "With --resume TOKEN (printed by an interrupted receive, and shown by\n"
      "`pool info` and `snapshot list` of the receiving pool): only the rest.\n"
      "  stack send -p pool.stk --resume 1-0a3f... | stack receive -p backup.stk");
  AddPoolOption(send, a->pool, "Pool file");
  send->add_option("snapshot", a->pos, "VOLUME@SNAPSHOT (found from the token with --resume)");
  send->add_option("--resume", a->resume, "Resume token of a partial receive: send only the rest");
  send->add_option("--from", a->from, "Base snapshot VOLUME@BASE: an incremental stream");
  a->output_opt =
      send->add_option("-o,--output", a->output, "Write the stream to FILE (default: stdout)");
  send->add_flag("--force", a->force, "Overwrite an existing output FILE");
  send->add_flag("--sync", a->sync, "Return only when FILE is on disk");
  send->add_option("--stream-version", a->stream_version,
                   "Stream format version to write (1 for a receiver running an older stack)")
      ->check(CLI::Range(compose::kSendOldestVersion, compose::kSendVersion));
  bind(send, Send);

  auto* recv = app.add_subcommand(
      "receive",
      "Apply a send stream: a full stream creates VOLUME and its snapshot with the\n"
      "sender's uuids; an incremental applies onto the snapshot that is its base.\n"
      "Nothing is visible until the whole stream checked. Needs no passphrase.\n"
      "An interrupted receive is kept as a partial receive with a resume token\n"
      "(send --resume TOKEN sends the rest); --abort VOLUME drops it.\n"
      "  stack receive -p backup.stk -i vm-v2.stream");
  AddPoolOption(recv, a->pool, "Pool file");
  recv->add_option("volume", a->pos, "Volume to create (default: the sender's name)");
  recv->add_option("-i,--input", a->input, "Read the stream from FILE (default: stdin)");
  recv->add_flag("--force", a->force,
                 "Incremental onto a volume changed since its base: roll the changes back");
  recv->add_flag("--abort", a->abort, "Drop the partial receive into VOLUME");
  bind(recv, Receive);
}

}  // namespace stack::cli
