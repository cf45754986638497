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

/// Whether every operand of `op` can be read and written W float32s at a
/// time, 16-byte aligned: the innermost dimension a multiple of W, and every
/// buffer's innermost stride 1 and its offset and other strides multiples
/// of W (buffers themselves start 256-byte aligned: cuMemAlloc, the pool).
bool vectorizable(linalg::GenericOp op, int64_t width) {
  SmallVector<int64_t> shape = op.getStaticLoopRanges();
  if (width <= 1 || shape.back() % width != 0)
    return false;
  for (Value v : op->getOperands()) {
    auto type = dyn_cast<MemRefType>(v.getType());
    if (!type || !type.getElementType().isF32())
      return false;
    SmallVector<int64_t> strides;
    int64_t offset = 0;
    if (failed(type.getStridesAndOffset(strides, offset)) ||
        ShapedType::isDynamic(offset) || offset % width != 0 ||
        strides.back() != 1)
      return false;
    for (int64_t stride : ArrayRef<int64_t>(strides).drop_back())
      if (ShapedType::isDynamic(stride) || stride % width != 0)
        return false;
  }
  return true;
}

/// Thread `thread` of block `block`, W float32s a vector: its K vectors of
/// `op` (vectors t, t + T, ...), every input loaded first (16-byte loads),
/// then each lane computed and the vector stored.
void emitVectorThread(OpBuilder &b, Location loc, linalg::GenericOp op,
                      Value block, Value thread,
                      const ElementwiseOptions &options) {
  SmallVector<int64_t> shape = op.getStaticLoopRanges();
  int64_t w = options.vectorWidth, t = options.threads,
          k = options.vectorsPerThread;
  int64_t vectors = product(shape) / w;
  bool partial = vectors % (t * k) != 0;
  auto vectorType = VectorType::get({w}, b.getF32Type());
  llvm::MaybeAlign aligned(4 * w);
  Value base = arith::AddIOp::create(
      b, loc, arith::MulIOp::create(b, loc, block, indexConstant(b, loc, t * k)),
      thread);
  Value last = indexConstant(b, loc, vectors - 1);
  SmallVector<Value> ids;
  SmallVector<SmallVector<Value>> indices;
  SmallVector<llvm::DenseMap<Value, Value>> loaded(k);
  for (int64_t i = 0; i < k; ++i) {
    Value v = arith::AddIOp::create(b, loc, base, indexConstant(b, loc, i * t));
    ids.push_back(v);
    // Past the end, a load of the last vector (never stored).
    Value at = partial ? arith::MinUIOp::create(b, loc, v, last).getResult() : v;
    Value element = arith::MulIOp::create(b, loc, at, indexConstant(b, loc, w));
    indices.push_back(delinearize(b, loc, element, shape));
    for (Value input : op.getDpsInputs())
      if (!loaded[i].count(input))
        loaded[i][input] = vector::LoadOp::create(
            b, loc, vectorType, input, indices[i], /*nontemporal=*/false,
            aligned);
  }
  for (int64_t i = 0; i < k; ++i) {
    auto computeAndStore = [&](OpBuilder &sb, Location sl) {
      applyBodyToVectors(sb, sl, op, indices[i], loaded[i], {}, w, aligned);
    };
    if (!partial) {
      computeAndStore(b, loc);
      continue;
    }
    Value inside = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult,
                                         ids[i], indexConstant(b, loc, vectors));
    scf::IfOp::create(b, loc, inside, [&](OpBuilder &tb, Location tl) {
      computeAndStore(tb, tl);
      scf::YieldOp::create(tb, tl);
    });
  }
}

/// Thread `thread` of block `block`: its K elements of `op`, every input
/// loaded first, then computed and stored.
void emitScalarThread(OpBuilder &b, Location loc, linalg::GenericOp op,
                      Value block, Value thread,
                      const ElementwiseOptions &options) {
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
  bool vectors = vectorizable(op, options.vectorWidth);
  int64_t chunk = options.threads * (vectors ? options.vectorWidth *
                                                   options.vectorsPerThread
                                             : options.elementsPerThread);
  int64_t blocks = (n + chunk - 1) / chunk;
  auto emitThread = [&](OpBuilder &tb, Value block, Value thread) {
    if (vectors)
      emitVectorThread(tb, loc, op, block, thread, options);
    else
      emitScalarThread(tb, loc, op, block, thread, options);
  };
  if (target == KernelTarget::GpuLaunch) {
    Value one = indexConstant(b, loc, 1);
    auto launch = gpu::LaunchOp::create(
        b, loc, indexConstant(b, loc, blocks), one, one,
        indexConstant(b, loc, options.threads), one, one);
    OpBuilder in = OpBuilder::atBlockEnd(&launch.getBody().front());
    emitThread(in, launch.getBlockIds().x, launch.getThreadIds().x);
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
      emitThread(tb, block, thread);
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
