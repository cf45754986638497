//===- MergedLaunches.cpp - independent launches, one kernel --------------===//
#include "codegen/kernels/MergedLaunches.h"

#include "codegen/kernels/KernelBuilding.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "mlir/Transforms/RegionUtils.h"

#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/SetVector.h"

#include <array>
#include <climits>

namespace mlir::aim {

namespace {

/// A launch that may be merged, with what it touches.
struct Launch {
  gpu::LaunchOp op;
  std::array<int64_t, 3> grid{}, block{};
  int64_t blocks = 0, threads = 0;
  bool synchronizes = false; // the whole block must take part
  llvm::DenseSet<Value> reads, writes; // root buffers
  llvm::SetVector<Value> captured;     // values from outside the body
  int level = 0;
};

std::optional<std::array<int64_t, 3>> constants(gpu::KernelDim3 dims) {
  std::array<int64_t, 3> out{};
  Value values[3] = {dims.x, dims.y, dims.z};
  for (int i = 0; i < 3; ++i) {
    std::optional<int64_t> c = getConstantIntValue(values[i]);
    if (!c || *c < 1)
      return std::nullopt;
    out[i] = *c;
  }
  return out;
}

/// What `op` reads and writes, if it is a launch this pass understands: a
/// constant grid and block, nothing asynchronous, no shared or private
/// attributions, one block of loads, stores and side-effect-free ops.
std::optional<Launch> analyse(gpu::LaunchOp op) {
  if (!op.getAsyncDependencies().empty() || op.getAsyncToken() ||
      op.getDynamicSharedMemorySize() || op.hasClusterSize() ||
      op.getNumWorkgroupAttributions() || op.getNumPrivateAttributions() ||
      !op.getBody().hasOneBlock())
    return std::nullopt;
  Launch l{op};
  std::optional<std::array<int64_t, 3>> grid =
      constants(op.getGridSizeOperandValues());
  std::optional<std::array<int64_t, 3>> block =
      constants(op.getBlockSizeOperandValues());
  if (!grid || !block)
    return std::nullopt;
  l.grid = *grid;
  l.block = *block;
  l.blocks = l.grid[0] * l.grid[1] * l.grid[2];
  l.threads = l.block[0] * l.block[1] * l.block[2];
  bool understood = true;
  op.getBody().walk([&](Operation *inner) {
    if (auto load = dyn_cast<memref::LoadOp>(inner))
      l.reads.insert(rootBuffer(load.getMemRef()));
    else if (auto store = dyn_cast<memref::StoreOp>(inner))
      l.writes.insert(rootBuffer(store.getMemRef()));
    else if (auto load = dyn_cast<vector::LoadOp>(inner))
      l.reads.insert(rootBuffer(load.getBase()));
    else if (auto store = dyn_cast<vector::StoreOp>(inner))
      l.writes.insert(rootBuffer(store.getBase()));
    else if (isa<gpu::AllReduceOp, gpu::BarrierOp, gpu::ShuffleOp>(inner))
      l.synchronizes = true;
    else if (inner->getNumRegions() == 0 && !isMemoryEffectFree(inner) &&
             !isa<gpu::TerminatorOp>(inner))
      understood = false;
  });
  if (!understood)
    return std::nullopt;
  getUsedValuesDefinedAbove(op.getBody(), l.captured);
  return l;
}

bool intersects(const llvm::DenseSet<Value> &a, const llvm::DenseSet<Value> &b) {
  for (Value v : a)
    if (b.contains(v))
      return true;
  return false;
}

/// Whether `later` must run after `earlier`.
bool dependsOn(const Launch &later, const Launch &earlier) {
  return intersects(later.reads, earlier.writes) ||
         intersects(later.writes, earlier.writes) ||
         intersects(later.writes, earlier.reads);
}

int64_t attribute(gpu::LaunchOp op, StringRef name) {
  auto a = op->getAttrOfType<IntegerAttr>(name);
  return a ? a.getInt() : 0;
}

/// `m`'s body as block `local` of its own grid, thread `threadId` of its own
/// block: its ids delinearised, its sizes constants.
void cloneBody(OpBuilder &b, Location loc, Launch &m, Value local,
               Value threadId) {
  SmallVector<Value> blockIds =
      delinearize(b, loc, local, {m.grid[2], m.grid[1], m.grid[0]});
  SmallVector<Value> threadIds =
      delinearize(b, loc, threadId, {m.block[2], m.block[1], m.block[0]});
  gpu::LaunchOp old = m.op;
  IRMapping map;
  gpu::KernelDim3 ids[2] = {old.getBlockIds(), old.getThreadIds()};
  SmallVector<Value> *values[2] = {&blockIds, &threadIds};
  for (int k = 0; k < 2; ++k) { // delinearize gives z, y, x
    map.map(ids[k].x, (*values[k])[2]);
    map.map(ids[k].y, (*values[k])[1]);
    map.map(ids[k].z, (*values[k])[0]);
  }
  gpu::KernelDim3 sizes[2] = {old.getGridSize(), old.getBlockSize()};
  const std::array<int64_t, 3> *extents[2] = {&m.grid, &m.block};
  for (int k = 0; k < 2; ++k) {
    map.map(sizes[k].x, indexConstant(b, loc, (*extents[k])[0]));
    map.map(sizes[k].y, indexConstant(b, loc, (*extents[k])[1]));
    map.map(sizes[k].z, indexConstant(b, loc, (*extents[k])[2]));
  }
  for (Operation &op : old.getBody().front().without_terminator())
    b.clone(op, map);
}

/// Members [lo, hi) of a merged kernel, found by a binary search on the
/// block id over their first blocks (`offsets`): a chain of comparisons
/// would cost every block one per member (aim-600m's gradient norm, a few
/// hundred members: 8 ms of comparisons).
void emitSearch(OpBuilder &b, Location loc, ArrayRef<Launch *> members,
                ArrayRef<int64_t> offsets, size_t lo, size_t hi, Value blockId,
                Value threadId, int64_t threads) {
  if (hi - lo == 1) {
    Launch &m = *members[lo];
    Value local =
        arith::SubIOp::create(b, loc, blockId, indexConstant(b, loc, offsets[lo]));
    if (m.threads == threads) {
      cloneBody(b, loc, m, local, threadId);
      return;
    }
    // Fewer threads (never one that synchronises its block): the first ones.
    Value mine = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult,
                                       threadId,
                                       indexConstant(b, loc, m.threads));
    scf::IfOp::create(b, loc, mine, [&](OpBuilder &tb, Location tl) {
      cloneBody(tb, tl, m, local, threadId);
      scf::YieldOp::create(tb, tl);
    });
    return;
  }
  size_t mid = lo + (hi - lo) / 2;
  Value below = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult,
                                      blockId,
                                      indexConstant(b, loc, offsets[mid]));
  scf::IfOp::create(
      b, loc, below,
      [&](OpBuilder &tb, Location tl) {
        emitSearch(tb, tl, members, offsets, lo, mid, blockId, threadId,
                   threads);
        scf::YieldOp::create(tb, tl);
      },
      [&](OpBuilder &eb, Location el) {
        emitSearch(eb, el, members, offsets, mid, hi, blockId, threadId,
                   threads);
        scf::YieldOp::create(eb, el);
      });
}

/// One launch in place of `members` (independent, in program order), built
/// at `b`'s insertion point.
void emitMerged(OpBuilder &b, ArrayRef<Launch *> members) {
  Location loc = members.front()->op.getLoc();
  int64_t threads = 0, blocks = 0, bytes = 0, flops = 0;
  SmallVector<int64_t> offsets;
  for (Launch *m : members) {
    offsets.push_back(blocks);
    threads = std::max(threads, m->threads);
    blocks += m->blocks;
    bytes += attribute(m->op, "aim.bytes");
    flops += attribute(m->op, "aim.flops");
  }
  Value one = indexConstant(b, loc, 1);
  auto merged = gpu::LaunchOp::create(b, loc, indexConstant(b, loc, blocks),
                                      one, one, indexConstant(b, loc, threads),
                                      one, one);
  OpBuilder in = OpBuilder::atBlockEnd(&merged.getBody().front());
  emitSearch(in, loc, members, offsets, 0, members.size(),
             merged.getBlockIds().x, merged.getThreadIds().x, threads);
  gpu::TerminatorOp::create(in, loc);
  merged->setAttr("aim.bytes", b.getI64IntegerAttr(bytes));
  merged->setAttr("aim.flops", b.getI64IntegerAttr(flops));
}

/// Merges the launches of one run; `end` is the op the run stops at (the
/// merged launches go before it). Returns how many launches went.
int mergeRun(std::vector<Launch> &run, SmallVectorImpl<memref::DeallocOp> &deallocs,
             Operation *end, const MergedLaunchOptions &options) {
  if (run.size() < 2)
    return 0;
  int levels = 0;
  for (size_t i = 0; i < run.size(); ++i) {
    for (size_t j = 0; j < i; ++j)
      if (run[i].level <= run[j].level && dependsOn(run[i], run[j]))
        run[i].level = run[j].level + 1;
    levels = std::max(levels, run[i].level + 1);
  }
  // Kernels of a level: seeded by the launch with the most threads still
  // left, joined by every launch that fits its block and parameters.
  std::vector<std::vector<Launch *>> kernels;
  for (int level = 0; level < levels; ++level) {
    std::vector<Launch *> left;
    for (Launch &l : run)
      if (l.level == level)
        left.push_back(&l);
    std::stable_sort(left.begin(), left.end(), [](Launch *a, Launch *b) {
      return a->threads > b->threads;
    });
    while (!left.empty()) {
      std::vector<Launch *> kernel{left.front()}, rest;
      int64_t threads = left.front()->threads;
      int64_t blocks = left.front()->blocks;
      llvm::SetVector<Value> captured = left.front()->captured;
      for (Launch *l : llvm::drop_begin(left)) {
        llvm::SetVector<Value> joined = captured;
        joined.insert(l->captured.begin(), l->captured.end());
        bool fits = (l->synchronizes ? l->threads == threads
                                     : l->threads <= threads) &&
                    static_cast<int64_t>(kernel.size()) < options.maxLaunches &&
                    static_cast<int64_t>(joined.size()) <= options.maxCaptured &&
                    blocks + l->blocks <= INT_MAX;
        if (!fits) {
          rest.push_back(l);
          continue;
        }
        kernel.push_back(l);
        captured = std::move(joined);
        blocks += l->blocks;
      }
      // Program order within the kernel: reads as the source does.
      std::sort(kernel.begin(), kernel.end(), [](Launch *a, Launch *b) {
        return a->op->isBeforeInBlock(b->op);
      });
      kernels.push_back(std::move(kernel));
      left = std::move(rest);
    }
  }
  if (kernels.size() == run.size())
    return 0;
  OpBuilder b(end);
  for (std::vector<Launch *> &kernel : kernels) {
    if (kernel.size() == 1) {
      kernel.front()->op->moveBefore(end);
      continue;
    }
    emitMerged(b, kernel);
  }
  for (memref::DeallocOp dealloc : deallocs)
    dealloc->moveBefore(end);
  int removed = 0;
  for (std::vector<Launch *> &kernel : kernels)
    if (kernel.size() > 1)
      for (Launch *l : kernel) {
        l->op.erase();
        ++removed;
      }
  return removed;
}

int mergeInBlock(Block &block, const MergedLaunchOptions &options) {
  int removed = 0;
  std::vector<Launch> run;
  SmallVector<memref::DeallocOp> deallocs;
  SmallVector<Operation *> ops;
  for (Operation &op : block)
    ops.push_back(&op);
  for (Operation *op : ops) {
    if (auto launch = dyn_cast<gpu::LaunchOp>(op))
      if (std::optional<Launch> l = analyse(launch)) {
        run.push_back(std::move(*l));
        continue;
      }
    if (auto dealloc = dyn_cast<memref::DeallocOp>(op)) {
      if (!run.empty())
        deallocs.push_back(dealloc);
      continue;
    }
    if (!op->hasTrait<OpTrait::IsTerminator>() &&
        (isPure(op) || isa<memref::AllocOp>(op)))
      continue;
    removed += mergeRun(run, deallocs, op, options);
    run.clear();
    deallocs.clear();
  }
  return removed;
}

} // namespace

int mergeIndependentLaunches(ModuleOp module,
                             const MergedLaunchOptions &options) {
  int removed = 0;
  SmallVector<Block *> blocks;
  module.walk([&](func::FuncOp function) {
    function.walk([&](Block *block) {
      if (!isa<gpu::LaunchOp>(block->getParentOp()) &&
          !block->getParentOp()->getParentOfType<gpu::LaunchOp>())
        blocks.push_back(block);
    });
  });
  for (Block *block : blocks)
    removed += mergeInBlock(*block, options);
  return removed;
}

} // namespace mlir::aim
