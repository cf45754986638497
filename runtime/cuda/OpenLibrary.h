//===- OpenLibrary.h - a vendor library by dlopen, from candidates -*- C++ -*-===//
//
// cuBLASLt and NCCL are opened with dlopen from a list of places (the
// loader's path, CUDA's directories), or from the one file an environment
// variable names (tests point them at fakes).
//
//===----------------------------------------------------------------------===//
#ifndef AIMC_RUNTIME_CUDA_OPENLIBRARY_H
#define AIMC_RUNTIME_CUDA_OPENLIBRARY_H

#include <string>
#include <vector>

namespace aim::rt {

/// dlopen (RTLD_NOW | RTLD_LOCAL) of $`variable` if it is set, else of the
/// first of `defaults` that opens; null with `errors` holding dlerror() of
/// each try.
void *openLibrary(const char *variable,
                  const std::vector<std::string> &defaults,
                  std::string &errors);

} // namespace aim::rt

#endif // AIMC_RUNTIME_CUDA_OPENLIBRARY_H
