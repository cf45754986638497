//===- SharedObject.cpp - code an artifact carries, loaded from memory ----===//
#include "runtime/SharedObject.h"

#include <cerrno>
#include <cstring>
#include <dlfcn.h>
#include <sys/mman.h>
#include <unistd.h>

namespace aim::rt {

StatusOr<std::unique_ptr<SharedObject>>
SharedObject::load(const aimx::HostCode &host, const std::string &what) {
  const auto *code = host.shared_object();
  if (!code || code->size() == 0)
    return Status::error("the artifact's " + what + " is empty");
  int fd = memfd_create("aimx-code", MFD_CLOEXEC);
  if (fd < 0)
    return Status::error("cannot create memory for the " + what + ": " +
                         std::strerror(errno));
  size_t written = 0;
  while (written < code->size()) {
    ssize_t n = write(fd, code->data() + written, code->size() - written);
    if (n <= 0) {
      close(fd);
      return Status::error("cannot stage the " + what + " in memory");
    }
    written += static_cast<size_t>(n);
  }
  // The descriptor stays open while the code is loaded: dlopen knows
  // objects by path, and a reused descriptor number would hand back the
  // object loaded before (another artifact's code, or the host code in
  // place of the GPU launcher code).
  std::string path = "/proc/self/fd/" + std::to_string(fd);
  void *handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    close(fd);
    return Status::error("cannot load the artifact's " + what + ": " +
                         dlerror());
  }
  return std::unique_ptr<SharedObject>(new SharedObject(handle, fd, what));
}

SharedObject::~SharedObject() {
  dlclose(handle);
  close(fd);
}

StatusOr<PackedEntry> SharedObject::entry(const aimx::EntryPoint &e) const {
  std::string symbol = e.symbol() ? e.symbol()->str() : "";
  void *address = dlsym(handle, symbol.c_str());
  if (!address)
    return Status::error("the artifact's " + what + " has no entry '" +
                         symbol + "'");
  return reinterpret_cast<PackedEntry>(address);
}

} // namespace aim::rt
