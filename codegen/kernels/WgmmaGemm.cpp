//===- WgmmaGemm.cpp - a generated sm_90a GEMM: TMA, mbarriers, wgmma ----===//

#include "codegen/kernels/WgmmaGemm.h"

#include "codegen/kernels/GemmCalls.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Interfaces/FunctionInterfaces.h"

#include <limits>

namespace mlir::aim {
namespace {

constexpr int64_t kWarpgroups = 2;
constexpr int64_t kWarpgroupThreads = 128;
constexpr int64_t kBlockThreads = kWarpgroups * kWarpgroupThreads;
/// wgmma.m64n128k16: a warpgroup's rows, the depth of one product.
constexpr int64_t kWgmmaM = 64;
constexpr int64_t kWgmmaK = 16;
/// Float32 accumulator registers a thread (64 x 128 over 128 threads).
constexpr int64_t kAccumulators = kWgmmaM * kGemmTileN / kWarpgroupThreads;
constexpr int64_t kElementBytes = 2; // bfloat16
/// A tile's row of one slice: 64 bfloat16, the 128-byte swizzle's width.
constexpr int64_t kRowBytes = kGemmTileK * kElementBytes;
constexpr int64_t kTileBytesA = kGemmTileM * kRowBytes;
constexpr int64_t kTileBytesB = kGemmTileN * kRowBytes;
constexpr int64_t kStageBytes = kTileBytesA + kTileBytesB;
/// The stages' mbarriers (8 bytes each) after their tiles.
constexpr int64_t kBarriersAt = kGemmStages * kStageBytes;
constexpr int64_t kSharedBytes = kBarriersAt + 8 * kGemmStages;
/// The swizzle's period (8 rows of 128 bytes): tiles start at multiples of
/// it, so that the hardware's address-based swizzle is the tile's.
constexpr int64_t kSwizzlePeriod = 1024;
/// mbarrier.try_wait's suspend-time hint (ns), as CUTLASS passes it.
constexpr int64_t kWaitHint = 10000000;

Value i64Constant(OpBuilder &b, Location loc, int64_t v) {
  return arith::ConstantIntOp::create(b, loc, b.getI64Type(), v);
}
Value i32Constant(OpBuilder &b, Location loc, int64_t v) {
  return arith::ConstantIntOp::create(b, loc, b.getI32Type(), v);
}
Value add(OpBuilder &b, Location loc, Value x, int64_t y) {
  Value c =
      x.getType().isIndex() ? indexConstant(b, loc, y) : i64Constant(b, loc, y);
  return arith::AddIOp::create(b, loc, x, c);
}
Value mul(OpBuilder &b, Location loc, Value x, int64_t y) {
  Value c =
      x.getType().isIndex() ? indexConstant(b, loc, y) : i64Constant(b, loc, y);
  return arith::MulIOp::create(b, loc, x, c);
}
Value div(OpBuilder &b, Location loc, Value x, int64_t y) {
  return arith::DivUIOp::create(b, loc, x, indexConstant(b, loc, y));
}
Value rem(OpBuilder &b, Location loc, Value x, int64_t y) {
  return arith::RemUIOp::create(b, loc, x, indexConstant(b, loc, y));
}
Value toI64(OpBuilder &b, Location loc, Value index) {
  return arith::IndexCastUIOp::create(b, loc, b.getI64Type(), index);
}

/// The byte a 128-byte-swizzled tile keeps the element of unswizzled
/// address `logical` at (i64): the 16-byte chunk (bits 4-6) xor the row
/// within the 1024-byte period (bits 7-9), what the TMA writes and wgmma
/// reads with swizzle mode 128B.
Value swizzled(OpBuilder &b, Location loc, Value logical) {
  Value row = arith::AndIOp::create(
      b, loc, arith::ShRUIOp::create(b, loc, logical, i64Constant(b, loc, 7)),
      i64Constant(b, loc, 7));
  return arith::XOrIOp::create(
      b, loc, logical,
      arith::ShLIOp::create(b, loc, row, i64Constant(b, loc, 4)));
}

/// The wgmma matrix descriptor of a K-major operand whose 8-row groups
/// start at shared byte `start` (i64): bits 0-13 start / 16; 16-29 the
/// leading byte offset / 16 (unused by K-major swizzled operands: 1);
/// 32-45 the stride byte offset / 16 (1024: from one 8-row group to the
/// next); 62-63 the swizzle mode (1: 128 bytes).
Value matrixDescriptor(OpBuilder &b, Location loc, Value start) {
  Value address = arith::AndIOp::create(
      b, loc, arith::ShRUIOp::create(b, loc, start, i64Constant(b, loc, 4)),
      i64Constant(b, loc, 0x3FFF));
  constexpr int64_t fields = (int64_t(1) << 16) |
                             (int64_t(kSwizzlePeriod >> 4) << 32) |
                             (int64_t(1) << 62);
  return arith::OrIOp::create(b, loc, address, i64Constant(b, loc, fields));
}

struct GemmShape {
  Value a, bm, d, bias, residual;
  int64_t m, n, k;

  int64_t tilesN() const { return (n + kGemmTileN - 1) / kGemmTileN; }
  int64_t tiles() const { return (m + kGemmTileM - 1) / kGemmTileM * tilesN(); }
  int64_t slices() const { return (k + kGemmTileK - 1) / kGemmTileK; }
  /// Whether some tile passes D's edge (its stores are then guarded).
  bool partial() const { return m % kGemmTileM || n % kGemmTileN; }
};

/// Shared-memory places (bytes, i64) from the block's aligned `base`.
struct SharedLayout {
  Value base;

  Value tileA(OpBuilder &b, Location loc, Value stage) const {
    return arith::AddIOp::create(
        b, loc, base, mul(b, loc, toI64(b, loc, stage), kStageBytes));
  }
  Value tileB(OpBuilder &b, Location loc, Value stage) const {
    return add(b, loc, tileA(b, loc, stage), kTileBytesA);
  }
  Value barrier(OpBuilder &b, Location loc, Value stage) const {
    return arith::AddIOp::create(b, loc, add(b, loc, base, kBarriersAt),
                                 mul(b, loc, toI64(b, loc, stage), 8));
  }
  /// Warpgroup `warpgroup`'s A rows and B at k-step `step` of a stage.
  Value descriptorA(OpBuilder &b, Location loc, Value stage, Value warpgroup,
                    int64_t step) const {
    Value rows = mul(b, loc, toI64(b, loc, warpgroup), kWgmmaM * kRowBytes);
    Value start = arith::AddIOp::create(b, loc, tileA(b, loc, stage), rows);
    return matrixDescriptor(b, loc,
                            add(b, loc, start, step * kWgmmaK * kElementBytes));
  }
  Value descriptorB(OpBuilder &b, Location loc, Value stage,
                    int64_t step) const {
    return matrixDescriptor(
        b, loc,
        add(b, loc, tileB(b, loc, stage), step * kWgmmaK * kElementBytes));
  }
};

/// use(warpgroup, thread of it, register r (even), value of r, of r + 1).
using AccumulatorUse = function_ref<void(OpBuilder &, Location, Value, Value,
                                         Value, Value, Value)>;

/// What differs between the GPU and its emulation on the host.
class GemmMachine {
public:
  virtual ~GemmMachine() = default;
  /// `then` by the thread that issues the copies, where `when` (i1; null:
  /// always).
  virtual void onIssuer(OpBuilder &b, Location loc, Value when,
                        function_ref<void(OpBuilder &, Location)> then) = 0;
  /// Slice `slice` of the A and B tiles at rows m0 and n0 into `stage`.
  virtual void load(OpBuilder &b, Location loc, Value slice, Value stage,
                    Value m0, Value n0) = 0;
  /// Waits until `stage`'s copies of phase `parity` (i32) have landed.
  virtual void await(OpBuilder &b, Location loc, Value stage, Value parity) = 0;
  /// The accumulators a block starts with (the k loop carries them).
  virtual SmallVector<Value> zeros(OpBuilder &b, Location loc) = 0;
  /// Adds `stage`'s products; after it the previous stage is free.
  virtual SmallVector<Value> multiply(OpBuilder &b, Location loc, Value stage,
                                      ValueRange acc) = 0;
  /// After the k loop: every product done.
  virtual void finish(OpBuilder &b, Location loc) = 0;
  /// `use` for each pair of accumulator registers of the block.
  virtual void forEachAccumulatorPair(OpBuilder &b, Location loc,
                                      ValueRange acc, AccumulatorUse use) = 0;
};

/// Whether `x` < `bound` (index).
Value below(OpBuilder &b, Location loc, Value x, int64_t bound) {
  return arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult, x,
                               indexConstant(b, loc, bound));
}

void ifThen(OpBuilder &b, Location loc, Value when,
            function_ref<void(OpBuilder &, Location)> then) {
  if (!when) {
    then(b, loc);
    return;
  }
  scf::IfOp::create(b, loc, when, [&](OpBuilder &tb, Location tl) {
    then(tb, tl);
    scf::YieldOp::create(tb, tl);
  });
}

/// D[row, col + j] = value_j + bias[col + j] + residual[row, col + j] (j =
/// 0, 1) for accumulator registers `reg` and `reg` + 1 (even) of thread `t`
/// of warpgroup `warpgroup`: the accumulator layout of wgmma's m64nNk16
/// (warp w of the warpgroup holds rows 16 w to 16 w + 15; lane l rows l / 4
/// and + 8, columns 2 (l % 4) and + 1 of each 8 columns). Where D, the
/// bias and the residual have even offsets and row strides, the pair is
/// one 8-byte access.
void storeAccumulatorPair(OpBuilder &b, Location loc, const GemmShape &g,
                          Value m0, Value n0, Value warpgroup, Value t,
                          Value reg, Value first, Value second) {
  Value lane = rem(b, loc, t, 32);
  Value row = arith::AddIOp::create(
      b, loc, m0,
      arith::AddIOp::create(
          b, loc,
          arith::AddIOp::create(b, loc, mul(b, loc, warpgroup, kWgmmaM),
                                mul(b, loc, div(b, loc, t, 32), 16)),
          arith::AddIOp::create(
              b, loc, div(b, loc, lane, 4),
              mul(b, loc, rem(b, loc, div(b, loc, reg, 2), 2), 8))));
  Value col = arith::AddIOp::create(
      b, loc, n0,
      arith::AddIOp::create(b, loc, mul(b, loc, div(b, loc, reg, 4), 8),
                            mul(b, loc, rem(b, loc, lane, 4), 2)));
  auto guarded = [&](Value column,
                     function_ref<void(OpBuilder &, Location)> store) {
    Value inside;
    if (g.partial())
      inside = arith::AndIOp::create(b, loc, below(b, loc, row, g.m),
                                     below(b, loc, column, g.n));
    ifThen(b, loc, inside, store);
  };
  auto pairs = [](Value v) {
    return !v || alignedForVectors(cast<MemRefType>(v.getType()), 2);
  };
  if (pairs(g.d) && pairs(g.bias) && pairs(g.residual)) {
    auto pair = VectorType::get({2}, b.getF32Type());
    const llvm::MaybeAlign aligned(8);
    guarded(col, [&](OpBuilder &sb, Location sl) {
      Value x = vector::FromElementsOp::create(sb, sl, pair,
                                               ValueRange{first, second});
      if (g.bias)
        x = arith::AddFOp::create(
            sb, sl, x,
            vector::LoadOp::create(sb, sl, pair, g.bias, ValueRange{col},
                                   /*nontemporal=*/false, aligned));
      if (g.residual)
        x = arith::AddFOp::create(
            sb, sl, x,
            vector::LoadOp::create(sb, sl, pair, g.residual,
                                   ValueRange{row, col},
                                   /*nontemporal=*/false, aligned));
      vector::StoreOp::create(sb, sl, x, g.d, ValueRange{row, col},
                              /*nontemporal=*/false, aligned);
    });
    return;
  }
  const Value values[] = {first, second};
  for (int64_t j = 0; j < 2; ++j) {
    Value column = add(b, loc, col, j);
    guarded(column, [&](OpBuilder &sb, Location sl) {
      Value x = values[j];
      if (g.bias)
        x = arith::AddFOp::create(
            sb, sl, x,
            memref::LoadOp::create(sb, sl, g.bias, ValueRange{column}));
      if (g.residual)
        x = arith::AddFOp::create(
            sb, sl, x,
            memref::LoadOp::create(sb, sl, g.residual,
                                   ValueRange{row, column}));
      memref::StoreOp::create(sb, sl, x, g.d, ValueRange{row, column});
    });
  }
}

/// One block's tile: the copies kGemmStages slices ahead, the k loop, the
/// epilogue.
void emitTile(OpBuilder &b, Location loc, const GemmShape &g, GemmMachine &mc,
              Value block) {
  Value m0 = mul(b, loc, div(b, loc, block, g.tilesN()), kGemmTileM);
  Value n0 = mul(b, loc, rem(b, loc, block, g.tilesN()), kGemmTileN);
  const int64_t slices = g.slices();
  mc.onIssuer(b, loc, nullptr, [&](OpBuilder &ib, Location il) {
    for (int64_t s = 0; s < std::min(kGemmStages, slices); ++s)
      mc.load(ib, il, indexConstant(ib, il, s), indexConstant(ib, il, s), m0,
              n0);
  });
  auto loop = scf::ForOp::create(
      b, loc, indexConstant(b, loc, 0), indexConstant(b, loc, slices),
      indexConstant(b, loc, 1), mc.zeros(b, loc),
      [&](OpBuilder &lb, Location ll, Value kt, ValueRange acc) {
        Value stage = rem(lb, ll, kt, kGemmStages);
        Value parity = arith::IndexCastUIOp::create(
            lb, ll, lb.getI32Type(),
            rem(lb, ll, div(lb, ll, kt, kGemmStages), 2));
        mc.await(lb, ll, stage, parity);
        SmallVector<Value> next = mc.multiply(lb, ll, stage, acc);
        // The previous slice's stage is free: refill it kGemmStages slices
        // on (the slice kt - 1 + kGemmStages).
        Value refill = add(lb, ll, kt, kGemmStages - 1);
        Value when = arith::AndIOp::create(
            lb, ll,
            arith::CmpIOp::create(lb, ll, arith::CmpIPredicate::uge, kt,
                                  indexConstant(lb, ll, 1)),
            below(lb, ll, refill, slices));
        mc.onIssuer(lb, ll, when, [&](OpBuilder &ib, Location il) {
          mc.load(ib, il, refill, rem(ib, il, refill, kGemmStages), m0, n0);
        });
        scf::YieldOp::create(lb, ll, next);
      });
  mc.finish(b, loc);
  mc.forEachAccumulatorPair(b, loc, loop.getResults(),
                            [&](OpBuilder &eb, Location el, Value warpgroup,
                                Value t, Value reg, Value first, Value second) {
                              storeAccumulatorPair(eb, el, g, m0, n0, warpgroup,
                                                   t, reg, first, second);
                            });
}

//===----------------------------------------------------------------------===//
// The GPU
//===----------------------------------------------------------------------===//

/// A pointer into the block's shared memory (shared::cta) at `address`.
Value sharedAt(OpBuilder &b, Location loc, Value address,
               NVVM::NVVMMemorySpace space = NVVM::NVVMMemorySpace::Shared) {
  return LLVM::IntToPtrOp::create(
      b, loc,
      LLVM::LLVMPointerType::get(b.getContext(), static_cast<unsigned>(space)),
      address);
}

/// The same place as a shared::cluster address (what the TMA's
/// destination is): a block's own shared::cta addresses are valid in the
/// shared::cluster window, and a launch without clusters is a cluster of
/// one.
Value clusterSharedAt(OpBuilder &b, Location loc, Value address) {
  return sharedAt(b, loc, address, NVVM::NVVMMemorySpace::SharedCluster);
}

class GpuMachine final : public GemmMachine {
public:
  GpuMachine(SharedLayout shared, Value thread, Value mapA, Value mapB)
      : shared(shared), thread(thread), mapA(mapA), mapB(mapB) {}

  void onIssuer(OpBuilder &b, Location loc, Value when,
                function_ref<void(OpBuilder &, Location)> then) override {
    Value first = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq,
                                        thread, indexConstant(b, loc, 0));
    ifThen(b, loc, when ? arith::AndIOp::create(b, loc, first, when) : first,
           then);
  }

  void load(OpBuilder &b, Location loc, Value slice, Value stage, Value m0,
            Value n0) override {
    Value barrier = sharedAt(b, loc, shared.barrier(b, loc, stage));
    NVVM::MBarrierArriveExpectTxOp::create(
        b, loc, Type(), barrier, i32Constant(b, loc, kStageBytes),
        NVVM::MemScopeKind::CTA, /*relaxed=*/false, /*predicate=*/Value());
    auto i32 = [&](Value index) {
      return arith::IndexCastUIOp::create(b, loc, b.getI32Type(), index);
    };
    Value k = i32(mul(b, loc, slice, kGemmTileK));
    // Coordinates innermost first: (column, row).
    for (auto [map, to, row] :
         {std::tuple{mapA, shared.tileA(b, loc, stage), m0},
          std::tuple{mapB, shared.tileB(b, loc, stage), n0}})
      NVVM::CpAsyncBulkTensorGlobalToSharedClusterOp::create(
          b, loc, clusterSharedAt(b, loc, to), map, ValueRange{k, i32(row)},
          barrier,
          /*im2colOffsets=*/ValueRange{}, /*multicastMask=*/Value(),
          /*l2CacheHint=*/Value(), NVVM::TMALoadMode::TILE,
          /*isCTAOnly=*/false, /*group=*/nullptr, /*predicate=*/Value());
  }

  void await(OpBuilder &b, Location loc, Value stage, Value parity) override {
    NVVM::MBarrierTryWaitParityOp::create(
        b, loc, sharedAt(b, loc, shared.barrier(b, loc, stage)), parity,
        i32Constant(b, loc, kWaitHint));
  }

  SmallVector<Value> zeros(OpBuilder &b, Location loc) override {
    Value acc = LLVM::PoisonOp::create(b, loc, accumulatorType(b));
    Value zero = arith::ConstantOp::create(b, loc, b.getF32FloatAttr(0));
    for (int64_t i = 0; i < kAccumulators; ++i)
      acc = LLVM::InsertValueOp::create(b, loc, acc, zero, i);
    return {acc};
  }

  SmallVector<Value> multiply(OpBuilder &b, Location loc, Value stage,
                              ValueRange acc) override {
    MLIRContext *ctx = b.getContext();
    Value warpgroup = div(b, loc, thread, kWarpgroupThreads);
    Value d = acc[0];
    NVVM::WgmmaFenceAlignedOp::create(b, loc);
    for (int64_t step = 0; step < kGemmTileK / kWgmmaK; ++step)
      d = NVVM::WgmmaMmaAsyncOp::create(
          b, loc, accumulatorType(b), d,
          shared.descriptorA(b, loc, stage, warpgroup, step),
          shared.descriptorB(b, loc, stage, step),
          NVVM::MMAShapeAttr::get(ctx, kWgmmaM, kGemmTileN, kWgmmaK),
          NVVM::WGMMATypes::bf16, NVVM::WGMMATypes::bf16, NVVM::WGMMATypes::f32,
          NVVM::WGMMAScaleOut::one, NVVM::WGMMAScaleIn::one,
          NVVM::WGMMAScaleIn::one,
          // Both K-major: A row-major, B column-major (W's rows).
          NVVM::MMALayout::row, NVVM::MMALayout::col,
          /*satfinite=*/nullptr);
    NVVM::WgmmaGroupSyncAlignedOp::create(b, loc);
    // This slice's products may run on; the previous slice's are done --
    // in every warpgroup once all have passed the barrier.
    NVVM::WgmmaWaitGroupSyncOp::create(b, loc, 1);
    gpu::BarrierOp::create(b, loc);
    return {d};
  }

  void finish(OpBuilder &b, Location loc) override {
    NVVM::WgmmaWaitGroupSyncOp::create(b, loc, 0);
  }

  void forEachAccumulatorPair(OpBuilder &b, Location loc, ValueRange acc,
                              AccumulatorUse use) override {
    Value warpgroup = div(b, loc, thread, kWarpgroupThreads);
    Value t = rem(b, loc, thread, kWarpgroupThreads);
    for (int64_t i = 0; i < kAccumulators; i += 2)
      use(b, loc, warpgroup, t, indexConstant(b, loc, i),
          LLVM::ExtractValueOp::create(b, loc, acc[0], i),
          LLVM::ExtractValueOp::create(b, loc, acc[0], i + 1));
  }

private:
  static Type accumulatorType(OpBuilder &b) {
    return LLVM::LLVMStructType::getLiteral(
        b.getContext(), SmallVector<Type>(kAccumulators, b.getF32Type()));
  }

  SharedLayout shared;
  Value thread, mapA, mapB;
};

func::FuncOp tensorMapDeclaration(ModuleOp module) {
  if (auto f = module.lookupSymbol<func::FuncOp>(kTensorMapSymbol))
    return f;
  OpBuilder b = OpBuilder::atBlockBegin(module.getBody());
  auto ptr = LLVM::LLVMPointerType::get(b.getContext());
  Type i64 = b.getI64Type(), i32 = b.getI32Type();
  auto f = func::FuncOp::create(
      b, module.getLoc(), kTensorMapSymbol,
      b.getFunctionType({ptr, ptr, i64, i64, i32, i32}, {}));
  f.setPrivate();
  return f;
}

/// The 16 words of the tensor map of `matrix` (memref<rows x cols x bf16>)
/// with boxes of `boxRows` x kGemmTileK, encoded by the runtime in the
/// launcher code.
SmallVector<Value> encodeTensorMap(OpBuilder &b, Location loc, Value matrix,
                                   int64_t boxRows) {
  auto shape = cast<MemRefType>(matrix.getType()).getShape();
  auto ptr = LLVM::LLVMPointerType::get(b.getContext());
  Type i64 = b.getI64Type();
  Operation *function = b.getInsertionBlock()->getParentOp();
  while (!isa<FunctionOpInterface>(function))
    function = function->getParentOp();
  OpBuilder entry = OpBuilder::atBlockBegin(
      &cast<FunctionOpInterface>(function).getFunctionBody().front());
  Value words = LLVM::AllocaOp::create(entry, loc, ptr, i64,
                                       i64Constant(entry, loc, 16), 64);
  func::CallOp::create(
      b, loc, tensorMapDeclaration(function->getParentOfType<ModuleOp>()),
      ValueRange{words, dataPointer(b, loc, matrix),
                 i64Constant(b, loc, shape[0]), i64Constant(b, loc, shape[1]),
                 i32Constant(b, loc, boxRows),
                 i32Constant(b, loc, kGemmTileK)});
  SmallVector<Value> loaded;
  for (int64_t w = 0; w < 16; ++w) {
    Value at = LLVM::GEPOp::create(b, loc, ptr, i64, words,
                                   ValueRange{i64Constant(b, loc, w)});
    loaded.push_back(LLVM::LoadOp::create(b, loc, i64, at));
  }
  return loaded;
}

/// The address (i64) of a memref's first element.
Value addressOf(OpBuilder &b, Location loc, Value memref) {
  return toI64(b, loc,
               memref::ExtractAlignedPointerAsIndexOp::create(b, loc, memref));
}

void emitGpuGemm(OpBuilder &b, Location loc, const GemmShape &g) {
  SmallVector<Value> maps = encodeTensorMap(b, loc, g.a, kGemmTileM);
  llvm::append_range(maps, encodeTensorMap(b, loc, g.bm, kGemmTileN));
  // The TMA reads tensor maps from the param, const or global space; the
  // kernel writes them (both, 256 bytes) to this buffer -- every block the
  // same bytes, so a block's TMA never reads another value.
  Value scratch = memref::AllocOp::create(
      b, loc, MemRefType::get({int64_t(maps.size())}, b.getI64Type()));
  Value one = indexConstant(b, loc, 1);
  auto launch = gpu::LaunchOp::create(
      b, loc, indexConstant(b, loc, g.tiles()), one, one,
      indexConstant(b, loc, kBlockThreads), one, one,
      i32Constant(b, loc, kSharedBytes + kSwizzlePeriod),
      /*asyncToken=*/nullptr, /*asyncDependencies=*/{}, TypeRange{});
  launch->setAttr(kLaunchOperandBytes,
                  b.getI64IntegerAttr((g.m + g.n) * g.k * kElementBytes));
  OpBuilder in = OpBuilder::atBlockEnd(&launch.getBody().front());
  Value thread = launch.getThreadIds().x;
  auto ptr = LLVM::LLVMPointerType::get(b.getContext());
  Value mapA =
      LLVM::IntToPtrOp::create(in, loc, ptr, addressOf(in, loc, scratch));
  Value mapB = LLVM::GEPOp::create(in, loc, ptr, in.getI64Type(), mapA,
                                   ValueRange{i64Constant(in, loc, 16)});
  auto workgroup =
      gpu::AddressSpaceAttr::get(b.getContext(), gpu::AddressSpace::Workgroup);
  Value dynamic = gpu::DynamicSharedMemoryOp::create(
      in, loc,
      MemRefType::get({ShapedType::kDynamic}, in.getI8Type(),
                      MemRefLayoutAttrInterface{}, workgroup));
  // The stages start at the dynamic region rounded up to the swizzle's
  // period: the launch asks that many bytes more.
  Value base = arith::AndIOp::create(
      in, loc, add(in, loc, addressOf(in, loc, dynamic), kSwizzlePeriod - 1),
      i64Constant(in, loc, -kSwizzlePeriod));
  GpuMachine machine(SharedLayout{base}, thread, mapA, mapB);
  machine.onIssuer(in, loc, nullptr, [&](OpBuilder &ib, Location il) {
    for (auto [w, word] : llvm::enumerate(maps))
      memref::StoreOp::create(ib, il, word, scratch,
                              ValueRange{indexConstant(ib, il, w)});
    // The maps were written through the generic proxy; the TMA reads them
    // through the tensormap proxy.
    NVVM::FenceProxyReleaseOp::create(ib, il, NVVM::MemScopeKind::GPU);
    for (Value map : {mapA, mapB})
      NVVM::FenceProxyAcquireOp::create(ib, il, NVVM::MemScopeKind::GPU, map,
                                        i32Constant(ib, il, 128));
    for (int64_t s = 0; s < kGemmStages; ++s)
      NVVM::MBarrierInitOp::create(
          ib, il,
          sharedAt(
              ib, il,
              SharedLayout{base}.barrier(ib, il, indexConstant(ib, il, s))),
          i32Constant(ib, il, 1), /*predicate=*/Value());
    NVVM::FenceMbarrierInitOp::create(ib, il);
  });
  gpu::BarrierOp::create(in, loc);
  emitTile(in, loc, g, machine, launch.getBlockIds().x);
  gpu::TerminatorOp::create(in, loc);
  memref::DeallocOp::create(b, loc, scratch);
}

//===----------------------------------------------------------------------===//
// The host's emulation
//===----------------------------------------------------------------------===//

void forRange(OpBuilder &b, Location loc, int64_t n,
              function_ref<void(OpBuilder &, Location, Value)> body) {
  scf::ForOp::create(b, loc, indexConstant(b, loc, 0), indexConstant(b, loc, n),
                     indexConstant(b, loc, 1), ValueRange{},
                     [&](OpBuilder &fb, Location fl, Value i, ValueRange) {
                       body(fb, fl, i);
                       scf::YieldOp::create(fb, fl);
                     });
}

/// The emulated shared memory's element at byte `address` (i64): it holds
/// the bfloat16 values as float32, one per 2 bytes.
Value sharedElementIndex(OpBuilder &b, Location loc, Value address) {
  return arith::IndexCastUIOp::create(
      b, loc, b.getIndexType(),
      arith::ShRUIOp::create(b, loc, address, i64Constant(b, loc, 1)));
}

constexpr llvm::StringLiteral kEmulatedWgmmaName =
    "aim_emulated_wgmma_m64n128k16";

/// The module's function that emulates one wgmma.mma_async.m64n128k16
/// (bf16 in, f32 accumulators) on (shared, descriptor A, descriptor B,
/// accumulators [warpgroup][thread][register], warpgroup), from the PTX
/// ISA: each descriptor decoded (start, stride byte offset, swizzle mode;
/// a mode other than 128B gives NaN), rows of an operand 8-row groups
/// apart by the stride offset, 128 bytes apart within one, the 128B
/// swizzle applied to the address; thread t's register r is row 16 (t /
/// 32) + (t % 32) / 4 + 8 ((r % 4) / 2), column 8 (r / 4) + 2 (t % 4) +
/// r % 2 of the 64 x 128 product.
func::FuncOp emulatedWgmmaFunction(ModuleOp module, Location loc,
                                   Type sharedType, Type accType) {
  if (auto existing = module.lookupSymbol<func::FuncOp>(kEmulatedWgmmaName))
    return existing;
  OpBuilder mb = OpBuilder::atBlockEnd(module.getBody());
  Type i64 = mb.getI64Type();
  auto f = func::FuncOp::create(
      mb, loc, kEmulatedWgmmaName,
      mb.getFunctionType({sharedType, i64, i64, accType, mb.getIndexType()},
                         {}));
  f.setPrivate();
  Block *entry = f.addEntryBlock();
  OpBuilder b = OpBuilder::atBlockEnd(entry);
  Value shared = entry->getArgument(0), acc = entry->getArgument(3),
        warpgroup = entry->getArgument(4);
  auto field = [&](Value desc, int64_t shift, int64_t mask) {
    return arith::AndIOp::create(
        b, loc,
        arith::ShRUIOp::create(b, loc, desc, i64Constant(b, loc, shift)),
        i64Constant(b, loc, mask));
  };
  struct Operand {
    Value start, stride, swizzle128;
  };
  auto decode = [&](Value desc) {
    Value start = arith::ShLIOp::create(b, loc, field(desc, 0, 0x3FFF),
                                        i64Constant(b, loc, 4));
    Value stride = arith::ShLIOp::create(b, loc, field(desc, 32, 0x3FFF),
                                         i64Constant(b, loc, 4));
    Value mode = field(desc, 62, 3);
    return Operand{start, stride,
                   arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, mode,
                                         i64Constant(b, loc, 1))};
  };
  Operand a = decode(entry->getArgument(1)), bm = decode(entry->getArgument(2));
  Value nan = arith::ConstantOp::create(
      b, loc, b.getF32FloatAttr(std::numeric_limits<float>::quiet_NaN()));
  auto element = [&](OpBuilder &eb, Location el, const Operand &op, Value row,
                     Value kk) {
    Value r = toI64(eb, el, row);
    Value group = arith::DivUIOp::create(eb, el, r, i64Constant(eb, el, 8));
    Value within = arith::RemUIOp::create(eb, el, r, i64Constant(eb, el, 8));
    Value logical = arith::AddIOp::create(
        eb, el,
        arith::AddIOp::create(eb, el, op.start,
                              arith::MulIOp::create(eb, el, group, op.stride)),
        arith::AddIOp::create(eb, el, mul(eb, el, within, 128),
                              mul(eb, el, toI64(eb, el, kk), 2)));
    Value v = memref::LoadOp::create(
        eb, el, shared,
        ValueRange{sharedElementIndex(eb, el, swizzled(eb, el, logical))});
    return arith::SelectOp::create(eb, el, op.swizzle128, v, nan);
  };
  forRange(b, loc, kWarpgroupThreads, [&](OpBuilder &tb, Location tl, Value t) {
    forRange(tb, tl, kAccumulators, [&](OpBuilder &rb, Location rl, Value r) {
      auto c = [&](int64_t v) { return indexConstant(rb, rl, v); };
      // Written apart from storeAccumulator's, from the ISA's figure.
      Value lane = rem(rb, rl, t, 32);
      Value row = arith::AddIOp::create(
          rb, rl,
          arith::AddIOp::create(rb, rl, mul(rb, rl, div(rb, rl, t, 32), 16),
                                div(rb, rl, lane, 4)),
          mul(rb, rl, div(rb, rl, rem(rb, rl, r, 4), 2), 8));
      Value col = arith::AddIOp::create(
          rb, rl,
          arith::AddIOp::create(rb, rl, mul(rb, rl, div(rb, rl, r, 4), 8),
                                mul(rb, rl, rem(rb, rl, lane, 4), 2)),
          rem(rb, rl, r, 2));
      Value start =
          memref::LoadOp::create(rb, rl, acc, ValueRange{warpgroup, t, r});
      auto sum = scf::ForOp::create(
          rb, rl, c(0), c(kWgmmaK), c(1), ValueRange{start},
          [&](OpBuilder &kb, Location kl, Value kk, ValueRange s) {
            Value product =
                arith::MulFOp::create(kb, kl, element(kb, kl, a, row, kk),
                                      element(kb, kl, bm, col, kk));
            scf::YieldOp::create(
                kb, kl,
                ValueRange{arith::AddFOp::create(kb, kl, s[0], product)});
          });
      memref::StoreOp::create(rb, rl, sum.getResult(0), acc,
                              ValueRange{warpgroup, t, r});
    });
  });
  func::ReturnOp::create(b, loc);
  return f;
}

class HostMachine final : public GemmMachine {
public:
  HostMachine(const GemmShape &g, SharedLayout layout, Value shared, Value acc,
              func::FuncOp wgmma)
      : g(g), layout(layout), shared(shared), acc(acc), wgmma(wgmma) {}

  void onIssuer(OpBuilder &b, Location loc, Value when,
                function_ref<void(OpBuilder &, Location)> then) override {
    ifThen(b, loc, when, then);
  }

  void load(OpBuilder &b, Location loc, Value slice, Value stage, Value m0,
            Value n0) override {
    Value k0 = mul(b, loc, slice, kGemmTileK);
    copyBox(b, loc, g.a, g.m, m0, k0, kGemmTileM, layout.tileA(b, loc, stage));
    copyBox(b, loc, g.bm, g.n, n0, k0, kGemmTileN, layout.tileB(b, loc, stage));
  }

  void await(OpBuilder &, Location, Value, Value) override {}

  SmallVector<Value> zeros(OpBuilder &b, Location loc) override {
    Value zero = arith::ConstantOp::create(b, loc, b.getF32FloatAttr(0));
    forRange(b, loc, kWarpgroups, [&](OpBuilder &wb, Location wl, Value w) {
      forRange(wb, wl, kWarpgroupThreads,
               [&](OpBuilder &tb, Location tl, Value t) {
                 forRange(tb, tl, kAccumulators,
                          [&](OpBuilder &rb, Location rl, Value r) {
                            memref::StoreOp::create(rb, rl, zero, acc,
                                                    ValueRange{w, t, r});
                          });
               });
    });
    return {};
  }

  SmallVector<Value> multiply(OpBuilder &b, Location loc, Value stage,
                              ValueRange) override {
    for (int64_t w = 0; w < kWarpgroups; ++w) {
      Value warpgroup = indexConstant(b, loc, w);
      for (int64_t step = 0; step < kGemmTileK / kWgmmaK; ++step)
        func::CallOp::create(
            b, loc, wgmma,
            ValueRange{
                shared, layout.descriptorA(b, loc, stage, warpgroup, step),
                layout.descriptorB(b, loc, stage, step), acc, warpgroup});
    }
    return {};
  }

  void finish(OpBuilder &, Location) override {}

  void forEachAccumulatorPair(OpBuilder &b, Location loc, ValueRange,
                              AccumulatorUse use) override {
    forRange(b, loc, kWarpgroups, [&](OpBuilder &wb, Location wl, Value w) {
      forRange(
          wb, wl, kWarpgroupThreads, [&](OpBuilder &tb, Location tl, Value t) {
            forRange(
                tb, tl, kAccumulators / 2,
                [&](OpBuilder &rb, Location rl, Value half) {
                  Value r = mul(rb, rl, half, 2);
                  use(rb, rl, w, t, r,
                      memref::LoadOp::create(rb, rl, acc, ValueRange{w, t, r}),
                      memref::LoadOp::create(
                          rb, rl, acc, ValueRange{w, t, add(rb, rl, r, 1)}));
                });
          });
    });
  }

private:
  /// The TMA's copy of the box of `rows` x kGemmTileK at (row0, col0) of
  /// `matrix` ([extent, g.k]; zeros past its edges) to the swizzled tile
  /// at byte `to`.
  void copyBox(OpBuilder &b, Location loc, Value matrix, int64_t extent,
               Value row0, Value col0, int64_t rows, Value to) {
    forRange(b, loc, rows, [&](OpBuilder &rb, Location rl, Value r) {
      forRange(rb, rl, kGemmTileK, [&](OpBuilder &cb, Location cl, Value c) {
        Value row = arith::AddIOp::create(cb, cl, row0, r);
        Value col = arith::AddIOp::create(cb, cl, col0, c);
        Value inside = arith::AndIOp::create(cb, cl, below(cb, cl, row, extent),
                                             below(cb, cl, col, g.k));
        auto value = scf::IfOp::create(
            cb, cl, inside,
            [&](OpBuilder &tb, Location tl) {
              Value v =
                  memref::LoadOp::create(tb, tl, matrix, ValueRange{row, col});
              if (!v.getType().isF32()) // bfloat16, rounded in the aim IR
                v = arith::ExtFOp::create(tb, tl, tb.getF32Type(), v);
              scf::YieldOp::create(tb, tl, ValueRange{v});
            },
            [&](OpBuilder &eb, Location el) {
              scf::YieldOp::create(eb, el,
                                   ValueRange{arith::ConstantOp::create(
                                       eb, el, eb.getF32FloatAttr(0))});
            });
        Value logical = arith::AddIOp::create(
            cb, cl, to,
            arith::AddIOp::create(
                cb, cl, mul(cb, cl, toI64(cb, cl, r), kRowBytes),
                mul(cb, cl, toI64(cb, cl, c), kElementBytes)));
        memref::StoreOp::create(
            cb, cl, value.getResult(0), shared,
            ValueRange{sharedElementIndex(cb, cl, swizzled(cb, cl, logical))});
      });
    });
  }

  const GemmShape &g;
  SharedLayout layout; // from 0: the emulated shared memory's offsets
  Value shared, acc;
  func::FuncOp wgmma;
};

void emitHostGemm(OpBuilder &b, Location loc, const GemmShape &g) {
  auto sharedType =
      MemRefType::get({kSharedBytes / kElementBytes}, b.getF32Type());
  auto accType = MemRefType::get(
      {kWarpgroups, kWarpgroupThreads, kAccumulators}, b.getF32Type());
  Value shared = memref::AllocOp::create(b, loc, sharedType);
  Value acc = memref::AllocOp::create(b, loc, accType);
  ModuleOp module =
      b.getInsertionBlock()->getParentOp()->getParentOfType<ModuleOp>();
  HostMachine machine(g, SharedLayout{i64Constant(b, loc, 0)}, shared, acc,
                      emulatedWgmmaFunction(module, loc, sharedType, accType));
  forRange(b, loc, g.tiles(), [&](OpBuilder &tb, Location tl, Value block) {
    emitTile(tb, tl, g, machine, block);
  });
  memref::DeallocOp::create(b, loc, acc);
  memref::DeallocOp::create(b, loc, shared);
}

} // namespace

bool wgmmaGemmApplies(bool transposeA, bool transposeB, MemRefType a,
                      MemRefType b) {
  // 8 elements: 16 bytes of bfloat16 (buffers start 256-byte aligned).
  return !transposeA && transposeB && a.getRank() == 2 && b.getRank() == 2 &&
         alignedForVectors(a, 8) && alignedForVectors(b, 8);
}

void emitWgmmaGemm(OpBuilder &b, Location loc, KernelTarget target, Value a,
                   Value bm, Value d, Value bias, Value residual) {
  auto dShape = cast<MemRefType>(d.getType()).getShape();
  GemmShape g{a,         bm,
              d,         bias,
              residual,  dShape[0],
              dShape[1], cast<MemRefType>(a.getType()).getShape()[1]};
  // Outside any pass: the dialects it builds with may not be loaded yet.
  b.getContext()
      ->loadDialect<arith::ArithDialect, LLVM::LLVMDialect,
                    memref::MemRefDialect, scf::SCFDialect,
                    vector::VectorDialect>();
  if (target == KernelTarget::GpuLaunch) {
    b.getContext()->loadDialect<gpu::GPUDialect, NVVM::NVVMDialect>();
    emitGpuGemm(b, loc, g);
    return;
  }
  emitHostGemm(b, loc, g);
}

} // namespace mlir::aim
