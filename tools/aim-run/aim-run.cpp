//===- aim-run.cpp - train a compiled model ------------------------------===//
//
// aim-run train m.aimx [--steps N] [--out RUN_DIR] [--resume] [--seed S]
//                      [--lr X] [--schedule cosine|constant]
//                      [--fixed-batch X.npy K.npy] [--init-params P]
//                      [--checkpoint-every K]
//
// Loads the artifact's host code and calls its @train_step once per step
// with the batch, the learning rate and the step index, threading parameters
// and AdamW state from one step to the next.
//
//===----------------------------------------------------------------------===//

#include "common/Npy.h"
#include "common/ParameterInit.h"
#include "common/Safetensors.h"
#include "runtime/Artifact.h"
#include "runtime/Checkpoint.h"
#include "runtime/FashionMnistBatches.h"
#include "runtime/HostProgram.h"
#include "runtime/LearningRate.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <sys/stat.h>
#include <thread>

// OpenBLAS is linked statically: its GEMMs are the compute threads.
extern "C" void openblas_set_num_threads(int);

using namespace aim;
using namespace aim::rt;

namespace {

const char *kUsage =
    "usage: aim-run train m.aimx [--steps N] [--out RUN_DIR] [--resume]\n"
    "                            [--seed S] [--lr X] [--schedule "
    "cosine|constant]\n"
    "                            [--fixed-batch X.npy K.npy] [--init-params "
    "P]\n"
    "                            [--checkpoint-every K] [--stop-after K]\n"
    "                            [--threads N]\n"
    "  --steps N             steps of the run (default 100); the schedule\n"
    "                        (AIM's warm-up and cosine) is computed from it\n"
    "  --lr X                peak learning rate (default 1e-3)\n"
    "  --schedule constant   use --lr at every step instead\n"
    "  --out RUN_DIR         checkpoints and metrics.jsonl (default run)\n"
    "  --resume              continue the run in RUN_DIR exactly\n"
    "  --fixed-batch X K     train on one batch (.npy images and prefix "
    "lengths)\n"
    "                        instead of Debian's Fashion-MNIST stream\n"
    "  --init-params P       start from these weights (.safetensors)\n"
    "  --checkpoint-every K  also checkpoint every K steps (default: at the "
    "end)\n"
    "  --stop-after K        stop after K steps of this invocation, with a\n"
    "                        checkpoint; --resume continues the run\n"
    "  --threads N           compute threads of the GEMMs (default: every "
    "core;\n"
    "                        a resumed run keeps the run's count, since the "
    "last\n"
    "                        bits of the sums depend on it)\n";

struct Options {
  std::string artifact, out = "run", fixedImages, fixedPrefix, initParams;
  int64_t steps = 100, checkpointEvery = 0, stopAfter = 0, threads = 0;
  uint64_t seed = 0;
  double lr = 1e-3;
  bool constant = false, resume = false;
};

int fail(const std::string &message) {
  std::fprintf(stderr, "aim-run: error: %s\n", message.c_str());
  return 1;
}

bool parseInt(const char *text, int64_t &out) {
  char *end = nullptr;
  long long v = std::strtoll(text, &end, 10);
  if (!*text || *end)
    return false;
  out = v;
  return true;
}

Status parseOptions(int argc, char **argv, Options &o) {
  if (argc < 3 || std::strcmp(argv[1], "train") != 0)
    return Status::error(std::string("expected a command and an artifact\n") +
                         kUsage);
  o.artifact = argv[2];
  for (int i = 3; i < argc; ++i) {
    std::string flag = argv[i];
    auto value = [&]() -> const char * {
      return i + 1 < argc ? argv[++i] : nullptr;
    };
    const char *v = nullptr;
    if (flag == "--resume") {
      o.resume = true;
    } else if (flag == "--steps" || flag == "--seed" ||
               flag == "--checkpoint-every" || flag == "--stop-after" ||
               flag == "--threads") {
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
      else
        o.checkpointEvery = n;
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
    } else if (flag == "--out") {
      if (!(v = value()))
        return Status::error("--out takes a directory");
      o.out = v;
    } else if (flag == "--init-params") {
      if (!(v = value()))
        return Status::error("--init-params takes a .safetensors file");
      o.initParams = v;
    } else if (flag == "--fixed-batch") {
      if (i + 2 >= argc)
        return Status::error("--fixed-batch takes X.npy and K.npy");
      o.fixedImages = argv[++i];
      o.fixedPrefix = argv[++i];
    } else {
      return Status::error("unknown flag '" + flag + "'\n" + kUsage);
    }
  }
  return Status::ok();
}

std::vector<int64_t> shapeOf(const aimx::Tensor *t) {
  return t->shape()
             ? std::vector<int64_t>(t->shape()->begin(), t->shape()->end())
             : std::vector<int64_t>{};
}

/// Initial parameters: the artifact's table under AIM.md's initialisation,
/// or a file checked against the table.
StatusOr<NamedTensors> initialParameters(const Artifact &artifact,
                                         const Options &o) {
  NamedTensors params;
  if (o.initParams.empty()) {
    for (const aimx::Parameter *p : *artifact.root->parameters()) {
      ParamSpec spec{p->name()->str(), {}, InitKind::Zeros, p->weight_decay()};
      spec.shape.assign(p->shape()->begin(), p->shape()->end());
      spec.init = p->init() == aimx::InitKind::Zeros  ? InitKind::Zeros
                  : p->init() == aimx::InitKind::Ones ? InitKind::Ones
                                                      : InitKind::XavierUniform;
      std::vector<double> values(elementCount(spec.shape));
      for (size_t i = 0; i < values.size(); ++i)
        values[i] = initialValue(spec, o.seed, static_cast<int64_t>(i));
      params.emplace_back(
          spec.name, HostTensor::fromDoubles(DType::F32, spec.shape, values));
    }
    return params;
  }
  StatusOr<NamedTensors> file = readSafetensors(o.initParams);
  if (!file)
    return file.status();
  std::map<std::string, HostTensor *> byName;
  for (auto &[name, t] : *file)
    byName[name] = &t;
  for (const aimx::Parameter *p : *artifact.root->parameters()) {
    std::string name = p->name()->str();
    std::vector<int64_t> shape(p->shape()->begin(), p->shape()->end());
    auto it = byName.find(name);
    if (it == byName.end() || it->second->shape != shape)
      return Status::error("'" + o.initParams + "' lacks parameter '" + name +
                           "' of shape " + shapeToString(shape));
    std::vector<double> v = it->second->toDoubles();
    params.emplace_back(name, HostTensor::fromDoubles(DType::F32, shape, v));
  }
  if (params.size() != file->size())
    return Status::error("'" + o.initParams +
                         "' holds tensors this model does not have");
  return params;
}

} // namespace

int main(int argc, char **argv) {
  for (int i = 1; i < argc; ++i)
    if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
      std::fputs(kUsage, stdout);
      return 0;
    }
  Options o;
  if (Status s = parseOptions(argc, argv, o); !s)
    return fail(s.message());
  StatusOr<Artifact> artifact = readArtifact(o.artifact);
  if (!artifact)
    return fail(artifact.status().message());
  const aimx::EntryPoint *step = artifact->entryPoint("train_step");
  if (!step || !step->arguments() || !step->results())
    return fail("'" + o.artifact + "' has no train_step");
  StatusOr<std::unique_ptr<HostProgram>> program = HostProgram::load(*artifact);
  if (!program)
    return fail(program.status().message());
  StatusOr<PackedEntry> entry = (*program)->entry(*step);
  if (!entry)
    return fail(entry.status().message());

  // Parameters and AdamW state, from a checkpoint or fresh.
  NamedTensors params, state;
  int64_t firstStep = 0;
  mkdir(o.out.c_str(), 0755);
  if (o.resume) {
    StatusOr<Checkpoint> c = readCheckpoint(o.out);
    if (!c)
      return fail(c.status().message());
    if (c->state.artifactHash != artifact->hash)
      return fail("the checkpoint in '" + o.out +
                  "' belongs to another artifact (" + c->state.artifactHash +
                  ", this one is " + artifact->hash + ")");
    params = std::move(c->model);
    state = std::move(c->optimizer);
    firstStep = c->state.step;
    if (c->state.threads > 0 && o.threads == 0)
      o.threads = c->state.threads;
    else if (c->state.threads > 0 && o.threads != c->state.threads)
      std::fprintf(stderr,
                   "aim-run: warning: the run used %lld threads, this part "
                   "%lld: it will not match an uninterrupted run bit for bit\n",
                   static_cast<long long>(c->state.threads),
                   static_cast<long long>(o.threads));
    o.seed = c->state.seed;
    if (o.steps != c->state.totalSteps)
      return fail("the run in '" + o.out + "' was started with --steps " +
                  std::to_string(c->state.totalSteps) +
                  "; resume with the same");
  } else {
    StatusOr<NamedTensors> init = initialParameters(*artifact, o);
    if (!init)
      return fail(init.status().message());
    params = std::move(*init);
    for (const char *suffix : {".exp_avg", ".exp_avg_sq"})
      for (const auto &[name, t] : params)
        state.emplace_back(name + suffix,
                           HostTensor::zeros(DType::F32, t.shape));
  }
  // The one threading policy: the GEMMs use --threads compute threads (all
  // cores by default); the data stream has its one prefetch thread.
  if (o.threads == 0)
    o.threads = std::max(1u, std::thread::hardware_concurrency());
  openblas_set_num_threads(static_cast<int>(o.threads));
  std::map<std::string, HostTensor *> named;
  for (auto &[name, t] : params)
    named[name] = &t;
  for (auto &[name, t] : state)
    named[name] = &t;

  // Data: one fixed batch, or the Fashion-MNIST stream.
  const int64_t batch = artifact->root->batch();
  const bool antithetic = artifact->root->prefix_mode() &&
                          artifact->root->prefix_mode()->str() == "antithetic";
  HostTensor fixedImages, fixedPrefix;
  std::unique_ptr<FashionMnistBatches> stream;
  if (!o.fixedImages.empty()) {
    StatusOr<HostTensor> x = readNpy(o.fixedImages);
    StatusOr<HostTensor> k = readNpy(o.fixedPrefix);
    if (!x)
      return fail(x.status().message());
    if (!k)
      return fail(k.status().message());
    std::vector<int64_t> want = {batch, artifact->root->image_channels(),
                                 artifact->root->image_height(),
                                 artifact->root->image_width()};
    if (x->shape != want || x->dtype != DType::F32)
      return fail("'" + o.fixedImages + "' must be float32 " +
                  shapeToString(want) + ", the artifact's batch");
    if (k->shape != std::vector<int64_t>{batch} ||
        (k->dtype != DType::I32 && k->dtype != DType::I64))
      return fail("'" + o.fixedPrefix + "' must be int32 [" +
                  std::to_string(batch) + "]");
    std::vector<int64_t> lengths = k->toInt64s();
    for (int64_t v : lengths)
      if (v < 1 || v > artifact->root->num_patches())
        return fail("prefix lengths must be in [1, N]");
    if (antithetic)
      for (size_t i = 0; i + 1 < lengths.size(); i += 2)
        if (lengths[i] + lengths[i + 1] != artifact->root->num_patches())
          return fail("the artifact is compiled for antithetic prefix pairs "
                      "(K, N - K); '" +
                      o.fixedPrefix + "' breaks them");
    fixedImages = *x;
    fixedPrefix = HostTensor::fromDoubles(
        DType::I32, {batch},
        std::vector<double>(lengths.begin(), lengths.end()));
  } else {
    if (artifact->root->image_channels() != 1 ||
        artifact->root->image_height() != 28 ||
        artifact->root->image_width() != 28)
      return fail("Fashion-MNIST images are 1x28x28 but this model takes " +
                  std::to_string(artifact->root->image_channels()) + "x" +
                  std::to_string(artifact->root->image_height()) + "x" +
                  std::to_string(artifact->root->image_width()) +
                  "; give --fixed-batch");
    BatchOptions b;
    b.globalBatch = batch;
    b.seed = o.seed;
    b.prefixMode = antithetic ? PrefixMode::Antithetic : PrefixMode::Iid;
    b.numPatches = artifact->root->num_patches();
    b.firstStep = firstStep;
    auto opened = FashionMnistBatches::open(b);
    if (!opened)
      return fail(opened.status().message());
    stream = std::move(*opened);
  }

  // Argument and result buffers, by name and role.
  const auto *args = step->arguments();
  const auto *results = step->results();
  std::vector<std::vector<uint8_t>> resultStorage(results->size());
  for (size_t i = 0; i < results->size(); ++i)
    resultStorage[i].resize(elementCount(shapeOf(results->Get(i))) * 4 * 2);
  std::FILE *metrics =
      std::fopen((o.out + "/metrics.jsonl").c_str(), o.resume ? "a" : "w");
  auto started = std::chrono::steady_clock::now();
  HostTensor lr = HostTensor::zeros(DType::F32, {}),
             stepIndex = HostTensor::zeros(DType::I64, {});

  auto save = [&](int64_t done) {
    Checkpoint c{
        params,
        state,
        {done, o.seed, done * batch, o.steps, artifact->hash, o.threads}};
    return writeCheckpoint(o.out, c);
  };
  const int64_t lastStep =
      o.stopAfter > 0 ? std::min(o.steps, firstStep + o.stopAfter) : o.steps;
  for (int64_t s = firstStep; s < lastStep; ++s) {
    Batch b;
    if (stream)
      b = stream->next();
    HostTensor &images = stream ? b.images : fixedImages;
    HostTensor &prefix = stream ? b.prefix : fixedPrefix;
    double rate = o.constant ? o.lr : learningRate(s, o.steps, o.lr);
    float rate32 = static_cast<float>(rate);
    std::memcpy(lr.bytes.data(), &rate32, 4);
    int64_t s64 = s;
    std::memcpy(stepIndex.bytes.data(), &s64, 8);
    std::vector<void *> buffers;
    for (const aimx::Tensor *t : *args) {
      std::string name = t->name() ? t->name()->str() : "";
      HostTensor *h = nullptr;
      if (t->role() == aimx::Role::Parameter ||
          t->role() == aimx::Role::State) {
        auto it = named.find(name);
        if (it == named.end())
          return fail("the artifact's train_step takes '" + name +
                      "', which the run does not have");
        h = it->second;
      } else if (name == "images") {
        h = &images;
      } else if (name == "prefix") {
        h = &prefix;
      } else if (name == "lr") {
        h = &lr;
      } else if (name == "step") {
        h = &stepIndex;
      } else {
        return fail("the artifact's train_step takes an input '" + name +
                    "' aim-run does not know");
      }
      buffers.push_back(h->bytes.data());
    }
    for (auto &r : resultStorage)
      buffers.push_back(r.data());
    (*entry)(buffers.data());

    float loss, norm;
    std::memcpy(&loss, resultStorage[0].data(), 4);
    std::memcpy(&norm, resultStorage[1].data(), 4);
    if (!std::isfinite(loss)) {
      if (metrics)
        std::fclose(metrics);
      return fail("the loss is " + std::to_string(loss) + " at step " +
                  std::to_string(s) + "; stopping (the last checkpoint in '" +
                  o.out + "' is kept)");
    }
    for (size_t i = 2; i < results->size(); ++i) {
      const aimx::Tensor *t = results->Get(i);
      auto it = named.find(t->name() ? t->name()->str() : "");
      if (it == named.end())
        return fail("the artifact's train_step returns an unknown tensor");
      std::memcpy(it->second->bytes.data(), resultStorage[i].data(),
                  it->second->bytes.size());
    }
    double seconds = std::chrono::duration<double>(
                         std::chrono::steady_clock::now() - started)
                         .count();
    double imagesPerSecond = (s - firstStep + 1) * batch / seconds;
    double eta = (lastStep - s - 1) * seconds / (s - firstStep + 1);
    std::printf("step %lld loss %.9g grad_norm %.9g lr %.3g images/s %.1f "
                "eta %.0fs\n",
                static_cast<long long>(s), loss, norm, rate, imagesPerSecond,
                eta);
    std::fflush(stdout);
    if (metrics) {
      std::fprintf(metrics,
                   "{\"step\": %lld, \"loss\": %.9g, \"grad_norm\": %.9g, "
                   "\"lr\": %.9g, \"images_per_second\": %.3f}\n",
                   static_cast<long long>(s), loss, norm, rate,
                   imagesPerSecond);
      std::fflush(metrics);
    }
    if (o.checkpointEvery > 0 && (s + 1) % o.checkpointEvery == 0 &&
        s + 1 < lastStep)
      if (Status st = save(s + 1); !st)
        return fail(st.message());
  }
  if (metrics)
    std::fclose(metrics);
  if (Status st = save(lastStep); !st)
    return fail(st.message());
  std::printf("checkpoint: %s/model.safetensors (step %lld of %lld)\n",
              o.out.c_str(), static_cast<long long>(lastStep),
              static_cast<long long>(o.steps));
  return 0;
}
