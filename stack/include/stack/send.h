// Send and receive: ship a snapshot between pools as a send stream
// (spec/send-stream.md), full or incremental from a base snapshot.
//
// Sends are raw: the blocks as the pool stores them (ciphertext for an
// encrypted volume), so neither side ever needs a passphrase.
//
// Receive writes into a hidden entry (stack/publish.h) and makes anything
// visible only after the stream's final digest checked: a damaged,
// truncated or interrupted stream leaves no visible change, and the hidden
// entry is removed (or, after a kill, by the next writable open).
// Resumable receives are not implemented.
//
// Thread-safety: as the Pool; one send or receive per call.
#pragma once

#include <cstdint>
#include <string>

#include "block/status.h"
#include "pool/pool.h"
#include "stack/send_stream.h"

namespace stack::compose {

struct SendReport {
  std::string snapshot;    // V@S sent
  std::string base;        // V@B, "" for a full stream
  std::string uuid, base_uuid;
  uint64_t size_bytes = 0;
  uint64_t stream_bytes = 0;
  uint64_t written_bytes = 0;  // WRITE payload
  uint64_t hole_bytes = 0;     // HOLE ranges
  uint64_t records = 0;
};

// Streams `snapshot` (V@S) into `out`; with `from` (a snapshot V@B of the
// same pool), only what changed since it. InvalidArgument if either is not
// a snapshot; NotFound naming a missing one.
Result<SendReport> Send(pool::Pool& pool, const std::string& snapshot, const std::string& from,
                        const ByteSink& out);

struct ReceiveOptions {
  std::string volume;  // "" = the stream's volume name
  // Incremental onto a volume changed since its base: roll those changes
  // back (as zfs receive -F) instead of refusing.
  bool force = false;
};

struct ReceiveReport {
  std::string volume, snapshot;  // what was published (V, V@S)
  std::string uuid, base_uuid;
  bool incremental = false;
  uint64_t size_bytes = 0;
  uint64_t stream_bytes = 0, written_bytes = 0, hole_bytes = 0;
};

// Applies one stream read from `in`. Full: creates volume V and V@S with
// the sender's uuids (AlreadyExists if V exists or the snapshot's uuid is
// already in the pool). Incremental: only onto the snapshot whose uuid is
// the stream's base (NotFound naming both uuids otherwise), and only if its
// volume has not changed since (AlreadyExists unless options.force).
// Corruption for a damaged or truncated stream, Unsupported for a newer
// format or another block size.
Result<ReceiveReport> Receive(pool::Pool& pool, const ByteSource& in,
                              const ReceiveOptions& options);

}  // namespace stack::compose
