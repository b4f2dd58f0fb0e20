// NbdkitProcess: spawn nbdkit, wait for the plugin's report, supervise.
#include "nbdkit_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace stack::cli {
namespace {

// Fixed descriptor numbers in nbdkit for the plugin's keyfd= and report_fd=.
constexpr int kKeyFd = 3;
constexpr int kReportFd = 4;
// nbdkit stderr held back before ready (a failed start's noise), at most.
constexpr size_t kMaxHeld = 64 * 1024;

int g_signal_pipe[2] = {-1, -1};

void OnSignal(int) {
  int saved = errno;
  char c = 1;
  ssize_t n = ::write(g_signal_pipe[1], &c, 1);
  (void)n;
  errno = saved;
}

Status WriteAll(int fd, const uint8_t* p, size_t n, const char* what) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return Status::FromErrno(what, errno);
    p += w;
    n -= static_cast<size_t>(w);
  }
  return Status::Ok();
}

// "NoSpace: message" -> Status(kNoSpace, "message"); unknown names -> IoError.
Status ParseReport(const std::string& line) {
  const size_t colon = line.find(": ");
  if (colon != std::string::npos) {
    const std::string name = line.substr(0, colon);
    for (int c = static_cast<int>(Code::kIoError); c <= static_cast<int>(Code::kInternal); ++c) {
      if (CodeName(static_cast<Code>(c)) == name) {
        return Status(static_cast<Code>(c), line.substr(colon + 2));
      }
    }
  }
  return Status::IoError("nbdkit plugin: " + line);
}

std::string DescribeExit(int status) {
  if (WIFEXITED(status)) return "nbdkit exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "nbdkit was killed by signal " + std::to_string(WTERMSIG(status));
  return "nbdkit ended (wait status " + std::to_string(status) + ")";
}

void CloseFd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

}  // namespace

std::string FindInPath(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string p = path ? path : "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";
  size_t start = 0;
  while (start <= p.size()) {
    size_t end = p.find(':', start);
    if (end == std::string::npos) end = p.size();
    std::string dir = p.substr(start, end - start);
    if (dir.empty()) dir = ".";
    std::string cand = dir + "/" + name;
    if (::access(cand.c_str(), X_OK) == 0) return cand;
    start = end + 1;
  }
  return "";
}

NbdkitProcess::~NbdkitProcess() {
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    int st = 0;
    while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
    }
  }
  CloseFd(err_fd_);
}

Status NbdkitProcess::Reap(bool block, int* status) {
  for (;;) {
    pid_t r = ::waitpid(pid_, status, block ? 0 : WNOHANG);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return Status::FromErrno("waitpid nbdkit", errno);
    if (r == pid_) pid_ = -1;
    return Status::Ok();
  }
}

Status NbdkitProcess::Start(NbdkitLaunch l) {
  // Caught from now on: a SIGINT/SIGTERM that arrives while nbdkit starts
  // (or right after the ready lines) waits in the pipe for Wait(), which
  // passes it on; the default action would kill us and leave nbdkit to
  // --exit-with-parent.
  if (g_signal_pipe[0] < 0 && ::pipe2(g_signal_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
    return Status::FromErrno("pipe", errno);
  }
  struct sigaction sa = {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  int report[2], err[2];
  if (::pipe2(report, O_CLOEXEC) != 0) return Status::FromErrno("pipe", errno);
  if (::pipe2(err, O_CLOEXEC) != 0) {
    int e = errno;
    ::close(report[0]);
    ::close(report[1]);
    return Status::FromErrno("pipe", e);
  }
  int key = -1;
  auto close_all = [&] {
    CloseFd(report[0]);
    CloseFd(report[1]);
    CloseFd(err[0]);
    CloseFd(err[1]);
    CloseFd(key);
  };
  if (l.passphrase) {
    // Kernel memory only (no file, no argv); read once by the plugin.
    key = ::memfd_create("stack-passphrase", MFD_CLOEXEC);
    if (key < 0) {
      Status st = Status::FromErrno("memfd_create", errno);
      close_all();
      return st;
    }
    Status st = WriteAll(key, l.passphrase->data(), l.passphrase->size(), "write passphrase");
    if (st.ok() && ::lseek(key, 0, SEEK_SET) != 0) st = Status::FromErrno("lseek", errno);
    l.passphrase.reset();
    if (!st.ok()) {
      close_all();
      return st;
    }
  }
  std::vector<std::string> args{l.nbdkit};
  if (!l.fork) {
    args.push_back("--foreground");
    args.push_back("--exit-with-parent");
  }
  args.insert(args.end(), l.options.begin(), l.options.end());
  args.push_back(l.plugin);
  args.insert(args.end(), l.params.begin(), l.params.end());
  if (key >= 0) args.push_back("keyfd=" + std::to_string(kKeyFd));
  args.push_back("report_fd=" + std::to_string(kReportFd));
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  pid_t pid = ::fork();
  if (pid < 0) {
    Status st = Status::FromErrno("fork", errno);
    close_all();
    return st;
  }
  if (pid == 0) {
    // Child: only async-signal-safe calls until exec. Move the descriptors
    // clear of 3/4 first, then onto them (dup2 leaves them inheritable).
    int k = key >= 0 ? ::fcntl(key, F_DUPFD, 10) : -1;
    int r = ::fcntl(report[1], F_DUPFD, 10);
    if (r < 0 || (key >= 0 && k < 0)) ::_exit(127);
    if (::dup2(err[1], 2) < 0) ::_exit(127);
    if (k >= 0 && ::dup2(k, kKeyFd) < 0) ::_exit(127);
    if (::dup2(r, kReportFd) < 0) ::_exit(127);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  pid_ = pid;
  CloseFd(report[1]);
  CloseFd(err[1]);
  CloseFd(key);
  err_fd_ = err[0];
  err[0] = -1;

  std::string report_buf;
  bool ready = false, report_eof = false, err_eof = false;
  std::optional<Status> reported;
  while (!ready && !report_eof) {
    struct pollfd fds[2] = {{report[0], POLLIN, 0}, {err_eof ? -1 : err_fd_, POLLIN, 0}};
    int n = ::poll(fds, 2, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      Status st = Status::FromErrno("poll", errno);
      close_all();
      return st;
    }
    if (fds[1].revents) {
      char buf[4096];
      ssize_t got = ::read(err_fd_, buf, sizeof buf);
      if (got <= 0) err_eof = true;
      else if (held_.size() < kMaxHeld) held_.append(buf, static_cast<size_t>(got));
    }
    if (fds[0].revents) {
      char buf[1024];
      ssize_t got = ::read(report[0], buf, sizeof buf);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) {
        report_eof = true;
      } else {
        report_buf.append(buf, static_cast<size_t>(got));
      }
      size_t nl;
      while ((nl = report_buf.find('\n')) != std::string::npos) {
        std::string line = report_buf.substr(0, nl);
        report_buf.erase(0, nl + 1);
        if (line == "ready") ready = true;
        else if (!reported) reported = ParseReport(line);
      }
    }
  }
  CloseFd(report[0]);
  if (!ready) {
    int status = 0;
    RETURN_IF_ERROR(Reap(true, &status));
    if (reported) return *reported;  // one line: ours; nbdkit's echo is dropped
    // Drain what nbdkit said, then show it: it names what went wrong.
    for (;;) {
      char buf[4096];
      ssize_t got = ::read(err_fd_, buf, sizeof buf);
      if (got <= 0 || held_.size() >= kMaxHeld) break;
      held_.append(buf, static_cast<size_t>(got));
    }
    std::string last = held_;
    while (!last.empty() && last.back() == '\n') last.pop_back();
    if (auto p = last.rfind('\n'); p != std::string::npos) last = last.substr(p + 1);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 127 && last.empty()) {
      return Status::Unsupported("cannot run " + l.nbdkit + " (install the Debian package nbdkit)");
    }
    return Status::IoError(DescribeExit(status) + (last.empty() ? "" : ": " + last));
  }
  if (!held_.empty()) {
    ssize_t w = ::write(2, held_.data(), held_.size());
    (void)w;
    held_.clear();
  }
  if (l.fork) {
    // nbdkit's first process exits once its daemon forked; the daemon
    // reported ready. Its stderr is no longer ours to read.
    int status = 0;
    RETURN_IF_ERROR(Reap(true, &status));
    CloseFd(err_fd_);
  }
  return Status::Ok();
}

Status NbdkitProcess::Wait() {
  if (pid_ <= 0) return Status::Ok();
  if (g_signal_pipe[0] < 0) return Status::Internal("Wait without a successful Start");
  bool err_eof = err_fd_ < 0;
  while (!err_eof) {
    struct pollfd fds[2] = {{err_fd_, POLLIN, 0}, {g_signal_pipe[0], POLLIN, 0}};
    int n = ::poll(fds, 2, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::FromErrno("poll", errno);
    if (fds[1].revents) {
      char c[16];
      while (::read(g_signal_pipe[0], c, sizeof c) > 0) {
      }
      // nbdkit closes its clients, the plugin commits the pool, it exits.
      ::kill(pid_, SIGTERM);
    }
    if (fds[0].revents) {
      char buf[4096];
      ssize_t got = ::read(err_fd_, buf, sizeof buf);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) {
        err_eof = true;
      } else {
        ssize_t w = ::write(2, buf, static_cast<size_t>(got));
        (void)w;
      }
    }
  }
  int status = 0;
  RETURN_IF_ERROR(Reap(true, &status));
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return Status::Ok();
  return Status::IoError(DescribeExit(status));
}

}  // namespace stack::cli
