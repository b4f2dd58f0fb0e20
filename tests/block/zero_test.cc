#include <catch2/catch.hpp>
#include <vector>

#include "block/zero.h"

TEST_CASE("IsAllZero finds a non-zero byte anywhere") {
  CHECK(stack::IsAllZero({}));
  for (size_t n : {1u, 7u, 8u, 9u, 4095u, 4096u, 65536u}) {
    std::vector<uint8_t> v(n, 0);
    CHECK(stack::IsAllZero(v));
    for (size_t at : {size_t{0}, n / 2, n - 1}) {
      v[at] = 1;
      INFO("n=" << n << " at=" << at);
      CHECK_FALSE(stack::IsAllZero(v));
      v[at] = 0;
    }
  }
  std::vector<uint8_t> ones(4096, 0xff);  // equal neighbours but not zero
  CHECK_FALSE(stack::IsAllZero(ones));
}
