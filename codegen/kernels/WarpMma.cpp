//===- WarpMma.cpp - a warp's registers and tensor-core MMA, GPU or host --===//
#include "codegen/kernels/WarpMma.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

namespace mlir::aim {

namespace {

constexpr int64_t kWarp = kWarpLanes;

/// `scalar`'s type with `like`'s shape (a lane value's type).
Type shapedLike(Value like, Type scalar) {
  if (auto vector = dyn_cast<VectorType>(like.getType()))
    return VectorType::get(vector.getShape(), scalar);
  return scalar;
}

/// The body of the function that emulates an mma.sync on `scratch` (A's
/// and B's words and C, [register][lane]; C becomes D), element by element
/// from the PTX ISA's fragment layouts for m16n8k16 with 16-bit A and B
/// (groupID = lane / 4, threadID_in_group = lane % 4):
///   A[row][k]: lane (row % 8) * 4 + (k % 8) / 2, register row / 8 +
///              2 (k / 8), half k % 2;
///   B[k][col]: lane col * 4 + (k % 8) / 2, register k / 8, half k % 2;
///   C/D register r of lane l: row l / 4 + 8 (r / 2), col 2 (l % 4) +
///              r % 2.
/// Products are exact in float32; the sum over k runs in order.
void buildEmulatedMma(OpBuilder &b, Location loc, const MmaScratch &scratch) {
  auto idx = [&](OpBuilder &ib, Location il, int64_t v) {
    return indexConstant(ib, il, v);
  };
  auto forRange = [&](OpBuilder &fb, Location fl, int64_t n, ValueRange init,
                      function_ref<SmallVector<Value>(OpBuilder &, Location,
                                                      Value, ValueRange)>
                          body) {
    return scf::ForOp::create(
               fb, fl, idx(fb, fl, 0), idx(fb, fl, n), idx(fb, fl, 1), init,
               [&](OpBuilder &lb, Location ll, Value i, ValueRange cur) {
                 scf::YieldOp::create(lb, ll, body(lb, ll, i, cur));
               })
        .getResults();
  };
  // Element `half` of a word of bfloat16 pairs, as float32.
  auto element = [&](OpBuilder &eb, Location el, Value word, Value half) {
    Value shift = arith::IndexCastOp::create(
        eb, el, eb.getI32Type(),
        arith::MulIOp::create(eb, el, half, idx(eb, el, 16)));
    Value sixteen = arith::ConstantIntOp::create(eb, el, eb.getI32Type(), 16);
    Value bits = arith::ShLIOp::create(
        eb, el, arith::ShRUIOp::create(eb, el, word, shift), sixteen);
    return arith::BitcastOp::create(eb, el, eb.getF32Type(), bits);
  };
  auto div = [](OpBuilder &ob, Location ol, Value x, int64_t d) -> Value {
    return arith::DivUIOp::create(ob, ol, x, indexConstant(ob, ol, d));
  };
  auto rem = [](OpBuilder &ob, Location ol, Value x, int64_t d) -> Value {
    return arith::RemUIOp::create(ob, ol, x, indexConstant(ob, ol, d));
  };
  auto add = [](OpBuilder &ob, Location ol, Value x, Value y) -> Value {
    return arith::AddIOp::create(ob, ol, x, y);
  };
  auto mul = [](OpBuilder &ob, Location ol, Value x, int64_t m) -> Value {
    return arith::MulIOp::create(ob, ol, x, indexConstant(ob, ol, m));
  };
  forRange(
      b, loc, kWarp, {},
      [&](OpBuilder &lb, Location ll, Value l,
          ValueRange) -> SmallVector<Value> {
        forRange(
            lb, ll, 4, {},
            [&](OpBuilder &rb, Location rl, Value r,
                ValueRange) -> SmallVector<Value> {
              Value row = add(rb, rl, div(rb, rl, l, 4),
                              mul(rb, rl, div(rb, rl, r, 2), 8));
              Value col = add(rb, rl, mul(rb, rl, rem(rb, rl, l, 4), 2),
                              rem(rb, rl, r, 2));
              Value start =
                  memref::LoadOp::create(rb, rl, scratch.c, ValueRange{r, l});
              ValueRange sum = forRange(
                  rb, rl, 16, start,
                  [&](OpBuilder &kb, Location kl, Value k,
                      ValueRange acc) -> SmallVector<Value> {
                    Value pairInGroup = div(kb, kl, rem(kb, kl, k, 8), 2);
                    Value half = rem(kb, kl, k, 2), upper = div(kb, kl, k, 8);
                    Value aLane =
                        add(kb, kl, mul(kb, kl, rem(kb, kl, row, 8), 4),
                            pairInGroup);
                    Value aRegister =
                        add(kb, kl, div(kb, kl, row, 8), mul(kb, kl, upper, 2));
                    Value bLane = add(kb, kl, mul(kb, kl, col, 4), pairInGroup);
                    Value x = element(
                        kb, kl,
                        memref::LoadOp::create(kb, kl, scratch.a,
                                               ValueRange{aRegister, aLane}),
                        half);
                    Value y = element(
                        kb, kl,
                        memref::LoadOp::create(kb, kl, scratch.b,
                                               ValueRange{upper, bLane}),
                        half);
                    return {arith::AddFOp::create(
                        kb, kl, acc[0], arith::MulFOp::create(kb, kl, x, y))};
                  });
              memref::StoreOp::create(rb, rl, sum[0], scratch.c,
                                      ValueRange{r, l});
              return {};
            });
        return {};
      });
}

constexpr llvm::StringLiteral kEmulatedMmaName = "aim_emulated_mma_m16n8k16";

/// The module's one function that emulates an mma.sync on the scratch
/// (one call a product keeps the host's code small), made on first use.
func::FuncOp emulatedMmaFunction(OpBuilder &b, Location loc,
                                 const MmaScratch &scratch) {
  // The scratch is on the function's stack; the builder may be filling a
  // loop body not yet in the module.
  auto module = scratch.a.getDefiningOp()->getParentOfType<ModuleOp>();
  if (auto existing = module.lookupSymbol<func::FuncOp>(kEmulatedMmaName))
    return existing;
  OpBuilder mb = OpBuilder::atBlockEnd(module.getBody());
  auto type = mb.getFunctionType(
      {scratch.a.getType(), scratch.b.getType(), scratch.c.getType()}, {});
  auto f = func::FuncOp::create(mb, loc, kEmulatedMmaName, type);
  f.setPrivate();
  Block *entry = f.addEntryBlock();
  OpBuilder fb = OpBuilder::atBlockEnd(entry);
  buildEmulatedMma(
      fb, loc,
      {entry->getArgument(0), entry->getArgument(1), entry->getArgument(2)});
  func::ReturnOp::create(fb, loc);
  return f;
}

SmallVector<Value, 4> emulatedMma(OpBuilder &b, Location loc,
                                  const MmaScratch &scratch, ArrayRef<Value> a,
                                  ArrayRef<Value> bm, ArrayRef<Value> c) {
  Value zero = indexConstant(b, loc, 0);
  auto store = [&](ArrayRef<Value> values, Value into) {
    for (auto [i, v] : llvm::enumerate(values))
      vector::StoreOp::create(b, loc, v, into,
                              ValueRange{indexConstant(b, loc, i), zero});
  };
  store(a, scratch.a);
  store(bm, scratch.b);
  store(c, scratch.c);
  func::CallOp::create(b, loc, emulatedMmaFunction(b, loc, scratch),
                       ValueRange{scratch.a, scratch.b, scratch.c});
  SmallVector<Value, 4> d;
  auto type = VectorType::get({kWarp}, b.getF32Type());
  for (int64_t i = 0; i < 4; ++i)
    d.push_back(vector::LoadOp::create(
        b, loc, type, scratch.c, ValueRange{indexConstant(b, loc, i), zero}));
  return d;
}

} // namespace

// On the GPU as a <2 x float> truncation, which NVPTX selects as one
// cvt.rn.bf16x2.f32; on the host in arith (its bfloat16 conversions are
// expanded to integer arithmetic, HostCompiler.cpp).
Value packBf16Pair(OpBuilder &b, Location loc, KernelTarget target, Value low,
                   Value high) {
  if (target == KernelTarget::GpuLaunch) {
    auto i32 = [&](int64_t v) {
      return LLVM::ConstantOp::create(b, loc, b.getI32Type(), v);
    };
    Value pair =
        LLVM::PoisonOp::create(b, loc, VectorType::get({2}, b.getF32Type()));
    pair = LLVM::InsertElementOp::create(b, loc, pair, low, i32(0));
    pair = LLVM::InsertElementOp::create(b, loc, pair, high, i32(1));
    Value rounded = LLVM::FPTruncOp::create(
        b, loc, VectorType::get({2}, b.getBF16Type()), pair);
    return LLVM::BitcastOp::create(b, loc, b.getI32Type(), rounded);
  }
  auto bits = [&](Value x) -> Value {
    Value h =
        arith::TruncFOp::create(b, loc, shapedLike(x, b.getBF16Type()), x);
    Value i =
        arith::BitcastOp::create(b, loc, shapedLike(x, b.getI16Type()), h);
    return arith::ExtUIOp::create(b, loc, shapedLike(x, b.getI32Type()), i);
  };
  TypedAttr sixteen = b.getI32IntegerAttr(16);
  if (auto vector = dyn_cast<VectorType>(low.getType()))
    sixteen = DenseElementsAttr::get(
        VectorType::get(vector.getShape(), b.getI32Type()), sixteen);
  return arith::OrIOp::create(
      b, loc, bits(low),
      arith::ShLIOp::create(b, loc, bits(high),
                            arith::ConstantOp::create(b, loc, sixteen)));
}

MmaScratch createMmaScratch(OpBuilder &entry, Location loc) {
  auto stack = [&](ArrayRef<int64_t> shape, Type element) {
    return memref::AllocaOp::create(entry, loc, MemRefType::get(shape, element))
        .getResult();
  };
  Type i32 = entry.getI32Type();
  return {stack({4, kWarp}, i32), stack({2, kWarp}, i32),
          stack({4, kWarp}, entry.getF32Type())};
}

Value Lanes::constant(OpBuilder &b, Location loc, TypedAttr scalar) const {
  if (!onHost())
    return arith::ConstantOp::create(b, loc, scalar);
  auto type = VectorType::get({kWarp}, scalar.getType());
  return arith::ConstantOp::create(b, loc,
                                   DenseElementsAttr::get(type, scalar));
}
Value Lanes::f32(OpBuilder &b, Location loc, double v) const {
  return constant(b, loc, b.getF32FloatAttr(v));
}

Value Lanes::perLane(
    OpBuilder &b, Location loc, Type scalar,
    function_ref<Value(OpBuilder &, Location, Value)> compute) const {
  if (!onHost())
    return compute(b, loc, lane);
  auto type = VectorType::get({kWarp}, scalar);
  Value init = arith::ConstantOp::create(
      b, loc, DenseElementsAttr::get(type, b.getZeroAttr(scalar)));
  auto loop = scf::ForOp::create(
      b, loc, indexConstant(b, loc, 0), indexConstant(b, loc, kWarp),
      indexConstant(b, loc, 1), ValueRange{init},
      [&](OpBuilder &lb, Location ll, Value l, ValueRange current) {
        Value x = compute(lb, ll, l);
        scf::YieldOp::create(lb, ll,
                             Value(vector::InsertOp::create(
                                 lb, ll, x, current[0], OpFoldResult(l))));
      });
  return loop.getResult(0);
}

void Lanes::forEachLane(
    OpBuilder &b, Location loc, ValueRange values,
    function_ref<void(OpBuilder &, Location, Value, ValueRange)> use) const {
  if (!onHost()) {
    use(b, loc, lane, values);
    return;
  }
  scf::ForOp::create(b, loc, indexConstant(b, loc, 0),
                     indexConstant(b, loc, kWarp), indexConstant(b, loc, 1),
                     ValueRange{},
                     [&](OpBuilder &lb, Location ll, Value l, ValueRange) {
                       SmallVector<Value> scalars;
                       for (Value v : values)
                         scalars.push_back(vector::ExtractOp::create(
                             lb, ll, v, OpFoldResult(l)));
                       use(lb, ll, l, scalars);
                       scf::YieldOp::create(lb, ll);
                     });
}

Value Lanes::xorShuffle(OpBuilder &b, Location loc, Value v,
                        int64_t mask) const {
  if (!onHost()) {
    auto i32 = [&](int64_t x) {
      return arith::ConstantIntOp::create(b, loc, b.getI32Type(), x);
    };
    return gpu::ShuffleOp::create(b, loc, v, i32(mask), i32(kWarp),
                                  gpu::ShuffleMode::XOR)
        .getShuffleResult();
  }
  SmallVector<int64_t> from;
  for (int64_t l = 0; l < kWarp; ++l)
    from.push_back(l ^ mask);
  return vector::ShuffleOp::create(b, loc, v.getType(), v, v,
                                   b.getDenseI64ArrayAttr(from));
}

SmallVector<Value, 4> Lanes::mma(OpBuilder &b, Location loc, ArrayRef<Value> a,
                                 ArrayRef<Value> bm, ArrayRef<Value> c) const {
  if (!onHost()) {
    Type f32 = b.getF32Type();
    Type result =
        LLVM::LLVMStructType::getLiteral(b.getContext(), {f32, f32, f32, f32});
    auto op = NVVM::MmaOp::create(
        b, loc, result, a, bm, c, ArrayRef<int64_t>{16, 8, 16}, std::nullopt,
        std::nullopt, std::array{NVVM::MMATypes::bf16, NVVM::MMATypes::bf16},
        std::array{NVVM::MMALayout::row, NVVM::MMALayout::col});
    SmallVector<Value, 4> d;
    for (int64_t i = 0; i < 4; ++i)
      d.push_back(LLVM::ExtractValueOp::create(b, loc, op.getResult(),
                                               ArrayRef<int64_t>{i}));
    return d;
  }
  return emulatedMma(b, loc, scratch, a, bm, c);
}

Value addIndex(OpBuilder &b, Location loc, Value x, int64_t y) {
  return arith::AddIOp::create(b, loc, x, indexConstant(b, loc, y));
}
Value mulIndex(OpBuilder &b, Location loc, Value x, int64_t y) {
  return arith::MulIOp::create(b, loc, x, indexConstant(b, loc, y));
}

/// An mma B fragment (k x n = 16 x 8) out of a shared [n][k pair] array:
/// lane l reads row nBase + l / 4, words wordBase + l % 4 and + 4.
SmallVector<Value, 2> bFragment(OpBuilder &b, Location loc, const Lanes &lanes,
                                Value shared, int64_t nBase, int64_t wordBase) {
  SmallVector<Value, 2> words;
  for (int64_t half = 0; half < 2; ++half)
    words.push_back(lanes.perLane(
        b, loc, b.getI32Type(), [&](OpBuilder &lb, Location ll, Value l) {
          Value row = addIndex(
              lb, ll,
              arith::DivUIOp::create(lb, ll, l, indexConstant(lb, ll, 4)),
              nBase);
          Value word = addIndex(
              lb, ll,
              arith::RemUIOp::create(lb, ll, l, indexConstant(lb, ll, 4)),
              wordBase + 4 * half);
          return memref::LoadOp::create(lb, ll, shared, ValueRange{row, word});
        }));
  return words;
}

/// Where a warp's accumulator element (register r of lane l, in n-block j
/// of 8 columns) sits: row l / 4 + 8 (r / 2), column 8 j + 2 (l % 4) + r % 2.
std::pair<Value, Value> accumulatorAt(OpBuilder &b, Location loc, Value lane,
                                      int64_t block, int64_t r) {
  Value row = addIndex(
      b, loc, arith::DivUIOp::create(b, loc, lane, indexConstant(b, loc, 4)),
      8 * (r / 2));
  Value column = addIndex(
      b, loc,
      mulIndex(b, loc,
               arith::RemUIOp::create(b, loc, lane, indexConstant(b, loc, 4)),
               2),
      8 * block + r % 2);
  return {row, column};
}

SmallVector<Value, 4> aFragmentOfAccumulators(OpBuilder &b, Location loc,
                                              KernelTarget target,
                                              ArrayRef<Value> acc,
                                              int64_t step) {
  // A registers: rows l / 4 and + 8 of columns 2 (l % 4), + 1 (registers 0
  // and 1), then of the same columns + 8 (2 and 3): the accumulators of
  // n-block 2 step (its registers 0, 1 and 2, 3), then of 2 step + 1.
  SmallVector<Value, 4> a;
  for (int64_t j : {2 * step, 2 * step + 1})
    for (int64_t r : {0, 2})
      a.push_back(
          packBf16Pair(b, loc, target, acc[4 * j + r], acc[4 * j + r + 1]));
  return a;
}

} // namespace mlir::aim
