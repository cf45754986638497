//===- Program.cpp - where an artifact's entry points run -----------------===//
#include "runtime/Program.h"

#include "runtime/HostProgram.h"
#include "runtime/cuda/CudaProgram.h"

namespace aim::rt {

StatusOr<std::unique_ptr<Program>>
loadProgram(const Artifact &artifact, DeviceKind device, GemmPrecision gemm) {
  if (device == DeviceKind::Cuda) {
    StatusOr<std::unique_ptr<CudaProgram>> p =
        CudaProgram::load(artifact, CudaDriver::kByLocalRank, gemm);
    if (!p)
      return p.status();
    return std::unique_ptr<Program>(std::move(*p));
  }
  StatusOr<std::unique_ptr<HostProgram>> p = HostProgram::load(artifact);
  if (!p)
    return p.status();
  return std::unique_ptr<Program>(std::move(*p));
}

StatusOr<DeviceKind> parseDeviceKind(const std::string &text) {
  if (text == "host" || text == "cpu")
    return DeviceKind::Host;
  if (text == "cuda" || text == "gpu")
    return DeviceKind::Cuda;
  return Status::error("--device " + text + " is not a device: host or cuda");
}

} // namespace aim::rt
