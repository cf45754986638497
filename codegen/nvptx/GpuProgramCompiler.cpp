//===- GpuProgramCompiler.cpp - a training step for one NVIDIA GPU --------===//
#include "codegen/nvptx/GpuProgramCompiler.h"

#include "codegen/host/ObjectEmitter.h"
#include "codegen/kernels/CodegenError.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"

namespace mlir::aim {

namespace {

/// The gpu.binary's PTX replaced by ptxas' cubin: the launcher code then
/// loads it with mgpuModuleLoad (no JIT at run time).
void embedCubin(ModuleOp module, const std::string &cubin) {
  module.walk([&](gpu::BinaryOp binary) {
    SmallVector<Attribute> objects;
    for (Attribute a : binary.getObjects()) {
      auto o = cast<gpu::ObjectAttr>(a);
      objects.push_back(
          gpu::ObjectAttr::get(o.getTarget(), gpu::CompilationTarget::Binary,
                               StringAttr::get(module.getContext(), cubin),
                               o.getProperties(), o.getKernels()));
    }
    binary.setObjectsAttr(ArrayAttr::get(module.getContext(), objects));
  });
}
} // namespace

llvm::Expected<GpuProgram> compileGpuProgram(ModuleOp module,
                                             const GpuCompileOptions &gpu,
                                             const std::string &cpu) {
  GpuProgram program;
  llvm::Expected<GpuObject> kernels = lowerToGpuBinary(module, gpu);
  if (!kernels)
    return kernels.takeError();
  program.kernels = std::move(*kernels);
  if (llvm::Error e = assembleWithPtxas(program.kernels, gpu))
    return std::move(e);
  embedCubin(module, program.kernels.cubin);

  // The host side: what is left of the entry points and outlined kernels
  // (launches, loops around them, scalar leftovers) to the LLVM dialect.
  // Temporaries come from aim-run (use-generic-functions), which allocates
  // them where the GPU can reach them; functions take bare pointers, as the
  // host backend's do.
  std::string pipeline =
      "func.func(convert-linalg-to-loops),lower-affine,convert-scf-to-cf,"
      "convert-math-to-libm,convert-math-to-llvm,expand-strided-metadata,"
      "lower-affine,finalize-memref-to-llvm{use-generic-functions=1},"
      "convert-arith-to-llvm,"
      "gpu-to-llvm{use-bare-pointers-for-host=1 use-bare-pointers-for-kernels=1},"
      "convert-func-to-llvm{use-bare-ptr-memref-call-conv=1},"
      "convert-cf-to-llvm,reconcile-unrealized-casts";
  auto pm = PassManager::on<ModuleOp>(module.getContext());
  if (failed(parsePassPipeline(pipeline, pm)))
    return codegenError("internal error: bad launcher pipeline: " + pipeline);
  if (failed(pm.run(module)))
    return codegenError(
        "lowering the GPU step's host side to LLVM failed (see the "
        "diagnostics)");
  addPackedEntries(module);
  if (getenv("AIMC_DUMP_GPU_LAUNCHER"))
    module.print(llvm::errs());
  llvm::Expected<std::string> object = emitObjectFile(module, cpu);
  if (!object)
    return object.takeError();
  program.hostObject = std::move(*object);
  return program;
}

} // namespace mlir::aim
