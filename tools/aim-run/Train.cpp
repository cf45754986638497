//===- Train.cpp - aim-run train ------------------------------------------===//
//
// Loads the artifact's host code and calls its @train_step once per step
// with the batch, the learning rate and the step index, threading parameters
// and AdamW state from one step to the next; evaluates @forward on the
// validation set at every checkpoint, and draws the run's pictures at the end.
//
//===----------------------------------------------------------------------===//

#include "tools/aim-run/Commands.h"

#include "common/Npy.h"
#include "common/Philox.h"
#include "runtime/Checkpoint.h"
#include "runtime/FashionMnistBatches.h"
#include "runtime/LearningRate.h"
#include "runtime/SyntheticBatches.h"
#include "tools/aim-run/AccumulatedStep.h"
#include "tools/aim-run/Pictures.h"
#include "tools/aim-run/ShardedRun.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

// OpenBLAS is linked statically: its GEMMs are the compute threads.
extern "C" void openblas_set_num_threads(int);

namespace aim::rt {

namespace {

struct TrainOptions {
  std::string artifact, out = "run", fixedImages, fixedPrefix, initParams;
  std::string data, evalData, device = "host";
  GemmPrecision gemm = GemmPrecision::F32;
  int64_t steps = 100, checkpointEvery = 0, stopAfter = 0, threads = 0;
  int64_t dataThreads = 1, evalImages = 1024, accumulate = 1;
  int64_t rank = 0, ranks = 1; // of the data-parallel processes (mpirun)
  double collectiveTimeout = 600; // seconds a rank waits for the others
  uint64_t seed = 0;
  double lr = 1e-3;
  bool constant = false, resume = false, augment = true;
};

Status parseTrainOptions(int argc, char **argv, TrainOptions &o) {
  o.artifact = argv[2];
  for (int i = 3; i < argc; ++i) {
    std::string flag = argv[i];
    auto value = [&]() -> const char * {
      return i + 1 < argc ? argv[++i] : nullptr;
    };
    const char *v = nullptr;
    if (flag == "--resume") {
      o.resume = true;
    } else if (flag == "--no-augment") {
      o.augment = false;
    } else if (flag == "--steps" || flag == "--seed" ||
               flag == "--checkpoint-every" || flag == "--stop-after" ||
               flag == "--threads" || flag == "--data-threads" ||
               flag == "--eval-images" || flag == "--accumulate") {
      int64_t n;
      if (!(v = value()) || !parseInt(v, n) || n < 0)
        return Status::error(flag + " takes a non-negative integer");
      if (flag == "--steps")
        o.steps = n;
      else if (flag == "--seed")
        o.seed = static_cast<uint64_t>(n);
      else if (flag == "--stop-after")
        o.stopAfter = n;
      else if (flag == "--threads")
        o.threads = n;
      else if (flag == "--data-threads")
        o.dataThreads = n;
      else if (flag == "--eval-images")
        o.evalImages = n;
      else if (flag == "--accumulate")
        o.accumulate = n;
      else
        o.checkpointEvery = n;
    } else if (flag == "--collective-timeout") {
      char *end = nullptr;
      if (!(v = value()) ||
          !(o.collectiveTimeout = std::strtod(v, &end), *end == 0) ||
          !(o.collectiveTimeout > 0))
        return Status::error("--collective-timeout takes a positive number of "
                             "seconds");
    } else if (flag == "--lr") {
      char *end = nullptr;
      if (!(v = value()) || !(o.lr = std::strtod(v, &end), *end == 0) ||
          !(o.lr > 0))
        return Status::error("--lr takes a positive number");
    } else if (flag == "--schedule") {
      if (!(v = value()) ||
          (std::strcmp(v, "cosine") != 0 && std::strcmp(v, "constant") != 0))
        return Status::error("--schedule is cosine or constant");
      o.constant = std::strcmp(v, "constant") == 0;
    } else if (flag == "--out" || flag == "--init-params" || flag == "--data" ||
               flag == "--eval-data" || flag == "--device") {
      if (!(v = value()))
        return Status::error(flag + (flag == "--device" ? " takes host or cuda"
                                                        : " takes a path"));
      (flag == "--out"           ? o.out
       : flag == "--init-params" ? o.initParams
       : flag == "--data"        ? o.data
       : flag == "--device"      ? o.device
                                 : o.evalData) = v;
    } else if (flag == "--gemm-precision") {
      if (!(v = value()))
        return Status::error("--gemm-precision takes fp32, tf32 or bf16");
      StatusOr<GemmPrecision> p = parseGemmPrecision(v);
      if (!p)
        return p.status();
      o.gemm = *p;
    } else if (flag == "--fixed-batch") {
      if (i + 2 >= argc)
        return Status::error("--fixed-batch takes X.npy and K.npy");
      o.fixedImages = argv[++i];
      o.fixedPrefix = argv[++i];
    } else {
      return Status::error("unknown flag '" + flag + "'\n" + kUsage);
    }
  }
  if (o.dataThreads < 1)
    return Status::error("--data-threads must be at least 1");
  if (o.accumulate < 1)
    return Status::error("--accumulate must be at least 1 (micro-batches per "
                         "step)");
  if (!o.fixedImages.empty() && !o.data.empty())
    return Status::error("give --fixed-batch or --data, not both");
  // Synthetic training validates on synthetic images held out from it.
  if (o.data == kSyntheticData && o.evalData.empty())
    o.evalData = kSyntheticData;
  return Status::ok();
}

/// The one fixed batch of --fixed-batch, checked against the artifact.
StatusOr<Batch> readFixedBatch(const LoadedModel &model,
                               const TrainOptions &o) {
  const int64_t batch = model.batch() * o.accumulate, n = model.numPatches();
  StatusOr<HostTensor> x = readNpy(o.fixedImages);
  StatusOr<HostTensor> k = readNpy(o.fixedPrefix);
  if (!x)
    return x.status();
  if (!k)
    return k.status();
  ModelImageShape shape = model.imageShape();
  std::vector<int64_t> want = {batch, shape.channels, shape.height,
                               shape.width};
  if (x->shape != want || x->dtype != DType::F32)
    return Status::error("'" + o.fixedImages + "' must be float32 " +
                         shapeToString(want) +
                         ", the artifact's batch times --accumulate");
  if (k->shape != std::vector<int64_t>{batch} ||
      (k->dtype != DType::I32 && k->dtype != DType::I64))
    return Status::error("'" + o.fixedPrefix + "' must be int32 [" +
                         std::to_string(batch) + "]");
  std::vector<int64_t> lengths = k->toInt64s();
  for (int64_t v : lengths)
    if (v < 1 || v > n)
      return Status::error("prefix lengths must be in [1, N]");
  if (model.prefixMode() == PrefixMode::Antithetic)
    for (size_t i = 0; i + 1 < lengths.size(); i += 2)
      if (lengths[i] + lengths[i + 1] != n)
        return Status::error("the artifact is compiled for antithetic prefix "
                             "pairs (K, N - K); '" +
                             o.fixedPrefix + "' breaks them");
  Batch b;
  b.images = std::move(*x);
  b.prefix = HostTensor::fromDoubles(
      DType::I32, {batch}, std::vector<double>(lengths.begin(), lengths.end()));
  return b;
}

/// Where the steps' batches come from.
class DataSource {
public:
  /// `globalBatch` images a step, this rank's slice of them.
  static StatusOr<DataSource> open(const LoadedModel &model,
                                   const TrainOptions &o, int64_t globalBatch,
                                   int64_t firstStep) {
    DataSource d;
    if (!o.fixedImages.empty()) {
      StatusOr<Batch> fixed = readFixedBatch(model, o);
      if (!fixed)
        return fixed.status();
      d.fixed = std::move(*fixed);
      return d;
    }
    BatchOptions b;
    b.globalBatch = globalBatch;
    b.rank = o.rank;
    b.ranks = o.ranks;
    b.seed = o.seed;
    b.prefixMode = model.prefixMode();
    b.numPatches = model.numPatches();
    b.firstStep = firstStep;
    b.threads = static_cast<int>(o.dataThreads);
    b.prefetch = std::max(2, b.threads);
    if (o.data == kSyntheticData) {
      auto synthetic = SyntheticBatches::open(model.imageShape(), b);
      if (!synthetic)
        return synthetic.status();
      std::printf("data: synthetic images (plane waves and noise)\n");
      d.synthetic = std::move(*synthetic);
      return d;
    }
    if (!o.data.empty()) {
      Augmentation augmentation;
      augmentation.crop = augmentation.flip = augmentation.jitter = o.augment;
      auto folder =
          ImageFolderBatches::open(o.data, model.imageShape(), augmentation, b);
      if (!folder)
        return folder.status();
      std::printf("data: %lld images under %s\n",
                  static_cast<long long>((*folder)->fileCount()),
                  o.data.c_str());
      d.folder = std::move(*folder);
      return d;
    }
    ModelImageShape shape = model.imageShape();
    if (shape.channels != 1 || shape.height != 28 || shape.width != 28)
      return Status::error(
          "Fashion-MNIST images are 1x28x28 but this model takes " +
          std::to_string(shape.channels) + "x" + std::to_string(shape.height) +
          "x" + std::to_string(shape.width) +
          "; give --data DIR or --fixed-batch");
    auto stream = FashionMnistBatches::open(b);
    if (!stream)
      return stream.status();
    d.fashionMnist = std::move(*stream);
    return d;
  }

  StatusOr<Batch> next() {
    if (synthetic)
      return synthetic->next();
    if (folder)
      return folder->next();
    if (fashionMnist)
      return fashionMnist->next();
    return fixed;
  }

private:
  Batch fixed;
  std::unique_ptr<ImageFolderBatches> folder;
  std::unique_ptr<FashionMnistBatches> fashionMnist;
  std::unique_ptr<SyntheticBatches> synthetic;
};

/// For tests of what the other ranks do when one fails (docs/distributed.md):
/// $AIMC_FAULT=exit|hang on rank $AIMC_FAULT_RANK at step $AIMC_FAULT_STEP.
void injectFault(int64_t rank, int64_t step) {
  const char *fault = std::getenv("AIMC_FAULT");
  const char *atRank = std::getenv("AIMC_FAULT_RANK");
  const char *atStep = std::getenv("AIMC_FAULT_STEP");
  if (!fault || !atRank || !atStep || std::atoll(atRank) != rank ||
      std::atoll(atStep) != step)
    return;
  std::fprintf(stderr, "aim-run: rank %lld: injected fault '%s' at step %lld\n",
               static_cast<long long>(rank), fault,
               static_cast<long long>(step));
  if (std::strcmp(fault, "hang") == 0)
    for (;;)
      pause();
  std::_Exit(3);
}

} // namespace

int runTrain(int argc, char **argv) {
  TrainOptions o;
  if (Status s = parseTrainOptions(argc, argv, o); !s)
    return fail(s.message());
  // Under mpirun each rank trains on its slice of every step's batch; rank 0
  // alone prints, validates and writes the run.
  StatusOr<MpiComm *> world = MpiComm::world();
  if (!world)
    return fail(world.status().message());
  MpiComm *ranks = *world;
  const bool lead = ranks->rank() == 0;
  if (!lead && !std::freopen("/dev/null", "w", stdout))
    return fail("cannot silence rank " + std::to_string(ranks->rank()));
  if (ranks->size() > 1 && !o.fixedImages.empty())
    return fail("--fixed-batch is one batch for one process; under mpirun "
                "give --data or use the default stream");
  o.ranks = ranks->size();
  o.rank = ranks->rank();
  ranks->setTimeout(o.collectiveTimeout);
  StatusOr<DeviceKind> device = parseDeviceKind(o.device);
  if (!device)
    return fail(device.status().message());
  if (o.gemm != GemmPrecision::F32 && *device != DeviceKind::Cuda)
    return fail("--gemm-precision chooses how a GPU multiplies: give "
                "--device cuda (the host's GEMMs are float32)");
  StatusOr<LoadedModel> model = loadModel(o.artifact, *device, o.gemm);
  if (!model)
    return fail(model.status().message());
  const Artifact &artifact = model->artifact;
  std::printf("device: %s\n", model->program->description().c_str());
  StatusOr<EntryCall> step =
      EntryCall::prepare(artifact, *model->program, "train_step");
  if (!step)
    return fail(step.status().message());
  if (step->results().size() < 2)
    return fail("the artifact's train_step returns no loss and grad norm");
  // A per-rank program (aimc --mesh) runs on its grid: the artifact's batch
  // is the whole step's, each dp rank reads its slice, and the program sums
  // over the ranks itself.
  StatusOr<std::unique_ptr<ShardedRun>> sharded =
      ShardedRun::open(artifact, *ranks, *device);
  if (!sharded)
    return fail(sharded.status().message());
  if (*sharded) {
    const GridPosition &at = (*sharded)->position();
    o.rank = at.d;
    o.ranks = at.dp;
    std::printf("grid: dp=%lld x tp=%lld ranks, this one (%lld, %lld)\n",
                static_cast<long long>(at.dp), static_cast<long long>(at.tp),
                static_cast<long long>(at.d), static_cast<long long>(at.t));
    if (std::string nccl = (*sharded)->gpuCollectives(); !nccl.empty())
      std::printf("collectives: %s\n", nccl.c_str());
  }
  // With --accumulate, a step is A micro-batches of the artifact's batch
  // (a per-rank program's batch is already its grid's).
  const int64_t microBatches = *sharded ? o.accumulate : o.accumulate * o.ranks;
  const int64_t globalBatch = model->batch() * microBatches;
  std::optional<AccumulatedStep> accumulated;
  if (*sharded ? o.accumulate > 1 : (o.accumulate > 1 || o.ranks > 1)) {
    StatusOr<AccumulatedStep> a =
        *sharded ? AccumulatedStep::preparePerRank(
                       *model, o.accumulate, (*sharded)->dataParallelGroup(),
                       o.ranks)
                 : AccumulatedStep::prepare(*model, o.accumulate, ranks);
    if (!a)
      return fail(a.status().message());
    accumulated = std::move(*a);
    if (*sharded)
      std::printf("batch: %lld images a step: %lld micro-batches of %lld "
                  "over the grid\n",
                  static_cast<long long>(globalBatch),
                  static_cast<long long>(o.accumulate),
                  static_cast<long long>(model->batch()));
    else
      std::printf("batch: %lld images a step: %lld data-parallel ranks x %lld "
                  "micro-batches of %lld\n",
                  static_cast<long long>(globalBatch),
                  static_cast<long long>(o.ranks),
                  static_cast<long long>(o.accumulate),
                  static_cast<long long>(model->batch()));
  }

  // What a checkpoint of this run belongs to, whatever the grid.
  const std::string modelIdentity =
      artifact.root->config_json()->str() + "|" +
      artifact.root->prefix_mode()->str();
  char modelHash[17];
  std::snprintf(modelHash, sizeof modelHash, "%016llx",
                static_cast<unsigned long long>(
                    fnv1a64(modelIdentity.data(), modelIdentity.size())));

  // Parameters and AdamW state, from a checkpoint or fresh.
  NamedTensors params, state;
  int64_t firstStep = 0;
  mkdir(o.out.c_str(), 0755);
  if (o.resume) {
    StatusOr<Checkpoint> c = readCheckpoint(o.out);
    if (!c)
      return fail(c.status().message());
    // Another artifact of the same model -- another grid, another split of
    // the batch -- continues the run: checkpoints hold whole tensors.
    if (c->state.artifactHash != artifact.hash) {
      if (c->state.modelHash.empty() || c->state.modelHash != modelHash)
        return fail("the checkpoint in '" + o.out +
                    "' belongs to another artifact (" + c->state.artifactHash +
                    ", this one is " + artifact.hash +
                    ") of another model or prefix sampling");
      std::printf("resuming with another artifact of the same model (%s)\n",
                  artifact.hash.c_str());
    }
    params = std::move(c->model);
    state = std::move(c->optimizer);
    firstStep = c->state.step;
    if (c->state.threads > 0 && o.threads == 0)
      o.threads = c->state.threads;
    else if (c->state.threads > 0 && o.threads != c->state.threads)
      warn("the run used " + std::to_string(c->state.threads) +
           " threads, this part " + std::to_string(o.threads) +
           ": it will not match an uninterrupted run bit for bit");
    o.seed = c->state.seed;
    // The batch of a step is the artifact's times the micro-batches of
    // every rank: the mesh may change, the product may not.
    if (c->state.imagesPerStep > 0 && c->state.imagesPerStep != globalBatch)
      return fail("the run in '" + o.out + "' takes " +
                  std::to_string(c->state.imagesPerStep) +
                  " images a step, this one " + std::to_string(globalBatch) +
                  " (the artifact's batch x ranks x --accumulate): resume "
                  "with the same");
    if (c->state.imagesPerStep == 0 && c->state.accumulate != microBatches)
      return fail("the run in '" + o.out + "' takes " +
                  std::to_string(c->state.accumulate) +
                  " micro-batches a step (ranks x --accumulate), this one " +
                  std::to_string(microBatches) +
                  ": resume with the same product");
    if (o.steps != c->state.totalSteps)
      return fail("the run in '" + o.out + "' was started with --steps " +
                  std::to_string(c->state.totalSteps) +
                  "; resume with the same");
  } else {
    StatusOr<NamedTensors> init =
        initialParameters(artifact, o.initParams, o.seed);
    if (!init)
      return fail(init.status().message());
    params = std::move(*init);
    for (const char *suffix : {".exp_avg", ".exp_avg_sq"})
      for (const auto &[name, t] : params)
        state.emplace_back(name + suffix,
                           HostTensor::zeros(DType::F32, t.shape));
  }
  if (*sharded) // checkpoints and fresh tensors are whole: this rank's parts
    for (NamedTensors *tensors : {&params, &state})
      if (Status s = (*sharded)->cut(*tensors); !s)
        return fail(s.message());
  // The one threading policy: the GEMMs use --threads compute threads (all
  // cores by default); the data stream its --data-threads data threads.
  if (o.threads == 0)
    o.threads = std::max(1u, std::thread::hardware_concurrency());
  openblas_set_num_threads(static_cast<int>(o.threads));

  StatusOr<DataSource> data = DataSource::open(*model, o, globalBatch, firstStep);
  if (!data)
    return fail(data.status().message());

  // Validation: Fashion-MNIST's t10k for 28x28 gray models, or --eval-data.
  std::optional<EvalSet> evalSet;
  std::optional<EntryCall> forward;
  ModelImageShape shape = model->imageShape();
  bool fashionMnistShape =
      shape.channels == 1 && shape.height == 28 && shape.width == 28;
  // A per-rank program's forward pass needs every rank: each validates on
  // its slice.
  if ((lead || *sharded) && o.evalImages > 0 &&
      (fashionMnistShape || !o.evalData.empty())) {
    StatusOr<EvalSet> set =
        loadEvalSet(*model, o.evalData, o.evalImages, o.seed);
    StatusOr<EntryCall> f =
        EntryCall::prepare(artifact, *model->program, "forward");
    if (!set)
      return fail(set.status().message());
    if (!f)
      return fail(f.status().message());
    evalSet = std::move(*set);
    forward = std::move(*f);
  }

  std::map<std::string, HostTensor *> arguments = byName(params);
  for (auto &[name, t] : state)
    arguments[name] = &t;
  // train_step's results after the loss and the gradient norm are the new
  // parameters and optimiser state: they update their arguments in place
  // (on a GPU they stay there; the host copies are refreshed before they are
  // read: checkpoints, validation, pictures).
  for (size_t i = 2; i < step->results().size(); ++i)
    if (!arguments.count(step->resultNames()[i]))
      return fail("the artifact's train_step returns an unknown tensor '" +
                  step->resultNames()[i] + "'");
  step->updateArgumentsInPlace();
  std::FILE *metrics =
      std::fopen(lead ? (o.out + "/metrics.jsonl").c_str() : "/dev/null",
                 o.resume ? "a" : "w");
  if (!metrics)
    return fail("cannot write " + o.out + "/metrics.jsonl");
  double evalSeconds = 0.0; // kept out of the throughput
  auto validate = [&](int64_t done) -> Status {
    if (Status s = step->syncArgumentsToHost(); !s)
      return s;
    if (!evalSet)
      return Status::ok();
    auto begin = std::chrono::steady_clock::now();
    // The whole step validates on rank 0 alone; a per-rank program on
    // every rank, each on its dp slice.
    StatusOr<double> loss =
        *sharded ? evaluateLoss(*model, *forward, params, *evalSet, o.rank,
                                o.ranks)
                 : evaluateLoss(*model, *forward, params, *evalSet);
    if (!loss)
      return loss.status();
    std::printf("validation after %lld steps: loss %.6f (%lld images of %s)\n",
                static_cast<long long>(done), *loss,
                static_cast<long long>(evalSet->count),
                evalSet->source.c_str());
    std::fprintf(metrics, "{\"step\": %lld, \"val_loss\": %.9g}\n",
                 static_cast<long long>(done), *loss);
    std::fflush(metrics);
    evalSeconds += std::chrono::duration<double>(
                       std::chrono::steady_clock::now() - begin)
                       .count();
    return Status::ok();
  };
  // The whole parameters of the last checkpoint (a per-rank program's ranks
  // hold parts).
  NamedTensors wholeParams;
  auto save = [&](int64_t done) -> Status {
    if (Status s = step->syncArgumentsToHost(); !s)
      return s;
    NamedTensors wholeState;
    if (*sharded) {
      auto p = (*sharded)->assemble(params);
      if (!p)
        return p.status();
      auto st = (*sharded)->assemble(state);
      if (!st)
        return st.status();
      wholeParams = std::move(*p);
      wholeState = std::move(*st);
    }
    if (!lead) // one copy of the run: rank 0's (every rank holds the same)
      return Status::ok();
    Checkpoint c{
        *sharded ? wholeParams : params,
        *sharded ? wholeState : state,
        {done, o.seed, done * globalBatch, o.steps, artifact.hash, o.threads,
         microBatches, modelHash, globalBatch}};
    return writeCheckpoint(o.out, c);
  };
  if (!o.resume)
    if (Status s = validate(0); !s)
      return fail(s.message());

  HostTensor lr = HostTensor::zeros(DType::F32, {}),
             stepIndex = HostTensor::zeros(DType::I64, {});
  arguments["lr"] = &lr;
  arguments["step"] = &stepIndex;
  auto started = std::chrono::steady_clock::now();
  evalSeconds = 0.0;
  const int64_t lastStep =
      o.stopAfter > 0 ? std::min(o.steps, firstStep + o.stopAfter) : o.steps;
  for (int64_t s = firstStep; s < lastStep; ++s) {
    StatusOr<Batch> b = data->next();
    if (!b)
      return fail(b.status().message());
    injectFault(ranks->rank(), s);
    arguments["images"] = &b->images;
    arguments["prefix"] = &b->prefix;
    double rate = o.constant ? o.lr : learningRate(s, o.steps, o.lr);
    float rate32 = static_cast<float>(rate);
    std::memcpy(lr.bytes.data(), &rate32, 4);
    int64_t s64 = s;
    std::memcpy(stepIndex.bytes.data(), &s64, 8);
    float loss, norm;
    if (accumulated) {
      if (Status st = (*accumulated)(b->images, b->prefix, arguments, loss,
                                     norm);
          !st)
        return fail(st.message());
    } else {
      if (Status st = (*step)(arguments); !st)
        return fail(st.message());
      std::memcpy(&loss, step->result(0).bytes.data(), 4);
      std::memcpy(&norm, step->result(1).bytes.data(), 4);
    }
    if (!std::isfinite(loss)) {
      std::fclose(metrics);
      return fail("the loss is " + std::to_string(loss) + " at step " +
                  std::to_string(s) + "; stopping (the last checkpoint in '" +
                  o.out + "' is kept)");
    }
    double seconds = std::chrono::duration<double>(
                         std::chrono::steady_clock::now() - started)
                         .count() -
                     evalSeconds;
    double imagesPerSecond = (s - firstStep + 1) * globalBatch / seconds;
    double eta = (lastStep - s - 1) * seconds / (s - firstStep + 1);
    std::printf("step %lld loss %.9g grad_norm %.9g lr %.3g images/s %.1f "
                "eta %.0fs\n",
                static_cast<long long>(s), loss, norm, rate, imagesPerSecond,
                eta);
    std::fflush(stdout);
    std::fprintf(metrics,
                 "{\"step\": %lld, \"loss\": %.9g, \"grad_norm\": %.9g, "
                 "\"lr\": %.9g, \"images_per_second\": %.3f}\n",
                 static_cast<long long>(s), loss, norm, rate, imagesPerSecond);
    std::fflush(metrics);
    if (o.checkpointEvery > 0 && (s + 1) % o.checkpointEvery == 0 &&
        s + 1 < lastStep) {
      if (Status st = save(s + 1); !st)
        return fail(st.message());
      if (Status st = validate(s + 1); !st)
        return fail(st.message());
    }
  }
  if (Status st = save(lastStep); !st)
    return fail(st.message());
  if (Status st = validate(lastStep); !st)
    return fail(st.message());
  std::fclose(metrics);
  std::printf("checkpoint: %s/model.safetensors (step %lld of %lld)\n",
              o.out.c_str(), static_cast<long long>(lastStep),
              static_cast<long long>(o.steps));
  // Predictions are drawn for the validation images, or else for the first
  // training images of a folder the model can read.
  std::string pictureData =
      o.evalData.empty() && !fashionMnistShape ? o.data : o.evalData;
  if (!lead)
    return 0;
  if (Status st = writeRunPictures(*model, *sharded ? wholeParams : params,
                                   o.out, pictureData, o.seed);
      !st)
    warn("no pictures: " + st.message());
  return 0;
}

} // namespace aim::rt
