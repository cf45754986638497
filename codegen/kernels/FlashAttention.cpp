//===- FlashAttention.cpp - attention on tensor cores ---------------------===//
#include "codegen/kernels/FlashAttention.h"

#include "codegen/kernels/LowerToLinalg.h"
#include "codegen/kernels/TiledAttention.h"
#include "codegen/kernels/WarpMma.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Interfaces/FunctionInterfaces.h"

#include <cmath>

namespace mlir::aim {

namespace {

constexpr int64_t kWarp = kWarpLanes;
constexpr int64_t kRowsAWarp = 16; // an mma's M
constexpr int64_t kWarps = kFlashQueryTile / kRowsAWarp;
constexpr int64_t kThreads = kWarps * kWarp;
/// Words a shared-memory row is padded by: rows of 8m + 4 words put the 8
/// rows a fragment load reads (4 words each) on 32 different banks.
constexpr int64_t kPadWords = 4;

/// One head's view of [B, N, heads * dh] buffers, channels padded with
/// zeros to a multiple of 16 (an mma's K).
struct Heads {
  int64_t batch, tokens, heads, dh, paddedDh;

  static Heads of(Value key, int64_t heads) {
    auto type = cast<MemRefType>(key.getType());
    int64_t dh = type.getDimSize(2) / heads;
    return {type.getDimSize(0), type.getDimSize(1), heads, dh,
            (dh + 15) / 16 * 16};
  }
  int64_t rowTiles() const {
    return (tokens + kFlashQueryTile - 1) / kFlashQueryTile;
  }
  /// k-steps and n-blocks over the (padded) channels.
  int64_t channelSteps() const { return paddedDh / 16; }
  int64_t channelBlocks() const { return paddedDh / 8; }

  /// buffer[sample, position, head offset + channel], 0 past the tokens
  /// or the head's channels (clamped indices and a select: no branch).
  Value load(OpBuilder &b, Location loc, Value buffer, Value sample,
             Value position, Value headOffset, Value channel,
             bool positionMayPass) const {
    Value valid;
    auto guard = [&](Value &i, int64_t bound) {
      Value inside = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult, i,
                                           indexConstant(b, loc, bound));
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

/// Where a block's warp works: its (sample, head), the head's channel
/// offset, its 16 rows' first position and the sample's prefix length.
struct WarpPlace {
  Value sample, head, headOffset, blockBegin, warpBegin, prefix;
};

WarpPlace placeOf(OpBuilder &b, Location loc, const Heads &h, Value block,
                  Value warp, Value prefixBuffer) {
  SmallVector<Value> at =
      delinearize(b, loc, block, {h.batch, h.heads, h.rowTiles()});
  WarpPlace p;
  p.sample = at[0];
  p.head = at[1];
  p.headOffset = mulIndex(b, loc, at[1], h.dh);
  p.blockBegin = mulIndex(b, loc, at[2], kFlashQueryTile);
  p.warpBegin = arith::AddIOp::create(b, loc, p.blockBegin,
                                      mulIndex(b, loc, warp, kRowsAWarp));
  p.prefix = indexConstant(b, loc, 0);
  if (prefixBuffer)
    p.prefix = arith::IndexCastOp::create(
        b, loc, b.getIndexType(),
        memref::LoadOp::create(b, loc, prefixBuffer, ValueRange{p.sample}));
  return p;
}

/// What a kernel's warp gets: its block and warp index, its registers, and
/// the block's shared buffers; `sync` is the block's barrier (nothing on
/// the host, where each warp copies the tiles it reads itself), and
/// `thread` of `threads` the share of a copy this thread makes.
struct WarpContext {
  Value block, warp;
  const Lanes &lanes;
  ValueRange shared;
  Value thread;
  int64_t threads;
  void sync(OpBuilder &b, Location loc) const {
    if (!lanes.onHost())
      gpu::BarrierOp::create(b, loc);
  }
};

/// How a tile of rows is laid out in shared memory, as words of bfloat16
/// pairs: by row ([row][channel pair], an mma B operand whose n is the
/// row) or transposed ([channel][row pair], one whose k is the row).
enum class SharedLayout { Rows, Transposed };

int64_t sharedRowsOf(const Heads &h, SharedLayout layout, int64_t tileRows) {
  return layout == SharedLayout::Rows ? tileRows : h.paddedDh;
}
int64_t sharedWordsOf(const Heads &h, SharedLayout layout, int64_t tileRows) {
  return (layout == SharedLayout::Rows ? h.paddedDh : tileRows) / 2 + kPadWords;
}

/// The block's copy of rows [begin, begin + tileRows) of one head of
/// `buffer` into `shared`. `thread` of `threads` (the host: 0 of 1) copies
/// every threads-th word; consecutive threads read consecutive channels.
void copyTile(OpBuilder &b, Location loc, const Heads &h, const WarpPlace &p,
              const WarpContext &w, Value buffer, Value shared,
              SharedLayout layout, int64_t tileRows, Value begin) {
  Value thread = w.thread;
  const int64_t threads = w.threads;
  const bool pastTokens = h.tokens % tileRows != 0;
  const int64_t words = tileRows * h.paddedDh / 2;
  scf::ForOp::create(
      b, loc, indexConstant(b, loc, 0),
      indexConstant(b, loc, (words + threads - 1) / threads),
      indexConstant(b, loc, 1), ValueRange{},
      [&](OpBuilder &lb, Location ll, Value i, ValueRange) {
        Value wordAt =
            arith::AddIOp::create(lb, ll, mulIndex(lb, ll, i, threads), thread);
        auto copy = [&](OpBuilder &cb, Location cl) {
          auto at = [&](Value row, Value channel) {
            return h.load(cb, cl, buffer, p.sample,
                          arith::AddIOp::create(cb, cl, begin, row),
                          p.headOffset, channel, pastTokens);
          };
          Value word;
          SmallVector<Value, 2> index;
          if (layout == SharedLayout::Rows) {
            const int64_t pairs = h.paddedDh / 2;
            Value row = arith::DivUIOp::create(cb, cl, wordAt,
                                               indexConstant(cb, cl, pairs));
            Value pair = arith::RemUIOp::create(cb, cl, wordAt,
                                                indexConstant(cb, cl, pairs));
            Value channel = mulIndex(cb, cl, pair, 2);
            word = packBf16Pair(cb, cl, w.lanes.target, at(row, channel),
                                at(row, addIndex(cb, cl, channel, 1)));
            index = {row, pair};
          } else {
            Value channel = arith::RemUIOp::create(
                cb, cl, wordAt, indexConstant(cb, cl, h.paddedDh));
            Value pair = arith::DivUIOp::create(
                cb, cl, wordAt, indexConstant(cb, cl, h.paddedDh));
            Value row = mulIndex(cb, cl, pair, 2);
            word = packBf16Pair(cb, cl, w.lanes.target, at(row, channel),
                                at(addIndex(cb, cl, row, 1), channel));
            index = {channel, pair};
          }
          memref::StoreOp::create(cb, cl, word, shared, index);
        };
        if (words % threads == 0) {
          copy(lb, ll);
        } else {
          Value inside =
              arith::CmpIOp::create(lb, ll, arith::CmpIPredicate::ult, wordAt,
                                    indexConstant(lb, ll, words));
          scf::IfOp::create(lb, ll, inside, [&](OpBuilder &tb, Location tl) {
            copy(tb, tl);
            scf::YieldOp::create(tb, tl);
          });
        }
        scf::YieldOp::create(lb, ll);
      });
}

/// The A fragment of k-step `step` (channels 16 step ...) of the warp's 16
/// rows of `buffer`, rounded to bfloat16: register r holds row l / 4 + 8
/// (r % 2), channels 16 step + 2 (l % 4) + 8 (r / 2) and + 1.
SmallVector<Value, 4> rowFragment(OpBuilder &b, Location loc, const Heads &h,
                                  const WarpPlace &p, const Lanes &lanes,
                                  Value buffer, int64_t step) {
  const bool rowsPast = h.tokens % kFlashQueryTile != 0;
  SmallVector<Value, 4> a;
  for (int64_t r = 0; r < 4; ++r)
    a.push_back(lanes.perLane(
        b, loc, b.getI32Type(), [&](OpBuilder &lb, Location ll, Value l) {
          Value row = addIndex(
              lb, ll,
              arith::AddIOp::create(
                  lb, ll, p.warpBegin,
                  arith::DivUIOp::create(lb, ll, l, indexConstant(lb, ll, 4))),
              8 * (r % 2));
          Value channel =
              addIndex(lb, ll,
                       mulIndex(lb, ll,
                                arith::RemUIOp::create(
                                    lb, ll, l, indexConstant(lb, ll, 4)),
                                2),
                       16 * step + 8 * (r / 2));
          auto at = [&](Value c) {
            return h.load(lb, ll, buffer, p.sample, row, p.headOffset, c,
                          rowsPast);
          };
          return packBf16Pair(lb, ll, lanes.target, at(channel),
                              at(addIndex(lb, ll, channel, 1)));
        }));
  return a;
}

SmallVector<SmallVector<Value, 4>>
rowFragments(OpBuilder &b, Location loc, const Heads &h, const WarpPlace &p,
             const Lanes &lanes, Value buffer) {
  SmallVector<SmallVector<Value, 4>> steps;
  for (int64_t s = 0; s < h.channelSteps(); ++s)
    steps.push_back(rowFragment(b, loc, h, p, lanes, buffer, s));
  return steps;
}

/// The warp's rows times a shared [column][channel pair] tile, transposed:
/// `columns` / 8 n-blocks of accumulators (register r of block j at
/// accumulatorAt(j, r)); `fragment(s)` gives k-step s's A fragment.
SmallVector<Value>
rowsTimesColumns(OpBuilder &b, Location loc, const Heads &h, const Lanes &lanes,
                 function_ref<SmallVector<Value, 4>(int64_t)> fragment,
                 Value shared, int64_t columns) {
  SmallVector<Value> acc(4 * (columns / 8), lanes.f32(b, loc, 0.0));
  for (int64_t s = 0; s < h.channelSteps(); ++s) {
    SmallVector<Value, 4> a = fragment(s);
    for (int64_t j = 0; j < columns / 8; ++j) {
      SmallVector<Value, 4> d =
          lanes.mma(b, loc, a, bFragment(b, loc, lanes, shared, 8 * j, 8 * s),
                    ArrayRef<Value>(acc).slice(4 * j, 4));
      std::copy(d.begin(), d.end(), acc.begin() + 4 * j);
    }
  }
  return acc;
}

/// acc (the warp's 16 rows x the channels) += weights (16 rows x
/// `columns`, accumulator layout, rounded here) times a shared
/// [channel][column pair] tile.
void accumulateWeighted(OpBuilder &b, Location loc, const Heads &h,
                        const Lanes &lanes, ArrayRef<Value> weights,
                        Value shared, int64_t columns,
                        MutableArrayRef<Value> acc) {
  for (int64_t u = 0; u < columns / 16; ++u) {
    SmallVector<Value, 4> a =
        aFragmentOfAccumulators(b, loc, lanes.target, weights, u);
    for (int64_t n = 0; n < h.channelBlocks(); ++n) {
      SmallVector<Value, 4> d =
          lanes.mma(b, loc, a, bFragment(b, loc, lanes, shared, 8 * n, 8 * u),
                    acc.slice(4 * n, 4));
      std::copy(d.begin(), d.end(), acc.begin() + 4 * n);
    }
  }
}

/// Scores whose pair the mask hides, or whose column passes the tokens, as
/// -inf. Rows are queries and columns keys (`rowsAreQueries`) or the other
/// way round.
SmallVector<Value> masked(OpBuilder &b, Location loc, const Heads &h,
                          const Lanes &lanes, MaskKind mask, const WarpPlace &p,
                          bool rowsAreQueries, Value columnBegin,
                          ArrayRef<Value> scores) {
  SmallVector<Value> out;
  Value minusInf = lanes.f32(b, loc, -INFINITY);
  Value tokens = indexConstant(b, loc, h.tokens);
  for (int64_t j = 0; j < int64_t(scores.size()) / 4; ++j)
    for (int64_t r = 0; r < 4; ++r) {
      Value visible = lanes.perLane(
          b, loc, b.getI1Type(), [&](OpBuilder &vb, Location vl, Value l) {
            auto [row, column] = accumulatorAt(vb, vl, l, j, r);
            Value rowAt = arith::AddIOp::create(vb, vl, p.warpBegin, row);
            Value columnAt = arith::AddIOp::create(vb, vl, columnBegin, column);
            Value seen =
                rowsAreQueries
                    ? keyIsVisible(vb, vl, mask, rowAt, columnAt, p.prefix)
                    : keyIsVisible(vb, vl, mask, columnAt, rowAt, p.prefix);
            return arith::AndIOp::create(
                vb, vl, seen,
                arith::CmpIOp::create(vb, vl, arith::CmpIPredicate::ult,
                                      columnAt, tokens));
          });
      out.push_back(arith::SelectOp::create(b, loc, visible, scores[4 * j + r],
                                            minusInf));
    }
  return out;
}

/// The warp's scores against a shared tile of `columns` columns from
/// `columnBegin`, in base 2 (scale log2(e) times the products, so that a
/// probability is one ex2); unless `full`, pairs the mask hides (and
/// columns past the tokens) are -inf.
SmallVector<Value> tileScores(OpBuilder &b, Location loc, const Heads &h,
                              const Lanes &lanes, const WarpPlace &p,
                              MaskKind mask, double scale, bool rowsAreQueries,
                              ArrayRef<SmallVector<Value, 4>> fragments,
                              Value shared, int64_t columns, Value columnBegin,
                              Value full) {
  SmallVector<Value> scores = rowsTimesColumns(
      b, loc, h, lanes, [&](int64_t s) { return fragments[s]; }, shared,
      columns);
  Value scaleValue = lanes.f32(b, loc, scale * M_LOG2E);
  for (Value &s : scores)
    s = arith::MulFOp::create(b, loc, s, scaleValue);
  auto choice = scf::IfOp::create(
      b, loc, full,
      [&](OpBuilder &tb, Location tl) { scf::YieldOp::create(tb, tl, scores); },
      [&](OpBuilder &eb, Location el) {
        scf::YieldOp::create(eb, el,
                             masked(eb, el, h, lanes, mask, p, rowsAreQueries,
                                    columnBegin, scores));
      });
  return SmallVector<Value>(choice.getResults());
}

/// v summed over the quad of lanes that holds an accumulator row.
Value quadSum(OpBuilder &b, Location loc, const Lanes &lanes, Value v) {
  for (int64_t mask : {1, 2})
    v = arith::AddFOp::create(b, loc, v, lanes.xorShuffle(b, loc, v, mask));
  return v;
}

/// Stores the warp's 16 x channels accumulators, times `scale`, into one
/// head of `buffer` (rows past the tokens and padding channels skipped).
void storeRows(OpBuilder &b, Location loc, const Heads &h, const Lanes &lanes,
               const WarpPlace &p, ArrayRef<Value> acc, Value buffer) {
  const bool rowsPast = h.tokens % kFlashQueryTile != 0;
  lanes.forEachLane(
      b, loc, acc, [&](OpBuilder &sb, Location sl, Value l, ValueRange x) {
        Value tokens = indexConstant(sb, sl, h.tokens);
        for (int64_t i = 0; i < int64_t(x.size()); ++i) {
          const int64_t n = i / 4, r = i % 4;
          if (8 * n >= h.dh)
            continue; // padding channels only
          auto [row, column] = accumulatorAt(sb, sl, l, n, r);
          Value position = arith::AddIOp::create(sb, sl, p.warpBegin, row);
          Value condition;
          auto also = [&](Value c) {
            condition =
                condition
                    ? arith::AndIOp::create(sb, sl, condition, c).getResult()
                    : c;
          };
          if (rowsPast)
            also(arith::CmpIOp::create(sb, sl, arith::CmpIPredicate::ult,
                                       position, tokens));
          if (8 * n + 8 > h.dh)
            also(arith::CmpIOp::create(sb, sl, arith::CmpIPredicate::ult,
                                       column, indexConstant(sb, sl, h.dh)));
          auto store = [&](OpBuilder &gb, Location gl) {
            memref::StoreOp::create(
                gb, gl, x[i], buffer,
                ValueRange{
                    p.sample, position,
                    arith::AddIOp::create(gb, gl, p.headOffset, column)});
          };
          if (!condition) {
            store(sb, sl);
            continue;
          }
          scf::IfOp::create(sb, sl, condition, [&](OpBuilder &tb, Location tl) {
            store(tb, tl);
            scf::YieldOp::create(tb, tl);
          });
        }
      });
}

/// Each of the warp's row halves (rows l / 4 and l / 4 + 8): `store(h,
/// position)` by the first lane of each quad, for positions before the
/// tokens.
void forEachRowOnce(
    OpBuilder &b, Location loc, const Heads &h, const Lanes &lanes,
    const WarpPlace &p, ValueRange values,
    function_ref<void(OpBuilder &, Location, int64_t, Value, Value)> store) {
  lanes.forEachLane(
      b, loc, values, [&](OpBuilder &sb, Location sl, Value l, ValueRange x) {
        Value condition = arith::CmpIOp::create(
            sb, sl, arith::CmpIPredicate::eq,
            arith::RemUIOp::create(sb, sl, l, indexConstant(sb, sl, 4)),
            indexConstant(sb, sl, 0));
        for (int64_t half = 0; half < 2; ++half) {
          auto [row, column] = accumulatorAt(sb, sl, l, 0, 2 * half);
          (void)column;
          Value position = arith::AddIOp::create(sb, sl, p.warpBegin, row);
          Value inside = arith::AndIOp::create(
              sb, sl, condition,
              arith::CmpIOp::create(sb, sl, arith::CmpIPredicate::ult, position,
                                    indexConstant(sb, sl, h.tokens)));
          scf::IfOp::create(sb, sl, inside, [&](OpBuilder &tb, Location tl) {
            store(tb, tl, half, position, x[half]);
            scf::YieldOp::create(tb, tl);
          });
        }
      });
}

/// Per row half: a value of the row at `position` loaded by each lane
/// (clamped to the tokens).
Value perRow(OpBuilder &b, Location loc, const Heads &h, const Lanes &lanes,
             const WarpPlace &p, int64_t half,
             function_ref<Value(OpBuilder &, Location, Value)> load) {
  return lanes.perLane(
      b, loc, b.getF32Type(), [&](OpBuilder &lb, Location ll, Value l) {
        auto [row, column] = accumulatorAt(lb, ll, l, 0, 2 * half);
        (void)column;
        Value position = arith::MinUIOp::create(
            lb, ll, arith::AddIOp::create(lb, ll, p.warpBegin, row),
            indexConstant(lb, ll, h.tokens - 1));
        return load(lb, ll, position);
      });
}

/// A kernel of `blocks` blocks of 4 warps with shared buffers of `shapes`
/// (words); on the host, loops over the blocks and warps with the buffers
/// and the MMA scratch on the function's stack.
void emitWarpKernel(
    OpBuilder &b, Operation *op, KernelTarget target, int64_t blocks,
    ArrayRef<std::pair<int64_t, int64_t>> shapes,
    function_ref<void(OpBuilder &, Location, const WarpContext &)> body) {
  Location loc = op->getLoc();
  Type i32 = b.getI32Type();
  if (target == KernelTarget::GpuLaunch) {
    auto workgroup = gpu::AddressSpaceAttr::get(b.getContext(),
                                                gpu::AddressSpace::Workgroup);
    SmallVector<Type> types;
    for (auto [rows, words] : shapes)
      types.push_back(MemRefType::get({rows, words}, i32,
                                      MemRefLayoutAttrInterface{}, workgroup));
    Value one = indexConstant(b, loc, 1);
    auto launch = gpu::LaunchOp::create(
        b, loc, indexConstant(b, loc, blocks), one, one,
        indexConstant(b, loc, kThreads), one, one, /*dynamicShared=*/nullptr,
        /*asyncToken=*/nullptr, /*asyncDependencies=*/{}, types);
    OpBuilder in = OpBuilder::atBlockEnd(&launch.getBody().front());
    Value thread = launch.getThreadIds().x;
    Value size = indexConstant(in, loc, kWarp);
    Lanes lanes{target, arith::RemUIOp::create(in, loc, thread, size), {}};
    SmallVector<Value> shared(launch.getWorkgroupAttributions());
    body(in, loc,
         WarpContext{launch.getBlockIds().x,
                     arith::DivUIOp::create(in, loc, thread, size), lanes,
                     shared, thread, kThreads});
    gpu::TerminatorOp::create(in, loc);
    return;
  }
  OpBuilder entry(b.getContext());
  entry.setInsertionPointToStart(
      &op->getParentOfType<FunctionOpInterface>().getFunctionBody().front());
  SmallVector<Value> shared;
  for (auto [rows, words] : shapes)
    shared.push_back(memref::AllocaOp::create(
        entry, loc, MemRefType::get({rows, words}, i32)));
  Lanes lanes{target, Value(), createMmaScratch(entry, loc)};
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
    loop(bb, bl, kWarps, [&](OpBuilder &wb, Location wl, Value warp) {
      body(
          wb, wl,
          WarpContext{block, warp, lanes, shared, indexConstant(wb, wl, 0), 1});
    });
  });
}

/// The tile rule for the block's query rows [blockBegin, blockBegin + 64):
/// keys from the first bound on are hidden from all of them, keys before
/// the second seen by all (both at most the tokens).
std::pair<Value, Value> ruleForQueries(OpBuilder &b, Location loc,
                                       const Heads &h, AffineMapAttr emptyFrom,
                                       AffineMapAttr fullUntil, Value begin,
                                       Value end, Value prefix) {
  Value tokens = indexConstant(b, loc, h.tokens);
  end = arith::MinSIOp::create(b, loc, tokens, end);
  return {arith::MinSIOp::create(b, loc, tokens,
                                 attentionRuleBound(b, loc, emptyFrom, begin,
                                                    end, prefix, tokens)),
          arith::MinSIOp::create(b, loc, tokens,
                                 attentionRuleBound(b, loc, fullUntil, begin,
                                                    end, prefix,
                                                    indexConstant(b, loc, 0)))};
}

//===----------------------------------------------------------------------===//
// Forward
//===----------------------------------------------------------------------===//

/// The forward's warp: its 16 query rows against every key tile the rule
/// leaves; output and row_logsumexp stored.
void emitForwardWarp(OpBuilder &b, Location loc, AttentionKernelOp op,
                     const Heads &h, const WarpContext &w) {
  const Lanes &lanes = w.lanes;
  Value keys = w.shared[0], values = w.shared[1];
  WarpPlace p = placeOf(b, loc, h, w.block, w.warp, op.getPrefix());
  // q's A fragments, rounded once.
  SmallVector<SmallVector<Value, 4>> query =
      rowFragments(b, loc, h, p, lanes, op.getQuery());
  auto [emptyFrom, fullUntil] = ruleForQueries(
      b, loc, h, op.getTileEmptyFromAttr(), op.getTileFullUntilAttr(),
      p.blockBegin, addIndex(b, loc, p.blockBegin, kFlashQueryTile), p.prefix);
  Value tiles = arith::CeilDivUIOp::create(
      b, loc, emptyFrom, indexConstant(b, loc, kFlashKeyTile));

  // State: each row half's running maximum and this lane's part of its
  // denominator, then the output's accumulators.
  SmallVector<Value> state = {lanes.f32(b, loc, -INFINITY),
                              lanes.f32(b, loc, -INFINITY),
                              lanes.f32(b, loc, 0.0), lanes.f32(b, loc, 0.0)};
  state.append(4 * h.channelBlocks(), lanes.f32(b, loc, 0.0));
  const double scale = op.getScale().convertToDouble();

  auto tileLoop = scf::ForOp::create(
      b, loc, indexConstant(b, loc, 0), tiles, indexConstant(b, loc, 1), state,
      [&](OpBuilder &lb, Location ll, Value t, ValueRange cur) {
        Value begin = mulIndex(lb, ll, t, kFlashKeyTile);
        w.sync(lb, ll); // the last tile is read
        copyTile(lb, ll, h, p, w, op.getKey(), keys, SharedLayout::Rows,
                 kFlashKeyTile, begin);
        copyTile(lb, ll, h, p, w, op.getValue(), values,
                 SharedLayout::Transposed, kFlashKeyTile, begin);
        w.sync(lb, ll); // this one is written

        Value full = arith::CmpIOp::create(
            lb, ll, arith::CmpIPredicate::sle,
            addIndex(lb, ll, begin, kFlashKeyTile), fullUntil);
        SmallVector<Value> scores = tileScores(
            lb, ll, h, lanes, p, op.getMask(), scale, /*rowsAreQueries=*/true,
            query, keys, kFlashKeyTile, begin, full);

        // Online softmax, row half r / 2 of each register r.
        SmallVector<Value> next(cur.begin(), cur.end());
        SmallVector<Value, 2> rescale;
        SmallVector<Value> probability(scores.size());
        for (int64_t half = 0; half < 2; ++half) {
          Value max = cur[half];
          for (size_t i = 0; i < scores.size(); ++i)
            if (int64_t(i % 4) / 2 == half)
              max = arith::MaximumFOp::create(lb, ll, max, scores[i]);
          for (int64_t mask : {1, 2}) // the quad holding the row
            max = arith::MaximumFOp::create(
                lb, ll, max, lanes.xorShuffle(lb, ll, max, mask));
          // A row with no visible key yet keeps -inf: exponents from 0.
          Value none = arith::CmpFOp::create(lb, ll, arith::CmpFPredicate::OEQ,
                                             max, lanes.f32(lb, ll, -INFINITY));
          Value base = arith::SelectOp::create(lb, ll, none,
                                               lanes.f32(lb, ll, 0.0), max);
          rescale.push_back(math::Exp2Op::create(
              lb, ll, arith::SubFOp::create(lb, ll, cur[half], base)));
          Value sum =
              arith::MulFOp::create(lb, ll, cur[2 + half], rescale[half]);
          for (size_t i = 0; i < scores.size(); ++i)
            if (int64_t(i % 4) / 2 == half) {
              probability[i] = math::Exp2Op::create(
                  lb, ll, arith::SubFOp::create(lb, ll, scores[i], base));
              sum = arith::AddFOp::create(lb, ll, sum, probability[i]);
            }
          next[half] = max;
          next[2 + half] = sum;
        }
        MutableArrayRef<Value> out = MutableArrayRef<Value>(next).drop_front(4);
        for (size_t i = 0; i < out.size(); ++i)
          out[i] = arith::MulFOp::create(lb, ll, out[i], rescale[(i % 4) / 2]);
        // out += p v (p rounded to bfloat16).
        accumulateWeighted(lb, ll, h, lanes, probability, values, kFlashKeyTile,
                           out);
        scf::YieldOp::create(lb, ll, next);
      });

  // The quad's denominators summed; output and row_logsumexp stored.
  ValueRange done = tileLoop.getResults();
  SmallVector<Value> inverse, logsumexp;
  for (int64_t half = 0; half < 2; ++half) {
    Value sum = quadSum(b, loc, lanes, done[2 + half]);
    inverse.push_back(
        arith::DivFOp::create(b, loc, lanes.f32(b, loc, 1.0), sum));
    // row_logsumexp = ln 2 (m + log2 l): back from base 2.
    logsumexp.push_back(arith::MulFOp::create(
        b, loc,
        arith::AddFOp::create(b, loc, done[half],
                              math::Log2Op::create(b, loc, sum)),
        lanes.f32(b, loc, M_LN2)));
  }
  SmallVector<Value> out;
  for (size_t i = 4; i < done.size(); ++i)
    out.push_back(
        arith::MulFOp::create(b, loc, done[i], inverse[((i - 4) % 4) / 2]));
  storeRows(b, loc, h, lanes, p, out, op.getResult());
  forEachRowOnce(
      b, loc, h, lanes, p, logsumexp,
      [&](OpBuilder &sb, Location sl, int64_t, Value position, Value x) {
        memref::StoreOp::create(sb, sl, x, op.getRowLogsumexp(),
                                ValueRange{p.sample, p.head, position});
      });
}

//===----------------------------------------------------------------------===//
// Backward
//===----------------------------------------------------------------------===//

/// Query rows (dq) or key rows (dk, dv) a tile of the backward's other
/// side: 32 keep its registers (two products' scores and three
/// accumulators) within ptxas' budget.
constexpr int64_t kBackwardTile = 32;

/// dq, and delta = <do, o> of each query row (into `delta`, [B, heads,
/// N]): a warp's 16 query rows against the key tiles the rule leaves.
///   s = q k^T, p = exp(scale s - lse), dp = do v^T, ds = p (dp - delta),
///   dq = scale ds k.
void emitQueryGradientWarp(OpBuilder &b, Location loc, AttentionGradKernelOp op,
                           const Heads &h, Value delta, const WarpContext &w) {
  const Lanes &lanes = w.lanes;
  Value keys = w.shared[0], values = w.shared[1], keysByChannel = w.shared[2];
  WarpPlace p = placeOf(b, loc, h, w.block, w.warp, op.getPrefix());
  SmallVector<SmallVector<Value, 4>> query =
      rowFragments(b, loc, h, p, lanes, op.getQuery());
  SmallVector<SmallVector<Value, 4>> gradient =
      rowFragments(b, loc, h, p, lanes, op.getGrad());

  // delta and lse (in base 2) of each row half.
  SmallVector<Value, 2> rowDelta, rowLse;
  for (int64_t half = 0; half < 2; ++half) {
    Value part = lanes.perLane(
        b, loc, b.getF32Type(), [&](OpBuilder &lb, Location ll, Value l) {
          // This lane's channels of the row: 2 (l % 4) + 8 i and + 1.
          auto [row, column] = accumulatorAt(lb, ll, l, 0, 2 * half);
          Value position = arith::AddIOp::create(lb, ll, p.warpBegin, row);
          Value sum = arith::ConstantOp::create(lb, ll, lb.getF32FloatAttr(0));
          for (int64_t i = 0; i < h.channelBlocks(); ++i)
            for (int64_t e = 0; e < 2; ++e) {
              Value channel = addIndex(lb, ll, column, 8 * i + e);
              auto at = [&](Value buffer) {
                return h.load(lb, ll, buffer, p.sample, position, p.headOffset,
                              channel, /*positionMayPass=*/true);
              };
              sum = arith::AddFOp::create(
                  lb, ll, sum,
                  arith::MulFOp::create(lb, ll, at(op.getGrad()),
                                        at(op.getOutput())));
            }
          return sum;
        });
    rowDelta.push_back(quadSum(b, loc, lanes, part));
    rowLse.push_back(arith::MulFOp::create(
        b, loc,
        perRow(b, loc, h, lanes, p, half,
               [&](OpBuilder &lb, Location ll, Value position) {
                 return memref::LoadOp::create(
                     lb, ll, op.getRowLogsumexp(),
                     ValueRange{p.sample, p.head, position});
               }),
        lanes.f32(b, loc, M_LOG2E)));
  }
  forEachRowOnce(
      b, loc, h, lanes, p, rowDelta,
      [&](OpBuilder &sb, Location sl, int64_t, Value position, Value x) {
        memref::StoreOp::create(sb, sl, x, delta,
                                ValueRange{p.sample, p.head, position});
      });

  auto [emptyFrom, fullUntil] = ruleForQueries(
      b, loc, h, op.getTileEmptyFromAttr(), op.getTileFullUntilAttr(),
      p.blockBegin, addIndex(b, loc, p.blockBegin, kFlashQueryTile), p.prefix);
  Value tiles = arith::CeilDivUIOp::create(
      b, loc, emptyFrom, indexConstant(b, loc, kBackwardTile));
  const double scale = op.getScale().convertToDouble();
  SmallVector<Value> state(4 * h.channelBlocks(), lanes.f32(b, loc, 0.0));
  auto tileLoop = scf::ForOp::create(
      b, loc, indexConstant(b, loc, 0), tiles, indexConstant(b, loc, 1), state,
      [&](OpBuilder &lb, Location ll, Value t, ValueRange cur) {
        Value begin = mulIndex(lb, ll, t, kBackwardTile);
        w.sync(lb, ll);
        copyTile(lb, ll, h, p, w, op.getKey(), keys, SharedLayout::Rows,
                 kBackwardTile, begin);
        copyTile(lb, ll, h, p, w, op.getValue(), values, SharedLayout::Rows,
                 kBackwardTile, begin);
        copyTile(lb, ll, h, p, w, op.getKey(), keysByChannel,
                 SharedLayout::Transposed, kBackwardTile, begin);
        w.sync(lb, ll);
        Value full = arith::CmpIOp::create(
            lb, ll, arith::CmpIPredicate::sle,
            addIndex(lb, ll, begin, kBackwardTile), fullUntil);
        SmallVector<Value> scores = tileScores(
            lb, ll, h, lanes, p, op.getMask(), scale, /*rowsAreQueries=*/true,
            query, keys, kBackwardTile, begin, full);
        SmallVector<Value> products = rowsTimesColumns(
            lb, ll, h, lanes, [&](int64_t s) { return gradient[s]; }, values,
            kBackwardTile);
        SmallVector<Value> scoreGradient;
        for (size_t i = 0; i < scores.size(); ++i) {
          const int64_t half = (i % 4) / 2;
          Value probability = math::Exp2Op::create(
              lb, ll, arith::SubFOp::create(lb, ll, scores[i], rowLse[half]));
          scoreGradient.push_back(arith::MulFOp::create(
              lb, ll, probability,
              arith::SubFOp::create(lb, ll, products[i], rowDelta[half])));
        }
        SmallVector<Value> next(cur.begin(), cur.end());
        accumulateWeighted(lb, ll, h, lanes, scoreGradient, keysByChannel,
                           kBackwardTile, next);
        scf::YieldOp::create(lb, ll, next);
      });
  SmallVector<Value> dq;
  for (Value v : tileLoop.getResults())
    dq.push_back(arith::MulFOp::create(b, loc, v, lanes.f32(b, loc, scale)));
  storeRows(b, loc, h, lanes, p, dq, op.getQueryGrad());
}

/// Which of a key row's gradients a kernel computes: dk and dv in one
/// kernel would hold k's and v's fragments and two accumulators, more than
/// ptxas' 255 registers.
enum class KeyGradient { Key, Value };

/// Queries a tile of a KeyGradient kernel: dk's holds v's fragments and two
/// products' scores too; with 32 it needs 254 registers for aim-600m (no
/// spill, no margin), with 16 217 (both: two blocks an SM).
int64_t keyGradientTile(KeyGradient which) {
  return which == KeyGradient::Key ? kBackwardTile / 2 : kBackwardTile;
}

/// The shared tiles of a KeyGradient kernel: q by row, then for dv do
/// transposed, for dk do by row and q transposed.
SmallVector<SharedLayout> keyGradientTiles(KeyGradient which) {
  if (which == KeyGradient::Value)
    return {SharedLayout::Rows, SharedLayout::Transposed};
  return {SharedLayout::Rows, SharedLayout::Rows, SharedLayout::Transposed};
}

/// dk or dv: a warp's 16 key rows against the query tiles the rule leaves
/// them.
///   s^T = k q^T, p^T = exp(scale s^T - lse); dv = p^T do;
///   dp^T = v do^T, ds^T = p^T (dp^T - delta), dk = scale ds^T q.
void emitKeyGradientWarp(OpBuilder &b, Location loc, AttentionGradKernelOp op,
                         const Heads &h, Value delta, KeyGradient which,
                         const WarpContext &w) {
  const Lanes &lanes = w.lanes;
  const bool forKey = which == KeyGradient::Key;
  Value queries = w.shared[0];
  Value gradients = forKey ? w.shared[1] : Value(),
        queriesByChannel = forKey ? w.shared[2] : Value(),
        gradientsByChannel = forKey ? Value() : w.shared[1];
  WarpPlace p = placeOf(b, loc, h, w.block, w.warp, op.getPrefix());
  Value tokens = indexConstant(b, loc, h.tokens);
  const double scale = op.getScale().convertToDouble();
  const int64_t channels = 4 * h.channelBlocks();
  const int64_t tile = keyGradientTile(which);
  // k's (and for dk v's) fragments, loaded once.
  SmallVector<SmallVector<Value, 4>> key =
      rowFragments(b, loc, h, p, lanes, op.getKey());
  SmallVector<SmallVector<Value, 4>> value;
  if (forKey)
    value = rowFragments(b, loc, h, p, lanes, op.getValue());
  SmallVector<Value> state(channels, lanes.f32(b, loc, 0.0));
  auto tileLoop = scf::ForOp::create(
      b, loc, indexConstant(b, loc, 0),
      indexConstant(b, loc, (h.tokens + tile - 1) / tile),
      indexConstant(b, loc, 1), state,
      [&](OpBuilder &lb, Location ll, Value t, ValueRange cur) {
        Value begin = mulIndex(lb, ll, t, tile);
        Value end = addIndex(lb, ll, begin, tile);
        auto [emptyFrom, fullUntil] =
            ruleForQueries(lb, ll, h, op.getTileEmptyFromAttr(),
                           op.getTileFullUntilAttr(), begin, end, p.prefix);
        // The block's 64 keys: all hidden from these queries (skipped), or
        // all seen by them (no mask test).
        Value empty = arith::CmpIOp::create(lb, ll, arith::CmpIPredicate::sge,
                                            p.blockBegin, emptyFrom);
        Value full = arith::AndIOp::create(
            lb, ll,
            arith::CmpIOp::create(
                lb, ll, arith::CmpIPredicate::sle,
                addIndex(lb, ll, p.blockBegin, kFlashQueryTile), fullUntil),
            arith::CmpIOp::create(lb, ll, arith::CmpIPredicate::sle, end,
                                  tokens));
        auto visit = scf::IfOp::create(
            lb, ll, empty,
            [&](OpBuilder &sb, Location sl) {
              scf::YieldOp::create(sb, sl, cur);
            },
            [&](OpBuilder &vb, Location vl) {
              w.sync(vb, vl);
              copyTile(vb, vl, h, p, w, op.getQuery(), queries,
                       SharedLayout::Rows, tile, begin);
              if (forKey) {
                copyTile(vb, vl, h, p, w, op.getGrad(), gradients,
                         SharedLayout::Rows, tile, begin);
                copyTile(vb, vl, h, p, w, op.getQuery(), queriesByChannel,
                         SharedLayout::Transposed, tile, begin);
              } else {
                copyTile(vb, vl, h, p, w, op.getGrad(), gradientsByChannel,
                         SharedLayout::Transposed, tile, begin);
              }
              w.sync(vb, vl);
              SmallVector<Value> scores = tileScores(
                  vb, vl, h, lanes, p, op.getMask(), scale,
                  /*rowsAreQueries=*/false, key, queries, tile, begin, full);
              // Each column's (query's) lse in base 2 and delta: columns
              // 8 j + 2 (l % 4) + e, in registers e and e + 2 of block j.
              auto ofColumn = [&](Value buffer, int64_t j, int64_t e) {
                return lanes.perLane(
                    vb, vl, vb.getF32Type(),
                    [&](OpBuilder &cb, Location cl, Value l) {
                      auto [row, column] = accumulatorAt(cb, cl, l, j, e);
                      (void)row;
                      Value query = arith::MinUIOp::create(
                          cb, cl, arith::AddIOp::create(cb, cl, begin, column),
                          indexConstant(cb, cl, h.tokens - 1));
                      return memref::LoadOp::create(
                          cb, cl, buffer, ValueRange{p.sample, p.head, query});
                    });
              };
              SmallVector<Value> columnLse;
              for (int64_t j = 0; j < tile / 8; ++j)
                for (int64_t e = 0; e < 2; ++e)
                  columnLse.push_back(arith::MulFOp::create(
                      vb, vl, ofColumn(op.getRowLogsumexp(), j, e),
                      lanes.f32(vb, vl, M_LOG2E)));
              SmallVector<Value> weights; // p^T, or ds^T for dk
              for (size_t i = 0; i < scores.size(); ++i)
                weights.push_back(math::Exp2Op::create(
                    vb, vl,
                    arith::SubFOp::create(vb, vl, scores[i],
                                          columnLse[2 * (i / 4) + i % 2])));
              if (forKey) {
                SmallVector<Value> products = rowsTimesColumns(
                    vb, vl, h, lanes, [&](int64_t s) { return value[s]; },
                    gradients, tile);
                SmallVector<Value> columnDelta;
                for (int64_t j = 0; j < tile / 8; ++j)
                  for (int64_t e = 0; e < 2; ++e)
                    columnDelta.push_back(ofColumn(delta, j, e));
                for (size_t i = 0; i < weights.size(); ++i)
                  weights[i] = arith::MulFOp::create(
                      vb, vl, weights[i],
                      arith::SubFOp::create(vb, vl, products[i],
                                            columnDelta[2 * (i / 4) + i % 2]));
              }
              SmallVector<Value> next(cur.begin(), cur.end());
              accumulateWeighted(vb, vl, h, lanes, weights,
                                 forKey ? queriesByChannel : gradientsByChannel,
                                 tile, next);
              scf::YieldOp::create(vb, vl, next);
            });
        scf::YieldOp::create(lb, ll, visit.getResults());
      });
  SmallVector<Value> done(tileLoop.getResults());
  if (!forKey) {
    storeRows(b, loc, h, lanes, p, done, op.getValueGrad());
    return;
  }
  for (Value &v : done)
    v = arith::MulFOp::create(b, loc, v, lanes.f32(b, loc, scale));
  storeRows(b, loc, h, lanes, p, done, op.getKeyGrad());
}

} // namespace

void emitFlashAttentionForward(OpBuilder &b, AttentionKernelOp op,
                               KernelTarget target) {
  Heads h = Heads::of(op.getKey(), op.getHeads());
  emitWarpKernel(b, op, target, h.batch * h.heads * h.rowTiles(),
                 {{sharedRowsOf(h, SharedLayout::Rows, kFlashKeyTile),
                   sharedWordsOf(h, SharedLayout::Rows, kFlashKeyTile)},
                  {sharedRowsOf(h, SharedLayout::Transposed, kFlashKeyTile),
                   sharedWordsOf(h, SharedLayout::Transposed, kFlashKeyTile)}},
                 [&](OpBuilder &kb, Location kl, const WarpContext &w) {
                   emitForwardWarp(kb, kl, op, h, w);
                 });
}

void emitFlashAttentionBackward(OpBuilder &b, AttentionGradKernelOp op,
                                KernelTarget target) {
  Location loc = op.getLoc();
  Heads h = Heads::of(op.getKey(), op.getHeads());
  Value delta = memref::AllocOp::create(
      b, loc, MemRefType::get({h.batch, h.heads, h.tokens}, b.getF32Type()));
  auto shape = [&](SharedLayout layout) {
    return std::pair{sharedRowsOf(h, layout, kBackwardTile),
                     sharedWordsOf(h, layout, kBackwardTile)};
  };
  const int64_t blocks = h.batch * h.heads * h.rowTiles();
  emitWarpKernel(b, op, target, blocks,
                 {shape(SharedLayout::Rows), shape(SharedLayout::Rows),
                  shape(SharedLayout::Transposed)},
                 [&](OpBuilder &kb, Location kl, const WarpContext &w) {
                   emitQueryGradientWarp(kb, kl, op, h, delta, w);
                 });
  for (KeyGradient which : {KeyGradient::Value, KeyGradient::Key}) {
    SmallVector<std::pair<int64_t, int64_t>> shapes;
    for (SharedLayout layout : keyGradientTiles(which))
      shapes.push_back({sharedRowsOf(h, layout, keyGradientTile(which)),
                        sharedWordsOf(h, layout, keyGradientTile(which))});
    emitWarpKernel(b, op, target, blocks, shapes,
                   [&](OpBuilder &kb, Location kl, const WarpContext &w) {
                     emitKeyGradientWarp(kb, kl, op, h, delta, which, w);
                   });
  }
  memref::DeallocOp::create(b, loc, delta);
}

} // namespace mlir::aim
