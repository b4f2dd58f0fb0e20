// Host-side comparison of two directory trees (type, mode, owners, size,
// mtime with nanoseconds, content, symlink targets, device numbers,
// xattrs, link counts). Returns "" when equal, else the first difference.
#pragma once

#include <string>

namespace stack::testing {
std::string CompareTrees(const std::string& a, const std::string& b);
}
