//===- HostCompiler.cpp - aim IR to x86-64 object code --------------------===//
#include "codegen/host/HostCompiler.h"

#include "codegen/host/ObjectEmitter.h"
#include "codegen/kernels/BufferizedKernels.h"
#include "codegen/kernels/CodegenError.h"
#include "codegen/kernels/CollectiveCalls.h"
#include "codegen/kernels/GemmCalls.h"
#include "codegen/kernels/GpuPreparation.h"
#include "codegen/kernels/LowerToLinalg.h"
#include "codegen/kernels/PromoteAccumulators.h"

#include "mlir/Conversion/Passes.h"
#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Arith/Transforms/Passes.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/ControlFlow/IR/ControlFlow.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Linalg/Passes.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/Dialect/MemRef/Utils/MemRefUtils.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Target/LLVMIR/Dialect/Builtin/BuiltinToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/LLVMIR/LLVMToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Export.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"
#include "mlir/Transforms/Passes.h"

#include "llvm/IR/LegacyPassManager.h"
#include "llvm/IR/Module.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/Passes/PassBuilder.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Target/TargetMachine.h"
#include "llvm/TargetParser/Host.h"
#include "llvm/TargetParser/Triple.h"

using namespace mlir;

namespace mlir::aim {

llvm::Expected<HostObject> compileToObject(ModuleOp module,
                                           const HostCompileOptions &options) {
  MLIRContext *ctx = module.getContext();
  DialectRegistry registry;
  registerBuiltinDialectTranslation(registry);
  registerLLVMDialectTranslation(registry);
  ctx->appendDialectRegistry(registry);
  ctx->loadDialect<LLVM::LLVMDialect>();

  // 1. One function per distinct kernel, on buffers.
  BufferizedKernelOptions lowering;
  lowering.linalg.blas = options.blas;
  lowering.linalg.gemmEpilogues = options.blas && options.gemmEpilogues;
  lowering.linalg.gemmOperands =
      options.bf16GemmOperands ? GemmOperands::BF16AsF32 : GemmOperands::F32;
  lowering.linalg.attention = options.attention;
  lowering.attentionTarget = KernelTarget::HostEmulation;
  lowering.fuseElementwise = options.gpuTileThreads > 0;
  lowering.splitReductionsFrom = options.splitReductionsFrom;
  llvm::Expected<KernelCount> kernels =
      lowerToBufferizedKernels(module, lowering);
  if (!kernels)
    return kernels.takeError();
  // 2. GEMMs and collectives to calls, before the GPU preparation as the
  // GPU backend orders them: the copies the calls make (attention's
  // batch-major operands) become element-wise kernels there too.
  const GemmOperands operands =
      options.bf16GemmOperands ? GemmOperands::BF16AsF32 : GemmOperands::F32;
  StringRef epilogue = options.gemmEpilogues ? "aimcHostGemm" : "";
  const GeneratedGemms generated{options.gemmKernel,
                                 KernelTarget::HostEmulation};
  if (options.blas && options.stridedBatchedGemms) {
    callGemmFunction(module, "cblas_sgemm", "aimcHostSgemmStridedBatched",
                     operands, epilogue, generated);
    defineStridedBatchedLoop(module, "aimcHostSgemmStridedBatched",
                             "cblas_sgemm");
  } else if (options.blas) {
    callGemmFunction(module, "cblas_sgemm", {}, operands, epilogue, generated);
  }
  if (options.blas && options.gemmEpilogues)
    defineEpilogueGemm(module, "aimcHostGemm", "cblas_sgemm");
  callCollectiveFunctions(module);
  if (options.gpuTileThreads > 0) {
    // Rows of at least two tiles take gpuTileThreads "threads" each, so that
    // small models' rows have several elements a thread and a partial last
    // trip; multi-tensor kernels a grid of three such blocks, so that every
    // op's elements take several strides.
    GpuPreparationOptions gpu;
    gpu.target = KernelTarget::HostEmulation;
    gpu.rows.threads = options.gpuTileThreads;
    gpu.rows.minLength = 2 * options.gpuTileThreads;
    gpu.multiTensor.threads = options.gpuTileThreads;
    gpu.multiTensor.maxBlocks = 3;
    // Element-wise kernels of 3 elements a thread: most ops end in a
    // partial chunk.
    gpu.elementwise.threads = options.gpuTileThreads;
    gpu.elementwise.elementsPerThread = 3;
    gpu.elementwise.minElements = 2 * options.gpuTileThreads;
    if (llvm::Error e = prepareKernelsForGpu(module, gpu))
      return std::move(e);
  }

  // 3. Loops, LLVM.
  PassManager pm(ctx);
  if (options.gpuTileThreads > 0) {
    pm.addNestedPass<func::FuncOp>(createConvertLinalgToParallelLoopsPass());
    if (failed(pm.run(module)))
      return codegenError("lowering to parallel loops failed");
    tileInnermostParallelLoops(module, options.gpuTileThreads);
    pm.clear();
  }
  pm.addNestedPass<func::FuncOp>(createConvertLinalgToLoopsPass());
  pm.addNestedPass<func::FuncOp>(createLoopInvariantCodeMotionPass());
  if (failed(pm.run(module)))
    return codegenError("lowering to loops failed");
  pm.clear();
  promoteLoopAccumulators(module);
  // bfloat16 conversions in integer arithmetic: LLVM would call
  // __truncsfbf2 for them, which Debian 12's libgcc lacks.
  RewritePatternSet bf16Expansion(ctx);
  arith::populateExpandBFloat16Patterns(bf16Expansion);
  if (failed(applyPatternsGreedily(module, std::move(bf16Expansion))))
    return codegenError("expanding the bfloat16 conversions failed");
  pm.addPass(createLowerAffinePass());
  pm.addPass(createSCFToControlFlowPass());
  pm.addPass(createConvertMathToLibmPass());
  pm.addPass(createConvertMathToLLVMPass());
  pm.addPass(memref::createExpandStridedMetadataPass());
  pm.addPass(createLowerAffinePass());
  pm.addPass(createConvertVectorToLLVMPass()); // the GPU tiling's 4-wide loads
  pm.addPass(createFinalizeMemRefToLLVMConversionPass());
  pm.addPass(createArithToLLVMConversionPass());
  ConvertFuncToLLVMPassOptions funcToLLVM;
  funcToLLVM.useBarePtrCallConv = true;
  pm.addPass(createConvertFuncToLLVMPass(funcToLLVM));
  pm.addPass(createConvertControlFlowToLLVMPass());
  pm.addPass(createReconcileUnrealizedCastsPass());
  if (failed(pm.run(module)))
    return codegenError(
        "lowering to the LLVM dialect failed (see the diagnostics)");
  addPackedEntries(module);
  if (getenv("AIMC_DUMP_HOST_LLVM"))
    module.print(llvm::errs());

  // 4. LLVM IR and an object file.
  llvm::Expected<std::string> objectFile = emitObjectFile(module, options.cpu);
  if (!objectFile)
    return objectFile.takeError();
  HostObject result;
  result.bytes = std::move(*objectFile);
  result.kernelLaunches = kernels->launches;
  result.distinctKernels = kernels->distinct;
  return result;
}

} // namespace mlir::aim
