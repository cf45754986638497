//===- HostProgram.h - an artifact's host code on the CPU -------*- C++ -*-===//
#ifndef AIMC_RUNTIME_HOSTPROGRAM_H
#define AIMC_RUNTIME_HOSTPROGRAM_H

#include "runtime/Program.h"
#include "runtime/SharedObject.h"

#include <memory>

namespace aim::rt {

class HostProgram : public Program {
public:
  static StatusOr<std::unique_ptr<HostProgram>> load(const Artifact &artifact);

  StatusOr<PackedEntry> entry(const aimx::EntryPoint &e) const override {
    return code->entry(e);
  }
  Status run(PackedEntry function, const std::vector<BufferRef> &buffers,
             size_t numArguments,
             const std::vector<InPlace> &inPlace = {}) override;
  std::string description() const override { return "host (" + isa + ")"; }

private:
  std::unique_ptr<SharedObject> code;
  std::string isa;
};

} // namespace aim::rt

#endif // AIMC_RUNTIME_HOSTPROGRAM_H
