//===- Nccl.cpp - NCCL, loaded with dlopen --------------------------------===//
#include "runtime/cuda/Nccl.h"

#include "runtime/cuda/OpenLibrary.h"

#include <dlfcn.h>

namespace aim::rt {

StatusOr<std::unique_ptr<Nccl>> Nccl::open() {
  std::string errors;
  void *library = openLibrary("AIMC_NCCL",
                              {"libnccl.so.2", "/usr/local/cuda/lib/libnccl.so.2",
                               "/usr/local/cuda/lib64/libnccl.so.2"},
                              errors);
  if (!library)
    return Status::error("a per-rank program on GPUs communicates with NCCL, "
                         "which cannot be loaded (" +
                         errors + "); install NCCL or set AIMC_NCCL");
  std::unique_ptr<Nccl> nccl(new Nccl);
  nccl->library = library;
#define AIM_NCCL_RESOLVE(name)                                                 \
  nccl->name = reinterpret_cast<decltype(nccl->name)>(dlsym(library, #name));  \
  if (!nccl->name)                                                             \
    return Status::error("NCCL has no " #name                                  \
                         " (aim-run needs NCCL 2.14 or later)");
  AIM_NCCL_FUNCTIONS(AIM_NCCL_RESOLVE)
#undef AIM_NCCL_RESOLVE
  if (Status s =
          nccl->check(nccl->ncclGetVersion(&nccl->code), "ncclGetVersion");
      !s)
    return s;
  return nccl;
}

Status Nccl::check(ncclResult_t result, const std::string &what,
                   ncclComm_t comm) const {
  if (result == ncclSuccess)
    return Status::ok();
  std::string message = what + ": ";
  const char *name = ncclGetErrorString ? ncclGetErrorString(result) : nullptr;
  message += name ? name : "NCCL result " + std::to_string(result);
  const char *last = ncclGetLastError ? ncclGetLastError(comm) : nullptr;
  if (last && *last)
    message += std::string(" (") + last + ")";
  return Status::error(message);
}

std::string Nccl::version() const {
  // NCCL_VERSION(X, Y, Z) is X * 10000 + Y * 100 + Z from 2.9 on.
  return std::to_string(code / 10000) + "." + std::to_string(code / 100 % 100) +
         "." + std::to_string(code % 100);
}

} // namespace aim::rt
