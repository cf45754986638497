//===- ObjectEmitter.h - LLVM dialect to an x86-64 object file ---*- C++ -*-===//
//
// The last steps every CPU-side compile shares (the host backend and the GPU
// backend's launcher code): packed entries for the public functions, LLVM
// IR, LLVM's -O2 pipeline and an ELF object for the chosen CPU.
//
//===----------------------------------------------------------------------===//
#ifndef AIMC_CODEGEN_HOST_OBJECTEMITTER_H
#define AIMC_CODEGEN_HOST_OBJECTEMITTER_H

#include "mlir/IR/BuiltinOps.h"
#include "llvm/Support/Error.h"

#include <string>

namespace mlir::aim {

/// `f_packed(void **buffers)` for every defined public LLVM function `f`
/// (bare-pointer convention): loads the i-th pointer and passes it as the
/// i-th argument, so a loader calls every entry point the same way.
void addPackedEntries(ModuleOp module);

/// Translates `module` (LLVM dialect, plus anything with an LLVM IR
/// translation registered in its context) to LLVM IR, optimises it at -O2
/// and returns an ELF relocatable object for `cpu`.
llvm::Expected<std::string> emitObjectFile(ModuleOp module,
                                           const std::string &cpu);

} // namespace mlir::aim

#endif // AIMC_CODEGEN_HOST_OBJECTEMITTER_H
