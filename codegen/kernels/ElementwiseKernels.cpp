//===- ElementwiseKernels.cpp - element-wise ops, several elements a thread ===//
#include "codegen/kernels/ElementwiseKernels.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

namespace mlir::aim {

namespace {

/// An element-wise op on buffers over a static space of at least
/// `minElements`: each output written at a permutation of the iteration's
/// indices (every element once: a layout change such as attention's
/// batch-major copies), each input read at a projection of them (a
/// broadcast such as a bias).
bool qualifies(linalg::GenericOp op, int64_t minElements) {
  if (!op.hasPureBufferSemantics() || op.getNumLoops() == 0 ||
      op.getNumParallelLoops() != op.getNumLoops() || readsItsOutputs(op) ||
      op->getParentOfType<gpu::LaunchOp>() ||
      op->getParentOfType<scf::ParallelOp>())
    return false;
  bool writesInBody = false;
  buffersReadInBody(op, writesInBody);
  if (writesInBody)
    return false;
  SmallVector<int64_t> ranges = op.getStaticLoopRanges();
  if (llvm::any_of(ranges, ShapedType::isDynamic) ||
      product(ranges) < minElements)
    return false;
  for (OpOperand &operand : op->getOpOperands()) {
    AffineMap map = op.getMatchingIndexingMap(&operand);
    if (op.isDpsInit(&operand) ? !map.isPermutation()
                               : !map.isProjectedPermutation())
      return false;
  }
  // An input read twice through different maps: the kernel keeps one
  // loaded value a buffer.
  for (OpOperand *a : op.getDpsInputOperands())
    for (OpOperand *b : op.getDpsInputOperands())
      if (a->get() == b->get() &&
          op.getMatchingIndexingMap(a) != op.getMatchingIndexingMap(b))
        return false;
  // An output that shares a buffer with an input only as that very input
  // at the same element (in place): another view of it, or another map,
  // could read an element another iteration writes.
  for (OpOperand &init : op.getDpsInitsMutable())
    for (OpOperand *input : op.getDpsInputOperands())
      if (rootBuffer(input->get()) == rootBuffer(init.get()) &&
          (input->get() != init.get() || op.getMatchingIndexingMap(input) !=
                                             op.getMatchingIndexingMap(&init)))
        return false;
  return true;
}

/// Whether `map` indexes the innermost loop in its innermost result (an
/// operand read or written along the iteration's innermost dimension).
bool innermostAlongInnermost(AffineMap map) {
  return map.getNumResults() > 0 &&
         map.getResults().back() ==
             getAffineDimExpr(map.getNumDims() - 1, map.getContext());
}

/// Whether `op` can go `width` elements of its innermost loop at a time:
/// the innermost loop a multiple of it, every output and every input that
/// varies along it read or written along its own innermost dimension
/// (alignedForVectors: float32 or bfloat16), the other inputs scalars for
/// the whole vector (a row's bias read across the row is not one).
bool vectorizable(linalg::GenericOp op, int64_t width) {
  if (width <= 1 || op.getStaticLoopRanges().back() % width != 0)
    return false;
  unsigned innermost = op.getNumLoops() - 1;
  return llvm::all_of(op->getOpOperands(), [&](OpOperand &operand) {
    auto type = dyn_cast<MemRefType>(operand.get().getType());
    AffineMap map = op.getMatchingIndexingMap(&operand);
    if (op.isDpsInput(&operand) && (!type || !map.isFunctionOfDim(innermost)))
      return true; // the same value for every lane (a fill's scalar)
    if (!type)
      return false;
    return innermostAlongInnermost(map) && alignedForVectors(type, width);
  });
}

/// Thread `thread` of block `block`: its `count` units of `op` (a unit:
/// `width` consecutive elements, a scalar for width 1), units t, t + T, ...;
/// every input loaded first (16-byte loads for vectors of 4), then each unit
/// computed and stored.
void emitThread(OpBuilder &b, Location loc, linalg::GenericOp op, Value block,
                Value thread, int64_t threads, int64_t width, int64_t count) {
  SmallVector<int64_t> shape = op.getStaticLoopRanges();
  int64_t units = product(shape) / width;
  bool partial = units % (threads * count) != 0;
  Value base = arith::AddIOp::create(
      b, loc,
      arith::MulIOp::create(b, loc, block,
                            indexConstant(b, loc, threads * count)),
      thread);
  Value last = indexConstant(b, loc, units - 1);
  unsigned innermost = op.getNumLoops() - 1;
  SmallVector<Value> ids;
  SmallVector<SmallVector<Value>> indices;
  // Per unit: inputs loaded as vectors (one lane an element), and inputs the
  // same for every lane (a broadcast along the innermost loop) or scalars.
  SmallVector<KnownValues> loaded(count), scalars(count);
  for (int64_t i = 0; i < count; ++i) {
    Value u =
        arith::AddIOp::create(b, loc, base, indexConstant(b, loc, i * threads));
    ids.push_back(u);
    // Past the end, a load of the last unit (never stored): every load
    // stays unconditional, so all of them can be in flight at once.
    Value at = partial ? arith::MinUIOp::create(b, loc, u, last).getResult() : u;
    if (width > 1)
      at = arith::MulIOp::create(b, loc, at, indexConstant(b, loc, width));
    indices.push_back(delinearize(b, loc, at, shape));
    for (OpOperand *operand : op.getDpsInputOperands()) {
      Value input = operand->get();
      auto type = dyn_cast<MemRefType>(input.getType());
      if (!type || loaded[i].count(input) || scalars[i].count(input))
        continue;
      AffineMap map = op.getMatchingIndexingMap(operand);
      SmallVector<Value> at = mapIndices(b, loc, map, indices[i]);
      if (width == 1 || !map.isFunctionOfDim(innermost)) {
        scalars[i][input] = memref::LoadOp::create(b, loc, input, at);
        continue;
      }
      Type element = type.getElementType();
      loaded[i][input] =
          vector::LoadOp::create(
              b, loc, VectorType::get({width}, element), input, at,
              /*nontemporal=*/false,
              llvm::MaybeAlign(width * element.getIntOrFloatBitWidth() / 8))
              .getResult();
    }
  }
  for (int64_t i = 0; i < count; ++i) {
    auto computeAndStore = [&](OpBuilder &sb, Location sl) {
      if (width > 1) {
        applyBodyToVectors(sb, sl, op, indices[i], loaded[i], scalars[i],
                           width);
        return;
      }
      SmallVector<Value> results =
          applyBody(sb, sl, op, indices[i], {}, scalars[i]);
      for (auto [init, value] : llvm::zip(op.getDpsInitsMutable(), results))
        memref::StoreOp::create(
            sb, sl, value, init.get(),
            mapIndices(sb, sl, op.getMatchingIndexingMap(&init), indices[i]));
    };
    if (!partial) {
      computeAndStore(b, loc);
      continue;
    }
    Value inside = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult,
                                         ids[i], indexConstant(b, loc, units));
    scf::IfOp::create(b, loc, inside, [&](OpBuilder &tb, Location tl) {
      computeAndStore(tb, tl);
      scf::YieldOp::create(tb, tl);
    });
  }
}

void emit(linalg::GenericOp op, KernelTarget target,
          const ElementwiseOptions &options) {
  OpBuilder b(op);
  Location loc = op.getLoc();
  int64_t n = product(op.getStaticLoopRanges());
  bool vectors = vectorizable(op, options.vectorWidth);
  int64_t width = vectors ? options.vectorWidth : 1;
  int64_t count =
      vectors ? options.vectorsPerThread : options.elementsPerThread;
  int64_t chunk = options.threads * width * count;
  int64_t blocks = (n + chunk - 1) / chunk;
  auto threadBody = [&](OpBuilder &tb, Value block, Value thread) {
    emitThread(tb, loc, op, block, thread, options.threads, width, count);
  };
  if (target == KernelTarget::GpuLaunch) {
    Value one = indexConstant(b, loc, 1);
    auto launch = gpu::LaunchOp::create(
        b, loc, indexConstant(b, loc, blocks), one, one,
        indexConstant(b, loc, options.threads), one, one);
    OpBuilder in = OpBuilder::atBlockEnd(&launch.getBody().front());
    threadBody(in, launch.getBlockIds().x, launch.getThreadIds().x);
    gpu::TerminatorOp::create(in, loc);
    return;
  }
  // The host: the blocks and their threads one after another.
  auto loop = [&](OpBuilder &lb, int64_t extent, auto bodyFn) {
    scf::ForOp::create(lb, loc, indexConstant(lb, loc, 0),
                       indexConstant(lb, loc, extent),
                       indexConstant(lb, loc, 1), ValueRange{},
                       [&](OpBuilder &fb, Location, Value iv, ValueRange) {
                         bodyFn(fb, iv);
                         scf::YieldOp::create(fb, loc);
                       });
  };
  loop(b, blocks, [&](OpBuilder &bb, Value block) {
    loop(bb, options.threads, [&](OpBuilder &tb, Value thread) {
      threadBody(tb, block, thread);
    });
  });
}

} // namespace

int lowerElementwiseOps(ModuleOp module, KernelTarget target,
                        const ElementwiseOptions &options) {
  module.getContext()->getOrLoadDialect<vector::VectorDialect>();
  SmallVector<linalg::GenericOp> ops;
  module.walk([&](linalg::GenericOp op) {
    if (qualifies(op, options.minElements))
      ops.push_back(op);
  });
  for (linalg::GenericOp op : ops) {
    emit(op, target, options);
    op.erase();
  }
  return ops.size();
}

} // namespace mlir::aim
