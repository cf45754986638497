//===- ElementwiseKernels.cpp - element-wise ops, several elements a thread ===//
#include "codegen/kernels/ElementwiseKernels.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"

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

/// Thread `thread` of block `block`: its K elements of `op`, every input
/// loaded first, then computed and stored.
void emitThread(OpBuilder &b, Location loc, linalg::GenericOp op, Value block,
                Value thread, const ElementwiseOptions &options) {
  SmallVector<int64_t> shape = op.getStaticLoopRanges();
  int64_t n = product(shape), t = options.threads,
          k = options.elementsPerThread;
  bool partial = n % (t * k) != 0;
  Value base = arith::AddIOp::create(
      b, loc, arith::MulIOp::create(b, loc, block, indexConstant(b, loc, t * k)),
      thread);
  Value last = indexConstant(b, loc, n - 1);
  SmallVector<Value> elements;
  SmallVector<SmallVector<Value>> indices;
  SmallVector<KnownValues> loaded(k);
  for (int64_t i = 0; i < k; ++i) {
    Value e = arith::AddIOp::create(b, loc, base, indexConstant(b, loc, i * t));
    elements.push_back(e);
    // Past the end, a load of the last element (never stored): every load
    // stays unconditional, so all of them can be in flight at once.
    Value at = partial ? arith::MinUIOp::create(b, loc, e, last).getResult() : e;
    indices.push_back(delinearize(b, loc, at, shape));
    for (Value input : op.getDpsInputs())
      if (isa<MemRefType>(input.getType()) && !loaded[i].count(input))
        loaded[i][input] = memref::LoadOp::create(b, loc, input, indices[i]);
  }
  for (int64_t i = 0; i < k; ++i) {
    auto computeAndStore = [&](OpBuilder &sb, Location sl) {
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
                                         elements[i], indexConstant(b, loc, n));
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
  int64_t chunk = options.threads * options.elementsPerThread;
  int64_t blocks = (n + chunk - 1) / chunk;
  if (target == KernelTarget::GpuLaunch) {
    Value one = indexConstant(b, loc, 1);
    auto launch = gpu::LaunchOp::create(
        b, loc, indexConstant(b, loc, blocks), one, one,
        indexConstant(b, loc, options.threads), one, one);
    OpBuilder in = OpBuilder::atBlockEnd(&launch.getBody().front());
    emitThread(in, loc, op, launch.getBlockIds().x, launch.getThreadIds().x,
               options);
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
      emitThread(tb, loc, op, block, thread, options);
    });
  });
}

} // namespace

int lowerElementwiseOps(ModuleOp module, KernelTarget target,
                        const ElementwiseOptions &options) {
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
