//===- EvalAndPlot.cpp - aim-run eval-loss and aim-run plot ---------------===//
#include "tools/aim-run/Commands.h"

#include "tools/aim-run/Pictures.h"

#include <cstdio>
#include <cstring>
#include <thread>

extern "C" void openblas_set_num_threads(int);

namespace aim::rt {

namespace {
struct EvalOptions {
  std::string artifact, params, data, runDir;
  int64_t images = 0, threads = 0;
  uint64_t seed = 0;
};

/// The flags eval-loss and plot share, from argv[first] on.
Status parseEvalOptions(int argc, char **argv, int first, EvalOptions &o,
                        bool plot) {
  for (int i = first; i < argc; ++i) {
    std::string flag = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : nullptr;
    if (!v)
      return Status::error(flag + " takes a value\n" + kUsage);
    ++i;
    int64_t n = 0;
    if (flag == "--images" || flag == "--seed" || flag == "--threads") {
      if (!parseInt(v, n) || n < 0)
        return Status::error(flag + " takes a non-negative integer");
      if (flag == "--images")
        o.images = n;
      else if (flag == "--threads")
        o.threads = n;
      else
        o.seed = static_cast<uint64_t>(n);
    } else if (flag == "--data" || flag == "--eval-data") {
      o.data = v;
    } else if (!plot && flag == "--params") {
      o.params = v;
    } else if (plot && flag == "--artifact") {
      o.artifact = v;
    } else {
      return Status::error("unknown flag '" + flag + "'\n" + kUsage);
    }
  }
  return Status::ok();
}

void setThreads(int64_t threads) {
  openblas_set_num_threads(static_cast<int>(
      threads > 0 ? threads : std::max(1u, std::thread::hardware_concurrency())));
}
} // namespace

Status writeRunPictures(const LoadedModel &model, NamedTensors &params,
                        const std::string &runDir, const std::string &dataDir,
                        uint64_t seed) {
  if (Status s = writeLossCurves(runDir, model.artifact.root->model()->str());
      !s)
    return s;
  std::printf("pictures: %s/loss.png", runDir.c_str());
  StatusOr<EvalSet> set = loadEvalSet(model, dataDir, model.batch(), seed);
  if (set) {
    if (Status s = writePredictionGrid(model, params, *set,
                                       runDir + "/predictions.png");
        !s) {
      std::printf("\n");
      return s;
    }
    std::printf(", %s/predictions.png", runDir.c_str());
  }
  std::printf("\n");
  return Status::ok();
}

int runEvalLoss(int argc, char **argv) {
  EvalOptions o;
  o.artifact = argv[2];
  if (Status s = parseEvalOptions(argc, argv, 3, o, /*plot=*/false); !s)
    return fail(s.message());
  if (o.params.empty())
    return fail("eval-loss needs --params P.safetensors (a checkpoint's "
                "model.safetensors)");
  setThreads(o.threads);
  StatusOr<LoadedModel> model = loadModel(o.artifact);
  if (!model)
    return fail(model.status().message());
  if (Status s = refusePerRank(*model, "eval-loss"); !s)
    return fail(s.message());
  StatusOr<NamedTensors> params =
      initialParameters(model->artifact, o.params, 0);
  if (!params)
    return fail(params.status().message());
  StatusOr<EntryCall> forward =
      EntryCall::prepare(model->artifact, *model->program, "forward");
  if (!forward)
    return fail(forward.status().message());
  StatusOr<EvalSet> set = loadEvalSet(*model, o.data, o.images, o.seed);
  if (!set)
    return fail(set.status().message());
  StatusOr<double> loss = evaluateLoss(*model, *forward, *params, *set);
  if (!loss)
    return fail(loss.status().message());
  std::printf("validation loss %.6f over %lld images of %s (prefix lengths "
              "fixed by seed %llu)\n",
              *loss, static_cast<long long>(set->count), set->source.c_str(),
              static_cast<unsigned long long>(o.seed));
  return 0;
}

int runPlot(int argc, char **argv) {
  EvalOptions o;
  o.runDir = argv[2];
  if (Status s = parseEvalOptions(argc, argv, 3, o, /*plot=*/true); !s)
    return fail(s.message());
  if (o.artifact.empty()) {
    if (Status s = writeLossCurves(o.runDir, "training run"); !s)
      return fail(s.message());
    std::printf("pictures: %s/loss.png (give --artifact m.aimx for "
                "predictions.png too)\n",
                o.runDir.c_str());
    return 0;
  }
  setThreads(o.threads);
  StatusOr<LoadedModel> model = loadModel(o.artifact);
  if (!model)
    return fail(model.status().message());
  StatusOr<NamedTensors> params = initialParameters(
      model->artifact, o.runDir + "/model.safetensors", 0);
  if (!params)
    return fail(params.status().message());
  if (Status s = writeRunPictures(*model, *params, o.runDir, o.data, o.seed);
      !s)
    return fail(s.message());
  return 0;
}

} // namespace aim::rt
