//===- RuntimeTest.cpp - libaimrt: schedule, checkpoints, data stream -----===//
//
// Links only libaimrt and common/: the runtime builds and runs without MLIR.
//
//===----------------------------------------------------------------------===//

#include "common/FileIO.h"
#include "runtime/Checkpoint.h"
#include "runtime/FashionMnistBatches.h"
#include "runtime/LaunchEnvironment.h"
#include "runtime/LearningRate.h"
#include "runtime/cuda/MemoryPool.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <map>
#include <random>
#include <set>
#include <sys/stat.h>

using namespace aim;
using namespace aim::rt;

TEST(LaunchEnvironment, MpirunSrunOrAlone) {
  const char *names[] = {"OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK",
                         "SLURM_STEP_NUM_TASKS", "SLURM_LOCALID",
                         "SLURM_NTASKS"};
  for (const char *n : names)
    unsetenv(n);
  LaunchEnvironment alone = LaunchEnvironment::current();
  EXPECT_EQ(alone.processes, 1);
  EXPECT_EQ(alone.localRank, 0);
  EXPECT_EQ(alone.launcher, "");
  // A batch script's allocation without srun is still one process.
  setenv("SLURM_NTASKS", "8", 1);
  EXPECT_EQ(LaunchEnvironment::current().processes, 1);
  setenv("SLURM_STEP_NUM_TASKS", "8", 1);
  setenv("SLURM_LOCALID", "3", 1);
  LaunchEnvironment srun = LaunchEnvironment::current();
  EXPECT_EQ(srun.processes, 8);
  EXPECT_EQ(srun.localRank, 3);
  EXPECT_EQ(srun.launcher, "srun");
  // mpirun's variables win; nonsense reads as absent.
  setenv("OMPI_COMM_WORLD_SIZE", "4", 1);
  setenv("OMPI_COMM_WORLD_LOCAL_RANK", "x1", 1);
  LaunchEnvironment mpirun = LaunchEnvironment::current();
  EXPECT_EQ(mpirun.processes, 4);
  EXPECT_EQ(mpirun.localRank, 0);
  EXPECT_EQ(mpirun.launcher, "mpirun");
  for (const char *n : names)
    unsetenv(n);
}

TEST(LearningRate, WarmupThenCosine) {
  // T = 400: W = round(10) = 10 warm-up steps.
  const double peak = 1e-3;
  EXPECT_DOUBLE_EQ(learningRate(0, 400, peak), 1e-6);
  EXPECT_DOUBLE_EQ(learningRate(5, 400, peak), 1e-6 + (peak - 1e-6) * 0.5);
  EXPECT_DOUBLE_EQ(learningRate(10, 400, peak), peak);
  EXPECT_NEAR(learningRate(205, 400, peak), peak / 2, 1e-18);
  EXPECT_NEAR(learningRate(400, 400, peak), 0.0, 1e-18);
  // A run too short to warm up starts at the peak.
  EXPECT_DOUBLE_EQ(learningRate(0, 10, peak), peak);
}

namespace {
std::string runDir(const std::string &name) {
  std::string dir = ::testing::TempDir() + "/aimc-run-" + name;
  mkdir(dir.c_str(), 0755);
  return dir;
}

Checkpoint smallCheckpoint() {
  Checkpoint c;
  c.model.emplace_back("w", HostTensor::fromDoubles(DType::F32, {2}, {1, 2}));
  c.optimizer.emplace_back("w.exp_avg",
                           HostTensor::fromDoubles(DType::F32, {2}, {3, 4}));
  c.optimizer.emplace_back("w.exp_avg_sq",
                           HostTensor::fromDoubles(DType::F32, {2}, {5, 6}));
  c.state = {17, 42, 1088, 400, "abc123"};
  return c;
}
} // namespace

TEST(Checkpoint, RoundTrip) {
  std::string dir = runDir("roundtrip");
  ASSERT_TRUE(writeCheckpoint(dir, smallCheckpoint()).isOk());
  StatusOr<Checkpoint> c = readCheckpoint(dir);
  ASSERT_TRUE(c.isOk()) << c.status().message();
  EXPECT_EQ(c->state.step, 17);
  EXPECT_EQ(c->state.seed, 42u);
  EXPECT_EQ(c->state.dataPosition, 1088);
  EXPECT_EQ(c->state.totalSteps, 400);
  EXPECT_EQ(c->state.artifactHash, "abc123");
  EXPECT_EQ(c->model[0].second.bytes, smallCheckpoint().model[0].second.bytes);
  EXPECT_EQ(c->optimizer.size(), 2u);
}

TEST(Checkpoint, DamagedCheckpointsAreClearErrors) {
  std::string dir = runDir("damaged");
  ASSERT_TRUE(writeCheckpoint(dir, smallCheckpoint()).isOk());
  auto expectError = [&](const char *needle) {
    StatusOr<Checkpoint> c = readCheckpoint(dir);
    ASSERT_FALSE(c.isOk());
    EXPECT_NE(c.status().message().find(needle), std::string::npos)
        << c.status().message();
  };
  // A missing moment.
  Checkpoint missing = smallCheckpoint();
  missing.optimizer.pop_back();
  ASSERT_TRUE(writeCheckpoint(dir, missing).isOk());
  expectError("lacks 'w.exp_avg_sq'");
  // A truncated weight file.
  ASSERT_TRUE(writeCheckpoint(dir, smallCheckpoint()).isOk());
  StatusOr<std::string> model = readWholeFile(dir + "/model.safetensors");
  ASSERT_TRUE(model.isOk());
  ASSERT_TRUE(writeFileAtomically(dir + "/model.safetensors",
                                  model->substr(0, model->size() - 2))
                  .isOk());
  expectError("truncated");
  // A state file that is not one.
  ASSERT_TRUE(writeCheckpoint(dir, smallCheckpoint()).isOk());
  ASSERT_TRUE(writeFileAtomically(dir + "/state.json", "{\"step\": 3").isOk());
  expectError("not a valid run state");
  ASSERT_TRUE(
      writeFileAtomically(dir + "/state.json",
                          "{\"format\": \"aimc-run-state\", \"version\": 1, "
                          "\"step\": -3, \"seed\": 0, \"data_position\": 0, "
                          "\"total_steps\": 1}")
          .isOk());
  expectError("'step' is missing or not a non-negative integer");
  StatusOr<Checkpoint> none = readCheckpoint(runDir("empty"));
  ASSERT_FALSE(none.isOk());
  EXPECT_NE(none.status().message().find("no checkpoint"), std::string::npos);
}

TEST(FashionMnistBatches, EveryEpochIsAPermutation) {
  std::set<int64_t> seen;
  for (int64_t p = 60000; p < 120000; ++p) // epoch 1
    seen.insert(sampleAt(3, p, 60000));
  EXPECT_EQ(seen.size(), 60000u);
  int differ = 0;
  for (int64_t p = 0; p < 100; ++p)
    differ += sampleAt(3, p, 60000) != sampleAt(4, p, 60000);
  EXPECT_GT(differ, 90); // another seed, another order
}

TEST(FashionMnistBatches, StreamIsDeterministicAndMeshIndependent) {
  BatchOptions options;
  options.globalBatch = 8;
  options.seed = 5;
  options.firstStep = 3;
  StatusOr<std::unique_ptr<FashionMnistBatches>> whole =
      FashionMnistBatches::open(options);
  ASSERT_TRUE(whole.isOk()) << whole.status().message();
  // The prefetched stream equals batches built on demand, in order.
  for (int64_t step = 3; step < 6; ++step) {
    Batch b = (*whole)->next();
    EXPECT_EQ(b.step, step);
    Batch direct = (*whole)->make(step);
    EXPECT_EQ(b.images.bytes, direct.images.bytes);
    EXPECT_EQ(b.prefix.bytes, direct.prefix.bytes);
    std::vector<int64_t> k = b.prefix.toInt64s();
    for (size_t i = 0; i < k.size(); i += 2)
      EXPECT_EQ(k[i] + k[i + 1], 49); // antithetic pairs
  }
  // Two ranks read the two halves of the same global batch.
  Batch global = (*whole)->make(7);
  for (int64_t rank = 0; rank < 2; ++rank) {
    BatchOptions half = options;
    half.rank = rank;
    half.ranks = 2;
    auto part = FashionMnistBatches::open(half);
    ASSERT_TRUE(part.isOk());
    Batch b = (*part)->make(7);
    size_t imageBytes = b.images.bytes.size(),
           prefixBytes = b.prefix.bytes.size();
    EXPECT_EQ(0, std::memcmp(b.images.bytes.data(),
                             global.images.bytes.data() + rank * imageBytes,
                             imageBytes));
    EXPECT_EQ(0, std::memcmp(b.prefix.bytes.data(),
                             global.prefix.bytes.data() + rank * prefixBytes,
                             prefixBytes));
  }
  BatchOptions odd = options;
  odd.globalBatch = 6;
  odd.ranks = 2;
  StatusOr<std::unique_ptr<FashionMnistBatches>> bad =
      FashionMnistBatches::open(odd);
  ASSERT_FALSE(bad.isOk());
  EXPECT_NE(bad.status().message().find("even batch per rank"),
            std::string::npos);
}

// The pool of the GPU step's temporaries, with a counting allocator in place
// of the driver.
TEST(MemoryPool, ReusesFreedBlocksBySizeAndTrims) {
  int live = 0;
  aim::rt::MemoryPool pool(
      [&](size_t bytes) -> void * {
        ++live;
        return std::malloc(bytes);
      },
      [&](void *p) {
        --live;
        std::free(p);
      });
  void *a = pool.get(1000), *b = pool.get(1000), *c = pool.get(5000);
  EXPECT_EQ(pool.driverAllocations(), 3u);
  EXPECT_EQ(pool.bytesInUse(), 1024u + 1024u + 5120u); // rounded to 256
  EXPECT_TRUE(pool.put(a));
  EXPECT_FALSE(pool.put(a)) << "a block freed twice";
  EXPECT_FALSE(pool.put(&live)) << "a block the pool never gave";
  // The same size (after rounding) comes back from the pool.
  EXPECT_EQ(pool.get(1010), a);
  EXPECT_EQ(pool.driverAllocations(), 3u);
  // A second "step" with the same pattern allocates nothing new.
  for (void *p : {a, b, c})
    EXPECT_TRUE(pool.put(p));
  for (int step = 0; step < 3; ++step) {
    void *x = pool.get(1000), *y = pool.get(1000), *z = pool.get(5000);
    for (void *p : {x, y, z})
      EXPECT_TRUE(pool.put(p));
  }
  EXPECT_EQ(pool.driverAllocations(), 3u);
  EXPECT_EQ(pool.bytesInUse(), 0u);
  pool.trim();
  EXPECT_EQ(live, 0);
  EXPECT_EQ(pool.bytesHeld(), 0u);
}

// A recorded call's temporaries placed in one arena (the CUDA graph's):
// blocks alive together never overlap, blocks that are not share memory,
// and the same call served from the plan gets the arena's addresses; a call
// that asks for other sizes falls back to the pool.
TEST(MemoryPool, RecordedCallIsServedFromAnArena) {
  aim::rt::MemoryPool pool([](size_t bytes) { return std::malloc(bytes); },
                           [](void *p) { std::free(p); });
  // A step: x (4 KiB) and y (1 KiB) alive together, x freed, then z (3 KiB)
  // with y, then w (4 KiB) alone.
  auto step = [&](std::vector<void *> &blocks) {
    void *x = pool.get(4096), *y = pool.get(1000);
    pool.put(x);
    void *z = pool.get(3000);
    pool.put(y);
    pool.put(z);
    void *w = pool.get(4096);
    pool.put(w);
    blocks = {x, y, z, w};
  };
  std::vector<void *> first, served, other;
  pool.startRecording();
  step(first);
  aim::rt::ArenaPlan plan = pool.finishRecording();
  ASSERT_EQ(plan.sizes, (std::vector<size_t>{4096, 1024, 3072, 4096}));
  // x and y together, then y and z: 5 KiB, not the 12 KiB of the blocks.
  EXPECT_EQ(plan.bytes, 5120u);
  auto overlaps = [&](size_t i, size_t j) {
    return plan.offsets[i] < plan.offsets[j] + plan.sizes[j] &&
           plan.offsets[j] < plan.offsets[i] + plan.sizes[i];
  };
  EXPECT_FALSE(overlaps(0, 1));
  EXPECT_FALSE(overlaps(1, 2));
  std::vector<char> arena(plan.bytes);
  pool.serve(arena.data(), plan);
  size_t allocations = pool.driverAllocations();
  step(served);
  EXPECT_TRUE(pool.stopServing());
  for (size_t i = 0; i < served.size(); ++i)
    EXPECT_EQ(served[i], arena.data() + plan.offsets[i]);
  EXPECT_EQ(pool.driverAllocations(), allocations);
  EXPECT_EQ(pool.bytesInUse(), 0u);
  // Another pattern: the first get of another size ends the plan.
  pool.serve(arena.data(), plan);
  void *big = pool.get(8192);
  EXPECT_FALSE(pool.stopServing());
  EXPECT_TRUE(big < static_cast<void *>(arena.data()) ||
              big >= static_cast<void *>(arena.data() + arena.size()));
  EXPECT_TRUE(pool.put(big));
}

// The placement on its own: many random lifetimes, no two blocks alive at
// the same time share a byte, and the arena is at least the liveness peak.
TEST(MemoryPool, ArenaPlacementKeepsLiveBlocksApart) {
  std::mt19937 random(7);
  std::vector<size_t> sizes, starts, ends;
  for (size_t i = 0; i < 300; ++i) {
    sizes.push_back(256 * (1 + random() % 64));
    size_t start = random() % 1000;
    starts.push_back(start);
    ends.push_back(start + 1 + random() % 100);
  }
  aim::rt::ArenaPlan plan = aim::rt::placeInArena(sizes, starts, ends);
  size_t peak = 0;
  for (size_t t = 0; t < 1100; ++t) {
    size_t live = 0;
    for (size_t i = 0; i < sizes.size(); ++i)
      live += starts[i] <= t && t < ends[i] ? sizes[i] : 0;
    peak = std::max(peak, live);
  }
  EXPECT_GE(plan.bytes, peak);
  EXPECT_EQ(plan.peakLive, peak);
  for (size_t i = 0; i < sizes.size(); ++i) {
    EXPECT_LE(plan.offsets[i] + sizes[i], plan.bytes);
    for (size_t j = 0; j < i; ++j)
      if (starts[i] < ends[j] && starts[j] < ends[i]) {
        EXPECT_TRUE(plan.offsets[i] + sizes[i] <= plan.offsets[j] ||
                    plan.offsets[j] + sizes[j] <= plan.offsets[i])
            << "blocks " << i << " and " << j << " overlap";
      }
  }
}

TEST(MemoryPool, OutOfMemoryReturnsCachedBlocksAndRetries) {
  size_t budget = 4096, used = 0;
  std::map<void *, size_t> sizes;
  aim::rt::MemoryPool pool(
      [&](size_t bytes) -> void * {
        if (used + bytes > budget)
          return nullptr;
        used += bytes;
        void *p = std::malloc(bytes);
        sizes[p] = bytes;
        return p;
      },
      [&](void *p) {
        used -= sizes[p];
        std::free(p);
      });
  void *a = pool.get(2048);
  ASSERT_NE(a, nullptr);
  EXPECT_TRUE(pool.put(a));
  // 3072 does not fit next to the cached 2048: the pool gives it back.
  void *b = pool.get(3072);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(pool.bytesHeld(), 3072u);
  EXPECT_EQ(pool.get(2048), nullptr) << "really out of memory";
  EXPECT_TRUE(pool.put(b));
}
