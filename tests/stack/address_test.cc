#include <catch2/catch.hpp>

#include "stack/address.h"
#include "test_util.h"

using namespace stack;
using namespace stack::compose;
using stack::testing::CodeOf;

TEST_CASE("entry addresses parse volume and snapshot") {
  auto a = ParseEntryAddress("golden");
  REQUIRE(a.ok());
  CHECK(a->volume == "golden");
  CHECK_FALSE(a->is_snapshot());
  CHECK(a->name() == "golden");
  auto b = ParseEntryAddress("golden@v1.2:rc-1");
  REQUIRE(b.ok());
  CHECK(b->volume == "golden");
  CHECK(*b->snapshot == "v1.2:rc-1");
  CHECK(b->name() == "golden@v1.2:rc-1");
}

TEST_CASE("bad entry addresses are InvalidArgument") {
  for (const char* bad : {"", "@s", "v@", "a@b@c", "-x", ".hidden", "sp ace", "sl/ash",
                          "v@-s", "ü"}) {
    INFO(bad);
    CHECK(CodeOf(ParseEntryAddress(bad)) == Code::kInvalidArgument);
  }
  CHECK(CodeOf(ParseEntryAddress(std::string(129, 'a'))) == Code::kInvalidArgument);
  CHECK(ParseEntryAddress(std::string(128, 'a')).ok());
}
