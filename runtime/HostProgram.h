//===- HostProgram.h - loading an artifact's host code ----------*- C++ -*-===//
//
// The shared object an artifact carries is loaded from memory (memfd_create
// + dlopen): no file is written, and it needs only libc and libm.
//
//===----------------------------------------------------------------------===//
#ifndef AIMC_RUNTIME_HOSTPROGRAM_H
#define AIMC_RUNTIME_HOSTPROGRAM_H

#include "runtime/Artifact.h"

#include <memory>

namespace aim::rt {

/// A compiled function: one pointer per argument, then one per result.
using PackedEntry = void (*)(void **buffers);

class HostProgram {
public:
  static StatusOr<std::unique_ptr<HostProgram>> load(const Artifact &artifact);
  ~HostProgram();

  StatusOr<PackedEntry> entry(const aimx::EntryPoint &entryPoint) const;

private:
  explicit HostProgram(void *handle) : handle(handle) {}
  void *handle;
};

} // namespace aim::rt

#endif // AIMC_RUNTIME_HOSTPROGRAM_H
