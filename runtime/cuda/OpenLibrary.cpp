//===- OpenLibrary.cpp - a vendor library by dlopen, from candidates ------===//
#include "runtime/cuda/OpenLibrary.h"

#include <cstdlib>
#include <dlfcn.h>

namespace aim::rt {

void *openLibrary(const char *variable,
                  const std::vector<std::string> &defaults,
                  std::string &errors) {
  const char *given = std::getenv(variable);
  std::vector<std::string> candidates =
      given && *given ? std::vector<std::string>{given} : defaults;
  errors.clear();
  for (const std::string &path : candidates) {
    if (void *library = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL))
      return library;
    errors += std::string(errors.empty() ? "" : "; ") + dlerror();
  }
  return nullptr;
}

} // namespace aim::rt
