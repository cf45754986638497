//===- HostLinker.h - an object file into a shared object -------*- C++ -*-===//
#ifndef AIMC_CODEGEN_HOST_HOSTLINKER_H
#define AIMC_CODEGEN_HOST_HOSTLINKER_H

#include "llvm/Support/Error.h"

#include <string>

namespace mlir::aim {

/// Links `object` into a shared object (with libm) using the system C
/// compiler driver (`$CC`, else `cc`), at compile time: the runtime then only
/// needs libc and libm to load it.
llvm::Expected<std::string> linkSharedObject(const std::string &object);

} // namespace mlir::aim

#endif // AIMC_CODEGEN_HOST_HOSTLINKER_H
