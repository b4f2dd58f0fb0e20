// stack: build, snapshot, clone and ship encrypted disk images in userspace.
#include <malloc.h>

#include "run_cli.h"

int main(int argc, char** argv) {
  // The bulk data path cycles MiB-sized buffers (runs of file data, the
  // write-behind queue's spares). Left to glibc's defaults, a freed one
  // can go back to the kernel (munmap, heap trim) and its successor fault
  // in fresh zeroed pages (~5 us a page in a VM): 6% of a build's CPU on
  // the stack.build_encrypted tree. Kept in the heap instead, up to a
  // bound that suits a long-running `serve` too.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 128 << 20);
  return stack::cli::RunCli(argc, argv);
}
