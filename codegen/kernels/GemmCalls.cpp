//===- GemmCalls.cpp - GEMMs as calls of a cblas_sgemm-shaped function ----===//
#include "codegen/kernels/GemmCalls.h"

#include "codegen/kernels/LowerToLinalg.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/MemRef/Utils/MemRefUtils.h"
#include "mlir/IR/Builders.h"

namespace mlir::aim {

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

void callGemmFunction(ModuleOp module, StringRef symbol) {
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
  auto declaration = module.lookupSymbol<func::FuncOp>(symbol);
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
          func::FuncOp::create(b, module.getLoc(), symbol, type);
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


} // namespace mlir::aim
