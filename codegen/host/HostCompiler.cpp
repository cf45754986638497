//===- HostCompiler.cpp - aim IR to x86-64 object code --------------------===//
#include "codegen/host/HostCompiler.h"

#include "codegen/host/ObjectEmitter.h"
#include "codegen/kernels/BufferizedKernels.h"
#include "codegen/kernels/LowerToLinalg.h"

#include "mlir/Conversion/Passes.h"
#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
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

namespace {
llvm::Error failure(const llvm::Twine &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                 message.str().c_str());
}

/// A pointer to the first element of `memref` (aligned base + offset).
Value dataPointer(OpBuilder &b, Location loc, Value memref) {
  Value base = memref::ExtractAlignedPointerAsIndexOp::create(b, loc, memref);
  auto metadata = memref::ExtractStridedMetadataOp::create(b, loc, memref);
  Value bytes = arith::MulIOp::create(
      b, loc, metadata.getOffset(),
      arith::ConstantIndexOp::create(
          b, loc,
          cast<MemRefType>(memref.getType()).getElementTypeBitWidth() / 8));
  Value address = arith::IndexCastOp::create(
      b, loc, b.getI64Type(), arith::AddIOp::create(b, loc, base, bytes));
  return LLVM::IntToPtrOp::create(
      b, loc, LLVM::LLVMPointerType::get(b.getContext()), address);
}

/// Replaces each GEMM marked by the lowering whose operands are contiguous
/// row-major float32 buffers with a call of cblas_sgemm (C = op(A) op(B) + C,
/// C holding its initial value: zeros or the bias). The symbol is resolved
/// when the code is loaded: aim-run carries a static OpenBLAS.
void callBlasForGemms(ModuleOp module) {
  SmallVector<linalg::GenericOp> gemms;
  module.walk([&](linalg::GenericOp op) {
    if (op->hasAttr(kGemmAttrName))
      gemms.push_back(op);
  });
  if (gemms.empty())
    return;
  MLIRContext *ctx = module.getContext();
  OpBuilder b(ctx);
  Type i32 = b.getI32Type(), f32 = b.getF32Type();
  auto ptr = LLVM::LLVMPointerType::get(ctx);
  auto type = b.getFunctionType(
      {i32, i32, i32, i32, i32, i32, f32, ptr, i32, ptr, i32, f32, ptr, i32},
      {});
  auto declaration = module.lookupSymbol<func::FuncOp>("cblas_sgemm");
  for (linalg::GenericOp op : gemms) {
    Value a = op.getDpsInputs()[0], bm = op.getDpsInputs()[1],
          c = op.getDpsInits()[0];
    bool usable = llvm::all_of(ValueRange{a, bm, c}, [](Value v) {
      auto t = dyn_cast<MemRefType>(v.getType());
      return t && t.getElementType().isF32() &&
             memref::isStaticShapeAndContiguousRowMajor(t);
    });
    if (!usable)
      continue; // stays a loop nest
    if (!declaration) {
      b.setInsertionPointToStart(module.getBody());
      declaration =
          func::FuncOp::create(b, module.getLoc(), "cblas_sgemm", type);
      declaration.setPrivate();
    }
    auto flags = op->getAttrOfType<DenseI64ArrayAttr>(kGemmAttrName);
    bool transposeA = flags[0] != 0, transposeB = flags[1] != 0;
    auto aShape = cast<MemRefType>(a.getType()).getShape();
    auto bShape = cast<MemRefType>(bm.getType()).getShape();
    auto cShape = cast<MemRefType>(c.getType()).getShape();
    int64_t m = cShape[0], n = cShape[1],
            k = transposeA ? aShape[0] : aShape[1];
    b.setInsertionPoint(op);
    Location loc = op.getLoc();
    auto int32 = [&](int64_t v) {
      return arith::ConstantIntOp::create(b, loc, i32, v).getResult();
    };
    auto float32 = [&](double v) {
      return arith::ConstantOp::create(b, loc, b.getF32FloatAttr(v))
          .getResult();
    };
    constexpr int64_t kRowMajor = 101, kNoTrans = 111, kTrans = 112;
    func::CallOp::create(
        b, loc, declaration,
        ValueRange{int32(kRowMajor), int32(transposeA ? kTrans : kNoTrans),
                   int32(transposeB ? kTrans : kNoTrans), int32(m), int32(n),
                   int32(k), float32(1.0), dataPointer(b, loc, a),
                   int32(aShape[1]), dataPointer(b, loc, bm), int32(bShape[1]),
                   float32(1.0), dataPointer(b, loc, c), int32(n)});
    op->erase();
  }
}

} // namespace

llvm::Expected<HostObject> compileToObject(ModuleOp module,
                                           const HostCompileOptions &options) {
  MLIRContext *ctx = module.getContext();
  DialectRegistry registry;
  registerBuiltinDialectTranslation(registry);
  registerLLVMDialectTranslation(registry);
  ctx->appendDialectRegistry(registry);
  ctx->loadDialect<LLVM::LLVMDialect>();

  // 1. One function per distinct kernel, on buffers.
  llvm::Expected<KernelCount> kernels =
      lowerToBufferizedKernels(module, options.blas);
  if (!kernels)
    return kernels.takeError();

  // 2. GEMMs to BLAS, loops, LLVM.
  if (options.blas)
    callBlasForGemms(module);
  PassManager pm(ctx);
  if (options.gpuTileThreads > 0) {
    pm.addNestedPass<func::FuncOp>(createConvertLinalgToParallelLoopsPass());
    if (failed(pm.run(module)))
      return failure("lowering to parallel loops failed");
    tileInnermostParallelLoops(module, options.gpuTileThreads);
    pm.clear();
  }
  pm.addNestedPass<func::FuncOp>(createConvertLinalgToLoopsPass());
  pm.addPass(createLowerAffinePass());
  pm.addPass(createSCFToControlFlowPass());
  pm.addPass(createConvertMathToLibmPass());
  pm.addPass(createConvertMathToLLVMPass());
  pm.addPass(memref::createExpandStridedMetadataPass());
  pm.addPass(createLowerAffinePass());
  pm.addPass(createFinalizeMemRefToLLVMConversionPass());
  pm.addPass(createArithToLLVMConversionPass());
  ConvertFuncToLLVMPassOptions funcToLLVM;
  funcToLLVM.useBarePtrCallConv = true;
  pm.addPass(createConvertFuncToLLVMPass(funcToLLVM));
  pm.addPass(createConvertControlFlowToLLVMPass());
  pm.addPass(createReconcileUnrealizedCastsPass());
  if (failed(pm.run(module)))
    return failure("lowering to the LLVM dialect failed (see the diagnostics)");
  addPackedEntries(module);
  if (getenv("AIMC_DUMP_HOST_LLVM"))
    module.print(llvm::errs());

  // 3. LLVM IR and an object file.
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
