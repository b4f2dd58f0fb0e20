// PlainSink: what happens to a layer's uncompressed bytes besides parsing
// them (oci_layer.h): the diff_id hash and the copy into the layer's
// spool, done on a thread of its own so the reader's thread only reads,
// decompresses (and hashes the stored blob) and parses. Bounded: bytes are
// handed over in buffers of 1 MiB, at most 4 of them in flight; Push
// waits when all are taken.
// Thread-safety: Push and Finish from one thread (the owner's); the worker
// is internal. The destructor stops and joins the worker.
#pragma once

#include <array>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

#include "block/status.h"
#include "oci_spool.h"
#include "sha256.h"

namespace stack::compose::oci {

class PlainSink {
 public:
  // Hashes what it is given and, with a spool, appends it there.
  explicit PlainSink(Spool* spool);
  ~PlainSink();
  PlainSink(const PlainSink&) = delete;
  PlainSink& operator=(const PlainSink&) = delete;

  // Takes a copy of the bytes. A spool error met so far is returned (and
  // every later call returns it too).
  Status Push(std::span<const uint8_t> data);
  // Waits for every byte given to be hashed and spooled: their sha256, or
  // the spool's error. Once only; nothing may be pushed after.
  Result<std::array<uint8_t, 32>> Finish();

 private:
  Status HandOver();  // cur_ to the worker; a free buffer back
  void Run();

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::vector<uint8_t>> full_;   // for the worker, in order
  std::vector<std::vector<uint8_t>> free_;  // for Push to fill
  bool closing_ = false;                    // no more buffers will come
  Status error_;                            // the worker's first failure

  std::vector<uint8_t> cur_;  // the owner's buffer being filled
  Sha256 hash_;               // the worker's until Finish joins it
  Spool* spool_;
  std::thread worker_;
};

}  // namespace stack::compose::oci
