//===- FlashAttention.cpp - attention's forward on tensor cores -----------===//
#include "codegen/kernels/FlashAttention.h"

#include "codegen/kernels/LowerToLinalg.h"
#include "codegen/kernels/TiledAttention.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

#include <cmath>

namespace mlir::aim {

namespace {

constexpr int64_t kWarp = 32;
constexpr int64_t kRowsAWarp = 16; // an mma's M
constexpr int64_t kWarps = kFlashQueryTile / kRowsAWarp;
constexpr int64_t kThreads = kWarps * kWarp;
/// Words a shared-memory row is padded by: rows of 8m + 4 words put the 8
/// rows a fragment load reads (4 words each) on 32 different banks.
constexpr int64_t kPadWords = 4;

/// `scalar`'s type with `like`'s shape (a lane value's type).
Type shapedLike(Value like, Type scalar) {
  if (auto vector = dyn_cast<VectorType>(like.getType()))
    return VectorType::get(vector.getShape(), scalar);
  return scalar;
}

/// Two float32 values (scalars or lane vectors) rounded to bfloat16
/// (nearest even) and packed into one 32-bit word, `low` in the low half:
/// the order of an mma fragment register's two elements. On the GPU as a
/// <2 x float> truncation, which NVPTX selects as one cvt.rn.bf16x2.f32; on
/// the host in arith (its bfloat16 conversions are expanded to integer
/// arithmetic, HostCompiler.cpp).
Value packBf16Pair(OpBuilder &b, Location loc, KernelTarget target, Value low,
                   Value high) {
  if (target == KernelTarget::GpuLaunch) {
    auto i32 = [&](int64_t v) {
      return LLVM::ConstantOp::create(b, loc, b.getI32Type(), v);
    };
    Value pair = LLVM::PoisonOp::create(
        b, loc, VectorType::get({2}, b.getF32Type()));
    pair = LLVM::InsertElementOp::create(b, loc, pair, low, i32(0));
    pair = LLVM::InsertElementOp::create(b, loc, pair, high, i32(1));
    Value rounded = LLVM::FPTruncOp::create(
        b, loc, VectorType::get({2}, b.getBF16Type()), pair);
    return LLVM::BitcastOp::create(b, loc, b.getI32Type(), rounded);
  }
  auto bits = [&](Value x) -> Value {
    Value h = arith::TruncFOp::create(b, loc, shapedLike(x, b.getBF16Type()), x);
    Value i = arith::BitcastOp::create(b, loc, shapedLike(x, b.getI16Type()), h);
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

/// On the host, the scratch an emulated mma.sync works in.
struct MmaScratch {
  Value a, b, c; // memref<4x32xi32>, memref<2x32xi32>, memref<4x32xf32>
};

/// One warp's registers. On the GPU a value is this lane's scalar; emulated
/// on the host, a vector<32 x T> of all 32 lanes' values (element l is
/// lane l's).
struct Lanes {
  KernelTarget target;
  Value lane;          // the GPU's lane id (index); null on the host
  MmaScratch scratch; // the host's

  bool onHost() const { return target == KernelTarget::HostEmulation; }

  Value constant(OpBuilder &b, Location loc, TypedAttr scalar) const {
    if (!onHost())
      return arith::ConstantOp::create(b, loc, scalar);
    auto type = VectorType::get({kWarp}, scalar.getType());
    return arith::ConstantOp::create(b, loc,
                                     DenseElementsAttr::get(type, scalar));
  }
  Value f32(OpBuilder &b, Location loc, double v) const {
    return constant(b, loc, b.getF32FloatAttr(v));
  }

  /// Each lane's `compute(lane)`, for what needs nothing of other lanes
  /// (addresses, loads, masks); on the host lane after lane.
  Value
  perLane(OpBuilder &b, Location loc, Type scalar,
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
          scf::YieldOp::create(
              lb, ll,
              Value(vector::InsertOp::create(lb, ll, x, current[0],
                                             OpFoldResult(l))));
        });
    return loop.getResult(0);
  }

  /// `use(lane, values at lane)` for each lane (stores).
  void forEachLane(OpBuilder &b, Location loc, ValueRange values,
                   function_ref<void(OpBuilder &, Location, Value, ValueRange)>
                       use) const {
    if (!onHost()) {
      use(b, loc, lane, values);
      return;
    }
    scf::ForOp::create(
        b, loc, indexConstant(b, loc, 0), indexConstant(b, loc, kWarp),
        indexConstant(b, loc, 1), ValueRange{},
        [&](OpBuilder &lb, Location ll, Value l, ValueRange) {
          SmallVector<Value> scalars;
          for (Value v : values)
            scalars.push_back(
                vector::ExtractOp::create(lb, ll, v, OpFoldResult(l)));
          use(lb, ll, l, scalars);
          scf::YieldOp::create(lb, ll);
        });
  }

  /// The value of lane (this lane xor `mask`).
  Value xorShuffle(OpBuilder &b, Location loc, Value v, int64_t mask) const {
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

  /// d = a b + c, mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32: a
  /// 16 x 16 A (4 words of bfloat16 pairs a lane), 16 x 8 B (2 words), 16 x
  /// 8 C and D (4 floats).
  SmallVector<Value, 4> mma(OpBuilder &b, Location loc, ArrayRef<Value> a,
                            ArrayRef<Value> bm, ArrayRef<Value> c) const {
    if (!onHost()) {
      Type f32 = b.getF32Type();
      Type result = LLVM::LLVMStructType::getLiteral(b.getContext(),
                                                     {f32, f32, f32, f32});
      auto op = NVVM::MmaOp::create(
          b, loc, result, a, bm, c, ArrayRef<int64_t>{16, 8, 16},
          std::nullopt, std::nullopt,
          std::array{NVVM::MMATypes::bf16, NVVM::MMATypes::bf16},
          std::array{NVVM::MMALayout::row, NVVM::MMALayout::col});
      SmallVector<Value, 4> d;
      for (int64_t i = 0; i < 4; ++i)
        d.push_back(LLVM::ExtractValueOp::create(b, loc, op.getResult(),
                                                 ArrayRef<int64_t>{i}));
      return d;
    }
    return emulatedMma(b, loc, a, bm, c);
  }

private:
  /// The PTX ISA's fragment layouts for m16n8k16 with 16-bit A and B
  /// (groupID = lane / 4, threadID_in_group = lane % 4):
  ///   A[row][k]: lane (row % 8) * 4 + (k % 8) / 2, register row / 8 +
  ///              2 (k / 8), half k % 2;
  ///   B[k][col]: lane col * 4 + (k % 8) / 2, register k / 8, half k % 2;
  ///   C/D register r of lane l: row l / 4 + 8 (r / 2), col 2 (l % 4) +
  ///              r % 2.
  /// Products are exact in float32; the sum over k runs in order.
  SmallVector<Value, 4> emulatedMma(OpBuilder &b, Location loc,
                                    ArrayRef<Value> a, ArrayRef<Value> bm,
                                    ArrayRef<Value> c) const {
    auto idx = [&](OpBuilder &ib, Location il, int64_t v) {
      return indexConstant(ib, il, v);
    };
    Value zero = idx(b, loc, 0);
    for (auto [i, v] : llvm::enumerate(a))
      vector::StoreOp::create(b, loc, v, scratch.a,
                              ValueRange{idx(b, loc, i), zero});
    for (auto [i, v] : llvm::enumerate(bm))
      vector::StoreOp::create(b, loc, v, scratch.b,
                              ValueRange{idx(b, loc, i), zero});
    for (auto [i, v] : llvm::enumerate(c))
      vector::StoreOp::create(b, loc, v, scratch.c,
                              ValueRange{idx(b, loc, i), zero});
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
    forRange(b, loc, kWarp, {}, [&](OpBuilder &lb, Location ll, Value l,
                                    ValueRange) -> SmallVector<Value> {
      forRange(lb, ll, 4, {}, [&](OpBuilder &rb, Location rl, Value r,
                                  ValueRange) -> SmallVector<Value> {
        Value row = add(rb, rl, div(rb, rl, l, 4), mul(rb, rl, div(rb, rl, r, 2), 8));
        Value col = add(rb, rl, mul(rb, rl, rem(rb, rl, l, 4), 2), rem(rb, rl, r, 2));
        Value start = memref::LoadOp::create(rb, rl, scratch.c, ValueRange{r, l});
        ValueRange sum = forRange(
            rb, rl, 16, start,
            [&](OpBuilder &kb, Location kl, Value k,
                ValueRange acc) -> SmallVector<Value> {
              Value pairInGroup = div(kb, kl, rem(kb, kl, k, 8), 2);
              Value half = rem(kb, kl, k, 2), upper = div(kb, kl, k, 8);
              Value aLane = add(kb, kl, mul(kb, kl, rem(kb, kl, row, 8), 4),
                                pairInGroup);
              Value aRegister =
                  add(kb, kl, div(kb, kl, row, 8), mul(kb, kl, upper, 2));
              Value bLane = add(kb, kl, mul(kb, kl, col, 4), pairInGroup);
              Value x = element(
                  kb, kl,
                  memref::LoadOp::create(kb, kl, scratch.a,
                                         ValueRange{aRegister, aLane}),
                  half);
              Value y = element(kb, kl,
                                memref::LoadOp::create(
                                    kb, kl, scratch.b, ValueRange{upper, bLane}),
                                half);
              return {arith::AddFOp::create(
                  kb, kl, acc[0], arith::MulFOp::create(kb, kl, x, y))};
            });
        memref::StoreOp::create(rb, rl, sum[0], scratch.c, ValueRange{r, l});
        return {};
      });
      return {};
    });
    SmallVector<Value, 4> d;
    auto type = VectorType::get({kWarp}, b.getF32Type());
    for (int64_t i = 0; i < 4; ++i)
      d.push_back(vector::LoadOp::create(b, loc, type, scratch.c,
                                         ValueRange{idx(b, loc, i), zero}));
    return d;
  }
};

/// The kernel's sizes and buffers.
struct FlashForward {
  mutable AttentionKernelOp op; // its accessors are not const
  KernelTarget target;
  int64_t batch, tokens, heads, dh, paddedDh, queryTiles;

  int64_t keyWords() const { return paddedDh / 2 + kPadWords; }
  int64_t valueWords() const { return kFlashKeyTile / 2 + kPadWords; }
  /// S's n-blocks (8 keys) and p v's k-steps (16 keys) a tile.
  int64_t keyBlocks() const { return kFlashKeyTile / 8; }
  int64_t keySteps() const { return kFlashKeyTile / 16; }
  /// q k's k-steps and the output's n-blocks over the (padded) channels.
  int64_t channelSteps() const { return paddedDh / 16; }
  int64_t channelBlocks() const { return paddedDh / 8; }

  /// buffer[sample, position, head offset + channel], 0 past the tokens
  /// or the head's channels (clamped indices and a select: no branch).
  Value load(OpBuilder &b, Location loc, Value buffer, Value sample,
             Value position, Value headOffset, Value channel,
             bool positionMayPass) const {
    Value valid;
    auto guard = [&](Value &i, int64_t bound) {
      Value inside = arith::CmpIOp::create(
          b, loc, arith::CmpIPredicate::ult, i, indexConstant(b, loc, bound));
      valid = valid ? arith::AndIOp::create(b, loc, valid, inside).getResult()
                    : inside;
      i = arith::MinUIOp::create(b, loc, i, indexConstant(b, loc, bound - 1));
    };
    if (positionMayPass)
      guard(position, tokens);
    if (paddedDh != dh)
      guard(channel, dh);
    Value x = memref::LoadOp::create(
        b, loc, buffer,
        ValueRange{sample, position,
                   arith::AddIOp::create(b, loc, headOffset, channel)});
    if (!valid)
      return x;
    return arith::SelectOp::create(
        b, loc, valid, x,
        arith::ConstantOp::create(b, loc, b.getF32FloatAttr(0.0)));
  }
};

Value add(OpBuilder &b, Location loc, Value x, int64_t y) {
  return arith::AddIOp::create(b, loc, x, indexConstant(b, loc, y));
}
Value mulIndex(OpBuilder &b, Location loc, Value x, int64_t y) {
  return arith::MulIOp::create(b, loc, x, indexConstant(b, loc, y));
}

/// The block's copy of key tile [begin, begin + kFlashKeyTile) into shared
/// memory: k as keys[key][channel pair], v as values[channel][key pair],
/// bfloat16 pairs. `thread` of `threads` (the host: 0 of 1) copies every
/// threads-th word; consecutive threads read consecutive channels.
void copyKeyTile(OpBuilder &b, Location loc, const FlashForward &f,
                 Value keys, Value values, Value thread, int64_t threads,
                 Value begin, Value sample, Value headOffset) {
  const bool pastTokens = f.tokens % kFlashKeyTile != 0;
  auto overWords = [&](int64_t words,
                       function_ref<void(OpBuilder &, Location, Value)> copy) {
    scf::ForOp::create(
        b, loc, indexConstant(b, loc, 0), indexConstant(b, loc, words / threads),
        indexConstant(b, loc, 1), ValueRange{},
        [&](OpBuilder &lb, Location ll, Value i, ValueRange) {
          copy(lb, ll,
               arith::AddIOp::create(lb, ll, mulIndex(lb, ll, i, threads),
                                     thread));
          scf::YieldOp::create(lb, ll);
        });
  };
  const int64_t pairs = f.paddedDh / 2;
  overWords(kFlashKeyTile * pairs, [&](OpBuilder &lb, Location ll, Value w) {
    Value key = arith::DivUIOp::create(lb, ll, w, indexConstant(lb, ll, pairs));
    Value pair = arith::RemUIOp::create(lb, ll, w, indexConstant(lb, ll, pairs));
    Value position = arith::AddIOp::create(lb, ll, begin, key);
    Value channel = mulIndex(lb, ll, pair, 2);
    auto at = [&](Value c) {
      return f.load(lb, ll, f.op.getKey(), sample, position, headOffset, c,
                    pastTokens);
    };
    memref::StoreOp::create(
        lb, ll, packBf16Pair(lb, ll, f.target, at(channel), at(add(lb, ll, channel, 1))),
        keys, ValueRange{key, pair});
  });
  overWords(f.paddedDh * (kFlashKeyTile / 2), [&](OpBuilder &lb, Location ll,
                                                 Value w) {
    Value channel =
        arith::RemUIOp::create(lb, ll, w, indexConstant(lb, ll, f.paddedDh));
    Value pair =
        arith::DivUIOp::create(lb, ll, w, indexConstant(lb, ll, f.paddedDh));
    Value position =
        arith::AddIOp::create(lb, ll, begin, mulIndex(lb, ll, pair, 2));
    auto at = [&](Value p) {
      return f.load(lb, ll, f.op.getValue(), sample, p, headOffset, channel,
                    pastTokens);
    };
    memref::StoreOp::create(
        lb, ll, packBf16Pair(lb, ll, f.target, at(position), at(add(lb, ll, position, 1))),
        values, ValueRange{channel, pair});
  });
}

/// An mma B fragment (k x n = 16 x 8) out of a shared [n][k pair] array:
/// lane l reads row nBase + l / 4, words wordBase + l % 4 and + 4.
SmallVector<Value, 2> bFragment(OpBuilder &b, Location loc, const Lanes &lanes,
                                Value shared, int64_t nBase, int64_t wordBase) {
  SmallVector<Value, 2> words;
  for (int64_t half = 0; half < 2; ++half)
    words.push_back(lanes.perLane(
        b, loc, b.getI32Type(), [&](OpBuilder &lb, Location ll, Value l) {
          Value row = add(lb, ll,
                          arith::DivUIOp::create(lb, ll, l,
                                                 indexConstant(lb, ll, 4)),
                          nBase);
          Value word = add(
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
  Value row = add(
      b, loc, arith::DivUIOp::create(b, loc, lane, indexConstant(b, loc, 4)),
      8 * (r / 2));
  Value column = add(
      b, loc,
      mulIndex(b, loc,
               arith::RemUIOp::create(b, loc, lane, indexConstant(b, loc, 4)),
               2),
      8 * block + r % 2);
  return {row, column};
}

/// The kernel's body for warp `warp` of block `block`: the warp's 16 query
/// rows against every key tile the rule leaves, output and row_logsumexp
/// stored. `copyTile(begin)` fills the shared tiles (with the block's
/// barriers on the GPU).
void emitWarp(OpBuilder &b, Location loc, const FlashForward &f,
              const Lanes &lanes, Value block, Value warp, Value keys,
              Value values,
              function_ref<void(OpBuilder &, Location, Value begin,
                                Value sample, Value headOffset)>
                  copyTile) {
  AttentionKernelOp op = f.op;
  SmallVector<Value> at =
      delinearize(b, loc, block, {f.batch, f.heads, f.queryTiles});
  Value sample = at[0], head = at[1];
  Value headOffset = mulIndex(b, loc, head, f.dh);
  Value queryBegin = mulIndex(b, loc, at[2], kFlashQueryTile);
  Value warpBegin =
      arith::AddIOp::create(b, loc, queryBegin, mulIndex(b, loc, warp, kRowsAWarp));
  Value tokens = indexConstant(b, loc, f.tokens);
  Value prefix = indexConstant(b, loc, 0);
  if (op.getPrefix())
    prefix = arith::IndexCastOp::create(
        b, loc, b.getIndexType(),
        memref::LoadOp::create(b, loc, op.getPrefix(), ValueRange{sample}));

  // q's A fragments, rounded once: register r of k-step s holds row
  // l / 4 + 8 (r % 2), channels 16 s + 2 (l % 4) + 8 (r / 2) and + 1.
  const bool queriesPast = f.tokens % kFlashQueryTile != 0;
  SmallVector<SmallVector<Value, 4>> query(f.channelSteps());
  for (int64_t s = 0; s < f.channelSteps(); ++s)
    for (int64_t r = 0; r < 4; ++r)
      query[s].push_back(lanes.perLane(
          b, loc, b.getI32Type(), [&](OpBuilder &lb, Location ll, Value l) {
            Value row = add(lb, ll,
                            arith::AddIOp::create(
                                lb, ll, warpBegin,
                                arith::DivUIOp::create(
                                    lb, ll, l, indexConstant(lb, ll, 4))),
                            8 * (r % 2));
            Value channel = add(
                lb, ll,
                mulIndex(lb, ll,
                         arith::RemUIOp::create(lb, ll, l,
                                                indexConstant(lb, ll, 4)),
                         2),
                16 * s + 8 * (r / 2));
            auto q = [&](Value c) {
              return f.load(lb, ll, op.getQuery(), sample, row, headOffset, c,
                            queriesPast);
            };
            return packBf16Pair(lb, ll, f.target, q(channel), q(add(lb, ll, channel, 1)));
          }));

  // The key tiles the rule leaves for the block's queries.
  Value queryEnd = arith::MinSIOp::create(
      b, loc, tokens, add(b, loc, queryBegin, kFlashQueryTile));
  Value emptyFrom = arith::MinSIOp::create(
      b, loc, tokens,
      attentionRuleBound(b, loc, op.getTileEmptyFromAttr(), queryBegin,
                         queryEnd, prefix, tokens));
  Value fullUntil = arith::MinSIOp::create(
      b, loc, tokens,
      attentionRuleBound(b, loc, op.getTileFullUntilAttr(), queryBegin,
                         queryEnd, prefix, indexConstant(b, loc, 0)));
  Value tiles = arith::CeilDivUIOp::create(
      b, loc, emptyFrom, indexConstant(b, loc, kFlashKeyTile));

  // State: each row half's (rows l / 4 and l / 4 + 8) running maximum and
  // this lane's part of its denominator, then the output's accumulators.
  SmallVector<Value> state = {lanes.f32(b, loc, -INFINITY),
                              lanes.f32(b, loc, -INFINITY),
                              lanes.f32(b, loc, 0.0), lanes.f32(b, loc, 0.0)};
  state.append(4 * f.channelBlocks(), lanes.f32(b, loc, 0.0));
  const double scale = op.getScale().convertToDouble();

  auto tileLoop = scf::ForOp::create(
      b, loc, indexConstant(b, loc, 0), tiles, indexConstant(b, loc, 1), state,
      [&](OpBuilder &lb, Location ll, Value t, ValueRange cur) {
        Value begin = mulIndex(lb, ll, t, kFlashKeyTile);
        copyTile(lb, ll, begin, sample, headOffset);

        // Scores in base 2: s = scale log2(e) q k^T (so that p is one ex2),
        // n-block j's register r at accumulatorAt(j, r).
        SmallVector<Value> scores;
        Value zero = lanes.f32(lb, ll, 0.0);
        for (int64_t j = 0; j < f.keyBlocks(); ++j) {
          SmallVector<Value, 4> acc(4, zero);
          for (int64_t s = 0; s < f.channelSteps(); ++s)
            acc = lanes.mma(lb, ll, query[s],
                            bFragment(lb, ll, lanes, keys, 8 * j, 8 * s), acc);
          Value scaleValue = lanes.f32(lb, ll, scale * M_LOG2E);
          for (Value v : acc)
            scores.push_back(arith::MulFOp::create(lb, ll, v, scaleValue));
        }

        // Pairs the mask hides (and keys past the tokens) as -inf, unless
        // the tile is full.
        Value full = arith::CmpIOp::create(
            lb, ll, arith::CmpIPredicate::sle,
            add(lb, ll, begin, kFlashKeyTile), fullUntil);
        auto masked = scf::IfOp::create(
            lb, ll, full,
            [&](OpBuilder &tb, Location tl) {
              scf::YieldOp::create(tb, tl, scores);
            },
            [&](OpBuilder &eb, Location el) {
              SmallVector<Value> out;
              Value minusInf = lanes.f32(eb, el, -INFINITY);
              for (int64_t j = 0; j < f.keyBlocks(); ++j)
                for (int64_t r = 0; r < 4; ++r) {
                  Value visible = lanes.perLane(
                      eb, el, eb.getI1Type(),
                      [&](OpBuilder &vb, Location vl, Value l) {
                        auto [row, column] = accumulatorAt(vb, vl, l, j, r);
                        Value query = arith::AddIOp::create(vb, vl, warpBegin, row);
                        Value key = arith::AddIOp::create(vb, vl, begin, column);
                        Value seen = keyIsVisible(vb, vl, op.getMask(), query,
                                                  key, prefix);
                        return arith::AndIOp::create(
                            vb, vl, seen,
                            arith::CmpIOp::create(vb, vl,
                                                  arith::CmpIPredicate::ult,
                                                  key, tokens));
                      });
                  out.push_back(arith::SelectOp::create(
                      eb, el, visible, scores[4 * j + r], minusInf));
                }
              scf::YieldOp::create(eb, el, out);
            });
        scores.assign(masked.getResults().begin(), masked.getResults().end());

        // Online softmax, row half h: registers 2h and 2h + 1 of each block.
        SmallVector<Value> next(cur.begin(), cur.end());
        SmallVector<Value, 2> rescale;
        SmallVector<Value> p(scores.size());
        for (int64_t h = 0; h < 2; ++h) {
          Value max = cur[h];
          for (int64_t j = 0; j < f.keyBlocks(); ++j)
            for (int64_t r = 2 * h; r < 2 * h + 2; ++r)
              max = arith::MaximumFOp::create(lb, ll, max, scores[4 * j + r]);
          for (int64_t mask : {1, 2}) // the quad holding the row
            max = arith::MaximumFOp::create(lb, ll, max,
                                            lanes.xorShuffle(lb, ll, max, mask));
          // A row with no visible key yet keeps -inf: exponents from 0.
          Value none = arith::CmpFOp::create(lb, ll, arith::CmpFPredicate::OEQ,
                                             max, lanes.f32(lb, ll, -INFINITY));
          Value base = arith::SelectOp::create(lb, ll, none,
                                               lanes.f32(lb, ll, 0.0), max);
          rescale.push_back(math::Exp2Op::create(
              lb, ll, arith::SubFOp::create(lb, ll, cur[h], base)));
          Value sum = arith::MulFOp::create(lb, ll, cur[2 + h], rescale[h]);
          for (int64_t j = 0; j < f.keyBlocks(); ++j)
            for (int64_t r = 2 * h; r < 2 * h + 2; ++r) {
              p[4 * j + r] = math::Exp2Op::create(
                  lb, ll, arith::SubFOp::create(lb, ll, scores[4 * j + r], base));
              sum = arith::AddFOp::create(lb, ll, sum, p[4 * j + r]);
            }
          next[h] = max;
          next[2 + h] = sum;
        }
        SmallVector<Value> out;
        for (int64_t i = 0; i < 4 * f.channelBlocks(); ++i)
          out.push_back(
              arith::MulFOp::create(lb, ll, cur[4 + i], rescale[(i % 4) / 2]));

        // out += p v: p's accumulator layout is already the A layout
        // (k-step u: n-blocks 2u and 2u + 1), rounded to bfloat16 pairs.
        for (int64_t u = 0; u < f.keySteps(); ++u) {
          SmallVector<Value, 4> a;
          for (int64_t j : {2 * u, 2 * u + 1})
            for (int64_t r : {0, 2})
              a.push_back(packBf16Pair(lb, ll, f.target, p[4 * j + r], p[4 * j + r + 1]));
          for (int64_t n = 0; n < f.channelBlocks(); ++n) {
            SmallVector<Value, 4> acc(out.begin() + 4 * n,
                                      out.begin() + 4 * n + 4);
            acc = lanes.mma(lb, ll, a,
                            bFragment(lb, ll, lanes, values, 8 * n, 8 * u), acc);
            std::copy(acc.begin(), acc.end(), out.begin() + 4 * n);
          }
        }
        std::copy(out.begin(), out.end(), next.begin() + 4);
        scf::YieldOp::create(lb, ll, next);
      });

  // The quad's denominators summed; output and row_logsumexp stored.
  ValueRange done = tileLoop.getResults();
  SmallVector<Value> results;
  SmallVector<Value, 2> inverse;
  for (int64_t h = 0; h < 2; ++h) {
    Value sum = done[2 + h];
    for (int64_t mask : {1, 2})
      sum = arith::AddFOp::create(b, loc, sum,
                                  lanes.xorShuffle(b, loc, sum, mask));
    inverse.push_back(
        arith::DivFOp::create(b, loc, lanes.f32(b, loc, 1.0), sum));
    // row_logsumexp = ln 2 (m + log2 l): back from base 2.
    results.push_back(arith::MulFOp::create(
        b, loc,
        arith::AddFOp::create(b, loc, done[h],
                              math::Log2Op::create(b, loc, sum)),
        lanes.f32(b, loc, M_LN2)));
  }
  for (int64_t i = 0; i < 4 * f.channelBlocks(); ++i)
    results.push_back(
        arith::MulFOp::create(b, loc, done[4 + i], inverse[(i % 4) / 2]));
  lanes.forEachLane(b, loc, results, [&](OpBuilder &sb, Location sl, Value l,
                                         ValueRange x) {
    auto guarded = [&](OpBuilder &gb, Location gl, Value condition,
                       function_ref<void(OpBuilder &, Location)> store) {
      if (!condition) {
        store(gb, gl);
        return;
      }
      scf::IfOp::create(gb, gl, condition, [&](OpBuilder &tb, Location tl) {
        store(tb, tl);
        scf::YieldOp::create(tb, tl);
      });
    };
    auto andAlso = [&](Value x, Value y) -> Value {
      if (!x || !y)
        return x ? x : y;
      return arith::AndIOp::create(sb, sl, x, y);
    };
    for (int64_t i = 0; i < 4 * f.channelBlocks(); ++i) {
      const int64_t n = i / 4, r = i % 4;
      if (8 * n >= f.dh)
        continue; // padding channels only
      auto [row, column] = accumulatorAt(sb, sl, l, n, r);
      Value query = arith::AddIOp::create(sb, sl, warpBegin, row);
      Value condition;
      if (queriesPast)
        condition = arith::CmpIOp::create(sb, sl, arith::CmpIPredicate::ult,
                                          query, tokens);
      if (8 * n + 8 > f.dh)
        condition = andAlso(
            condition,
            arith::CmpIOp::create(sb, sl, arith::CmpIPredicate::ult, column,
                                  indexConstant(sb, sl, f.dh)));
      guarded(sb, sl, condition, [&](OpBuilder &gb, Location gl) {
        memref::StoreOp::create(
            gb, gl, x[2 + i], op.getResult(),
            ValueRange{sample, query,
                       arith::AddIOp::create(gb, gl, headOffset, column)});
      });
    }
    // row_logsumexp: by the first lane of each quad.
    Value firstOfQuad = arith::CmpIOp::create(
        sb, sl, arith::CmpIPredicate::eq,
        arith::RemUIOp::create(sb, sl, l, indexConstant(sb, sl, 4)),
        indexConstant(sb, sl, 0));
    for (int64_t h = 0; h < 2; ++h) {
      auto [row, column] = accumulatorAt(sb, sl, l, 0, 2 * h);
      (void)column;
      Value query = arith::AddIOp::create(sb, sl, warpBegin, row);
      Value condition = firstOfQuad;
      if (queriesPast)
        condition = andAlso(condition,
                            arith::CmpIOp::create(sb, sl,
                                                  arith::CmpIPredicate::ult,
                                                  query, tokens));
      guarded(sb, sl, condition, [&](OpBuilder &gb, Location gl) {
        memref::StoreOp::create(gb, gl, x[h], op.getRowLogsumexp(),
                                ValueRange{sample, head, query});
      });
    }
  });
}

} // namespace

void emitFlashAttentionForward(OpBuilder &b, AttentionKernelOp op,
                               KernelTarget target) {
  Location loc = op.getLoc();
  auto keyType = cast<MemRefType>(op.getKey().getType());
  FlashForward f{op,
                 target,
                 keyType.getDimSize(0),
                 keyType.getDimSize(1),
                 op.getHeads(),
                 keyType.getDimSize(2) / op.getHeads(),
                 0,
                 0};
  f.paddedDh = (f.dh + 15) / 16 * 16;
  f.queryTiles = (f.tokens + kFlashQueryTile - 1) / kFlashQueryTile;
  const int64_t blocks = f.batch * f.heads * f.queryTiles;
  Type i32 = b.getI32Type();

  if (target == KernelTarget::GpuLaunch) {
    auto workgroup = gpu::AddressSpaceAttr::get(b.getContext(),
                                                gpu::AddressSpace::Workgroup);
    auto shared = [&](int64_t rows, int64_t words) {
      return MemRefType::get({rows, words}, i32, MemRefLayoutAttrInterface{},
                             workgroup);
    };
    Value one = indexConstant(b, loc, 1);
    auto launch = gpu::LaunchOp::create(
        b, loc, indexConstant(b, loc, blocks), one, one,
        indexConstant(b, loc, kThreads), one, one, /*dynamicShared=*/nullptr,
        /*asyncToken=*/nullptr, /*asyncDependencies=*/{},
        TypeRange{shared(kFlashKeyTile, f.keyWords()),
                  shared(f.paddedDh, f.valueWords())});
    OpBuilder in = OpBuilder::atBlockEnd(&launch.getBody().front());
    Value thread = launch.getThreadIds().x;
    Value keys = launch.getWorkgroupAttributions()[0],
          values = launch.getWorkgroupAttributions()[1];
    Lanes lanes{target,
                arith::RemUIOp::create(in, loc, thread,
                                       indexConstant(in, loc, kWarp)),
                {}};
    emitWarp(in, loc, f, lanes, launch.getBlockIds().x,
             arith::DivUIOp::create(in, loc, thread,
                                    indexConstant(in, loc, kWarp)),
             keys, values,
             [&](OpBuilder &cb, Location cl, Value begin, Value sample,
                 Value headOffset) {
               gpu::BarrierOp::create(cb, cl); // the last tile is read
               copyKeyTile(cb, cl, f, keys, values, thread, kThreads, begin,
                           sample, headOffset);
               gpu::BarrierOp::create(cb, cl); // this one is written
             });
    gpu::TerminatorOp::create(in, loc);
    return;
  }

  // The host: blocks and their warps one after another, each warp copying
  // the tiles it reads itself; shared memory and the mma scratch are the
  // function's stack.
  OpBuilder entry(b.getContext());
  entry.setInsertionPointToStart(
      &op->getParentOfType<FunctionOpInterface>().getFunctionBody().front());
  auto stackBuffer = [&](ArrayRef<int64_t> shape, Type element) {
    return memref::AllocaOp::create(entry, loc, MemRefType::get(shape, element))
        .getResult();
  };
  Value keys = stackBuffer({kFlashKeyTile, f.keyWords()}, i32);
  Value values = stackBuffer({f.paddedDh, f.valueWords()}, i32);
  Lanes lanes{target,
              Value(),
              {stackBuffer({4, kWarp}, i32), stackBuffer({2, kWarp}, i32),
               stackBuffer({4, kWarp}, b.getF32Type())}};
  auto loop = [&](OpBuilder &lb, Location ll, int64_t n,
                  function_ref<void(OpBuilder &, Location, Value)> body) {
    scf::ForOp::create(lb, ll, indexConstant(lb, ll, 0),
                       indexConstant(lb, ll, n), indexConstant(lb, ll, 1),
                       ValueRange{},
                       [&](OpBuilder &fb, Location fl, Value i, ValueRange) {
                         body(fb, fl, i);
                         scf::YieldOp::create(fb, fl);
                       });
  };
  loop(b, loc, blocks, [&](OpBuilder &bb, Location bl, Value block) {
    loop(bb, bl, kWarps, [&](OpBuilder &wb, Location wl, Value warp) {
      emitWarp(wb, wl, f, lanes, block, warp, keys, values,
               [&](OpBuilder &cb, Location cl, Value begin, Value sample,
                   Value headOffset) {
                 copyKeyTile(cb, cl, f, keys, values,
                             indexConstant(cb, cl, 0), 1, begin, sample,
                             headOffset);
               });
    });
  });
}

} // namespace mlir::aim
