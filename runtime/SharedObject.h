//===- SharedObject.h - code an artifact carries, loaded from memory -*- C++ -*-===//
//
// The shared objects an artifact carries (host code, GPU launcher code) are
// loaded from memory (memfd_create + dlopen): no file is written. Their
// undefined symbols resolve against aim-run (cblas_sgemm, the mgpu* calls).
//
//===----------------------------------------------------------------------===//
#ifndef AIMC_RUNTIME_SHAREDOBJECT_H
#define AIMC_RUNTIME_SHAREDOBJECT_H

#include "runtime/Program.h"

#include <memory>

namespace aim::rt {

class SharedObject {
public:
  /// `what` names the code in errors ("host code", "GPU launcher code").
  static StatusOr<std::unique_ptr<SharedObject>>
  load(const aimx::HostCode &code, const std::string &what);
  ~SharedObject();

  StatusOr<PackedEntry> entry(const aimx::EntryPoint &entryPoint) const;

private:
  SharedObject(void *handle, int fd, std::string what)
      : handle(handle), fd(fd), what(std::move(what)) {}
  void *handle;
  int fd;
  std::string what;
};

} // namespace aim::rt

#endif // AIMC_RUNTIME_SHAREDOBJECT_H
