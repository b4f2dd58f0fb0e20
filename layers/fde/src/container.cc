// Container::Read: the one place a command probes and reads a LUKS header,
// and picks the LUKS1 or LUKS2 implementation.
#include "fde/container.h"

#include "unlock.h"

namespace stack::fde {

Result<std::unique_ptr<Container>> Container::Read(BlockDevice& dev) {
  ASSIGN_OR_RETURN(ContainerKind kind, Probe(dev));
  if (kind == ContainerKind::kLuks2) {
    ASSIGN_OR_RETURN(internal::Luks2Header h, internal::ReadLuks2Header(dev));
    return internal::MakeLuks2Container(dev, std::move(h));
  }
  if (kind == ContainerKind::kLuks1) {
    ASSIGN_OR_RETURN(internal::Luks1Header h, internal::ReadLuks1Header(dev));
    return internal::MakeLuks1Container(dev, std::move(h));
  }
  return Status::NotFound("no LUKS header on " + dev.describe());
}

Status Container::CheckWritable() const {
  if (dev_.capabilities().read_only) return Status::ReadOnly(dev_.describe() + " is read-only");
  return Status::Ok();
}

}  // namespace stack::fde
