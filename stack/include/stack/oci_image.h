// OCI images as a build source: an image reference (`oci:DIR[:TAG]`,
// `oci-archive:FILE[:TAG]`, `docker-archive:FILE[:REPO:TAG]`) resolved to
// its manifest, config and layers, every blob checked against its sha256
// digest (spec/oci.md).
//
// Everything is read in place: a directory's blobs from their files, an
// archive's from its tar members through libarchive, never unpacked to the
// host. Opening reads and checks the index, manifest and config; layers are
// streamed (and checked) when applied (stack/oci_apply.h).
//
// Thread-safety: none; one owner.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "block/status.h"

namespace stack::compose::oci {

// A stream of bytes (a blob): each Next() returns the next bytes, valid
// until the following call; empty at the end.
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  virtual Result<std::span<const uint8_t>> Next() = 0;
  // How many bytes there are to read, when the source knows (0: unknown);
  // for progress only, never trusted for anything else.
  virtual uint64_t SizeHint() const { return 0; }
};

struct Platform {
  std::string os = "linux";
  std::string architecture = "amd64";
  std::string variant;  // empty: any
};
// Parses "OS/ARCH[/VARIANT]". InvalidArgument otherwise.
Result<Platform> ParsePlatform(const std::string& text);

// What the image says about running it (the config's "config" object).
struct RuntimeConfig {
  std::vector<std::string> env, entrypoint, cmd;
  std::string working_dir, user;
  std::map<std::string, std::string> labels;
  bool operator==(const RuntimeConfig&) const = default;
};

struct Layer {
  std::string media_type;  // as the manifest says ("" in a docker-archive)
  std::string digest;      // "sha256:<hex>" of the stored blob; "" when unknown (docker-archive)
  std::string diff_id;     // "sha256:<hex>" of the uncompressed tar (the config's rootfs.diff_ids)
  uint64_t size = 0;       // stored size from the descriptor; 0 when unknown
  enum class Compression { kNone, kGzip, kZstd, kSniff } compression = Compression::kSniff;
  // "layer 2/3 sha256:abcd..." for messages.
  std::string label;
};

struct Image {
  std::string reference;      // as given
  std::string digest;         // the manifest's digest; a docker-archive's config digest
  std::string config_digest;  // the image id
  std::string os, architecture;
  RuntimeConfig config;
  std::vector<Layer> layers;
};

// True when `source` names an image (starts with one of the prefixes).
bool IsImageReference(const std::string& source);

class ImageSource {
 public:
  // Resolves the reference: index -> (manifest list -> platform) ->
  // manifest -> config, each checked against its digest. NotFound for a
  // missing file, blob or tag (naming it); Corruption for a digest
  // mismatch or malformed JSON (naming the blob); Unsupported for an
  // unknown media type (naming it); NotFound when no manifest is for
  // `platform` (listing the platforms there are).
  static Result<std::unique_ptr<ImageSource>> Open(const std::string& reference,
                                                   const Platform& platform = {});
  virtual ~ImageSource() = default;

  const Image& image() const { return image_; }
  // The stored bytes of layer i (compressed as stored), unchecked: the
  // layer reader checks digest and diff_id as it reads (oci_layer.h).
  virtual Result<std::unique_ptr<ByteSource>> OpenLayer(size_t i) = 0;

 protected:
  Image image_;
};

// The metadata a built entry keeps (tags, spec/oci.md "Metadata"):
// oci.digest=, oci.image-id=, oci.platform=, oci.config.N= (the runtime
// config as compact JSON, in chunks of up to 240 bytes). InvalidArgument if
// they would not fit beside `user_tags` (64 tags of 255 bytes).
Result<std::vector<std::string>> MetadataTags(const Image& image,
                                              const std::vector<std::string>& user_tags);
// Reassembles the metadata from an entry's tags as a JSON object text
// ({"digest":...,"image_id":...,"platform":...,"config":{...}}); "" when
// the tags hold none.
std::string MetadataJson(const std::vector<std::string>& tags);

}  // namespace stack::compose::oci
