// Fuzz target: an arbitrary byte string as a manifest (spec/fsbridge.md
// "Manifest"), loaded and applied to a few paths. Bad lines must be
// InvalidArgument naming file and line, never a crash, a leak or UB.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <string>

#include "manifest.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > (1 << 16)) return 0;
  const int fd = ::memfd_create("manifest", MFD_CLOEXEC);
  if (fd < 0) return 0;
  size_t done = 0;
  while (done < size) {
    const ssize_t n = ::write(fd, data + done, size - done);
    if (n <= 0) break;
    done += size_t(n);
  }
  auto m = stack::fsbridge::Manifest::Load("/proc/self/fd/" + std::to_string(fd));
  ::close(fd);
  if (!m.ok()) return 0;
  for (const char* rel : {"", "a", "a/b", "etc/passwd", "*", "."}) {
    stack::fsbridge::Attrs a;
    a.mode = 0100644;
    m->Apply(stack::fsbridge::NormalizeRel(rel), &a);
    (void)m->Find(rel);
  }
  return 0;
}
