// RequireClean: the pool's Check() succeeds and reports no error (the
// report is printed when it does not). For Catch2 test files.
#pragma once

#include <catch2/catch.hpp>

#include "pool/pool.h"
#include "test_util.h"

namespace stack::pool::testing {

inline void RequireClean(Pool& p) {
  auto r = p.Check();
  REQUIRE_OK(r);
  INFO(r->ToJson());
  REQUIRE(r->ok);
}

}  // namespace stack::pool::testing
