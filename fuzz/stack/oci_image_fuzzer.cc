// libFuzzer target for the OCI image documents (stack/oci_image.h,
// spec/oci.md "Resolution and checks"): an image layout's index.json, image
// indexes / manifest lists and platform selection, manifests, configs, a
// docker-archive's manifest.json, and the metadata tags made from a config
// and read back. Any input is resolved or refused with a Status, never a
// crash, a hang or an allocation driven by an unchecked length.
//
// The documents refer to each other by digest, which a mutation would
// break at once; so an input names them by number and the harness puts
// the digests in. An input is documents separated by "\n--\n":
//   0: one line "MODE PLATFORM [TAG]": MODE "oci" (an image layout),
//      "docker" (a docker-archive) or "tags" (the documents are entry tags,
//      one a line, for MetadataJson); PLATFORM as --platform takes it.
//   1: index.json (oci) or manifest.json (docker).
//   2..10: blobs $1..$9. "$N" in a document is replaced by blob N's sha256
//      hex ("sha256:$1" in a descriptor, "$1.json" for a docker config); a
//      blob may refer to higher-numbered blobs only.
// Seeds (fuzz/stack/seeds/oci_image_fuzzer/) are real documents written by
// umoci and skopeo, turned into this form by fuzz/stack/make_oci_seeds.py.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "../../stack/src/oci_blob.h"
#include "stack/oci_apply.h"
#include "stack/oci_image.h"

namespace oci = stack::compose::oci;

namespace {

class StringSource : public oci::ByteSource {
 public:
  explicit StringSource(const std::string& s) : s_(s) {}
  stack::Result<std::span<const uint8_t>> Next() override {
    std::span<const uint8_t> d(reinterpret_cast<const uint8_t*>(s_.data()), done_ ? 0 : s_.size());
    done_ = true;
    return d;
  }

 private:
  const std::string& s_;
  bool done_ = false;
};

class MemStore : public oci::BlobStore {
 public:
  std::map<std::string, std::string> files;
  stack::Result<std::unique_ptr<oci::ByteSource>> Open(const std::string& path) override {
    auto it = files.find(path);
    if (it == files.end()) return stack::Status::NotFound(path + " is missing");
    return std::unique_ptr<oci::ByteSource>(new StringSource(it->second));
  }
  const std::string& name() const override { return name_; }

 private:
  std::string name_ = "fuzz";
};

std::vector<std::string> Split(const std::string& s, const std::string& sep) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (true) {
    const size_t n = s.find(sep, pos);
    out.push_back(s.substr(pos, n == std::string::npos ? std::string::npos : n - pos));
    if (n == std::string::npos) return out;
    pos = n + sep.size();
  }
}

// "$N" (N = lo..9) replaced by hex[N].
std::string Fill(std::string doc, const std::vector<std::string>& hex, size_t lo) {
  for (size_t n = hex.size(); n-- > lo;) {
    if (hex[n].empty()) continue;
    const std::string token = "$" + std::to_string(n);
    for (size_t p = doc.find(token); p != std::string::npos; p = doc.find(token, p + 64))
      doc.replace(p, token.size(), hex[n]);
  }
  return doc;
}

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > (1 << 20)) return 0;
  std::vector<std::string> docs =
      Split(std::string(reinterpret_cast<const char*>(data), size), "\n--\n");
  std::vector<std::string> head = Split(docs[0], " ");
  const std::string mode = head[0];
  const std::string platform_text = head.size() > 1 ? head[1] : "linux/amd64";
  const std::string tag = head.size() > 2 ? head[2] : "";

  if (mode == "tags") {
    // What a pool entry can hold (pool-format.md): 64 tags of 255 bytes.
    std::vector<std::string> tags;
    for (size_t i = 1; i < docs.size(); i++)
      for (auto& t : Split(docs[i], "\n"))
        if (tags.size() < 64) tags.push_back(t.substr(0, 255));
    (void)oci::MetadataJson(tags);
    return 0;
  }

  stack::Result<oci::Platform> platform = oci::ParsePlatform(platform_text);
  if (!platform.ok()) return 0;
  Check(!platform->os.empty() && !platform->architecture.empty());

  // Blobs from the last: each gets the digests of those after it.
  const size_t nblobs = std::min<size_t>(docs.size() > 2 ? docs.size() - 2 : 0, 9);
  std::vector<std::string> blob(nblobs + 1), hex(nblobs + 1);
  for (size_t n = nblobs; n >= 1; n--) {
    blob[n] = Fill(docs[n + 1], hex, n + 1);
    const std::string d =
        oci::DigestOf({reinterpret_cast<const uint8_t*>(blob[n].data()), blob[n].size()});
    hex[n] = d.substr(7);
  }
  auto store = std::make_unique<MemStore>();
  const std::string top = docs.size() > 1 ? Fill(docs[1], hex, 1) : "";
  const bool docker = mode == "docker";
  if (docker) {
    store->files["manifest.json"] = top;
  } else {
    store->files["oci-layout"] = R"({"imageLayoutVersion":"1.0.0"})";
    store->files["index.json"] = top;
  }
  for (size_t n = 1; n <= nblobs; n++) {
    store->files["blobs/sha256/" + hex[n]] = blob[n];
    store->files[hex[n] + ".json"] = blob[n];
  }
  auto img = oci::OpenImage(std::move(store),
                            docker ? oci::StoreKind::kDockerArchive : oci::StoreKind::kLayout, tag,
                            *platform, "fuzz");
  // OCI_FUZZ_DEBUG=1: say what each input resolved to (to check seeds).
  static const bool debug = std::getenv("OCI_FUZZ_DEBUG") != nullptr;
  if (debug)
    std::fprintf(
        stderr, "oci_image_fuzzer: %s\n",
        img.ok()
            ? ("resolved, " + std::to_string((*img)->image().layers.size()) + " layers").c_str()
            : img.status().ToString().c_str());
  if (!img.ok()) return 0;
  const oci::Image& image = (*img)->image();
  // What a resolved image promises the layer reader and the metadata.
  for (const oci::Layer& l : image.layers) {
    Check(l.diff_id.size() == 71 && l.diff_id.rfind("sha256:", 0) == 0);
    Check(l.digest.empty() || (l.digest.size() == 71 && l.digest.rfind("sha256:", 0) == 0));
    Check(!l.label.empty());
  }
  Check(oci::ChainIds(image).size() == image.layers.size());
  auto tags = oci::MetadataTags(image, {});
  if (!tags.ok()) return 0;
  Check(tags->size() <= 64);
  for (const auto& t : *tags) Check(t.size() <= 255);
  Check(!oci::MetadataJson(*tags).empty());
  return 0;
}
