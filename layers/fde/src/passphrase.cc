// Passphrase readers: key file, stdin line, no-echo TTY prompt.
#include "fde/passphrase.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace stack::fde {
namespace {

// Closes an fd on scope exit.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

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
  if (n > 0 && buf.data()[n - 1] == '\r') --n;
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

Result<Secret> ReadKeyFile(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    if (errno == ENOENT) return Status::NotFound("key file " + path + " does not exist");
    return Status::FromErrno("opening key file " + path, errno);
  }
  // Size the buffer from fstat (one byte more, to notice a growing file);
  // pipes and other unsized files get the maximum.
  struct stat st {};
  size_t cap = kMaxKeyFile + 1;
  if (::fstat(fd.get(), &st) == 0 && S_ISREG(st.st_mode) && uint64_t(st.st_size) < kMaxKeyFile) {
    cap = size_t(st.st_size) + 1;
  }
  ASSIGN_OR_RETURN(Secret buf, Secret::Zeroed(cap));
  size_t n = 0;
  while (n < buf.size()) {
    ssize_t r = ::read(fd.get(), buf.data() + n, buf.size() - n);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return Status::FromErrno("reading key file " + path, errno);
    if (r == 0) break;
    n += size_t(r);
  }
  if (n == buf.size() && cap <= kMaxKeyFile) {
    return Status::InvalidArgument("key file " + path + " changed while being read");
  }
  if (n > kMaxKeyFile) return Status::InvalidArgument("key file " + path + " exceeds 8 MiB");
  if (n == 0) return Status::InvalidArgument("key file " + path + " is empty");
  return Secret::Copy({buf.data(), n});
}

Result<Secret> ReadPassphraseFd(int fd) { return ReadLine(fd); }

Result<Secret> ReadPassphraseStdin() { return ReadLine(STDIN_FILENO); }

Result<Secret> PromptPassphrase(const std::string& prompt, bool confirm) {
  Fd tty(::open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (tty.get() < 0) return Status::NotFound("no terminal to prompt for a passphrase");
  EchoOff echo_off(tty.get());
  WriteAll(tty.get(), prompt);
  ASSIGN_OR_RETURN(Secret first, ReadLine(tty.get()));
  if (!confirm) return first;
  WriteAll(tty.get(), "Verify passphrase: ");
  ASSIGN_OR_RETURN(Secret second, ReadLine(tty.get()));
  if (!first.Equals(second.bytes())) return Status::InvalidArgument("passphrases do not match");
  return first;
}

}  // namespace stack::fde
