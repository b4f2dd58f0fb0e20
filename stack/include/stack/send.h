// Send and receive: ship a snapshot between pools as a send stream
// (spec/send-stream.md), full or incremental from a base snapshot.
//
// Sends are raw: the blocks as the pool stores them (ciphertext for an
// encrypted volume), so neither side ever needs a passphrase.
//
// Receive writes into a hidden entry `.recv-V` (stack/publish.h) and makes
// anything visible only after the stream's final digest checked: a damaged,
// truncated or interrupted stream leaves no visible change.
//
// Resuming (spec/send-stream.md "Resuming"): the hidden entry of a receive
// whose input ended early (truncation, a read error) or that was killed is
// kept as a partial receive, its note holding a resume token (where it
// stopped, bound to the snapshot, its base and a digest of what was
// applied). The token is recorded when the input is idle (input_idle), every
// kCheckpointBytes, and when the input ends early. `Send` with the token
// writes a resume stream of only the rest; `Receive` of it continues the
// partial and publishes after its digest. A damaged stream, NoSpace or any
// other failure drops the partial.
//
// Thread-safety: as the Pool; one send or receive per call.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "block/status.h"
#include "pool/pool.h"
#include "stack/volume_store.h"
#include "stack/progress.h"
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
// `progress`, if given, gets the stream's size as its total up front.
// With `resume_token` (from a partial receive): a resume stream of the
// rest; the snapshot and base are found by the token's uuids (`snapshot`
// and `from` may be empty, else must be those: InvalidArgument).
// `version`: the stream format version to write (kSendOldestVersion..
// kSendVersion; an older one for a receiver running an older stack).
Result<SendReport> Send(VolumeStore& pool, const std::string& snapshot, const std::string& from,
                        const ByteSink& out, const std::string& resume_token = "",
                        Progress* progress = nullptr, uint32_t version = kSendVersion);

struct ReceiveOptions {
  std::string volume;  // "" = the stream's volume name
  // Incremental onto a volume changed since its base: roll those changes
  // back (as zfs receive -F) instead of refusing.
  bool force = false;
  // True when the next read of the input would wait (a pipe with nothing
  // buffered): the resume token is recorded first, so a kill while waiting
  // loses nothing received. Null: never.
  std::function<bool()> input_idle;
};

// Bytes of records applied between two recorded resume points at most.
inline constexpr uint64_t kCheckpointBytes = 256ull << 20;

struct ReceiveReport {
  std::string volume, snapshot;  // what was published (V, V@S)
  std::string uuid, base_uuid;
  bool incremental = false;
  bool resumed = false;  // a resume stream continued a partial receive
  uint64_t size_bytes = 0;
  uint64_t stream_bytes = 0, written_bytes = 0, hole_bytes = 0;
  // Snapshots of earlier receives a kill had cut short, published first.
  std::vector<std::string> completed;
};

// Applies one stream read from `in`. Full: creates volume V and V@S with
// the sender's uuids (AlreadyExists if V exists or the snapshot's uuid is
// already in the pool). Incremental: only onto the snapshot whose uuid is
// the stream's base (NotFound naming both uuids otherwise), and only if its
// volume has not changed since (AlreadyExists unless options.force).
// Corruption for a damaged or truncated stream, Unsupported for a newer
// format or another block size.
// The stream's volume and snapshot names must pass ValidateName (the CLI's
// rules), checked before anything changes (InvalidArgument).
// A resume stream continues the partial receive of its snapshot uuid whose
// token matches the stream's resume block exactly (NotFound naming both
// otherwise); with several of that uuid, the one into options.volume
// (InvalidArgument naming them without it). A new stream into a volume with
// a partial receive of the same snapshot starts it again; of another
// snapshot, or of the same snapshot into another volume: AlreadyExists. A
// receive whose publication a kill cut short is completed first, when it
// can be (spec/send-stream.md section 4).
// Interrupted input: the error's message ends with the resume token.
Result<ReceiveReport> Receive(VolumeStore& pool, const ByteSource& in,
                              const ReceiveOptions& options);

struct PartialReceive {
  // Where it stands. A receive whose END and digest checked and whose
  // publication a kill cut short is kComplete (the next receive publishes
  // it) or kPublished (its snapshot is published: only hidden entries are
  // left, which the next receive drops). spec/send-stream.md section 4.
  enum class Stage { kReceiving, kComplete, kPublished };
  std::string volume;  // the volume it will publish
  std::string hidden;  // its hidden entry (.recv-VOLUME)
  std::string token;   // "" if its note holds no valid token
  ResumePoint point;
  uint64_t size_bytes = 0;
  Stage stage = Stage::kReceiving;
  std::string snapshot_uuid;  // of its hidden snapshot, else the token's; "" if neither
  std::string snapshot;       // kComplete: the V@S it publishes; kPublished: the one published
  // kComplete: V already holds the received content (the rollback
  // committed), so receive --abort publishes it too instead of dropping it.
  bool abort_publishes = false;
};

// Every partial receive in the pool (for listings).
Result<std::vector<PartialReceive>> ListPartialReceives(VolumeStore& pool);

struct AbortReport {
  // "" when the partial receive was dropped; else the snapshot (V@S) the
  // receive had in fact published or committed to V (its content is
  // already V's), which the abort completed instead.
  std::string published;
  bool already_published = false;  // V@S was published before: only leftovers went
};

// Drops the partial receive into `volume`; one whose publication had
// already changed V is completed instead (AbortReport::published). NotFound
// if there is none.
Result<AbortReport> AbortReceive(VolumeStore& pool, const std::string& volume);

}  // namespace stack::compose
