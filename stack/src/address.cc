#include "stack/address.h"

namespace stack::compose {

Status ValidateName(const std::string& name, const char* what) {
  if (name.empty()) return Status::InvalidArgument(std::string(what) + " name is empty");
  if (name.size() > 128)
    return Status::InvalidArgument(std::string(what) + " name \"" + name.substr(0, 32) +
                                   "...\" is longer than 128 bytes");
  if (name[0] == '.' || name[0] == '-')
    return Status::InvalidArgument(std::string(what) + " name \"" + name +
                                   "\" may not start with '.' or '-'");
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == ':' || c == '+' || c == '-';
    if (!ok)
      return Status::InvalidArgument(std::string(what) + " name \"" + name +
                                     "\" has a character outside [A-Za-z0-9._:+-]");
  }
  return Status::Ok();
}

Result<EntryAddress> ParseEntryAddress(const std::string& text) {
  EntryAddress a;
  auto at = text.find('@');
  if (at == std::string::npos) {
    a.volume = text;
  } else {
    if (text.find('@', at + 1) != std::string::npos)
      return Status::InvalidArgument("\"" + text + "\" has more than one '@'");
    a.volume = text.substr(0, at);
    a.snapshot = text.substr(at + 1);
    RETURN_IF_ERROR(ValidateName(*a.snapshot, "snapshot"));
  }
  RETURN_IF_ERROR(ValidateName(a.volume, "volume"));
  return a;
}

}  // namespace stack::compose
