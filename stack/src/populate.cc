#include "stack/populate.h"

#include <filesystem>

namespace stack::compose {

uint64_t SourceBytes(const std::string& source) {
  std::error_code ec;
  if (source.empty() || source == "-" || !std::filesystem::is_directory(source, ec)) return 0;
  uint64_t total = 0;
  for (auto it = std::filesystem::recursive_directory_iterator(
           source, std::filesystem::directory_options::skip_permission_denied, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file(ec) && !it->is_symlink(ec)) total += it->file_size(ec);
  }
  return total;
}

Result<fsbridge::PopulateStats> PopulateFrom(fsbridge::Filesystem& fs, const std::string& source,
                                             const std::string& dest,
                                             fsbridge::PopulateOptions opts,
                                             Progress* progress) {
  if (progress) {
    if (progress->enabled()) progress->SetTotal(SourceBytes(source));
    opts.on_file = [progress](uint64_t n) { progress->Advance(n); };
  }
  std::error_code ec;
  Result<fsbridge::PopulateStats> st =
      source != "-" && std::filesystem::is_directory(source, ec)
          ? fs.PopulateFromDirectory(source, dest, opts)
          : fs.PopulateFromTar(source, dest, opts);
  if (progress) progress->Finish();
  return st;
}

}  // namespace stack::compose
