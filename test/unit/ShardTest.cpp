//===- ShardTest.cpp - per-rank programs against the unsharded one --------===//
//
// aim-shard's differential tests. A small config is compiled twice, whole and
// for a dp x tp grid; the interpreter runs the whole program once and the
// per-rank program on every rank of a simulated grid (threads, collectives in
// shared memory), in float64. Each rank's results, cut from the whole
// program's by the sharding recorded on them, must agree to 1e-12 (relative
// to the tensor's magnitude): the only differences are the order of
// floating-point sums (a tp split adds partial sums; a dp split adds ranks'
// shares), worth about 1e-16 each, so anything near 1e-12 is a wrong rule.
//
//===----------------------------------------------------------------------===//

#include "common/Sharding.h"
#include "dialects/aim/AimDialect.h"
#include "dialects/aim/AimSharding.h"
#include "frontends/ForwardBuilder.h"
#include "interpreter/SimulatedGrid.h"
#include "passes/Passes.h"
#include "passes/Pipelines.h"

#include "mlir/IR/MLIRContext.h"
#include "mlir/Pass/PassManager.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <random>
#include <set>

using namespace mlir;
using ::aim::DType;
using ::aim::HostTensor;

namespace {

constexpr double kTolerance = 1e-12;

struct Mesh {
  int64_t dp, tp;
  bool zero;
};

std::string describe(const Mesh &m) {
  return "dp=" + std::to_string(m.dp) + " tp=" + std::to_string(m.tp) +
         (m.zero ? " zero=1" : "");
}

::aim::ModelConfig tinyConfig() {
  ::aim::ModelConfig c;
  c.name = "tiny";
  c.imageHeight = 8, c.imageWidth = 12, c.channels = 3, c.patchSize = 4;
  c.width = 32, c.depth = 2, c.heads = 4, c.mlpRatio = 4;
  c.headWidth = 24, c.headDepth = 1;
  return c;
}

/// The part of `whole` that rank (d, t) of a dp x tp grid holds under
/// `sharding` (common/Sharding.h).
HostTensor cut(const HostTensor &whole, DictionaryAttr sharding, int64_t d,
               const Mesh &mesh, int64_t t) {
  return ::aim::cutTensor(whole, mlir::aim::readSharding(sharding),
                          {d, mesh.dp, t, mesh.tp});
}

/// What names an argument or result of an entry point.
std::string nameOf(DictionaryAttr attrs) {
  for (StringRef key : {mlir::aim::AimDialect::kParamAttrName,
                        mlir::aim::AimDialect::kStateAttrName,
                        mlir::aim::AimDialect::kInputAttrName,
                        mlir::aim::AimDialect::kOutputAttrName})
    if (auto name = attrs ? attrs.getAs<StringAttr>(key) : StringAttr())
      return name.str();
  return "";
}

double magnitude(const std::vector<double> &values) {
  double m = 1;
  for (double v : values)
    m = std::max(m, std::abs(v));
  return m;
}

class ShardTest : public ::testing::Test {
protected:
  ShardTest() { context.loadDialect<mlir::aim::AimDialect, func::FuncDialect>(); }

  /// The config's training step at `batch`, for `mesh` or whole (aimc's
  /// pipeline: aim-shard first, aim-schedule last).
  OwningOpRef<ModuleOp> compile(int64_t batch, const Mesh *mesh) {
    OwningOpRef<ModuleOp> module =
        ::aim::buildForwardModule(context, config, batch);
    mlir::aim::PipelineOptions pipeline;
    pipeline.prefixMode = prefixMode;
    pipeline.bucketBytes = bucketBytes;
    if (mesh) {
      pipeline.dataParallel = mesh->dp;
      pipeline.tensorParallel = mesh->tp;
      pipeline.grid = true;
      pipeline.zero = mesh->zero;
    }
    PassManager pm(&context);
    mlir::aim::addStagePipeline(pm, mlir::aim::Stage::TrainStep, pipeline);
    if (failed(pm.run(*module)))
      return nullptr;
    return module;
  }

  /// Whole tensors of a step at `batch`: random parameters and moments,
  /// images, antithetic prefix pairs (K, N - K), lr and step.
  std::map<std::string, HostTensor> wholeTensors(func::FuncOp trainStep) {
    std::mt19937_64 rng(11);
    std::normal_distribution<double> normal(0.0, 1.0);
    std::uniform_real_distribution<double> uniform(0.0, 1.0);
    std::map<std::string, HostTensor> tensors;
    for (unsigned i = 0; i < trainStep.getNumArguments(); ++i) {
      std::string name = nameOf(trainStep.getArgAttrDict(i));
      auto type = cast<RankedTensorType>(trainStep.getArgumentTypes()[i]);
      std::vector<int64_t> shape(type.getShape());
      std::vector<double> v(type.getNumElements());
      DType dtype = DType::F64;
      if (name == "prefix") {
        // K uniform on [1, N - 1]; antithetic pairs (K, N - K) give every
        // pair N - 1 + 1 targets, iid lengths give ranks and micro-batches
        // different counts, which the loss's weights must follow.
        const int64_t n = config.numPatches();
        for (size_t b = 0; b < v.size(); ++b)
          v[b] = prefixMode == "antithetic" && b % 2 == 1
                     ? n - v[b - 1]
                     : 1 + static_cast<int64_t>(uniform(rng) * (n - 1));
        dtype = DType::I32;
      } else if (name == "step") {
        v[0] = 3;
        dtype = DType::I64;
      } else if (name == "lr") {
        v[0] = 1e-3;
      } else if (name.find(".exp_avg_sq") != std::string::npos) {
        for (double &x : v)
          x = 1e-4 * uniform(rng);
      } else if (name.find(".exp_avg") != std::string::npos) {
        for (double &x : v)
          x = 1e-3 * normal(rng);
      } else {
        for (double &x : v)
          x = (name.find("norm") != std::string::npos && type.getRank() == 1
                   ? 1.0
                   : 0.0) +
              0.2 * normal(rng);
      }
      tensors[name] = HostTensor::fromDoubles(dtype, shape, v);
    }
    return tensors;
  }

  /// `f`'s arguments on rank (d, t): each whole tensor cut by the argument's
  /// sharding, unless `local` holds the rank's own.
  std::vector<std::vector<HostTensor>>
  rankArguments(func::FuncOp f, const Mesh &mesh,
                const std::map<std::string, HostTensor> &whole,
                const std::vector<std::map<std::string, HostTensor>> &local =
                    {}) {
    std::vector<std::vector<HostTensor>> ranks;
    for (int64_t d = 0; d < mesh.dp; ++d)
      for (int64_t t = 0; t < mesh.tp; ++t) {
        std::vector<HostTensor> args;
        for (unsigned i = 0; i < f.getNumArguments(); ++i) {
          std::string name = nameOf(f.getArgAttrDict(i));
          size_t r = d * mesh.tp + t;
          if (r < local.size() && local[r].count(name)) {
            args.push_back(local[r].at(name));
            continue;
          }
          EXPECT_TRUE(whole.count(name)) << name;
          args.push_back(cut(whole.at(name),
                             f.getArgAttrOfType<DictionaryAttr>(
                                 i, mlir::aim::AimDialect::kShardingAttrName),
                             d, mesh, t));
        }
        ranks.push_back(std::move(args));
      }
    return ranks;
  }

  std::vector<HostTensor> runWhole(func::FuncOp f,
                                   const std::map<std::string, HostTensor> &t) {
    std::vector<HostTensor> args;
    for (unsigned i = 0; i < f.getNumArguments(); ++i)
      args.push_back(t.at(nameOf(f.getArgAttrDict(i))));
    auto results = ::aim::interp::runFunction(f, args,
                                              ::aim::interp::Precision::F64);
    EXPECT_TRUE(bool(results)) << llvm::toString(results.takeError());
    return results ? *results : std::vector<HostTensor>{};
  }

  std::vector<std::vector<HostTensor>>
  runRanks(func::FuncOp f, const Mesh &mesh,
           const std::vector<std::vector<HostTensor>> &args) {
    auto results = ::aim::interp::runOnGrid(
        f, {mesh.dp, mesh.tp}, args, ::aim::interp::Precision::F64);
    EXPECT_TRUE(bool(results)) << llvm::toString(results.takeError());
    return results ? *results : std::vector<std::vector<HostTensor>>{};
  }

  /// Each rank's result named like the whole one, cut by its sharding.
  void expectRanksMatch(func::FuncOp rankF, const Mesh &mesh,
                        const std::vector<std::vector<HostTensor>> &ranks,
                        func::FuncOp wholeF,
                        const std::vector<HostTensor> &whole) {
    std::map<std::string, const HostTensor *> byName;
    for (unsigned j = 0; j < wholeF.getNumResults(); ++j)
      byName[nameOf(wholeF.getResultAttrDict(j))] = &whole[j];
    ASSERT_EQ(ranks.size(), static_cast<size_t>(mesh.dp * mesh.tp));
    for (int64_t d = 0; d < mesh.dp; ++d)
      for (int64_t t = 0; t < mesh.tp; ++t) {
        const std::vector<HostTensor> &mine = ranks[d * mesh.tp + t];
        for (unsigned j = 0; j < rankF.getNumResults(); ++j) {
          std::string name = nameOf(rankF.getResultAttrDict(j));
          if (!byName.count(name))
            continue; // loss of @apply_gradients' reference: checked apart
          HostTensor expected =
              cut(*byName[name],
                  rankF.getResultAttrOfType<DictionaryAttr>(
                      j, mlir::aim::AimDialect::kShardingAttrName),
                  d, mesh, t);
          expectClose(mine[j], expected,
                      describe(mesh) + " rank (" + std::to_string(d) + ", " +
                          std::to_string(t) + ") " + name);
        }
      }
  }

  void expectClose(const HostTensor &actual, const HostTensor &expected,
                   const std::string &what) {
    ASSERT_EQ(actual.shape, expected.shape) << what;
    std::vector<double> a = actual.toDoubles(), e = expected.toDoubles();
    double scale = magnitude(e), worst = 0;
    for (size_t i = 0; i < a.size(); ++i)
      worst = std::max(worst, std::abs(a[i] - e[i]) / scale);
    EXPECT_LE(worst, kTolerance) << what;
    ++compared;
  }

  /// @train_step on the grid against the whole step.
  void checkTrainStep(const Mesh &mesh) {
    const int64_t batch = 4;
    auto whole = compile(batch, nullptr);
    auto sharded = compile(batch, &mesh);
    ASSERT_TRUE(whole && sharded) << describe(mesh);
    auto wholeStep = whole->lookupSymbol<func::FuncOp>("train_step");
    auto rankStep = sharded->lookupSymbol<func::FuncOp>("train_step");
    auto tensors = wholeTensors(wholeStep);
    std::vector<HostTensor> expected = runWhole(wholeStep, tensors);
    compared = 0;
    auto ranks = runRanks(rankStep, mesh, rankArguments(rankStep, mesh, tensors));
    expectRanksMatch(rankStep, mesh, ranks, wholeStep, expected);
    EXPECT_EQ(compared, static_cast<int>(mesh.dp * mesh.tp *
                                         rankStep.getNumResults()));

    // @loss_and_grads: a rank's gradients are its share; the dp ranks'
    // shares add up to the whole gradient (cut by tp).
    auto wholeGrads = whole->lookupSymbol<func::FuncOp>("loss_and_grads");
    auto rankGrads = sharded->lookupSymbol<func::FuncOp>("loss_and_grads");
    std::vector<HostTensor> g = runWhole(wholeGrads, tensors);
    auto shares =
        runRanks(rankGrads, mesh, rankArguments(rankGrads, mesh, tensors));
    ASSERT_FALSE(shares.empty());
    unsigned result = 1;
    for (unsigned i = 0; i < rankGrads.getNumArguments(); ++i) {
      if (!rankGrads.getArgAttr(i, mlir::aim::AimDialect::kParamAttrName))
        continue;
      auto sharding = rankGrads.getArgAttrOfType<DictionaryAttr>(
          i, mlir::aim::AimDialect::kShardingAttrName);
      for (int64_t t = 0; t < mesh.tp; ++t) {
        std::vector<double> sum(shares[t][result].numElements(), 0.0);
        for (int64_t d = 0; d < mesh.dp; ++d) {
          std::vector<double> part = shares[d * mesh.tp + t][result].toDoubles();
          for (size_t k = 0; k < sum.size(); ++k)
            sum[k] += part[k];
        }
        expectClose(
            HostTensor::fromDoubles(DType::F64, shares[t][result].shape, sum),
            cut(g[result], sharding, 0, mesh, t),
            describe(mesh) + " gradient of " + nameOf(rankGrads.getArgAttrDict(i)));
      }
      ++result;
    }
    for (const auto &rank : shares)
      expectClose(rank[0], g[0], describe(mesh) + " loss");
  }

  /// Gradient accumulation on the grid: `micro` micro-batches of 4 images
  /// through @loss_and_grads, their losses and gradient shares weighted by
  /// each micro-batch's number of targets (as aim-run weighs them), then
  /// @apply_gradients; against one whole @train_step on all the images.
  void checkAccumulation(const Mesh &mesh, int64_t micro) {
    const int64_t batch = 4;
    auto whole = compile(batch * micro, nullptr);
    auto sharded = compile(batch, &mesh);
    ASSERT_TRUE(whole && sharded) << describe(mesh);
    auto wholeStep = whole->lookupSymbol<func::FuncOp>("train_step");
    auto tensors = wholeTensors(wholeStep);
    std::vector<HostTensor> expected = runWhole(wholeStep, tensors);

    auto rankGrads = sharded->lookupSymbol<func::FuncOp>("loss_and_grads");
    auto apply = sharded->lookupSymbol<func::FuncOp>("apply_gradients");
    const size_t ranks = mesh.dp * mesh.tp;
    std::vector<std::map<std::string, std::vector<double>>> sums(ranks);
    double loss = 0, targets = 0;
    std::set<double> counts; // of each micro-batch
    std::vector<double> images = tensors.at("images").toDoubles();
    std::vector<int64_t> prefix = tensors.at("prefix").toInt64s();
    const int64_t imageSize = images.size() / (batch * micro);
    std::vector<int64_t> imageShape = tensors.at("images").shape;
    imageShape[0] = batch;
    for (int64_t m = 0; m < micro; ++m) {
      // Micro-batch m: images [m * batch, (m + 1) * batch).
      std::map<std::string, HostTensor> part = tensors;
      part["images"] = HostTensor::fromDoubles(
          DType::F64, imageShape,
          std::vector<double>(images.begin() + m * batch * imageSize,
                              images.begin() + (m + 1) * batch * imageSize));
      std::vector<double> k(prefix.begin() + m * batch,
                            prefix.begin() + (m + 1) * batch);
      part["prefix"] = HostTensor::fromDoubles(DType::I32, {batch}, k);
      double count = 0;
      for (double kb : k)
        count += config.numPatches() - std::max(kb, 1.0);
      auto out = runRanks(rankGrads, mesh, rankArguments(rankGrads, mesh, part));
      ASSERT_EQ(out.size(), ranks);
      counts.insert(count);
      loss += count * out[0][0].toDoubles()[0];
      targets += count;
      for (size_t r = 0; r < ranks; ++r)
        for (unsigned j = 1; j < rankGrads.getNumResults(); ++j) {
          std::string name = nameOf(rankGrads.getResultAttrDict(j));
          std::vector<double> g = out[r][j].toDoubles();
          std::vector<double> &sum = sums[r][name];
          sum.resize(g.size(), 0.0);
          for (size_t i = 0; i < g.size(); ++i)
            sum[i] += count * g[i];
        }
    }
    // Equal counts would let wrong weights pass.
    EXPECT_EQ(counts.size(), static_cast<size_t>(micro));
    std::vector<std::map<std::string, HostTensor>> local(ranks);
    for (size_t r = 0; r < ranks; ++r)
      for (unsigned j = 1; j < rankGrads.getNumResults(); ++j) {
        std::string name = nameOf(rankGrads.getResultAttrDict(j));
        std::vector<double> g = sums[r][name];
        for (double &x : g)
          x /= targets;
        local[r][name] = HostTensor::fromDoubles(
            DType::F64,
            std::vector<int64_t>(cast<RankedTensorType>(
                                     rankGrads.getResultTypes()[j])
                                     .getShape()),
            g);
      }
    auto updated =
        runRanks(apply, mesh, rankArguments(apply, mesh, tensors, local));
    expectRanksMatch(apply, mesh, updated, wholeStep, expected);
    expectClose(HostTensor::fromDoubles(DType::F64, {}, {loss / targets}),
                expected[0], describe(mesh) + " accumulated loss");
  }

  ::aim::ModelConfig config = tinyConfig();
  std::string prefixMode = "iid";
  int64_t bucketBytes = 25 << 20; // aimc's default: one bucket here
  MLIRContext context;
  int compared = 0;
};

TEST_F(ShardTest, DataParallel) { checkTrainStep({2, 1, false}); }
TEST_F(ShardTest, DataParallelZero) { checkTrainStep({2, 1, true}); }
TEST_F(ShardTest, TensorParallel) { checkTrainStep({1, 2, false}); }
TEST_F(ShardTest, DataAndTensorParallel) { checkTrainStep({2, 2, false}); }
TEST_F(ShardTest, DataAndTensorParallelZero) { checkTrainStep({2, 2, true}); }
// A grid of one rank keeps its dp sums, over itself (the communication path
// on one device): still the whole step.
TEST_F(ShardTest, OneRankGrid) {
  Mesh one{1, 1, false};
  auto sharded = compile(4, &one);
  ASSERT_TRUE(sharded);
  int sums = 0;
  sharded->walk([&](shard::AllReduceOp) { ++sums; });
  EXPECT_GT(sums, 2); // the loss normaliser, the loss, the gradients
  checkTrainStep(one);
}
// aim-schedule's buckets of 1 KiB: the reductions start during the backward
// (several buckets) and the step computes the same.
TEST_F(ShardTest, GradientReductionsInBuckets) {
  bucketBytes = 1024;
  checkTrainStep({2, 2, false});
  checkTrainStep({2, 1, true});
  // Scheduled indeed: no call left, reductions started in several buckets.
  Mesh mesh{2, 1, true};
  auto module = compile(4, &mesh);
  ASSERT_TRUE(module);
  auto step = module->lookupSymbol<func::FuncOp>("train_step");
  std::set<int64_t> buckets;
  step.walk([&](Operation *op) {
    EXPECT_FALSE(isa<func::CallOp>(op));
    if (auto bucket = op->getAttrOfType<IntegerAttr>(
            mlir::aim::AimDialect::kBucketAttrName))
      buckets.insert(bucket.getInt());
  });
  EXPECT_GT(buckets.size(), 3u);
}
TEST_F(ShardTest, AntitheticPrefixes) {
  prefixMode = "antithetic";
  checkTrainStep({2, 2, true});
}
TEST_F(ShardTest, AccumulationOnTheGrid) {
  checkAccumulation({2, 2, false}, 2);
  checkAccumulation({2, 2, true}, 2);
}

} // namespace
