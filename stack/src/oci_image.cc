// Image references to manifest, config and layers (stack/oci_image.h).
#include "stack/oci_image.h"

#include <unistd.h>

#include <algorithm>

#include <nlohmann/json.hpp>

#include "oci_blob.h"

namespace stack::compose::oci {
namespace {

using json = nlohmann::json;

constexpr size_t kMaxJson = 4 << 20;  // an index, manifest or config; real ones are KiB

// Media types (OCI image-spec v1.1 and Docker's schema 2).
constexpr const char* kOciIndex = "application/vnd.oci.image.index.v1+json";
constexpr const char* kOciManifest = "application/vnd.oci.image.manifest.v1+json";
constexpr const char* kOciConfig = "application/vnd.oci.image.config.v1+json";
constexpr const char* kDockerList = "application/vnd.docker.distribution.manifest.list.v2+json";
constexpr const char* kDockerManifest = "application/vnd.docker.distribution.manifest.v2+json";
constexpr const char* kDockerConfig = "application/vnd.docker.container.image.v1+json";

Result<Layer::Compression> LayerCompression(const std::string& mt) {
  static const std::pair<const char*, Layer::Compression> kTypes[] = {
      {"application/vnd.oci.image.layer.v1.tar", Layer::Compression::kNone},
      {"application/vnd.oci.image.layer.v1.tar+gzip", Layer::Compression::kGzip},
      {"application/vnd.oci.image.layer.v1.tar+zstd", Layer::Compression::kZstd},
      {"application/vnd.oci.image.layer.nondistributable.v1.tar", Layer::Compression::kNone},
      {"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", Layer::Compression::kGzip},
      {"application/vnd.oci.image.layer.nondistributable.v1.tar+zstd", Layer::Compression::kZstd},
      {"application/vnd.docker.image.rootfs.diff.tar", Layer::Compression::kNone},
      {"application/vnd.docker.image.rootfs.diff.tar.gzip", Layer::Compression::kGzip},
      {"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", Layer::Compression::kGzip},
  };
  for (const auto& [t, c] : kTypes)
    if (mt == t) return c;
  return Status::Unsupported("layer media type '" + mt + "'");
}

std::string BlobPath(const std::string& digest) { return "blobs/sha256/" + digest.substr(7); }

Result<json> ParseJson(const std::string& text, const std::string& what) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Status::Corruption(what + ": not valid JSON");
  return j;
}

std::string Wanted(const Platform& p) {
  return p.os + "/" + p.architecture + (p.variant.empty() ? "" : "/" + p.variant);
}

// Typed field access that reports malformed documents as Corruption.
Result<std::string> Str(const json& o, const char* key, const std::string& what,
                        bool required = true) {
  auto it = o.find(key);
  if (it == o.end() || it->is_null()) {
    if (required) return Status::Corruption(what + ": no \"" + key + "\"");
    return std::string();
  }
  if (!it->is_string()) return Status::Corruption(what + ": \"" + key + "\" is not a string");
  return it->get<std::string>();
}

Result<std::vector<std::string>> StrList(const json& o, const char* key, const std::string& what) {
  std::vector<std::string> out;
  auto it = o.find(key);
  if (it == o.end() || it->is_null()) return out;
  if (!it->is_array()) return Status::Corruption(what + ": \"" + key + "\" is not a list");
  for (const auto& v : *it) {
    if (!v.is_string()) return Status::Corruption(what + ": \"" + key + "\" holds a non-string");
    out.push_back(v.get<std::string>());
  }
  return out;
}

// An index entry's platform as "OS/ARCH[/VARIANT]" ("" when it has none)
// and whether it is the one asked for (a variant asked for must match).
struct EntryPlatform {
  std::string text;
  bool wanted = false;
};
Result<EntryPlatform> PlatformOf(const json& entry, const Platform& p, const std::string& what) {
  EntryPlatform out;
  if (!entry.is_object()) return out;
  auto it = entry.find("platform");
  if (it == entry.end() || !it->is_object()) return out;
  ASSIGN_OR_RETURN(std::string os, Str(*it, "os", what, false));
  ASSIGN_OR_RETURN(std::string arch, Str(*it, "architecture", what, false));
  ASSIGN_OR_RETURN(std::string variant, Str(*it, "variant", what, false));
  out.text = os + "/" + arch + (variant.empty() ? "" : "/" + variant);
  out.wanted =
      os == p.os && arch == p.architecture && (p.variant.empty() || variant == p.variant);
  return out;
}

struct Descriptor {
  std::string media_type, digest;
  uint64_t size = 0;
  const json* raw = nullptr;
};

Result<Descriptor> ParseDescriptor(const json& d, const std::string& what) {
  if (!d.is_object()) return Status::Corruption(what + ": descriptor is not an object");
  Descriptor out;
  out.raw = &d;
  ASSIGN_OR_RETURN(out.media_type, Str(d, "mediaType", what, false));
  ASSIGN_OR_RETURN(out.digest, Str(d, "digest", what));
  RETURN_IF_ERROR(CheckDigestSyntax(out.digest, what));
  auto s = d.find("size");
  if (s != d.end() && !s->is_number_unsigned())
    return Status::Corruption(what + ": \"size\" is not a number");
  if (s != d.end()) out.size = s->get<uint64_t>();
  return out;
}

// Reads a JSON blob and checks its digest before parsing it.
Result<std::pair<json, std::string>> ReadBlobJson(BlobStore& store, const Descriptor& d,
                                                  const std::string& what) {
  ASSIGN_OR_RETURN(std::string text, store.ReadAll(BlobPath(d.digest), kMaxJson));
  const std::string got = DigestOf({reinterpret_cast<const uint8_t*>(text.data()), text.size()});
  if (got != d.digest)
    return Status::Corruption(what + " " + d.digest +
                              ": content does not match its digest (it hashes to " + got + ")");
  if (d.size && d.size != text.size())
    return Status::Corruption(what + " " + d.digest + ": " + std::to_string(text.size()) +
                              " bytes, " + std::to_string(d.size) + " expected");
  ASSIGN_OR_RETURN(json j, ParseJson(text, what + " " + d.digest));
  return std::make_pair(std::move(j), text);
}

Status ParseConfig(const json& cfg, const std::string& what, Image* img) {
  if (!cfg.is_object()) return Status::Corruption(what + ": not an object");
  ASSIGN_OR_RETURN(img->os, Str(cfg, "os", what, false));
  ASSIGN_OR_RETURN(img->architecture, Str(cfg, "architecture", what, false));
  auto c = cfg.find("config");
  if (c != cfg.end() && c->is_object()) {
    RuntimeConfig& rc = img->config;
    ASSIGN_OR_RETURN(rc.env, StrList(*c, "Env", what));
    ASSIGN_OR_RETURN(rc.entrypoint, StrList(*c, "Entrypoint", what));
    ASSIGN_OR_RETURN(rc.cmd, StrList(*c, "Cmd", what));
    ASSIGN_OR_RETURN(rc.working_dir, Str(*c, "WorkingDir", what, false));
    ASSIGN_OR_RETURN(rc.user, Str(*c, "User", what, false));
    auto l = c->find("Labels");
    if (l != c->end() && l->is_object())
      for (auto it = l->begin(); it != l->end(); ++it)
        if (it->is_string()) rc.labels[it.key()] = it->get<std::string>();
  }
  auto rootfs = cfg.find("rootfs");
  std::vector<std::string> diff_ids;
  if (rootfs != cfg.end() && rootfs->is_object()) {
    ASSIGN_OR_RETURN(diff_ids, StrList(*rootfs, "diff_ids", what));
  }
  if (diff_ids.size() != img->layers.size())
    return Status::Corruption(what + ": " + std::to_string(diff_ids.size()) + " diff_ids for " +
                              std::to_string(img->layers.size()) + " layers");
  for (size_t i = 0; i < diff_ids.size(); i++) {
    RETURN_IF_ERROR(CheckDigestSyntax(diff_ids[i], what + " diff_id"));
    img->layers[i].diff_id = diff_ids[i];
  }
  return Status::Ok();
}

void LabelLayers(Image* img) {
  const size_t n = img->layers.size();
  for (size_t i = 0; i < n; i++) {
    Layer& l = img->layers[i];
    l.label = "layer " + std::to_string(i + 1) + "/" + std::to_string(n) + " " +
              (l.digest.empty() ? l.diff_id : l.digest);
  }
}

// Splits "PATH[:TAG]" (a docker-archive's TAG is REPO:TAG, and REPO may
// hold '/'): PATH is the shortest prefix ending at a ':' (or the whole)
// that exists on the host; when none does, what precedes the last
// `tag_colons` colons (if no '/' follows them), for the NotFound message.
std::pair<std::string, std::string> SplitTag(const std::string& s, int tag_colons) {
  if (::access(s.c_str(), F_OK) == 0) return {s, ""};
  for (size_t c = s.find(':'); c != std::string::npos; c = s.find(':', c + 1))
    if (::access(s.substr(0, c).c_str(), F_OK) == 0) return {s.substr(0, c), s.substr(c + 1)};
  size_t pos = s.size();
  for (int i = 0; i < tag_colons; i++) {
    size_t c = pos == 0 ? std::string::npos : s.rfind(':', pos - 1);
    if (c == std::string::npos) return {s, ""};
    pos = c;
  }
  if (tag_colons == 1 && s.find('/', pos) != std::string::npos) return {s, ""};
  return {s.substr(0, pos), s.substr(pos + 1)};
}

class StoreImage : public ImageSource {
 public:
  explicit StoreImage(std::unique_ptr<BlobStore> store) : store_(std::move(store)) {}

  Result<std::unique_ptr<ByteSource>> OpenLayer(size_t i) override {
    return store_->Open(paths_.at(i));
  }
  void SetReference(const std::string& r) { image_.reference = r; }

  // oci: / oci-archive: an image layout.
  Status ResolveLayout(const std::string& tag, const Platform& p) {
    const std::string& where = store_->name();
    ASSIGN_OR_RETURN(std::string layout_text, store_->ReadAll("oci-layout", kMaxJson));
    ASSIGN_OR_RETURN(json layout, ParseJson(layout_text, "image " + where + ": oci-layout"));
    if (!layout.is_object() || !layout.contains("imageLayoutVersion"))
      return Status::Corruption("image " + where + ": oci-layout has no imageLayoutVersion");
    ASSIGN_OR_RETURN(std::string index_text, store_->ReadAll("index.json", kMaxJson));
    ASSIGN_OR_RETURN(json index, ParseJson(index_text, "image " + where + ": index.json"));
    ASSIGN_OR_RETURN(Descriptor d, PickFromIndex(index, "image " + where + ": index.json", tag, p));
    return ResolveDescriptor(d, p, 0);
  }

  // docker-archive: manifest.json + config + layer tars.
  Status ResolveDockerArchive(const std::string& repo_tag, const Platform& p) {
    const std::string& where = store_->name();
    ASSIGN_OR_RETURN(std::string text, store_->ReadAll("manifest.json", kMaxJson));
    ASSIGN_OR_RETURN(json m, ParseJson(text, "image " + where + ": manifest.json"));
    const std::string what = "image " + where + ": manifest.json";
    if (!m.is_array() || m.empty()) return Status::Corruption(what + ": not a list of images");
    const json* pick = nullptr;
    std::vector<std::string> all_tags;
    for (const auto& e : m) {
      if (!e.is_object()) return Status::Corruption(what + ": an entry is not an object");
      ASSIGN_OR_RETURN(auto tags, StrList(e, "RepoTags", what));
      for (const auto& t : tags) {
        all_tags.push_back(t);
        if (!repo_tag.empty() &&
            (t == repo_tag || t == "docker.io/" + repo_tag || t == "docker.io/library/" + repo_tag))
          pick = &e;
      }
    }
    if (repo_tag.empty()) {
      if (m.size() != 1)
        return Status::InvalidArgument(what + ": " + std::to_string(m.size()) +
                                       " images; name one as docker-archive:FILE:REPO:TAG");
      pick = &m[0];
    }
    if (!pick) {
      std::string have;
      for (const auto& t : all_tags) have += (have.empty() ? "" : ", ") + t;
      return Status::NotFound(what + ": no image tagged " + repo_tag +
                              (have.empty() ? "" : " (has " + have + ")"));
    }
    ASSIGN_OR_RETURN(std::string config_path, Str(*pick, "Config", what));
    ASSIGN_OR_RETURN(std::vector<std::string> layer_paths, StrList(*pick, "Layers", what));
    ASSIGN_OR_RETURN(std::string config_text, store_->ReadAll(config_path, kMaxJson));
    const std::string config_digest =
        DigestOf({reinterpret_cast<const uint8_t*>(config_text.data()), config_text.size()});
    // The config is named by its digest ("<hex>.json" or "blobs/sha256/<hex>").
    std::string base = config_path.substr(config_path.rfind('/') + 1);
    if (base.size() > 5 && base.substr(base.size() - 5) == ".json") base.resize(base.size() - 5);
    if (base.size() == 64 && "sha256:" + base != config_digest)
      return Status::Corruption("image " + where + ": config " + config_path +
                                ": content does not match its digest (it hashes to " +
                                config_digest + ")");
    for (const auto& lp : layer_paths) {
      Layer l;
      l.compression = Layer::Compression::kSniff;  // docker save: plain tar; others may compress
      image_.layers.push_back(l);
      paths_.push_back(lp);
    }
    ASSIGN_OR_RETURN(json cfg,
                     ParseJson(config_text, "image " + where + ": config " + config_path));
    RETURN_IF_ERROR(ParseConfig(cfg, "image " + where + ": config " + config_path, &image_));
    RETURN_IF_ERROR(CheckPlatform(p));
    image_.digest = image_.config_digest = config_digest;
    LabelLayers(&image_);
    return Status::Ok();
  }

 private:
  // The index.json entry to build (spec/oci.md "References"). With a TAG:
  // the entries named TAG. Without one: every entry, which must all be of
  // one image (one ref name, or none): a layout holding several tags is
  // never built from silently. Several entries left (one per platform,
  // or podman's per-compression copies): the first for the platform.
  Result<Descriptor> PickFromIndex(const json& index, const std::string& what,
                                   const std::string& tag, const Platform& p) {
    if (!index.is_object() || !index.contains("manifests") || !index["manifests"].is_array())
      return Status::Corruption(what + ": no \"manifests\" list");
    std::vector<const json*> named;
    std::vector<std::string> names;  // distinct ref names, in order
    bool untagged = false;
    for (const auto& m : index["manifests"]) {
      std::string ref;
      if (m.is_object() && m.contains("annotations") && m["annotations"].is_object()) {
        const json& a = m["annotations"];
        auto it = a.find("org.opencontainers.image.ref.name");
        if (it != a.end() && it->is_string()) ref = it->get<std::string>();
      }
      if (tag.empty() || ref == tag) named.push_back(&m);
      if (ref.empty()) untagged = true;
      if (!ref.empty() && std::find(names.begin(), names.end(), ref) == names.end())
        names.push_back(ref);
    }
    std::string have;
    for (const auto& n : names) have += (have.empty() ? "" : ", ") + n;
    if (untagged && !names.empty()) have += ", and untagged ones";
    if (named.empty())
      return Status::NotFound(what + ": no manifest tagged '" + tag + "'" +
                              (have.empty() ? "" : " (has " + have + ")"));
    if (tag.empty() && names.size() + (untagged ? 1 : 0) > 1) {
      // "oci" or "oci-archive", as the user wrote it.
      const std::string kind = image_.reference.rfind("oci-archive:", 0) == 0
                                   ? "oci-archive:FILE:TAG"
                                   : "oci:DIR:TAG";
      return Status::InvalidArgument(what + ": " +
                                     std::to_string(names.size() + (untagged ? 1 : 0)) +
                                     " images (" + have + "); name one as " + kind);
    }
    if (named.size() == 1) return ParseDescriptor(*named[0], what);
    std::string platforms;
    for (const json* m : named) {
      ASSIGN_OR_RETURN(EntryPlatform ep, PlatformOf(*m, p, what));
      if (ep.wanted) {
        platform_chosen_ = true;
        return ParseDescriptor(*m, what);
      }
      platforms += (platforms.empty() ? "" : ", ") + (ep.text.empty() ? "(no platform)" : ep.text);
    }
    return Status::NotFound(what + ": " + std::to_string(named.size()) + " manifests" +
                            (tag.empty() ? "" : " tagged '" + tag + "'") + ", none for " +
                            Wanted(p) + " (has " + platforms + ")");
  }

  Status ResolveDescriptor(const Descriptor& d, const Platform& p, int depth) {
    const std::string where = "image " + store_->name();
    if (depth > 4) return Status::Corruption(where + ": indexes nested too deep");
    if (d.media_type == kOciIndex || d.media_type == kDockerList) {
      ASSIGN_OR_RETURN(auto jt, ReadBlobJson(*store_, d, where + ": index"));
      const json& idx = jt.first;
      if (!idx.is_object() || !idx.contains("manifests") || !idx["manifests"].is_array())
        return Status::Corruption(where + ": index " + d.digest + ": no \"manifests\" list");
      std::string have;
      for (const auto& m : idx["manifests"]) {
        ASSIGN_OR_RETURN(Descriptor md, ParseDescriptor(m, where + ": index " + d.digest));
        ASSIGN_OR_RETURN(EntryPlatform ep, PlatformOf(m, p, where + ": index " + d.digest));
        if (ep.wanted) {
          platform_chosen_ = true;
          return ResolveDescriptor(md, p, depth + 1);
        }
        have += (have.empty() ? "" : ", ") + (ep.text.empty() ? "(no platform)" : ep.text);
      }
      return Status::NotFound(where + ": index " + d.digest + " has no image for " + Wanted(p) +
                              (have.empty() ? "" : " (has " + have + ")"));
    }
    if (d.media_type != kOciManifest && d.media_type != kDockerManifest)
      return Status::Unsupported(where + ": manifest " + d.digest + ": media type '" +
                                 d.media_type + "'");
    ASSIGN_OR_RETURN(auto mt, ReadBlobJson(*store_, d, where + ": manifest"));
    const json& man = mt.first;
    const std::string what = where + ": manifest " + d.digest;
    if (!man.is_object() || !man.contains("config") || !man.contains("layers") ||
        !man["layers"].is_array())
      return Status::Corruption(what + ": no config or layers");
    ASSIGN_OR_RETURN(Descriptor cd, ParseDescriptor(man["config"], what + " config"));
    if (!cd.media_type.empty() && cd.media_type != kOciConfig && cd.media_type != kDockerConfig)
      return Status::Unsupported(what + ": config media type '" + cd.media_type + "'");
    for (const auto& lj : man["layers"]) {
      ASSIGN_OR_RETURN(Descriptor ld, ParseDescriptor(lj, what + " layer"));
      Layer l;
      l.media_type = ld.media_type;
      l.digest = ld.digest;
      l.size = ld.size;
      Result<Layer::Compression> c = LayerCompression(ld.media_type);
      if (!c.ok())
        return Status::Unsupported(where + ": layer " + ld.digest + ": " + c.status().message());
      l.compression = *c;
      image_.layers.push_back(l);
      paths_.push_back(BlobPath(ld.digest));
    }
    ASSIGN_OR_RETURN(auto ct, ReadBlobJson(*store_, cd, where + ": config"));
    RETURN_IF_ERROR(ParseConfig(ct.first, where + ": config " + cd.digest, &image_));
    RETURN_IF_ERROR(CheckPlatform(p));
    image_.digest = d.digest;
    image_.config_digest = cd.digest;
    LabelLayers(&image_);
    return Status::Ok();
  }

  std::unique_ptr<BlobStore> store_;
  // An image not chosen from an index by platform must be for the one
  // asked for (its config says), so a build never takes another
  // architecture's image silently.
  Status CheckPlatform(const Platform& p) const {
    if (platform_chosen_ || image_.os.empty() || image_.architecture.empty()) return Status::Ok();
    if (image_.os == p.os && image_.architecture == p.architecture) return Status::Ok();
    return Status::NotFound("image " + store_->name() + " is for " + image_.os + "/" +
                            image_.architecture + ", not " + Wanted(p) + " (--platform)");
  }

  std::vector<std::string> paths_;  // each layer's file in the store
  bool platform_chosen_ = false;
};

constexpr const char* kPrefixes[] = {"oci:", "oci-archive:", "docker-archive:"};

}  // namespace

Result<Platform> ParsePlatform(const std::string& text) {
  Platform p;
  const size_t a = text.find('/');
  if (a == std::string::npos || a == 0 || a + 1 == text.size())
    return Status::InvalidArgument("platform '" + text + "': expected OS/ARCH[/VARIANT]");
  p.os = text.substr(0, a);
  std::string rest = text.substr(a + 1);
  const size_t b = rest.find('/');
  if (b != std::string::npos) {
    p.variant = rest.substr(b + 1);
    rest.resize(b);
    if (rest.empty() || p.variant.empty() || p.variant.find('/') != std::string::npos)
      return Status::InvalidArgument("platform '" + text + "': expected OS/ARCH[/VARIANT]");
  }
  p.architecture = rest;
  return p;
}

bool IsImageReference(const std::string& source) {
  for (const char* p : kPrefixes)
    if (source.rfind(p, 0) == 0) return true;
  return false;
}

Result<std::unique_ptr<ImageSource>> OpenImage(std::unique_ptr<BlobStore> store, StoreKind kind,
                                               const std::string& tag, const Platform& platform,
                                               const std::string& reference) {
  auto img = std::make_unique<StoreImage>(std::move(store));
  img->SetReference(reference);  // first: messages say which reference form to use
  RETURN_IF_ERROR(kind == StoreKind::kLayout ? img->ResolveLayout(tag, platform)
                                             : img->ResolveDockerArchive(tag, platform));
  return std::unique_ptr<ImageSource>(std::move(img));
}

Result<std::unique_ptr<ImageSource>> ImageSource::Open(const std::string& reference,
                                                       const Platform& platform) {
  if (reference.rfind("oci:", 0) == 0) {
    auto [dir, tag] = SplitTag(reference.substr(4), 1);
    ASSIGN_OR_RETURN(auto store, BlobStore::OpenDirectory(dir));
    return OpenImage(std::move(store), StoreKind::kLayout, tag, platform, reference);
  }
  if (reference.rfind("oci-archive:", 0) == 0) {
    auto [file, tag] = SplitTag(reference.substr(12), 1);
    ASSIGN_OR_RETURN(auto store, BlobStore::OpenArchive(file, "oci:" + file));
    return OpenImage(std::move(store), StoreKind::kLayout, tag, platform, reference);
  }
  if (reference.rfind("docker-archive:", 0) == 0) {
    auto [file, repo_tag] = SplitTag(reference.substr(15), 2);
    ASSIGN_OR_RETURN(auto store, BlobStore::OpenArchive(file));
    return OpenImage(std::move(store), StoreKind::kDockerArchive, repo_tag, platform, reference);
  }
  return Status::InvalidArgument("'" + reference +
                                 "' is not an image (oci:, oci-archive:, docker-archive:)");
}

Result<std::vector<std::string>> MetadataTags(const Image& image,
                                              const std::vector<std::string>& user_tags) {
  std::vector<std::string> tags = user_tags;
  tags.push_back("oci.digest=" + image.digest);
  tags.push_back("oci.image-id=" + image.config_digest);
  tags.push_back("oci.platform=" + image.os + "/" + image.architecture);
  // Digests are short; os and architecture are whatever the config says.
  if (tags.back().size() > 255)
    return Status::InvalidArgument("the image's platform (" + std::to_string(tags.back().size()) +
                                   " bytes as a tag) does not fit in a tag of 255 bytes");
  const RuntimeConfig& c = image.config;
  json j = json::object();
  if (!c.env.empty()) j["Env"] = c.env;
  if (!c.entrypoint.empty()) j["Entrypoint"] = c.entrypoint;
  if (!c.cmd.empty()) j["Cmd"] = c.cmd;
  if (!c.working_dir.empty()) j["WorkingDir"] = c.working_dir;
  if (!c.user.empty()) j["User"] = c.user;
  if (!c.labels.empty()) j["Labels"] = c.labels;
  // The strings were parsed from JSON (valid UTF-8); replace anything else
  // rather than throw.
  const std::string text = j.dump(-1, ' ', false, json::error_handler_t::replace);
  // Pieces of at most 240 bytes, cut between characters: each tag is valid
  // UTF-8 on its own, as tags are shown one by one (volume list --json).
  constexpr size_t kChunkLen = 240;
  for (size_t i = 0, n = 0; i < text.size(); n++) {
    size_t end = std::min(text.size(), i + kChunkLen);
    while (end < text.size() && end > i + 1 && (uint8_t(text[end]) & 0xc0) == 0x80) end--;
    tags.push_back("oci.config." + std::to_string(n) + "=" + text.substr(i, end - i));
    i = end;
  }
  if (tags.size() > 64)
    return Status::InvalidArgument("the image config (" + std::to_string(text.size()) +
                                   " bytes as JSON) does not fit in the entry's tags");
  return tags;
}

std::string MetadataJson(const std::vector<std::string>& tags) {
  json out = json::object();
  std::map<int, std::string> chunks;
  for (const auto& t : tags) {
    auto val = [&](const char* key) -> const char* {
      const size_t n = std::char_traits<char>::length(key);
      return t.compare(0, n, key) == 0 ? t.c_str() + n : nullptr;
    };
    if (const char* v = val("oci.digest="))
      out["digest"] = v;
    else if (const char* v2 = val("oci.image-id="))
      out["image_id"] = v2;
    else if (const char* v3 = val("oci.platform="))
      out["platform"] = v3;
    else if (t.rfind("oci.config.", 0) == 0) {
      const size_t eq = t.find('=');
      if (eq == std::string::npos) continue;
      try {
        chunks[std::stoi(t.substr(11, eq - 11))] = t.substr(eq + 1);
      } catch (...) {
        continue;
      }
    }
  }
  if (out.empty()) return "";
  std::string text;
  for (const auto& [n, c] : chunks) text += c;
  json cfg = json::parse(text.empty() ? "{}" : text, nullptr, false);
  out["config"] = cfg.is_discarded() ? json::object() : cfg;
  // Tags are any bytes (a user's --tag too): not valid UTF-8 is shown as
  // U+FFFD, never thrown (the lists print every entry through here).
  return out.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace stack::compose::oci
