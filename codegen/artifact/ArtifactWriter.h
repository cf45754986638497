//===- ArtifactWriter.h - a compiled step as a .aimx file -------*- C++ -*-===//
#ifndef AIMC_CODEGEN_ARTIFACT_ARTIFACTWRITER_H
#define AIMC_CODEGEN_ARTIFACT_ARTIFACTWRITER_H

#include "codegen/kernels/GemmCalls.h"
#include "common/ModelConfig.h"

#include "mlir/IR/BuiltinOps.h"
#include "llvm/Support/Error.h"

#include <map>
#include <string>
#include <vector>

namespace mlir::aim {

struct ArtifactContents {
  const ::aim::ModelConfig *config = nullptr;
  int64_t batch = 0;
  std::string prefixMode;
  std::string isa;
  std::string sharedObject; // the host code, linked; empty: none
  struct GpuKernel {
    std::string name;
    int registers = 0, sharedBytes = 0, spillBytes = 0;
    int64_t bytes = 0, flops = 0; // one launch
    double rooflineSeconds = 0;
  };
  std::string gpuChip;         // empty: no GPU code
  std::string gpuSharedObject; // the launcher code, linked
  std::vector<GpuKernel> gpuKernels;
  bool gpuHostTouchesMemory = true;
  /// Entry point -> results the GPU code writes into their arguments.
  std::map<std::string, std::vector<std::string>> gpuResultsSharingArguments;
  double gpuVectorFlops = 0, gpuMemoryBandwidth = 0; // of the roofline
  bool gpuBf16GemmOperands = false; // GpuCode.gemm_operands "bf16"
  // GpuCode.attention: "tiled", "flash", or empty for dense.
  std::string gpuAttention;
  // GpuCode.gemm_kernel: "wgmma", or empty for cuBLASLt.
  std::string gpuGemmKernel;
  // GpuCode.gemms: what computes each GEMM with epilogue.
  std::vector<GemmChoice> gpuGemms;
};

/// The .aimx bytes for `module` (the step at the kernels stage: its entry
/// points' signatures and arena sizes are read from it) and `contents`.
std::string buildArtifact(ModuleOp module, const ArtifactContents &contents);

} // namespace mlir::aim

#endif // AIMC_CODEGEN_ARTIFACT_ARTIFACTWRITER_H
