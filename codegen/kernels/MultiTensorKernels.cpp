//===- MultiTensorKernels.cpp - independent element-wise ops, one kernel --===//
#include "codegen/kernels/MultiTensorKernels.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

#include "llvm/ADT/DenseSet.h"

namespace mlir::aim {

namespace {

/// An element-wise op on buffers over a static iteration space whose every
/// element is written by one iteration (so any partition of it is the op).
bool isElementwise(linalg::GenericOp op) {
  if (!op.hasPureBufferSemantics() ||
      op.getNumParallelLoops() != op.getNumLoops() || op.getNumLoops() == 0 ||
      readsItsOutputs(op))
    return false;
  if (llvm::any_of(op.getStaticLoopRanges(), ShapedType::isDynamic))
    return false;
  for (OpOperand &init : op.getDpsInitsMutable())
    if (!op.getMatchingIndexingMap(&init).isPermutation())
      return false;
  return true;
}

/// A run of ops that read nothing another one writes and write nothing
/// another one reads or writes: they may run in any order, interleaved.
class Run {
public:
  explicit Run(int64_t maxBuffers) : maxBuffers(maxBuffers) {}

  bool admits(linalg::GenericOp op) const {
    bool writesInBody = false;
    SmallVector<Value> readInBody = buffersReadInBody(op, writesInBody);
    if (writesInBody)
      return false;
    llvm::SmallDenseSet<Value> added;
    SmallVector<Value> used(op->getOperands());
    llvm::append_range(used, readInBody);
    for (Value v : used)
      if (isa<MemRefType>(v.getType())) {
        if (written.contains(rootBuffer(v)))
          return false;
        if (!buffers.contains(v))
          added.insert(v);
      }
    for (Value init : op.getDpsInits())
      if (read.contains(rootBuffer(init)))
        return false;
    return static_cast<int64_t>(buffers.size() + added.size()) <= maxBuffers;
  }

  void add(linalg::GenericOp op) {
    ops.push_back(op);
    bool writesInBody = false;
    SmallVector<Value> inputs(op.getDpsInputs());
    llvm::append_range(inputs, buffersReadInBody(op, writesInBody));
    for (Value v : inputs)
      if (isa<MemRefType>(v.getType())) {
        read.insert(rootBuffer(v));
        buffers.insert(v);
      }
    for (Value v : op.getDpsInits()) {
      written.insert(rootBuffer(v));
      buffers.insert(v);
    }
  }

  SmallVector<linalg::GenericOp> ops;

private:
  int64_t maxBuffers;
  llvm::DenseSet<Value> read, written, buffers;
};

/// The runs of at least two ops in `block`: consecutive but for pure ops
/// (constants, views) and allocations, which the kernel goes after.
void collectRuns(Block &block, const MultiTensorOptions &options,
                 std::vector<SmallVector<linalg::GenericOp>> &runs) {
  Run run(options.maxBuffers);
  auto close = [&] {
    if (run.ops.size() >= 2)
      runs.push_back(run.ops);
    run = Run(options.maxBuffers);
  };
  for (Operation &op : block) {
    auto generic = dyn_cast<linalg::GenericOp>(op);
    if (generic && isElementwise(generic)) {
      if (!run.admits(generic)) {
        close();
        if (!run.admits(generic)) // more buffers than a kernel takes
          continue;
      }
      run.add(generic);
      continue;
    }
    if (isPure(&op) || isa<memref::AllocOp>(op))
      continue;
    close();
  }
  close();
}

int64_t elementsOf(linalg::GenericOp op) {
  return product(op.getStaticLoopRanges());
}

/// Whether `op` can go four float32s at a time: its outputs and every input
/// indexed by the iteration read and written at the iteration's own element
/// (alignedForVectors), its other inputs scalars (rank 0: AdamW's learning
/// rate and bias corrections).
bool takesVectors(linalg::GenericOp op) {
  if (op.getStaticLoopRanges().back() % 4 != 0)
    return false;
  for (OpOperand &operand : op->getOpOperands()) {
    auto type = dyn_cast<MemRefType>(operand.get().getType());
    if (!type || !type.getElementType().isF32())
      return false;
    if (type.getRank() == 0 && op.isDpsInput(&operand))
      continue;
    if (!op.getMatchingIndexingMap(&operand).isIdentity() ||
        !alignedForVectors(type, 4))
      return false;
  }
  return true;
}

/// Global thread `thread` of `stride` threads: its units of `op`, g,
/// g + stride, ..., computed and stored; a unit is an element, or four
/// (16-byte loads and stores, each lane computed) where takesVectors.
void strideOp(OpBuilder &b, Location loc, linalg::GenericOp op, Value thread,
              int64_t stride) {
  int64_t width = takesVectors(op) ? 4 : 1;
  int64_t units = elementsOf(op) / width;
  int64_t trips = (units + stride - 1) / stride;
  SmallVector<int64_t> shape = op.getStaticLoopRanges();
  auto vectorType = VectorType::get({width}, b.getF32Type());
  llvm::MaybeAlign aligned(4 * width);
  scf::ForOp::create(
      b, loc, indexConstant(b, loc, 0), indexConstant(b, loc, trips),
      indexConstant(b, loc, 1), ValueRange{},
      [&](OpBuilder &lb, Location l, Value trip, ValueRange) {
        Value unit = arith::AddIOp::create(
            lb, l,
            arith::MulIOp::create(lb, l, trip, indexConstant(lb, l, stride)),
            thread);
        Value inside = arith::CmpIOp::create(
            lb, l, arith::CmpIPredicate::ult, unit, indexConstant(lb, l, units));
        scf::IfOp::create(lb, l, inside, [&](OpBuilder &tb, Location tl) {
          if (width == 1) {
            SmallVector<Value> indices = delinearize(tb, tl, unit, shape);
            SmallVector<Value> results = applyBody(tb, tl, op, indices, {});
            for (auto [init, value] :
                 llvm::zip(op.getDpsInitsMutable(), results))
              memref::StoreOp::create(
                  tb, tl, value, init.get(),
                  mapIndices(tb, tl, op.getMatchingIndexingMap(&init),
                             indices));
            scf::YieldOp::create(tb, tl);
            return;
          }
          Value element =
              arith::MulIOp::create(tb, tl, unit, indexConstant(tb, tl, width));
          SmallVector<Value> indices = delinearize(tb, tl, element, shape);
          llvm::DenseMap<Value, Value> loaded;
          KnownValues scalars;
          for (Value input : op.getDpsInputs()) {
            if (loaded.count(input) || scalars.count(input))
              continue;
            if (cast<MemRefType>(input.getType()).getRank() == 0)
              scalars[input] = memref::LoadOp::create(tb, tl, input);
            else
              loaded[input] = vector::LoadOp::create(
                  tb, tl, vectorType, input, indices, false, aligned);
          }
          applyBodyToVectors(tb, tl, op, indices, loaded, scalars, width);
          scf::YieldOp::create(tb, tl);
        });
        scf::YieldOp::create(lb, l);
      });
}

void emit(OpBuilder &b, Location loc, ArrayRef<linalg::GenericOp> ops,
          KernelTarget target, const MultiTensorOptions &options) {
  int64_t largest = 0;
  for (linalg::GenericOp op : ops)
    largest = std::max(largest, elementsOf(op));
  int64_t threads = options.threads;
  int64_t blocks =
      std::clamp<int64_t>((largest + threads - 1) / threads, 1,
                          options.maxBlocks);
  int64_t stride = blocks * threads;
  if (target == KernelTarget::GpuLaunch) {
    Value one = indexConstant(b, loc, 1);
    auto launch =
        gpu::LaunchOp::create(b, loc, indexConstant(b, loc, blocks), one, one,
                              indexConstant(b, loc, threads), one, one);
    OpBuilder in = OpBuilder::atBlockEnd(&launch.getBody().front());
    Value thread = arith::AddIOp::create(
        in, loc,
        arith::MulIOp::create(in, loc, launch.getBlockIds().x,
                              indexConstant(in, loc, threads)),
        launch.getThreadIds().x);
    for (linalg::GenericOp op : ops)
      strideOp(in, loc, op, thread, stride);
    gpu::TerminatorOp::create(in, loc);
    return;
  }
  // The host: the grid's threads one after another, each through every op.
  scf::ForOp::create(
      b, loc, indexConstant(b, loc, 0), indexConstant(b, loc, stride),
      indexConstant(b, loc, 1), ValueRange{},
      [&](OpBuilder &tb, Location tl, Value thread, ValueRange) {
        for (linalg::GenericOp op : ops)
          strideOp(tb, tl, op, thread, stride);
        scf::YieldOp::create(tb, tl);
      });
}

} // namespace

int mergeIndependentElementwise(ModuleOp module, KernelTarget target,
                                const MultiTensorOptions &options) {
  module.getContext()->getOrLoadDialect<vector::VectorDialect>();
  std::vector<SmallVector<linalg::GenericOp>> runs;
  module.walk([&](Block *block) { collectRuns(*block, options, runs); });
  for (SmallVector<linalg::GenericOp> &run : runs) {
    // After the last op: every op's operands are defined there.
    OpBuilder b(run.back());
    emit(b, run.front().getLoc(), run, target, options);
    for (linalg::GenericOp op : run)
      op.erase();
  }
  return runs.size();
}

} // namespace mlir::aim
