// Image documents (stack/oci_image.h, spec/oci.md "Resolution and checks",
// "Metadata"): platform choice and the metadata tags, on documents held in
// memory (the directory and archive stores are exercised by e2e.oci).
#include "stack/oci_image.h"

#include <catch2/catch.hpp>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "../../stack/src/oci_blob.h"

namespace stack::compose::oci {
namespace {

using json = nlohmann::json;

class Bytes : public ByteSource {
 public:
  explicit Bytes(std::string s) : s_(std::move(s)) {}
  Result<std::span<const uint8_t>> Next() override {
    std::span<const uint8_t> d(reinterpret_cast<const uint8_t*>(s_.data()), done_ ? 0 : s_.size());
    done_ = true;
    return d;
  }

 private:
  std::string s_;
  bool done_ = false;
};

class MemStore : public BlobStore {
 public:
  std::map<std::string, std::string> files;
  Result<std::unique_ptr<ByteSource>> Open(const std::string& path) override {
    auto it = files.find(path);
    if (it == files.end()) return Status::NotFound(path + " is missing");
    return std::unique_ptr<ByteSource>(new Bytes(it->second));
  }
  const std::string& name() const override { return name_; }
  // Stores a blob; its digest.
  std::string Add(const std::string& text) {
    const std::string d = DigestOf({reinterpret_cast<const uint8_t*>(text.data()), text.size()});
    files["blobs/sha256/" + d.substr(7)] = text;
    return d;
  }

 private:
  std::string name_ = "mem";
};

const std::string kDiff = "sha256:" + std::string(64, 'a');

// Adds `cfg` and a one-layer manifest of it; the manifest's digest.
std::string AddManifest(MemStore& s, const json& cfg) {
  const std::string cd = s.Add(cfg.dump());
  json man = {
      {"schemaVersion", 2},
      {"config", {{"mediaType", "application/vnd.oci.image.config.v1+json"}, {"digest", cd}}},
      {"layers", {{{"mediaType", "application/vnd.oci.image.layer.v1.tar"}, {"digest", kDiff}}}}};
  return s.Add(man.dump());
}

// A layout whose tag "t" names one manifest per (os, arch, variant); each
// manifest's config says its variant in Env, to tell them apart.
std::unique_ptr<MemStore> MultiPlatform(const std::vector<json>& platforms) {
  auto s = std::make_unique<MemStore>();
  s->files["oci-layout"] = R"({"imageLayoutVersion":"1.0.0"})";
  json index = {{"schemaVersion", 2}, {"manifests", json::array()}};
  for (const json& p : platforms) {
    json cfg = {{"os", p["os"]},
                {"architecture", p["architecture"]},
                {"config", {{"Env", {"V=" + p.value("variant", std::string("none"))}}}},
                {"rootfs", {{"type", "layers"}, {"diff_ids", {kDiff}}}}};
    const std::string md = AddManifest(*s, cfg);
    index["manifests"].push_back({{"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                                  {"digest", md},
                                  {"platform", p},
                                  {"annotations", {{"org.opencontainers.image.ref.name", "t"}}}});
  }
  s->files["index.json"] = index.dump();
  return s;
}

Result<std::unique_ptr<ImageSource>> Resolve(std::unique_ptr<MemStore> s, const std::string& p) {
  auto platform = ParsePlatform(p);
  REQUIRE(platform.ok());
  return OpenImage(std::move(s), StoreKind::kLayout, "t", *platform, "mem");
}

TEST_CASE("several manifests of one tag: the platform's variant, when asked for, must match") {
  const std::vector<json> plats = {{{"os", "linux"}, {"architecture", "arm"}, {"variant", "v6"}},
                                   {{"os", "linux"}, {"architecture", "arm"}, {"variant", "v7"}},
                                   {{"os", "linux"}, {"architecture", "amd64"}}};
  auto v7 = Resolve(MultiPlatform(plats), "linux/arm/v7");
  REQUIRE(v7.ok());
  CHECK((*v7)->image().config.env == std::vector<std::string>{"V=v7"});
  auto any = Resolve(MultiPlatform(plats), "linux/arm");
  REQUIRE(any.ok());
  CHECK((*any)->image().config.env == std::vector<std::string>{"V=v6"});  // the first listed
  auto none = Resolve(MultiPlatform(plats), "linux/arm/v8");
  REQUIRE(none.status().code() == Code::kNotFound);
  CHECK_THAT(none.status().message(), Catch::Contains("linux/arm/v8"));
  CHECK_THAT(none.status().message(), Catch::Contains("linux/arm/v7"));
}

// A layout whose index.json lists, in order, one manifest per (tag,
// platform) pair ("" for none); each config's Env says which ("V=tag/os").
std::unique_ptr<MemStore> Entries(const std::vector<std::pair<std::string, json>>& entries) {
  auto s = std::make_unique<MemStore>();
  s->files["oci-layout"] = R"({"imageLayoutVersion":"1.0.0"})";
  json index = {{"schemaVersion", 2}, {"manifests", json::array()}};
  for (const auto& [tag, p] : entries) {
    const std::string os = p.is_null() ? "linux" : p["os"].get<std::string>();
    const std::string arch = p.is_null() ? "amd64" : p["architecture"].get<std::string>();
    json cfg = {{"os", os},
                {"architecture", arch},
                {"config", {{"Env", {"V=" + tag + "/" + arch}}}},
                {"rootfs", {{"type", "layers"}, {"diff_ids", {kDiff}}}}};
    json e = {{"mediaType", "application/vnd.oci.image.manifest.v1+json"},
              {"digest", AddManifest(*s, cfg)}};
    if (!tag.empty()) e["annotations"] = {{"org.opencontainers.image.ref.name", tag}};
    if (!p.is_null()) e["platform"] = p;
    index["manifests"].push_back(e);
  }
  s->files["index.json"] = index.dump();
  return s;
}

Result<std::unique_ptr<ImageSource>> Pick(std::unique_ptr<MemStore> s, const std::string& tag,
                                          const std::string& platform = "linux/amd64") {
  auto p = ParsePlatform(platform);
  REQUIRE(p.ok());
  return OpenImage(std::move(s), StoreKind::kLayout, tag, *p, "oci:mem");
}

std::string EnvOf(const Result<std::unique_ptr<ImageSource>>& img) {
  REQUIRE(img.ok());
  return (*img)->image().config.env.at(0);
}

TEST_CASE("oci index: without a TAG, a layout of several images asks for one by name") {
  const json amd64 = {{"os", "linux"}, {"architecture", "amd64"}};
  const json arm64 = {{"os", "linux"}, {"architecture", "arm64"}};
  // Two tags, the same platform (hunt r5): never the first silently.
  auto two = Pick(Entries({{"v1", amd64}, {"v2", amd64}}), "");
  REQUIRE(two.status().code() == Code::kInvalidArgument);
  CHECK_THAT(two.status().message(), Catch::Contains("2 images (v1, v2)"));
  CHECK_THAT(two.status().message(), Catch::Contains("oci:DIR:TAG"));
  // Without platforms, and with an untagged entry beside a tagged one.
  CHECK(Pick(Entries({{"v1", nullptr}, {"v2", nullptr}}), "").status().code() ==
        Code::kInvalidArgument);
  auto mixed = Pick(Entries({{"v1", amd64}, {"", amd64}}), "");
  REQUIRE(mixed.status().code() == Code::kInvalidArgument);
  CHECK_THAT(mixed.status().message(), Catch::Contains("v1, and untagged ones"));
  CHECK(EnvOf(Pick(Entries({{"v1", amd64}, {"v2", amd64}}), "v2")) == "V=v2/amd64");
  // One image, one entry per platform, tagged alike or not at all: chosen by platform.
  CHECK(EnvOf(Pick(Entries({{"t", arm64}, {"t", amd64}}), "")) == "V=t/amd64");
  CHECK(EnvOf(Pick(Entries({{"", arm64}, {"", amd64}}), "", "linux/arm64")) == "V=/arm64");
  // The tag asked for is chosen from first, then its platform: another tag's
  // entry for the platform is never taken.
  CHECK(EnvOf(Pick(Entries({{"v1", amd64}, {"v2", arm64}, {"v2", amd64}}), "v2")) ==
        "V=v2/amd64");
  CHECK(EnvOf(Pick(Entries({{"only", nullptr}}), "")) == "V=only/amd64");
}

TEST_CASE("oci index: no entry for the platform names those there are") {
  const json arm64 = {{"os", "linux"}, {"architecture", "arm64"}};
  const json s390 = {{"os", "linux"}, {"architecture", "s390x"}};
  auto none = Pick(Entries({{"t", arm64}, {"t", s390}, {"t", nullptr}, {"u", nullptr}}), "t");
  REQUIRE(none.status().code() == Code::kNotFound);
  CHECK_THAT(none.status().message(),
             Catch::Contains("3 manifests tagged 't', none for linux/amd64 "
                             "(has linux/arm64, linux/s390x, (no platform))"));
  auto missing = Pick(Entries({{"t", arm64}, {"u", nullptr}}), "v");
  REQUIRE(missing.status().code() == Code::kNotFound);
  CHECK_THAT(missing.status().message(), Catch::Contains("no manifest tagged 'v' (has t, u)"));
}

TEST_CASE("metadata tags: a platform too long for a tag is refused before anything is made") {
  Image img;
  img.digest = img.config_digest = kDiff;
  img.os = "linux";
  img.architecture = std::string(300, 'x');
  auto tags = MetadataTags(img, {});
  CHECK(tags.status().code() == Code::kInvalidArgument);
  img.architecture = "amd64";
  img.config.labels["k"] = std::string(1000, 'y');  // in pieces of 240 bytes
  tags = MetadataTags(img, {});
  REQUIRE(tags.ok());
  for (const auto& t : *tags) CHECK(t.size() <= 255);
  CHECK(json::parse(MetadataJson(*tags))["config"]["Labels"]["k"] == std::string(1000, 'y'));
}

// The pieces were cut every 240 bytes, so a character across a cut showed
// as U+FFFD in the raw tags (the whole config read back right).
TEST_CASE("metadata tags are cut between characters: each piece is valid UTF-8") {
  Image img;
  img.digest = img.config_digest = kDiff;
  img.os = "linux";
  img.architecture = "amd64";
  for (size_t pad = 0; pad < 4; pad++) {  // every position of a 2-, 3- and 4-byte character
    std::string v(pad, 'a');
    for (int k = 0; k < 200; k++) v += "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";
    img.config.labels["k"] = v;
    auto tags = MetadataTags(img, {});
    REQUIRE(tags.ok());
    for (const auto& t : *tags) {
      CHECK(t.size() <= 255);
      // nlohmann's strict dump throws on invalid UTF-8.
      CHECK_NOTHROW(json(t).dump());
    }
    CHECK(json::parse(MetadataJson(*tags))["config"]["Labels"]["k"] == v);
  }
}

TEST_CASE("metadata read back from tags that are not UTF-8 is shown, never thrown") {
  // Tags are bytes anyone can set (--tag): the lists print them all.
  const std::vector<std::string> tags = {"oci.digest=sha256:\xd8\xee\x01", "oci.platform=\xff/x",
                                         "oci.config.0={\"User\":\"\xc3\"}"};
  std::string text;
  REQUIRE_NOTHROW(text = MetadataJson(tags));
  const json j = json::parse(text);
  CHECK(j["digest"].get<std::string>().rfind("sha256:", 0) == 0);
  CHECK(j["config"] == json::object());  // not valid JSON once reassembled
}

}  // namespace
}  // namespace stack::compose::oci
