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

/// An element-wise op on buffers whose operands are all read and written at
/// the iteration's own element, over a static space of at least
/// `minElements`.
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
  if (!llvm::all_of(op.getIndexingMapsArray(),
                    [](AffineMap m) { return m.isIdentity(); }))
    return false;
  // An output that shares a buffer with an input only as that very input
  // (in place, the same element): another view of it could be read at an
  // element another iteration writes.
  for (Value init : op.getDpsInits())
    for (Value input : op.getDpsInputs())
      if (input != init && rootBuffer(input) == rootBuffer(init))
        return false;
  return true;
}

/// Whether every operand of `op` can be read and written `width` float32s
/// at a time (alignedForVectors), the innermost dimension a multiple of it.
bool vectorizable(linalg::GenericOp op, int64_t width) {
  if (width <= 1 || op.getStaticLoopRanges().back() % width != 0)
    return false;
  return llvm::all_of(op->getOperands(), [&](Value v) {
    auto type = dyn_cast<MemRefType>(v.getType());
    return type && alignedForVectors(type, width);
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
  auto vectorType = VectorType::get({width}, b.getF32Type());
  llvm::MaybeAlign aligned(4 * width);
  Value base = arith::AddIOp::create(
      b, loc,
      arith::MulIOp::create(b, loc, block,
                            indexConstant(b, loc, threads * count)),
      thread);
  Value last = indexConstant(b, loc, units - 1);
  SmallVector<Value> ids;
  SmallVector<SmallVector<Value>> indices;
  SmallVector<KnownValues> loaded(count);
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
    for (Value input : op.getDpsInputs()) {
      if (!isa<MemRefType>(input.getType()) || loaded[i].count(input))
        continue;
      loaded[i][input] =
          width == 1 ? memref::LoadOp::create(b, loc, input, indices[i])
                           .getResult()
                     : vector::LoadOp::create(b, loc, vectorType, input,
                                              indices[i], /*nontemporal=*/false,
                                              aligned)
                           .getResult();
    }
  }
  for (int64_t i = 0; i < count; ++i) {
    auto computeAndStore = [&](OpBuilder &sb, Location sl) {
      if (width > 1) {
        applyBodyToVectors(sb, sl, op, indices[i], loaded[i], KnownValues(), width,
                           aligned);
        return;
      }
      SmallVector<Value> results =
          applyBody(sb, sl, op, indices[i], {}, loaded[i]);
      for (auto [init, value] : llvm::zip(op.getDpsInits(), results))
        memref::StoreOp::create(sb, sl, value, init, indices[i]);
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
