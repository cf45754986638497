//===- HostProgram.cpp - loading an artifact's host code ------------------===//
#include "runtime/HostProgram.h"

#include <cerrno>
#include <cstring>
#include <dlfcn.h>
#include <sys/mman.h>
#include <unistd.h>

namespace aim::rt {

StatusOr<std::unique_ptr<HostProgram>>
HostProgram::load(const Artifact &artifact) {
  const auto *code = artifact.root->host()->shared_object();
  int fd = memfd_create("aimx-host-code", MFD_CLOEXEC);
  if (fd < 0)
    return Status::error(
        std::string("cannot create memory for the host code: ") +
        std::strerror(errno));
  size_t written = 0;
  while (written < code->size()) {
    ssize_t n = write(fd, code->data() + written, code->size() - written);
    if (n <= 0) {
      close(fd);
      return Status::error("cannot stage the host code in memory");
    }
    written += static_cast<size_t>(n);
  }
  std::string path = "/proc/self/fd/" + std::to_string(fd);
  void *handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  close(fd); // the mapping stays
  if (!handle)
    return Status::error(std::string("cannot load the artifact's host code: ") +
                         dlerror());
  return std::unique_ptr<HostProgram>(new HostProgram(handle));
}

HostProgram::~HostProgram() { dlclose(handle); }

StatusOr<PackedEntry> HostProgram::entry(const aimx::EntryPoint &e) const {
  std::string symbol = e.symbol() ? e.symbol()->str() : "";
  void *address = dlsym(handle, symbol.c_str());
  if (!address)
    return Status::error("the artifact's host code has no entry '" + symbol +
                         "'");
  return reinterpret_cast<PackedEntry>(address);
}

} // namespace aim::rt
