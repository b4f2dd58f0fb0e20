// The OCI layer rules (stack/oci_apply.h, spec/oci.md "Layers") on tiny
// tar layers made here, applied to an ext4 on a memory device and read
// back through the file system.
#include "stack/oci_apply.h"

#include <archive.h>
#include <archive_entry.h>

#include <catch2/catch.hpp>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "../../stack/src/oci_blob.h"
#include "../../stack/src/oci_merge.h"
#include "block/mem_device.h"
#include "fsbridge/filesystem.h"

namespace stack::compose::oci {
namespace {

// A member of a test layer.
struct M {
  std::string name;
  char type = 'f';   // f file, d dir, l symlink, h hard link, c char device
  std::string data;  // file content, link target
  uint32_t mode = 0644;
  std::vector<std::pair<std::string, std::string>> xattrs = {};  // name, value
};

std::string Tar(const std::vector<M>& members, bool gzip = false) {
  std::string out;
  archive* a = archive_write_new();
  archive_write_set_format_pax(a);
  if (gzip) archive_write_add_filter_gzip(a);
  archive_write_set_bytes_in_last_block(a, 1);
  auto cb = [](archive*, void* self, const void* buf, size_t n) -> la_ssize_t {
    static_cast<std::string*>(self)->append(static_cast<const char*>(buf), n);
    return la_ssize_t(n);
  };
  REQUIRE(archive_write_open(a, &out, nullptr, cb, nullptr) == ARCHIVE_OK);
  for (const M& m : members) {
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, m.name.c_str());
    archive_entry_set_perm(e, m.mode);
    archive_entry_set_mtime(e, 1700000000, 0);
    for (const auto& [n, v] : m.xattrs)
      archive_entry_xattr_add_entry(e, n.c_str(), v.data(), v.size());
    switch (m.type) {
      case 'd':
        archive_entry_set_filetype(e, AE_IFDIR);
        break;
      case 'l':
        archive_entry_set_filetype(e, AE_IFLNK);
        archive_entry_set_symlink(e, m.data.c_str());
        break;
      case 'h':
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_hardlink(e, m.data.c_str());
        break;
      case 'c':
        archive_entry_set_filetype(e, AE_IFCHR);
        archive_entry_set_rdevmajor(e, 1);
        archive_entry_set_rdevminor(e, 3);
        break;
      default:
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_size(e, la_int64_t(m.data.size()));
    }
    REQUIRE(archive_write_header(a, e) == ARCHIVE_OK);
    if (m.type == 'f' && !m.data.empty())
      REQUIRE(archive_write_data(a, m.data.data(), m.data.size()) == la_ssize_t(m.data.size()));
    archive_entry_free(e);
  }
  REQUIRE(archive_write_close(a) == ARCHIVE_OK);
  archive_write_free(a);
  return out;
}

class StringSource : public ByteSource {
 public:
  explicit StringSource(std::string s) : s_(std::move(s)) {}
  Result<std::span<const uint8_t>> Next() override {
    const size_t n = std::min<size_t>(s_.size() - pos_, 7);  // odd chunks on purpose
    std::span<const uint8_t> d(reinterpret_cast<const uint8_t*>(s_.data()) + pos_, n);
    pos_ += n;
    return d;
  }

 private:
  std::string s_;
  size_t pos_ = 0;
};

std::string Digest(const std::string& s) {
  return DigestOf({reinterpret_cast<const uint8_t*>(s.data()), s.size()});
}

// An image whose layers are in memory; digests as a manifest would give.
class MemImage : public ImageSource {
 public:
  explicit MemImage(std::vector<std::string> blobs, std::vector<std::string> plain = {})
      : blobs_(std::move(blobs)) {
    image_.reference = "test";
    for (size_t i = 0; i < blobs_.size(); i++) {
      Layer l;
      l.digest = Digest(blobs_[i]);
      l.diff_id = Digest(i < plain.size() ? plain[i] : blobs_[i]);
      l.size = blobs_[i].size();
      l.label = "layer " + std::to_string(i + 1);
      image_.layers.push_back(l);
    }
  }
  Result<std::unique_ptr<ByteSource>> OpenLayer(size_t i) override {
    return std::unique_ptr<ByteSource>(new StringSource(blobs_.at(i)));
  }
  Layer& layer(size_t i) { return image_.layers[i]; }
  std::vector<std::string> blobs_;
};

struct Applied {
  std::unique_ptr<fsbridge::Filesystem> fs;
  Result<ApplyReport> rep = Status::Internal("not run");
};

Applied Apply(ImageSource& img) {
  Applied a;
  auto fs = fsbridge::Filesystem::Mkfs(std::make_unique<MemDevice>(4096, 4096), {});
  REQUIRE(fs.ok());
  a.fs = std::move(*fs);
  a.rep = ApplyImage(img, *a.fs, {}, nullptr);
  return a;
}

Applied ApplyLayers(const std::vector<std::vector<M>>& layers) {
  std::vector<std::string> blobs;
  for (const auto& l : layers) blobs.push_back(Tar(l));
  MemImage img(blobs);
  Applied a = Apply(img);
  INFO((a.rep.ok() ? std::string("ok") : a.rep.status().message()));
  REQUIRE(a.rep.ok());
  return a;
}

// "name type" of every path, recursively, without lost+found.
std::map<std::string, char> Tree(fsbridge::Filesystem& fs, const std::string& dir = "/") {
  std::map<std::string, char> out;
  auto l = fs.List(dir);
  REQUIRE(l.ok());
  for (const auto& e : *l) {
    const std::string p = (dir == "/" ? "" : dir) + "/" + e.name;
    if (p == "/lost+found") continue;
    const char t = e.info.type == fsbridge::FileType::kDirectory ? 'd'
                   : e.info.type == fsbridge::FileType::kSymlink ? 'l'
                   : e.info.type == fsbridge::FileType::kRegular ? 'f'
                                                                 : 's';
    out[p] = t;
    if (t == 'd')
      for (auto& kv : Tree(fs, p)) out.insert(kv);
  }
  return out;
}

std::string Read(fsbridge::Filesystem& fs, const std::string& path) {
  std::string s;
  REQUIRE(fs.ReadFile(path, [&](std::span<const uint8_t> d) {
              s.append(reinterpret_cast<const char*>(d.data()), d.size());
              return Status::Ok();
            }).ok());
  return s;
}

TEST_CASE("a whiteout deletes a lower file or a whole directory, and one of nothing is ignored") {
  Applied a = ApplyLayers({
      {{"d/", 'd'},
       {"d/sub/", 'd'},
       {"d/sub/f", 'f', std::string(20000, 'x')},
       {"keep", 'f', "k"},
       {"gone", 'f', "g"}},
      {{".wh.d", 'f'}, {".wh.gone", 'f'}, {"x/.wh.never", 'f'}, {".wh.missing", 'f'}},
  });
  CHECK(Tree(*a.fs) == std::map<std::string, char>{{"/keep", 'f'}});
  CHECK(a.rep->skipped_bytes == 20001);  // d/sub/f and gone: not written
  CHECK(a.rep->stats.bytes == 1);
}

TEST_CASE("an opaque directory hides lower content but keeps its own layer's, in any order") {
  Applied a = ApplyLayers({
      {{"o/", 'd'}, {"o/lower", 'f', "l"}, {"o/sub/", 'd'}, {"o/sub/deep", 'f', "d"}},
      {{"o/mine-before", 'f', "1"}, {"o/.wh..wh..opq", 'f'}, {"o/mine-after", 'f', "2"}},
      {{"o/upper", 'f', "3"}},
  });
  CHECK(Tree(*a.fs) ==
        std::map<std::string, char>{
            {"/o", 'd'}, {"/o/mine-after", 'f'}, {"/o/mine-before", 'f'}, {"/o/upper", 'f'}});
}

TEST_CASE("a whiteout hides only lower layers: its own layer's entry of that name stays") {
  Applied a = ApplyLayers({
      {{"f", 'f', "lower"}},
      {{"f", 'f', "same layer"}, {".wh.f", 'f'}},
  });
  CHECK(Read(*a.fs, "/f") == "same layer");
}

TEST_CASE("a layer's own names stay under its own whiteouts and opaque markers") {
  // A hard link this layer makes to a lower file holds the lower file's
  // data, but its name is this layer's; a lower directory this layer only
  // writes into goes with the lower layers, and its surviving content gets
  // an implicit directory (0755, mtime 0) rather than no parent at all.
  Applied a = ApplyLayers({
      {{"x", 'f', "lower x"},
       {"y", 'f', "lower y"},
       {"d/", 'd'},
       {"d/sub/", 'd', "", 0700},
       {"d/sub/old", 'f', "o"},
       {"d/gone", 'f', "g"},
       {"w/", 'd'},
       {"w/in/", 'd', "", 0700},
       {"w/in/old", 'f', "o"}},
      {{"d/l", 'h', "x"},
       {"d/sub/new", 'f', "n"},
       {"d/.wh..wh..opq", 'f'},
       {"z", 'h', "y"},
       {".wh.z", 'f'},
       {"w/in/new", 'f', "n"},
       {".wh.w", 'f'}},
  });
  CHECK(Tree(*a.fs) == std::map<std::string, char>{{"/x", 'f'},
                                                    {"/y", 'f'},
                                                    {"/z", 'f'},
                                                    {"/d", 'd'},
                                                    {"/d/l", 'f'},
                                                    {"/d/sub", 'd'},
                                                    {"/d/sub/new", 'f'},
                                                    {"/w", 'd'},
                                                    {"/w/in", 'd'},
                                                    {"/w/in/new", 'f'}});
  CHECK(Read(*a.fs, "/d/l") == "lower x");
  CHECK(Read(*a.fs, "/z") == "lower y");
  auto x = a.fs->Stat("/x");
  auto l = a.fs->Stat("/d/l");
  REQUIRE(x.ok());
  REQUIRE(l.ok());
  CHECK(x->ino == l->ino);  // still one file
  for (const char* dir : {"/d/sub", "/w", "/w/in"}) {
    auto st = a.fs->Stat(dir);
    REQUIRE(st.ok());
    INFO(dir);
    CHECK((st->mode & 07777) == 0755);
    CHECK(st->mtime.sec == 0);
  }
}

TEST_CASE("a later entry replaces an earlier one of any type") {
  Applied a = ApplyLayers({
      {{"f2d", 'f', "file"},
       {"d2l/", 'd'},
       {"d2l/child", 'f', "c"},
       {"l2f", 'l', "somewhere"},
       {"d2d/", 'd', "", 0700},
       {"d2d/old", 'f', "o"}},
      {{"f2d/", 'd'},
       {"f2d/in", 'f', "in"},
       {"d2l", 'l', "/target"},
       {"l2f", 'f', "now a file"},
       {"d2d/", 'd', "", 0751},
       {"d2d/new", 'f', "n"}},
  });
  CHECK(Tree(*a.fs) == std::map<std::string, char>{{"/d2d", 'd'},
                                                   {"/d2d/new", 'f'},
                                                   {"/d2d/old", 'f'},
                                                   {"/d2l", 'l'},
                                                   {"/f2d", 'd'},
                                                   {"/f2d/in", 'f'},
                                                   {"/l2f", 'f'}});
  CHECK(Read(*a.fs, "/l2f") == "now a file");
  auto d = a.fs->Stat("/d2d");
  REQUIRE(d.ok());
  CHECK((d->mode & 07777) == 0751);  // the upper directory's attributes
  auto l = a.fs->Stat("/d2l");
  REQUIRE(l.ok());
  CHECK(l->symlink_target == "/target");
}

TEST_CASE("a hard link keeps the data when its target's name is replaced above") {
  Applied a = ApplyLayers({
      {{"a", 'f', "shared data"}, {"b", 'h', "a"}, {"c", 'h', "a"}},
      {{"a", 'f', "new a"}},
  });
  CHECK(Read(*a.fs, "/a") == "new a");
  CHECK(Read(*a.fs, "/b") == "shared data");
  auto b = a.fs->Stat("/b");
  auto c = a.fs->Stat("/c");
  REQUIRE(b.ok());
  REQUIRE(c.ok());
  CHECK(b->ino == c->ino);
  CHECK(b->nlink == 2);
}

TEST_CASE("names with .. or a leading / resolve inside the root") {
  CHECK(ResolveName("../../x") == "x");
  CHECK(ResolveName("/abs/./y/") == "abs/y");
  CHECK(ResolveName("a/../../b") == "b");
  CHECK(ResolveName("./") == "");
  Applied a = ApplyLayers({{{"../escape", 'f', "e"}, {"/abs", 'f', "a"}, {"d/../../up", 'f', "u"}},
                           {{"../.wh.abs", 'f'}}});
  CHECK(Tree(*a.fs) == std::map<std::string, char>{{"/escape", 'f'}, {"/up", 'f'}});
}

TEST_CASE("a path beneath a lower non-directory turns it into a directory") {
  Applied a = ApplyLayers({{{"p", 'f', "file"}}, {{"p/q", 'f', "q"}}});
  CHECK(Tree(*a.fs) == std::map<std::string, char>{{"/p", 'd'}, {"/p/q", 'f'}});
}

TEST_CASE("gzip layers are read and both digests checked") {
  const std::string plain = Tar({{"z", 'f', "zipped"}});
  const std::string gz = Tar({{"z", 'f', "zipped"}}, true);
  REQUIRE(gz.substr(0, 2) == "\x1f\x8b");
  {
    MemImage img({gz}, {plain});
    Applied a = Apply(img);
    REQUIRE(a.rep.ok());
    CHECK(Read(*a.fs, "/z") == "zipped");
  }
  {
    MemImage img({gz}, {plain});
    img.layer(0).diff_id = Digest("something else");
    Applied a = Apply(img);
    CHECK(a.rep.status().code() == Code::kCorruption);
    CHECK_THAT(a.rep.status().message(), Catch::Contains("diff_id"));
  }
  {
    MemImage img({gz}, {plain});
    img.blobs_[0][gz.size() / 2] ^= 1;  // tampered after the manifest was written
    Applied a = Apply(img);
    CHECK(a.rep.status().code() == Code::kCorruption);
    CHECK_THAT(a.rep.status().message(), Catch::Contains("layer 1"));
    auto t = a.fs->List("/");
    REQUIRE(t.ok());
    CHECK(t->size() == 1);  // lost+found only: nothing was written
  }
}

// Every file's content (or link target), keyed by path.
std::map<std::string, std::string> Contents(fsbridge::Filesystem& fs) {
  std::map<std::string, std::string> out;
  auto root = fs.Stat("/");
  REQUIRE(root.ok());
  out["/"] = std::to_string(root->mode);
  for (const auto& [n, v] : root->xattrs) out["/"] += " " + n + "=" + v;
  for (const auto& [p, t] : Tree(fs)) {
    auto st = fs.Stat(p);
    REQUIRE(st.ok());
    out[p] = std::string(1, t) + std::to_string(st->mode) + ":" +
             (t == 'f' ? Read(fs, p) : st->symlink_target);
    for (const auto& [n, v] : st->xattrs) out[p] += " " + n + "=" + v;
  }
  return out;
}

TEST_CASE("applying layer by layer (layer snapshots) gives what the one-pass merge gives") {
  const std::vector<std::vector<std::vector<M>>> images = {
      {{{"d/", 'd'}, {"d/sub/f", 'f', "x"}, {"keep", 'f', "k"}, {"gone", 'f', "g"}},
       {{".wh.d", 'f'}, {".wh.gone", 'f'}, {".wh.missing", 'f'}}},
      {{{"o/", 'd'}, {"o/lower", 'f', "l"}, {"o/sub/deep", 'f', "d"}},
       {{"o/mine-before", 'f', "1"}, {"o/.wh..wh..opq", 'f'}, {"o/mine-after", 'f', "2"}},
       {{"o/upper", 'f', "3"}}},
      {{{"f2d", 'f', "file"},
        {"d2l/", 'd'},
        {"d2l/child", 'f', "c"},
        {"l2f", 'l', "x"},
        {"d2d/", 'd', "", 0700},
        {"d2d/old", 'f', "o"},
        {"p", 'f', "p"}},
       {{"f2d/", 'd'},
        {"f2d/in", 'f', "in"},
        {"d2l", 'l', "/t"},
        {"l2f", 'f', "now"},
        {"d2d/", 'd', "", 0751},
        {"d2d/new", 'f', "n"},
        {"p/q", 'f', "q"}}},
      {{{"a", 'f', "shared"}, {"b", 'h', "a"}}, {{"a", 'f', "new a"}}},
      {{{"d/", 'd'}, {"d/sub/", 'd', "", 0700}, {"d/sub/old", 'f', "o"}},
       {{"d/sub/new", 'f', "n"}, {"d/.wh..wh..opq", 'f'}}},
      // A directory declared again drops the lower layer's xattrs (an ACL,
      // a label) and takes its own; one only implied by a path keeps them.
      {{{"./", 'd', "", 0755, {{"user.root", "r"}}},
        {"x/", 'd', "", 0755, {{"user.lower", "1"}, {"security.selinux", "l"}}},
        {"y/", 'd', "", 0755, {{"user.lower", "2"}}},
        {"z/", 'd', "", 0755, {{"user.kept", "3"}}}},
       {{"./", 'd', "", 0700},
        {"x/", 'd', "", 0750, {{"user.upper", "u"}}},
        {"y/", 'd', "", 0711},
        {"z/f", 'f', "f"}}},
  };
  for (const auto& layers : images) {
    std::vector<std::string> blobs;
    for (const auto& l : layers) blobs.push_back(Tar(l));
    MemImage whole(blobs), stepwise(blobs);
    Applied a = Apply(whole);
    REQUIRE(a.rep.ok());
    auto fs = fsbridge::Filesystem::Mkfs(std::make_unique<MemDevice>(4096, 4096), {});
    REQUIRE(fs.ok());
    for (size_t k = 0; k < layers.size(); k++) {
      auto r = ApplyLayer(stepwise, k, **fs, {}, nullptr);
      INFO((r.ok() ? std::string("ok") : r.status().message()));
      REQUIRE(r.ok());
    }
    CHECK(Contents(**fs) == Contents(*a.fs));
  }
}

TEST_CASE("layer by layer, a hard link to a lower layer's file is Corruption saying why") {
  MemImage img({Tar({{"a", 'f', "a"}}), Tar({{"b", 'h', "a"}})});
  auto fs = fsbridge::Filesystem::Mkfs(std::make_unique<MemDevice>(4096, 4096), {});
  REQUIRE(fs.ok());
  REQUIRE(ApplyLayer(img, 0, **fs, {}, nullptr).ok());
  auto r = ApplyLayer(img, 1, **fs, {}, nullptr);
  CHECK(r.status().code() == Code::kCorruption);
  CHECK_THAT(r.status().message(), Catch::Contains("layer 2") &&
                                       Catch::Contains("only a file of its own layer"));
  CHECK((*fs)->Stat("/b").status().code() == Code::kNotFound);
}

TEST_CASE("chain ids follow the image spec") {
  Image img;
  img.layers.resize(2);
  img.layers[0].diff_id = Digest("one");
  img.layers[1].diff_id = Digest("two");
  const auto c = ChainIds(img);
  REQUIRE(c.size() == 2);
  CHECK(c[0] == img.layers[0].diff_id);
  CHECK(c[1] == Digest(c[0] + " " + img.layers[1].diff_id));
}

TEST_CASE("a truncated gzip layer is Corruption even when its blob digest matches") {
  const std::string plain = Tar({{"z", 'f', std::string(100000, 'z')}});
  std::string gz = Tar({{"z", 'f', std::string(100000, 'z')}}, true);
  gz.resize(gz.size() / 2);
  MemImage img({gz}, {plain});  // the manifest describes the truncated blob
  Applied a = Apply(img);
  CHECK(a.rep.status().code() == Code::kCorruption);
  CHECK_THAT(a.rep.status().message(), Catch::Contains("layer 1"));
}

// libarchive's gzip filter never checks the trailer: a layer whose CRC-32
// or length was wrong (its digests made to match) built. The diff_id still
// held, but a damaged stream is Corruption, as for a .tar.gz build.
TEST_CASE("a gzip layer with a bad CRC or length trailer is Corruption naming the layer") {
  const std::string plain = Tar({{"z", 'f', std::string(100000, 'z')}});
  const std::string good = Tar({{"z", 'f', std::string(100000, 'z')}}, true);
  REQUIRE(good.size() > 8);
  for (size_t at : {good.size() - 8, good.size() - 4}) {  // CRC-32, then ISIZE
    std::string gz = good;
    gz[at] = char(gz[at] ^ 0x01);
    MemImage img({gz}, {plain});
    Applied a = Apply(img);
    CHECK(a.rep.status().code() == Code::kCorruption);
    CHECK_THAT(a.rep.status().message(), Catch::Contains("layer 1") && Catch::Contains("gzip"));
  }
  // Zero padding after the stream is taken (some writers add it); other bytes are not.
  MemImage padded({good + std::string(512, '\0')}, {plain});
  CHECK(Apply(padded).rep.ok());
  MemImage garbage({good + "junk"}, {plain});
  CHECK(Apply(garbage).rep.status().code() == Code::kCorruption);
}

TEST_CASE("a hard link to a name not in the image is Corruption naming it") {
  MemImage img({Tar({{"l", 'h', "nowhere"}})});
  Applied a = Apply(img);
  CHECK(a.rep.status().code() == Code::kCorruption);
  CHECK_THAT(a.rep.status().message(), Catch::Contains("nowhere"));
}

}  // namespace
}  // namespace stack::compose::oci
