//===- ArtifactWriter.h - a compiled step as a .aimx file -------*- C++ -*-===//
#ifndef AIMC_CODEGEN_ARTIFACT_ARTIFACTWRITER_H
#define AIMC_CODEGEN_ARTIFACT_ARTIFACTWRITER_H

#include "common/ModelConfig.h"

#include "mlir/IR/BuiltinOps.h"
#include "llvm/Support/Error.h"

#include <string>

namespace mlir::aim {

struct ArtifactContents {
  const ::aim::ModelConfig *config = nullptr;
  int64_t batch = 0;
  std::string prefixMode;
  std::string isa;
  std::string sharedObject; // the host code, linked
};

/// The .aimx bytes for `module` (the step at the kernels stage: its entry
/// points' signatures and arena sizes are read from it) and `contents`.
std::string buildArtifact(ModuleOp module, const ArtifactContents &contents);

} // namespace mlir::aim

#endif // AIMC_CODEGEN_ARTIFACT_ARTIFACTWRITER_H
