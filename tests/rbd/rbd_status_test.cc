// FromRbd (the one errno -> Status boundary of layers/rbd) and the name rule.
#include <catch2/catch.hpp>

#include <cerrno>

#include "rbd/rbd.h"
#include "rbd_status.h"

using namespace stack;

TEST_CASE("librbd errors map to the codes the CLI's exit statuses promise") {
  const std::pair<int, Code> cases[] = {
      {ENOENT, Code::kNotFound},        {EEXIST, Code::kAlreadyExists},
      {EBUSY, Code::kBusy},             {ENOTEMPTY, Code::kBusy},
      {ENOSPC, Code::kNoSpace},         {EDQUOT, Code::kNoSpace},
      {ETIMEDOUT, Code::kIoError},      {ECONNREFUSED, Code::kIoError},
      {EROFS, Code::kReadOnly},         {EACCES, Code::kAuthFailed},
      {EPERM, Code::kAuthFailed},       {EINVAL, Code::kInvalidArgument},
      {EOPNOTSUPP, Code::kUnsupported}, {EIO, Code::kIoError},
  };
  for (auto [e, code] : cases) {
    INFO("errno " << e);
    Status st = rbd::FromRbd("create image rbd:stack/vm", -e);
    CHECK(st.code() == code);
    CHECK(st.message().rfind("create image rbd:stack/vm: ", 0) == 0);
  }
  CHECK(rbd::FromRbd("x", 0).ok());
  CHECK(rbd::FromRbd("x", 5).ok());  // a count is success
}

TEST_CASE("image names RBD and our CLI both accept") {
  CHECK(rbd::ValidImageName("vm-1.base_2:x+y"));
  CHECK(rbd::ValidImageName(".build-vm"));
  CHECK(rbd::ValidImageName(std::string(255, 'a')));
  CHECK_FALSE(rbd::ValidImageName(""));
  CHECK_FALSE(rbd::ValidImageName(std::string(256, 'a')));
  CHECK_FALSE(rbd::ValidImageName("a/b"));
  CHECK_FALSE(rbd::ValidImageName("a@b"));
  CHECK_FALSE(rbd::ValidImageName("a b"));
}
