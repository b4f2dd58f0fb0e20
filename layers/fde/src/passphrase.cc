// Passphrase readers: key file, stdin line, no-echo TTY prompt.
#include "fde/passphrase.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "block/unique_fd.h"

namespace stack::fde {
namespace {

// Restores terminal attributes on scope exit.
class EchoOff {
 public:
  explicit EchoOff(int fd) : fd_(fd) {
    if (tcgetattr(fd_, &saved_) == 0) {
      struct termios t = saved_;
      t.c_lflag &= ~static_cast<tcflag_t>(ECHO);
      t.c_lflag |= ECHONL;
      active_ = tcsetattr(fd_, TCSAFLUSH, &t) == 0;
    }
  }
  ~EchoOff() {
    if (active_) tcsetattr(fd_, TCSAFLUSH, &saved_);
  }
  EchoOff(const EchoOff&) = delete;
  EchoOff& operator=(const EchoOff&) = delete;

 private:
  int fd_;
  struct termios saved_ {};
  bool active_ = false;
};

Result<Secret> ReadLine(int fd) {
  ASSIGN_OR_RETURN(Secret buf, Secret::Zeroed(kMaxPassphraseLine));
  size_t n = 0;
  bool newline = false;
  while (n < buf.size()) {
    uint8_t c;
    ssize_t r = ::read(fd, &c, 1);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return Status::FromErrno("reading passphrase", errno);
    if (r == 0) break;
    if (c == '\n') {
      newline = true;
      break;
    }
    buf.data()[n++] = c;
  }
  if (!newline && n == buf.size()) {
    return Status::InvalidArgument("passphrase longer than " +
                                   std::to_string(kMaxPassphraseLine) + " bytes");
  }
  // Only the '\n' ends the line: a '\r' before it is part of the passphrase,
  // as for cryptsetup (a terminal in canonical mode already turns a typed
  // Enter into '\n').
  if (n == 0) return Status::InvalidArgument("empty passphrase");
  ASSIGN_OR_RETURN(Secret out, Secret::Copy({buf.data(), n}));
  return out;
}

void WriteAll(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t w = ::write(fd, s.data() + off, s.size() - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;  // a prompt that cannot be shown is not fatal
    off += size_t(w);
  }
}

}  // namespace

namespace {

// The whole of fd (at most kMaxKeyFile bytes), named `what` in errors.
// size_hint: the size if known (regular file), else 0.
Result<Secret> ReadAllKey(int fd, const std::string& what, uint64_t size_hint, bool sized) {
  // Size the buffer from the file size (one byte more, to notice a growing
  // file); pipes and other unsized files get the maximum.
  size_t cap = kMaxKeyFile + 1;
  if (sized && size_hint < kMaxKeyFile) cap = size_t(size_hint) + 1;
  ASSIGN_OR_RETURN(Secret buf, Secret::Zeroed(cap));
  size_t n = 0;
  while (n < buf.size()) {
    ssize_t r = ::read(fd, buf.data() + n, buf.size() - n);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return Status::FromErrno("reading " + what, errno);
    if (r == 0) break;
    n += size_t(r);
  }
  if (n == buf.size() && cap <= kMaxKeyFile) {
    return Status::InvalidArgument(what + " changed while being read");
  }
  if (n > kMaxKeyFile) return Status::InvalidArgument(what + " exceeds 8 MiB");
  if (n == 0) return Status::InvalidArgument(what + " is empty");
  return Secret::Copy({buf.data(), n});
}

}  // namespace

Result<Secret> ReadKeyFile(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    if (errno == ENOENT) return Status::NotFound("key file " + path + " does not exist");
    return Status::FromErrno("opening key file " + path, errno);
  }
  struct stat st {};
  const bool sized = ::fstat(fd.get(), &st) == 0 && S_ISREG(st.st_mode);
  return ReadAllKey(fd.get(), "key file " + path, sized ? uint64_t(st.st_size) : 0, sized);
}

Result<Secret> ReadKeyStdin() {
  struct stat st {};
  const bool sized = ::fstat(STDIN_FILENO, &st) == 0 && S_ISREG(st.st_mode);
  // A regular file on stdin may have been read from already: size what is left.
  uint64_t left = 0;
  if (sized) {
    const off_t pos = ::lseek(STDIN_FILENO, 0, SEEK_CUR);
    left = pos >= 0 && pos <= st.st_size ? uint64_t(st.st_size - pos) : uint64_t(st.st_size);
  }
  return ReadAllKey(STDIN_FILENO, "key on standard input", left, sized);
}

Result<Secret> ReadPassphraseFd(int fd) { return ReadLine(fd); }

Result<Secret> ReadPassphraseStdin() { return ReadLine(STDIN_FILENO); }

Result<Secret> PromptPassphrase(const std::string& prompt, bool confirm) {
  UniqueFd tty(::open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (tty.get() < 0) return Status::NotFound("no terminal to prompt for a passphrase");
  return PromptPassphraseOn(tty.get(), prompt, confirm);
}

Result<Secret> PromptPassphraseOn(int tty_fd, const std::string& prompt, bool confirm) {
  if (tty_fd < 0 || !::isatty(tty_fd)) return Status::NotFound("no terminal to prompt for a passphrase");
  EchoOff echo_off(tty_fd);
  WriteAll(tty_fd, prompt);
  ASSIGN_OR_RETURN(Secret first, ReadLine(tty_fd));
  if (!confirm) return first;
  WriteAll(tty_fd, "Verify passphrase: ");
  ASSIGN_OR_RETURN(Secret second, ReadLine(tty_fd));
  if (!first.Equals(second.bytes())) return Status::InvalidArgument("passphrases do not match");
  return first;
}

}  // namespace stack::fde
