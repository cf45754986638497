//===- TiledAttention.cpp - attention by the tile rule, a warp a row ------===//
#include "codegen/kernels/TiledAttention.h"

#include "codegen/kernels/FlashAttention.h"
#include "codegen/kernels/LowerToLinalg.h"
#include "dialects/aim/AimOps.h"

#include "mlir/Dialect/Affine/Utils.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
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

//===----------------------------------------------------------------------===//
// Before bufferization: the ops' buffer forms
//===----------------------------------------------------------------------===//

/// A tensor's buffer with any strides (q, k and v are slices of one qkv
/// buffer), only read.
Value readBuffer(OpBuilder &b, Location loc, Value tensor) {
  if (!tensor)
    return tensor;
  auto type = cast<RankedTensorType>(tensor.getType());
  SmallVector<int64_t> strides(type.getRank(), ShapedType::kDynamic);
  auto layout = StridedLayoutAttr::get(b.getContext(), ShapedType::kDynamic,
                                       strides);
  return bufferization::ToBufferOp::create(
      b, loc, MemRefType::get(type.getShape(), type.getElementType(), layout),
      tensor, /*read_only=*/true);
}

Value freshBuffer(OpBuilder &b, Location loc, Value result) {
  auto type = cast<RankedTensorType>(result.getType());
  return memref::AllocOp::create(
      b, loc, MemRefType::get(type.getShape(), type.getElementType()));
}

/// The tensor a kernel op writes: its own fresh buffer, aliased by nothing.
Value writtenTensor(OpBuilder &b, Location loc, Value result, Value buffer) {
  return bufferization::ToTensorOp::create(b, loc, result.getType(), buffer,
                                           b.getUnitAttr(), b.getUnitAttr());
}

bool isF32(Value v) {
  return cast<ShapedType>(v.getType()).getElementType().isF32();
}

struct AttentionToKernel : OpRewritePattern<AttentionOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(AttentionOp op,
                                PatternRewriter &b) const override {
    if (op.getLiveQueries() || !isF32(op.getQuery()))
      return failure(); // live rows: scattered first (LowerToLinalg.cpp)
    Location loc = op.getLoc();
    Value out = freshBuffer(b, loc, op.getResult()),
          lse = freshBuffer(b, loc, op.getRowLogsumexp());
    AttentionKernelOp::create(
        b, loc, readBuffer(b, loc, op.getQuery()),
        readBuffer(b, loc, op.getKey()), readBuffer(b, loc, op.getValue()),
        readBuffer(b, loc, op.getPrefix()), out, lse, op.getHeadsAttr(),
        op.getMaskAttr(), op.getScaleAttr(), op.getTileEmptyFromAttr(),
        op.getTileFullUntilAttr());
    b.replaceOp(op, {writtenTensor(b, loc, op.getResult(), out),
                     writtenTensor(b, loc, op.getRowLogsumexp(), lse)});
    return success();
  }
};

struct AttentionGradToKernel : OpRewritePattern<AttentionGradOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(AttentionGradOp op,
                                PatternRewriter &b) const override {
    if (op.getLiveQueries() || !isF32(op.getQuery()))
      return failure();
    Location loc = op.getLoc();
    Value dq = freshBuffer(b, loc, op.getQueryGrad()),
          dk = freshBuffer(b, loc, op.getKeyGrad()),
          dv = freshBuffer(b, loc, op.getValueGrad());
    auto read = [&](Value v) { return readBuffer(b, loc, v); };
    AttentionGradKernelOp::create(
        b, loc, read(op.getGrad()), read(op.getQuery()), read(op.getKey()),
        read(op.getValue()), read(op.getOutput()), read(op.getRowLogsumexp()),
        read(op.getPrefix()), dq, dk, dv, op.getHeadsAttr(), op.getMaskAttr(),
        op.getScaleAttr(), op.getTileEmptyFromAttr(),
        op.getTileFullUntilAttr());
    b.replaceOp(op, {writtenTensor(b, loc, op.getQueryGrad(), dq),
                     writtenTensor(b, loc, op.getKeyGrad(), dk),
                     writtenTensor(b, loc, op.getValueGrad(), dv)});
    return success();
  }
};

//===----------------------------------------------------------------------===//
// After bufferization: the kernels
//===----------------------------------------------------------------------===//

Value f32Constant(OpBuilder &b, Location loc, double v) {
  return arith::ConstantOp::create(b, loc, b.getF32FloatAttr(v));
}

/// One warp's view of a head's dh channels. On the GPU a thread is one lane
/// and holds perLane values: channels lane, lane + 32, ... (element j is
/// channel 32 j + lane). Emulated on the host, one thread holds all 32
/// lanes: element e is lane e % 32's value j = e / 32, channel e.
struct Warp {
  KernelTarget target;
  int64_t dh;
  Value lane; // the GPU's lane id (index); null on the host

  int64_t lanesHeld() const {
    return target == KernelTarget::GpuLaunch ? 1 : kWarp;
  }
  int64_t perLane() const { return (dh + kWarp - 1) / kWarp; }
  int64_t elements() const { return lanesHeld() * perLane(); }
};

/// The `w.elements()` values of one head's row (`buffer[sample, position,
/// head offset + channel]`); 0 for channels past dh (a lane with none).
SmallVector<Value> loadRow(OpBuilder &b, Location loc, const Warp &w,
                           Value buffer, Value sample, Value position,
                           Value headOffset) {
  SmallVector<Value> row;
  Value zero = f32Constant(b, loc, 0.0);
  for (int64_t e = 0; e < w.elements(); ++e) {
    int64_t j = e / w.lanesHeld();
    if (w.target == KernelTarget::HostEmulation) {
      int64_t channel = j * kWarp + e % kWarp;
      if (channel >= w.dh) {
        row.push_back(zero);
        continue;
      }
      Value at = arith::AddIOp::create(b, loc, headOffset,
                                       indexConstant(b, loc, channel));
      row.push_back(memref::LoadOp::create(
          b, loc, buffer, ValueRange{sample, position, at}));
      continue;
    }
    Value channel = arith::AddIOp::create(b, loc, w.lane,
                                          indexConstant(b, loc, j * kWarp));
    if ((j + 1) * kWarp <= w.dh) { // every lane has this one
      Value at = arith::AddIOp::create(b, loc, headOffset, channel);
      row.push_back(memref::LoadOp::create(b, loc, buffer,
                                           ValueRange{sample, position, at}));
      continue;
    }
    // Lanes past dh read the last channel and drop it: no branch.
    Value last = indexConstant(b, loc, w.dh - 1);
    Value clamped = arith::MinUIOp::create(b, loc, channel, last);
    Value at = arith::AddIOp::create(b, loc, headOffset, clamped);
    Value x = memref::LoadOp::create(b, loc, buffer,
                                     ValueRange{sample, position, at});
    Value valid = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ule,
                                        channel, last);
    row.push_back(arith::SelectOp::create(b, loc, valid, x, zero));
  }
  return row;
}

void storeRow(OpBuilder &b, Location loc, const Warp &w, ValueRange row,
              Value buffer, Value sample, Value position, Value headOffset) {
  for (int64_t e = 0; e < w.elements(); ++e) {
    int64_t j = e / w.lanesHeld();
    if (w.target == KernelTarget::HostEmulation) {
      int64_t channel = j * kWarp + e % kWarp;
      if (channel < w.dh)
        memref::StoreOp::create(
            b, loc, row[e], buffer,
            ValueRange{sample, position,
                       arith::AddIOp::create(b, loc, headOffset,
                                             indexConstant(b, loc, channel))});
      continue;
    }
    Value channel = arith::AddIOp::create(b, loc, w.lane,
                                          indexConstant(b, loc, j * kWarp));
    Value at = arith::AddIOp::create(b, loc, headOffset, channel);
    auto store = [&](OpBuilder &sb, Location sl) {
      memref::StoreOp::create(sb, sl, row[e], buffer,
                              ValueRange{sample, position, at});
    };
    if ((j + 1) * kWarp <= w.dh) {
      store(b, loc);
      continue;
    }
    Value valid = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult,
                                        channel, indexConstant(b, loc, w.dh));
    scf::IfOp::create(b, loc, valid, [&](OpBuilder &tb, Location tl) {
      store(tb, tl);
      scf::YieldOp::create(tb, tl);
    });
  }
}

/// A value of the whole row (the same in every lane), stored once.
void storeOnce(OpBuilder &b, Location loc, const Warp &w, Value value,
               Value buffer, ValueRange indices) {
  if (w.target == KernelTarget::HostEmulation) {
    memref::StoreOp::create(b, loc, value, buffer, indices);
    return;
  }
  Value first = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, w.lane,
                                      indexConstant(b, loc, 0));
  scf::IfOp::create(b, loc, first, [&](OpBuilder &tb, Location tl) {
    memref::StoreOp::create(tb, tl, value, buffer, indices);
    scf::YieldOp::create(tb, tl);
  });
}

/// sum_e a[e] b[e] over the whole row: each lane's own products, then (on
/// the GPU) the 32 lanes' partial sums by a butterfly of shuffles, so that
/// every lane has the total.
Value dot(OpBuilder &b, Location loc, const Warp &w, ValueRange x,
          ValueRange y) {
  Value sum = arith::MulFOp::create(b, loc, x[0], y[0]);
  for (size_t e = 1; e < x.size(); ++e)
    sum = arith::AddFOp::create(b, loc, sum,
                                arith::MulFOp::create(b, loc, x[e], y[e]));
  if (w.target == KernelTarget::HostEmulation)
    return sum;
  Value width = arith::ConstantIntOp::create(b, loc, b.getI32Type(), kWarp);
  for (int64_t offset = kWarp / 2; offset >= 1; offset /= 2) {
    Value o = arith::ConstantIntOp::create(b, loc, b.getI32Type(), offset);
    Value other = gpu::ShuffleOp::create(b, loc, sum, o, width,
                                         gpu::ShuffleMode::XOR)
                      .getShuffleResult();
    sum = arith::AddFOp::create(b, loc, sum, other);
  }
  return sum;
}

/// acc[e] * s + t * x[e], element by element (s null: acc[e] + t x[e]).
SmallVector<Value> scaleAndAdd(OpBuilder &b, Location loc, ValueRange acc,
                               Value s, Value t, ValueRange x) {
  SmallVector<Value> out;
  for (auto [a, v] : llvm::zip(acc, x)) {
    Value kept = s ? arith::MulFOp::create(b, loc, a, s).getResult() : a;
    out.push_back(arith::AddFOp::create(
        b, loc, kept, arith::MulFOp::create(b, loc, t, v)));
  }
  return out;
}

SmallVector<Value> scaled(OpBuilder &b, Location loc, ValueRange x, Value s) {
  SmallVector<Value> out;
  for (Value v : x)
    out.push_back(arith::MulFOp::create(b, loc, v, s));
  return out;
}

/// One kernel of warps, one row each (rows of (sample, head, position),
/// position fastest: a block's warps share their keys in cache). On the
/// host, the blocks and their warps one after another, 32 lanes at once.
void emitRowKernel(
    OpBuilder &b, Location loc, KernelTarget target, int64_t rows,
    function_ref<void(OpBuilder &, Location, Value row, Value lane)> body) {
  const int64_t warps = kAttentionWarpsPerBlock;
  const int64_t blocks = (rows + warps - 1) / warps;
  auto guarded = [&](OpBuilder &gb, Location gl, Value block, Value warp,
                     Value lane) {
    Value row = arith::AddIOp::create(
        gb, gl,
        arith::MulIOp::create(gb, gl, block, indexConstant(gb, gl, warps)),
        warp);
    Value inside = arith::CmpIOp::create(gb, gl, arith::CmpIPredicate::ult,
                                         row, indexConstant(gb, gl, rows));
    scf::IfOp::create(gb, gl, inside, [&](OpBuilder &tb, Location tl) {
      body(tb, tl, row, lane);
      scf::YieldOp::create(tb, tl);
    });
  };
  if (target == KernelTarget::GpuLaunch) {
    Value one = indexConstant(b, loc, 1);
    auto launch = gpu::LaunchOp::create(b, loc, indexConstant(b, loc, blocks),
                                        one, one,
                                        indexConstant(b, loc, warps * kWarp),
                                        one, one);
    OpBuilder in = OpBuilder::atBlockEnd(&launch.getBody().front());
    Value thread = launch.getThreadIds().x;
    Value size = indexConstant(in, loc, kWarp);
    guarded(in, loc, launch.getBlockIds().x,
            arith::DivUIOp::create(in, loc, thread, size),
            arith::RemUIOp::create(in, loc, thread, size));
    gpu::TerminatorOp::create(in, loc);
    return;
  }
  auto loop = [&](OpBuilder &lb, Location ll, int64_t n,
                  function_ref<void(OpBuilder &, Location, Value)> f) {
    scf::ForOp::create(lb, ll, indexConstant(lb, ll, 0),
                       indexConstant(lb, ll, n), indexConstant(lb, ll, 1),
                       ValueRange{},
                       [&](OpBuilder &fb, Location fl, Value i, ValueRange) {
                         f(fb, fl, i);
                         scf::YieldOp::create(fb, fl);
                       });
  };
  loop(b, loc, blocks, [&](OpBuilder &bb, Location bl, Value block) {
    loop(bb, bl, warps, [&](OpBuilder &wb, Location wl, Value warp) {
      guarded(wb, wl, block, warp, Value());
    });
  });
}

/// What every attention kernel reads of its op.
struct AttentionShape {
  int64_t batch, tokens, heads, dh;
  MaskKind mask;
  double scale;
  Value prefix;
  AffineMapAttr emptyFrom, fullUntil;
};

/// The row's (sample, head, position), its channels' offset and its
/// sample's prefix length (0 without one).
struct RowIndex {
  Value sample, head, position, headOffset, prefix;
};

RowIndex rowIndex(OpBuilder &b, Location loc, const AttentionShape &s,
                  Value row) {
  SmallVector<Value> at = delinearize(b, loc, row, {s.batch, s.heads, s.tokens});
  RowIndex r{at[0], at[1], at[2],
             arith::MulIOp::create(b, loc, at[1], indexConstant(b, loc, s.dh)),
             indexConstant(b, loc, 0)};
  if (s.prefix)
    r.prefix = arith::IndexCastOp::create(
        b, loc, b.getIndexType(),
        memref::LoadOp::create(b, loc, s.prefix, ValueRange{r.sample}));
  return r;
}

/// `visit(index, state)` for each index in [begin, end), threading `state`.
using Visit = function_ref<SmallVector<Value>(OpBuilder &, Location, Value,
                                              ValueRange)>;
SmallVector<Value> overIndices(OpBuilder &b, Location loc, Value begin,
                               Value end, ValueRange state, Visit visit) {
  auto loop = scf::ForOp::create(
      b, loc, begin, end, indexConstant(b, loc, 1), state,
      [&](OpBuilder &lb, Location ll, Value i, ValueRange current) {
        scf::YieldOp::create(lb, ll, visit(lb, ll, i, current));
      });
  return loop.getResults();
}

/// A tile's pairs: without the mask test where `full`, with it otherwise
/// (a branch the whole warp takes alike, in one loop: as two loops, ptxas
/// spilled in the dq kernel).
SmallVector<Value> fullOrPartial(
    OpBuilder &b, Location loc, Value full, Value begin, Value end,
    ValueRange state,
    function_ref<Value(OpBuilder &, Location, Value)> visibleAt, Visit visit) {
  return overIndices(
      b, loc, begin, end, state,
      [&](OpBuilder &lb, Location ll, Value i,
          ValueRange current) -> SmallVector<Value> {
        auto choice = scf::IfOp::create(
            lb, ll, full,
            [&](OpBuilder &tb, Location tl) {
              scf::YieldOp::create(tb, tl, visit(tb, tl, i, current));
            },
            [&](OpBuilder &eb, Location el) {
              auto test = scf::IfOp::create(
                  eb, el, visibleAt(eb, el, i),
                  [&](OpBuilder &vb, Location vl) {
                    scf::YieldOp::create(vb, vl, visit(vb, vl, i, current));
                  },
                  [&](OpBuilder &nb, Location nl) {
                    scf::YieldOp::create(nb, nl, current);
                  });
              scf::YieldOp::create(eb, el, test.getResults());
            });
        return choice.getResults();
      });
}

/// The keys of query row `r`, tile by tile: tiles from tile_empty_from on
/// are never visited; `visit(key, state)` on each visible key.
SmallVector<Value> overKeysOfRow(OpBuilder &b, Location loc,
                                 const AttentionShape &s, const RowIndex &r,
                                 ValueRange state, Visit visit) {
  Value n = indexConstant(b, loc, s.tokens);
  Value tile = indexConstant(b, loc, kAttentionTile);
  Value rowEnd =
      arith::AddIOp::create(b, loc, r.position, indexConstant(b, loc, 1));
  Value emptyFrom = arith::MinSIOp::create(
      b, loc, n,
      attentionRuleBound(b, loc, s.emptyFrom, r.position, rowEnd, r.prefix, n));
  Value fullUntil = attentionRuleBound(b, loc, s.fullUntil, r.position, rowEnd,
                                       r.prefix, indexConstant(b, loc, 0));
  // ceil(emptyFrom / tile) tiles: each begins before emptyFrom.
  Value tiles = arith::CeilDivUIOp::create(b, loc, emptyFrom, tile);
  auto loop = scf::ForOp::create(
      b, loc, indexConstant(b, loc, 0), tiles, indexConstant(b, loc, 1), state,
      [&](OpBuilder &lb, Location ll, Value t, ValueRange current) {
        Value begin = arith::MulIOp::create(lb, ll, t, tile);
        Value end = arith::MinSIOp::create(
            lb, ll, n, arith::AddIOp::create(lb, ll, begin, tile));
        Value full = arith::CmpIOp::create(lb, ll, arith::CmpIPredicate::sle,
                                           end, fullUntil);
        auto visibleAt = [&](OpBuilder &vb, Location vl, Value key) {
          return keyIsVisible(vb, vl, s.mask, r.position, key, r.prefix);
        };
        scf::YieldOp::create(lb, ll,
                             fullOrPartial(lb, ll, full, begin, end, current,
                                           visibleAt, visit));
      });
  return loop.getResults();
}

AttentionShape shapeOf(Operation *op, Value key, int64_t heads, MaskKind mask,
                       double scale, Value prefix, AffineMapAttr emptyFrom,
                       AffineMapAttr fullUntil) {
  auto type = cast<MemRefType>(key.getType());
  return AttentionShape{type.getDimSize(0),
                        type.getDimSize(1),
                        heads,
                        type.getDimSize(2) / heads,
                        mask,
                        scale,
                        prefix,
                        emptyFrom,
                        fullUntil};
}

/// aim.attention_kernel: a warp a query row, an online softmax over its
/// visible keys.
void emitForward(OpBuilder &b, AttentionKernelOp op, KernelTarget target) {
  Location loc = op.getLoc();
  AttentionShape s =
      shapeOf(op, op.getKey(), op.getHeads(), op.getMask(),
              op.getScale().convertToDouble(), op.getPrefix(),
              op.getTileEmptyFromAttr(), op.getTileFullUntilAttr());
  emitRowKernel(
      b, loc, target, s.batch * s.heads * s.tokens,
      [&](OpBuilder &kb, Location kl, Value row, Value lane) {
        Warp w{target, s.dh, lane};
        RowIndex r = rowIndex(kb, kl, s, row);
        SmallVector<Value> q = loadRow(kb, kl, w, op.getQuery(), r.sample,
                                       r.position, r.headOffset);
        Value scale = f32Constant(kb, kl, s.scale);
        // State: running maximum, denominator, unnormalised output.
        SmallVector<Value> state = {f32Constant(kb, kl, -INFINITY),
                                    f32Constant(kb, kl, 0.0)};
        state.append(w.elements(), f32Constant(kb, kl, 0.0));
        auto visit = [&](OpBuilder &vb, Location vl, Value key,
                         ValueRange cur) -> SmallVector<Value> {
          SmallVector<Value> k = loadRow(vb, vl, w, op.getKey(), r.sample, key,
                                         r.headOffset);
          Value score =
              arith::MulFOp::create(vb, vl, dot(vb, vl, w, q, k), scale);
          Value max = arith::MaximumFOp::create(vb, vl, cur[0], score);
          Value rescale = math::ExpOp::create(
              vb, vl, arith::SubFOp::create(vb, vl, cur[0], max));
          Value p = math::ExpOp::create(
              vb, vl, arith::SubFOp::create(vb, vl, score, max));
          SmallVector<Value> v = loadRow(vb, vl, w, op.getValue(), r.sample,
                                         key, r.headOffset);
          SmallVector<Value> next = {
              max, arith::AddFOp::create(
                       vb, vl, arith::MulFOp::create(vb, vl, cur[1], rescale),
                       p)};
          llvm::append_range(
              next, scaleAndAdd(vb, vl, cur.drop_front(2), rescale, p, v));
          return next;
        };
        SmallVector<Value> done = overKeysOfRow(kb, kl, s, r, state, visit);
        Value inverse =
            arith::DivFOp::create(kb, kl, f32Constant(kb, kl, 1.0), done[1]);
        storeRow(kb, kl, w,
                 scaled(kb, kl, ValueRange(done).drop_front(2), inverse),
                 op.getResult(), r.sample, r.position, r.headOffset);
        Value lse = arith::AddFOp::create(kb, kl, done[0],
                                          math::LogOp::create(kb, kl, done[1]));
        storeOnce(kb, kl, w, lse, op.getRowLogsumexp(),
                  ValueRange{r.sample, r.head, r.position});
      });
}

/// aim.attention_grad_kernel: a warp a query row writes dq and
/// delta = <do, o> (into `delta`, [B, heads, N]); then a warp a key row
/// writes dk and dv, walking the query tiles that see it.
void emitBackward(OpBuilder &b, AttentionGradKernelOp op, KernelTarget target) {
  Location loc = op.getLoc();
  AttentionShape s =
      shapeOf(op, op.getKey(), op.getHeads(), op.getMask(),
              op.getScale().convertToDouble(), op.getPrefix(),
              op.getTileEmptyFromAttr(), op.getTileFullUntilAttr());
  const int64_t rows = s.batch * s.heads * s.tokens;
  Value delta = memref::AllocOp::create(
      b, loc, MemRefType::get({s.batch, s.heads, s.tokens}, b.getF32Type()));

  // ds = p (<do_q, v_k> - delta_q), p = exp(scale <q, k> - lse_q).
  auto scoreGradient = [&](OpBuilder &vb, Location vl, const Warp &w,
                           ValueRange q, ValueRange k, ValueRange dout,
                           ValueRange v, Value lse, Value rowDelta) {
    Value score = arith::MulFOp::create(vb, vl, dot(vb, vl, w, q, k),
                                        f32Constant(vb, vl, s.scale));
    Value p = math::ExpOp::create(vb, vl,
                                  arith::SubFOp::create(vb, vl, score, lse));
    Value dp = dot(vb, vl, w, dout, v);
    Value ds = arith::MulFOp::create(
        vb, vl, p, arith::SubFOp::create(vb, vl, dp, rowDelta));
    return std::pair{p, ds};
  };

  emitRowKernel(
      b, loc, target, rows,
      [&](OpBuilder &kb, Location kl, Value row, Value lane) {
        Warp w{target, s.dh, lane};
        RowIndex r = rowIndex(kb, kl, s, row);
        auto load = [&](Value buffer) {
          return loadRow(kb, kl, w, buffer, r.sample, r.position, r.headOffset);
        };
        SmallVector<Value> q = load(op.getQuery()), dout = load(op.getGrad()),
                           out = load(op.getOutput());
        SmallVector<Value, 3> stats = {r.sample, r.head, r.position};
        Value lse = memref::LoadOp::create(kb, kl, op.getRowLogsumexp(), stats);
        Value rowDelta = dot(kb, kl, w, dout, out);
        storeOnce(kb, kl, w, rowDelta, delta, stats);
        SmallVector<Value> state(w.elements(), f32Constant(kb, kl, 0.0));
        auto visit = [&](OpBuilder &vb, Location vl, Value key,
                         ValueRange dq) -> SmallVector<Value> {
          SmallVector<Value> k = loadRow(vb, vl, w, op.getKey(), r.sample, key,
                                         r.headOffset),
                             v = loadRow(vb, vl, w, op.getValue(), r.sample,
                                         key, r.headOffset);
          Value ds = scoreGradient(vb, vl, w, q, k, dout, v, lse, rowDelta)
                         .second;
          return scaleAndAdd(vb, vl, dq, Value(), ds, k);
        };
        SmallVector<Value> dq = overKeysOfRow(kb, kl, s, r, state, visit);
        storeRow(kb, kl, w, scaled(kb, kl, dq, f32Constant(kb, kl, s.scale)),
                 op.getQueryGrad(), r.sample, r.position, r.headOffset);
      });

  emitRowKernel(
      b, loc, target, rows,
      [&](OpBuilder &kb, Location kl, Value row, Value lane) {
        Warp w{target, s.dh, lane};
        RowIndex r = rowIndex(kb, kl, s, row); // r.position: the key
        SmallVector<Value> k = loadRow(kb, kl, w, op.getKey(), r.sample,
                                       r.position, r.headOffset),
                           v = loadRow(kb, kl, w, op.getValue(), r.sample,
                                       r.position, r.headOffset);
        const int64_t n = w.elements();
        // State: dk (unscaled), then dv.
        SmallVector<Value> state(2 * n, f32Constant(kb, kl, 0.0));
        auto visit = [&](OpBuilder &vb, Location vl, Value query,
                         ValueRange cur) -> SmallVector<Value> {
          auto load = [&](Value buffer) {
            return loadRow(vb, vl, w, buffer, r.sample, query, r.headOffset);
          };
          SmallVector<Value> q = load(op.getQuery()), dout = load(op.getGrad());
          SmallVector<Value, 3> stats = {r.sample, r.head, query};
          Value lse =
              memref::LoadOp::create(vb, vl, op.getRowLogsumexp(), stats);
          Value rowDelta = memref::LoadOp::create(vb, vl, delta, stats);
          auto [p, ds] =
              scoreGradient(vb, vl, w, q, k, dout, v, lse, rowDelta);
          SmallVector<Value> next =
              scaleAndAdd(vb, vl, cur.take_front(n), Value(), ds, q);
          llvm::append_range(
              next, scaleAndAdd(vb, vl, cur.drop_front(n), Value(), p, dout));
          return next;
        };
        // Query tiles [q0, q1) against the key tile [key, key + 1): empty
        // ones skipped, full ones unmasked.
        Value tokens = indexConstant(kb, kl, s.tokens);
        Value tile = indexConstant(kb, kl, kAttentionTile);
        Value keyEnd =
            arith::AddIOp::create(kb, kl, r.position, indexConstant(kb, kl, 1));
        Value tiles = indexConstant(
            kb, kl, (s.tokens + kAttentionTile - 1) / kAttentionTile);
        auto loop = scf::ForOp::create(
            kb, kl, indexConstant(kb, kl, 0), tiles, indexConstant(kb, kl, 1),
            state,
            [&](OpBuilder &lb, Location ll, Value t, ValueRange current) {
              Value begin = arith::MulIOp::create(lb, ll, t, tile);
              Value end = arith::MinSIOp::create(
                  lb, ll, tokens, arith::AddIOp::create(lb, ll, begin, tile));
              Value emptyFrom = attentionRuleBound(lb, ll, s.emptyFrom, begin,
                                                   end, r.prefix, tokens);
              Value fullUntil =
                  attentionRuleBound(lb, ll, s.fullUntil, begin, end, r.prefix,
                                     indexConstant(lb, ll, 0));
              Value empty = arith::CmpIOp::create(
                  lb, ll, arith::CmpIPredicate::sge, r.position, emptyFrom);
              Value full = arith::CmpIOp::create(
                  lb, ll, arith::CmpIPredicate::sle, keyEnd, fullUntil);
              auto visibleAt = [&](OpBuilder &vb, Location vl, Value query) {
                return keyIsVisible(vb, vl, s.mask, query, r.position,
                                    r.prefix);
              };
              auto skip = scf::IfOp::create(
                  lb, ll, empty,
                  [&](OpBuilder &tb, Location tl) {
                    scf::YieldOp::create(tb, tl, current);
                  },
                  [&](OpBuilder &eb, Location el) {
                    scf::YieldOp::create(eb, el,
                                         fullOrPartial(eb, el, full, begin, end,
                                                       current, visibleAt,
                                                       visit));
                  });
              scf::YieldOp::create(lb, ll, skip.getResults());
            });
        ValueRange done = loop.getResults();
        storeRow(kb, kl, w,
                 scaled(kb, kl, done.take_front(n),
                        f32Constant(kb, kl, s.scale)),
                 op.getKeyGrad(), r.sample, r.position, r.headOffset);
        storeRow(kb, kl, w, done.drop_front(n), op.getValueGrad(), r.sample,
                 r.position, r.headOffset);
      });
  memref::DeallocOp::create(b, loc, delta);
}

} // namespace

Value attentionRuleBound(OpBuilder &b, Location loc, AffineMapAttr rule,
                         Value qBegin, Value qEnd, Value prefix, Value none) {
  if (!rule)
    return none;
  std::optional<SmallVector<Value, 8>> results = affine::expandAffineMap(
      b, loc, rule.getValue(), ValueRange{qBegin, qEnd, prefix});
  Value bound = (*results)[0];
  for (Value r : llvm::drop_begin(*results))
    bound = arith::MaxSIOp::create(b, loc, bound, r);
  return bound;
}

void populateTiledAttentionPatterns(RewritePatternSet &patterns) {
  // Before the dense lowerings of the same ops.
  patterns.add<AttentionToKernel, AttentionGradToKernel>(patterns.getContext(),
                                                         /*benefit=*/2);
}

int lowerAttentionKernels(ModuleOp module, KernelTarget target,
                          AttentionLowering lowering) {
  module.getContext()
      ->loadDialect<arith::ArithDialect, gpu::GPUDialect, LLVM::LLVMDialect,
                    math::MathDialect, memref::MemRefDialect, NVVM::NVVMDialect,
                    scf::SCFDialect, vector::VectorDialect>();
  SmallVector<Operation *> ops;
  module.walk([&](Operation *op) {
    if (isa<AttentionKernelOp, AttentionGradKernelOp>(op))
      ops.push_back(op);
  });
  for (Operation *op : ops) {
    OpBuilder b(op);
    auto forward = dyn_cast<AttentionKernelOp>(op);
    if (forward && lowering == AttentionLowering::Flash)
      emitFlashAttentionForward(b, forward, target);
    else if (forward)
      emitForward(b, forward, target);
    else if (lowering == AttentionLowering::Flash)
      emitFlashAttentionBackward(b, cast<AttentionGradKernelOp>(op), target);
    else
      emitBackward(b, cast<AttentionGradKernelOp>(op), target);
    op->erase();
  }
  return ops.size();
}

} // namespace mlir::aim
