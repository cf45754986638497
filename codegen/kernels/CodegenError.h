//===- CodegenError.h - the error every code generator returns -*- C++ -*-===//
#ifndef AIMC_CODEGEN_KERNELS_CODEGENERROR_H
#define AIMC_CODEGEN_KERNELS_CODEGENERROR_H

#include "llvm/ADT/Twine.h"
#include "llvm/Support/Error.h"

namespace mlir::aim {

/// An llvm::Error carrying `message` (aimc prints it after "error: ").
inline llvm::Error codegenError(const llvm::Twine &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                 message.str().c_str());
}

} // namespace mlir::aim

#endif // AIMC_CODEGEN_KERNELS_CODEGENERROR_H
