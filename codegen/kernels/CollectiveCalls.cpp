//===- CollectiveCalls.cpp - shard collectives as calls of the runtime ----===//
#include "codegen/kernels/CollectiveCalls.h"

#include "codegen/kernels/GemmCalls.h"
#include "common/CollectiveCall.h"
#include "dialects/aim/AimDialect.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/MemRef/Utils/MemRefUtils.h"
#include "mlir/Dialect/Shard/IR/ShardDialect.h"
#include "mlir/Dialect/Shard/IR/ShardOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

namespace mlir::aim {

namespace {
constexpr llvm::StringLiteral kCollectiveAttr = "aim.collective";
constexpr llvm::StringLiteral kGridAxesAttr = "aim.grid_axes";

/// What the runtime call does for `op`, or an error naming why it cannot.
FailureOr<::aim::CollectiveKind> kindOf(Operation *op) {
  using ::aim::CollectiveKind;
  auto alongDim0 = [&](const APInt &axis) -> LogicalResult {
    if (!axis.isZero())
      return op->emitOpError()
             << "splits dimension " << axis.getSExtValue()
             << "; the runtime's collectives split dimension 0 only";
    return success();
  };
  if (auto reduce = dyn_cast<shard::AllReduceOp>(op)) {
    if (reduce.getReduction() != shard::ReductionKind::Sum)
      return op->emitOpError() << "is not a sum; the runtime only sums";
    return CollectiveKind::AllReduce;
  }
  if (auto scatter = dyn_cast<shard::ReduceScatterOp>(op)) {
    if (scatter.getReduction() != shard::ReductionKind::Sum ||
        failed(alongDim0(scatter.getScatterAxis())))
      return op->emitOpError() << "is not a sum split along dimension 0";
    return CollectiveKind::ReduceScatter;
  }
  if (auto gather = dyn_cast<shard::AllGatherOp>(op)) {
    if (failed(alongDim0(gather.getGatherAxis())))
      return failure();
    return CollectiveKind::AllGather;
  }
  if (auto slice = dyn_cast<shard::AllSliceOp>(op)) {
    if (failed(alongDim0(slice.getSliceAxis())))
      return failure();
    return CollectiveKind::AllSlice;
  }
  return op->emitOpError() << "has no runtime call";
}

/// The grid axes of a collective as a bit mask (bit a: axis a).
FailureOr<int32_t> axesMask(Operation *op) {
  auto axes = op->getAttrOfType<DenseI16ArrayAttr>("grid_axes");
  int32_t mask = 0, previous = -1;
  for (int16_t a : axes ? axes.asArrayRef() : ArrayRef<int16_t>()) {
    if (a <= previous || a > 1)
      return op->emitOpError()
             << "groups grid axes the runtime does not order this way "
                "(ascending axes of a 2-axis grid only)";
    mask |= 1 << a;
    previous = a;
  }
  return mask;
}
} // namespace

LogicalResult markCollectives(ModuleOp module) {
  SmallVector<Operation *> collectives;
  module.walk([&](Operation *op) {
    if (isa<shard::AllReduceOp, shard::ReduceScatterOp, shard::AllGatherOp,
            shard::AllSliceOp>(op))
      collectives.push_back(op);
    else if (op->getDialect() && isa<shard::ShardDialect>(op->getDialect()) &&
             !isa<shard::GridOp>(op))
      collectives.push_back(op); // kindOf names it
  });
  for (Operation *op : collectives) {
    FailureOr<::aim::CollectiveKind> kind = kindOf(op);
    FailureOr<int32_t> mask = axesMask(op);
    if (failed(kind) || failed(mask))
      return failure();
    OpBuilder b(op);
    Location loc = op->getLoc();
    Value input = op->getOperand(0);
    auto inType = cast<RankedTensorType>(input.getType());
    auto outType = cast<RankedTensorType>(op->getResult(0).getType());
    if (!inType.getElementType().isF32() || !outType.getElementType().isF32())
      return op->emitOpError() << "is not on float32; the runtime's "
                                  "collectives are";
    // Reads input[0, ...] into every output element: a stand-in that keeps
    // the input read, replaced by the call after bufferization.
    Value empty = tensor::EmptyOp::create(b, loc, outType.getShape(),
                                          outType.getElementType());
    SmallVector<AffineExpr> firstElement(inType.getRank(),
                                         b.getAffineConstantExpr(0));
    unsigned rank = outType.getRank();
    auto mark = linalg::GenericOp::create(
        b, loc, outType, ValueRange{input}, ValueRange{empty},
        ArrayRef<AffineMap>{
            AffineMap::get(rank, 0, firstElement, b.getContext()),
            b.getMultiDimIdentityMap(rank)},
        SmallVector<utils::IteratorType>(rank, utils::IteratorType::parallel),
        [](OpBuilder &nb, Location l, ValueRange a) {
          linalg::YieldOp::create(nb, l, a[0]);
        });
    mark->setAttr(kCollectiveAttr,
                  b.getI32IntegerAttr(static_cast<int32_t>(*kind)));
    if (op->hasAttr(AimDialect::kAsyncAttrName))
      mark->setAttr(AimDialect::kAsyncAttrName, b.getUnitAttr());
    mark->setAttr(kGridAxesAttr, b.getI32IntegerAttr(*mask));
    op->replaceAllUsesWith(mark->getResults());
    op->erase();
  }
  for (auto grid : llvm::to_vector(module.getOps<shard::GridOp>()))
    grid.erase();
  return success();
}

bool isCollectiveMark(Operation *op) { return op->hasAttr(kCollectiveAttr); }

CollectiveSymbols CollectiveSymbols::host() {
  return {::aim::kCollectiveSymbol, ::aim::kCollectiveStartSymbol,
          ::aim::kCollectivesWaitSymbol};
}
CollectiveSymbols CollectiveSymbols::cuda() {
  return {::aim::kCudaCollectiveSymbol, ::aim::kCudaCollectiveStartSymbol,
          ::aim::kCudaCollectivesWaitSymbol};
}

bool hasCollectives(ModuleOp module) {
  bool found = false;
  module.walk([&](linalg::GenericOp op) {
    found |= op->hasAttr(kCollectiveAttr);
  });
  return found;
}

void callCollectiveFunctions(ModuleOp module, CollectiveSymbols symbols) {
  // The wait outlining placed (OutlineKernels.cpp) calls the host's function.
  if (StringRef(symbols.wait) != ::aim::kCollectivesWaitSymbol)
    if (auto wait =
            module.lookupSymbol<func::FuncOp>(::aim::kCollectivesWaitSymbol)) {
      if (failed(SymbolTable::replaceAllSymbolUses(
              wait, StringAttr::get(module.getContext(), symbols.wait),
              module)))
        llvm_unreachable("a symbol use that cannot be renamed");
      wait.setSymName(symbols.wait);
    }
  SmallVector<linalg::GenericOp> marks;
  module.walk([&](linalg::GenericOp op) {
    if (op->hasAttr(kCollectiveAttr))
      marks.push_back(op);
  });
  if (marks.empty())
    return;
  MLIRContext *ctx = module.getContext();
  OpBuilder b(ctx);
  Type i32 = b.getI32Type(), i64 = b.getI64Type();
  auto ptr = LLVM::LLVMPointerType::get(ctx);
  auto declare = [&](StringRef symbol) {
    auto declaration = module.lookupSymbol<func::FuncOp>(symbol);
    if (!declaration) {
      b.setInsertionPointToStart(module.getBody());
      declaration = func::FuncOp::create(
          b, module.getLoc(), symbol,
          b.getFunctionType({i32, i32, ptr, ptr, i64, i64}, {}));
      declaration.setPrivate();
    }
    return declaration;
  };
  for (linalg::GenericOp mark : marks) {
    func::FuncOp declaration =
        declare(mark->hasAttr(AimDialect::kAsyncAttrName) ? symbols.start
                                                          : symbols.call);
    b.setInsertionPoint(mark);
    Location loc = mark.getLoc();
    Value in = mark.getDpsInputs()[0], out = mark.getDpsInits()[0];
    // Bufferization writes the kernel's result into a temporary and copies
    // it to the out parameter: the runtime writes the out parameter itself
    // (a collective started ahead writes it after the kernel returns, when
    // the temporary is gone).
    for (Operation *user : llvm::to_vector(out.getUsers()))
      if (auto copy = dyn_cast<linalg::CopyOp>(user))
        if (copy.getInputs()[0] == out &&
            isa<BlockArgument>(copy.getOutputs()[0])) {
          out = copy.getOutputs()[0];
          copy.erase();
          break;
        }
    auto count = [&](Value v) {
      return arith::ConstantIntOp::create(
                 b, loc, i64, cast<MemRefType>(v.getType()).getNumElements())
          .getResult();
    };
    auto int32 = [&](StringRef attr) {
      return arith::ConstantIntOp::create(
                 b, loc, i32,
                 mark->getAttrOfType<IntegerAttr>(attr).getInt())
          .getResult();
    };
    func::CallOp::create(b, loc, declaration,
                         ValueRange{int32(kCollectiveAttr),
                                    int32(kGridAxesAttr),
                                    dataPointer(b, loc, in),
                                    dataPointer(b, loc, out), count(in),
                                    count(out)});
    mark->erase();
  }
}

} // namespace mlir::aim
