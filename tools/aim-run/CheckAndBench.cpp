//===- CheckAndBench.cpp - aim-run check and aim-run bench ----------------===//
//
// check: one artifact's loss_and_grads, one train_step, and two train_steps
// in place (as training calls it) on the host
//   backend and on the GPU, on the same synthetic batch and initial
//   parameters, compared tensor by tensor (tolerances below).
// bench: train_step repeated on one batch; images/s, and with --per-kernel
//   (cuda) as many steps again with each kernel's device time measured,
//   next to its roofline estimate.
//
//===----------------------------------------------------------------------===//
#include "runtime/SyntheticBatches.h"
#include "runtime/cuda/CudaProgram.h"
#include "tools/aim-run/Commands.h"

#include <functional>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>

namespace aim::rt {

namespace {

struct CommonOptions {
  std::string artifact, device = "host", csv;
  GemmPrecision gemm = GemmPrecision::F32;
  int64_t steps = 20, warmup = 3;
  uint64_t seed = 0;
  bool perKernel = false;
};

Status parseOptions(int argc, char **argv, CommonOptions &o, bool bench) {
  o.artifact = argv[2];
  for (int i = 3; i < argc; ++i) {
    std::string flag = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : nullptr;
    int64_t n = 0;
    if (flag == "--seed" || (bench && (flag == "--steps" || flag == "--warmup"))) {
      if (!v || !parseInt(v, n) || n < 0 || (flag == "--steps" && n == 0))
        return Status::error(flag + " takes a " +
                             (flag == "--steps" ? "positive" : "non-negative") +
                             " integer");
      ++i;
      if (flag == "--seed")
        o.seed = static_cast<uint64_t>(n);
      else
        (flag == "--steps" ? o.steps : o.warmup) = n;
    } else if (bench && (flag == "--device" || flag == "--csv")) {
      if (!v)
        return Status::error(flag + " takes a value");
      (flag == "--device" ? o.device : o.csv) = v;
      ++i;
    } else if (flag == "--gemm-precision") {
      if (!v)
        return Status::error("--gemm-precision takes fp32, tf32 or bf16");
      StatusOr<GemmPrecision> p = parseGemmPrecision(v);
      if (!p)
        return p.status();
      o.gemm = *p;
      ++i;
    } else if (bench && flag == "--per-kernel") {
      o.perKernel = true;
    } else {
      return Status::error("unknown flag '" + flag + "'\n" + kUsage);
    }
  }
  return Status::ok();
}

/// One synthetic batch for the artifact, the same for every device.
Batch syntheticBatch(const LoadedModel &model, uint64_t seed) {
  BatchOptions b;
  b.globalBatch = model.batch();
  b.seed = seed;
  b.prefixMode = model.prefixMode();
  b.numPatches = model.numPatches();
  return SyntheticBatches::make(model.imageShape(), b, 0);
}

/// max |a - b| and max |b| over two float32 tensors of the same shape.
std::pair<double, double> maxDifference(const HostTensor &a,
                                        const HostTensor &b) {
  const auto *x = reinterpret_cast<const float *>(a.bytes.data());
  const auto *y = reinterpret_cast<const float *>(b.bytes.data());
  double diff = 0, scale = 0;
  for (int64_t i = 0; i < a.numElements(); ++i) {
    double d = std::fabs(double(x[i]) - double(y[i]));
    diff = std::isnan(d) ? INFINITY : std::max(diff, d);
    scale = std::max(scale, std::fabs(double(y[i])));
  }
  return {diff, scale};
}
/// The roofline time of a "cublasLt [bf16 ][bias ]gemm MxNxK" (or "...
/// B x MxNxK", a strided batch) entry (GpuRuntimeCalls.cpp names them so):
/// 2MNK operations per GEMM, each operand and the result read or written
/// once (A and B in bfloat16 or float32).
double gemmRooflineSeconds(const aimx::GpuCode &gpu, const std::string &name) {
  std::string rest = name;
  auto take = [&](const std::string &word) {
    if (rest.compare(0, word.size(), word) != 0)
      return false;
    rest.erase(0, word.size());
    return true;
  };
  if (!take("cublasLt "))
    return 0;
  const bool bf16 = take("bf16 ");
  take("bias ");
  if (!take("gemm "))
    return 0;
  long long m = 0, n = 0, k = 0, batch = 1;
  // The batched form first; a failed match may have stored a field (a
  // plain "2048x1536x6144" read 2048 as the batch before), so reset it.
  if (std::sscanf(rest.c_str(), "%lld x %lldx%lldx%lld", &batch, &m, &n, &k) !=
      4) {
    batch = 1;
    if (std::sscanf(rest.c_str(), "%lldx%lldx%lld", &m, &n, &k) != 3)
      return 0;
  }
  if (gpu.vector_flops() <= 0 || gpu.memory_bandwidth() <= 0)
    return 0;
  double operandBytes = bf16 ? 2.0 : 4.0;
  double flops = 2.0 * batch * m * n * k,
         bytes = batch * (operandBytes * (m * k + k * n) + 8.0 * m * n);
  return std::max(flops / gpu.vector_flops(), bytes / gpu.memory_bandwidth());
}
/// AdamW's state at step 0 (zero moments) for `params`, in train_step's
/// names.
NamedTensors zeroAdamState(const NamedTensors &params) {
  NamedTensors state;
  for (const char *suffix : {".exp_avg", ".exp_avg_sq"})
    for (const auto &[name, t] : params)
      state.emplace_back(name + suffix, HostTensor::zeros(DType::F32, t.shape));
  return state;
}

/// One entry point prepared for both programs and called with the same
/// arguments on each: its results side by side.
struct BothSides {
  EntryCall host, gpu;
};
StatusOr<BothSides>
callOnBoth(const Artifact &artifact, Program &host, Program &gpu,
           const char *entry,
           const std::map<std::string, HostTensor *> &arguments) {
  StatusOr<EntryCall> onHost = EntryCall::prepare(artifact, host, entry);
  StatusOr<EntryCall> onGpu = EntryCall::prepare(artifact, gpu, entry);
  if (!onHost || !onGpu)
    return (onHost ? onGpu : onHost).status();
  if (Status s = (*onHost)(arguments); !s)
    return s;
  if (Status s = (*onGpu)(arguments); !s)
    return s;
  return BothSides{std::move(*onHost), std::move(*onGpu)};
}

/// A result's allowed difference: `relative` times its tensor's largest
/// host entry, plus `absolute`.
struct Tolerance {
  double relative, absolute;
};

/// Prints a row for one tensor of both sides; whether it is within `t`.
bool compareTensor(const std::string &name, const HostTensor &host,
                   const HostTensor &gpu, Tolerance t) {
  auto [diff, scale] = maxDifference(gpu, host);
  double relative = scale > 0 ? diff / scale : diff;
  // An all-zero host tensor: the relative tolerance as an absolute one.
  bool ok = diff <= t.relative * (scale > 0 ? scale : 1.0) + t.absolute;
  std::printf("%-44s %12.3e %12.3e %10.2e %s\n", name.c_str(), diff, scale,
              relative, ok ? "ok" : "FAIL");
  return ok;
}

/// Prints a row per result of the two calls and returns how many differ
/// beyond `toleranceOf(index, name)`.
int compareResults(
    EntryCall &host, EntryCall &gpu,
    const std::function<Tolerance(size_t, const std::string &)> &toleranceOf) {
  int failures = 0;
  for (size_t i = 0; i < host.results().size(); ++i) {
    const std::string &name = host.resultNames()[i];
    failures += !compareTensor(name, host.result(i), gpu.result(i),
                               toleranceOf(i, name));
  }
  return failures;
}
} // namespace

int runCheck(int argc, char **argv) {
  CommonOptions o;
  if (Status s = parseOptions(argc, argv, o, /*bench=*/false); !s)
    return fail(s.message());
  StatusOr<LoadedModel> host = loadModel(o.artifact, DeviceKind::Host);
  if (!host)
    return fail(host.status().message());
  if (Status s = refusePerRank(*host, "check"); !s)
    return fail(s.message());
  StatusOr<std::unique_ptr<Program>> gpu =
      loadProgram(host->artifact, DeviceKind::Cuda, o.gemm);
  if (!gpu)
    return fail(gpu.status().message());
  std::printf("checking %s: %s against %s\n", o.artifact.c_str(),
              (*gpu)->description().c_str(),
              host->program->description().c_str());
  StatusOr<NamedTensors> params = initialParameters(host->artifact, "", o.seed);
  if (!params)
    return fail(params.status().message());
  Batch batch = syntheticBatch(*host, o.seed);
  std::map<std::string, HostTensor *> arguments = byName(*params);
  arguments["images"] = &batch.images;
  arguments["prefix"] = &batch.prefix;
  StatusOr<BothSides> grads = callOnBoth(host->artifact, *host->program,
                                         **gpu, "loss_and_grads", arguments);
  if (!grads)
    return fail(grads.status().message());

  // Both sides compute in float32; they differ in summation order (OpenBLAS
  // blocks its GEMM sums, the GPU kernels sum per thread and split sums to a
  // scalar in two stages) and in libm against libdevice (erf, exp: within 2
  // ulp). Sums of n terms then differ by about sqrt(n) * 2^-24 relative to
  // the terms' magnitudes -- ~1e-6 for n in the thousands. A gradient is
  // judged relative to its tensor's largest entry (entries near zero carry
  // cancellation), with a 100x margin over that estimate: 1e-4; the loss, a
  // mean of positive terms at the end of the chain, by 1e-5.
  // With --gemm-precision tf32 or bf16 (or bfloat16 operands) each GEMM
  // rounds its operands to u
  // (2^-11, 2^-8): its result is off by about 2u of the tensor's largest
  // entry, and a gradient passes through up to ~2 (L + M) GEMMs (16 for
  // aim-fmnist), the loss through about half as many: 32u and 16u.
  // An artifact compiled with --gemm-operands bf16 rounds A and B to
  // bfloat16 whatever --gemm-precision says: bfloat16's u; so does one with
  // --attention flash (its products on bfloat16 tiles) for attention's.
  const aimx::GpuCode *gpuCode = host->artifact.root->gpu();
  const bool bf16Operands =
      gpuCode &&
      ((gpuCode->gemm_operands() &&
        gpuCode->gemm_operands()->str() == "bf16") ||
       (gpuCode->attention() && gpuCode->attention()->str() == "flash"));
  const GemmPrecision effective = bf16Operands ? GemmPrecision::BF16 : o.gemm;
  const bool fast = effective != GemmPrecision::F32;
  const double u = gemmUnitRoundoff(effective);
  const double kLossTolerance = fast ? 16 * u : 1e-5,
               kGradTolerance = fast ? 32 * u : 1e-4;
  std::printf("%-44s %12s %12s %10s %s\n", "loss_and_grads", "max |diff|",
              "max |host|", "relative", "");
  int failures = compareResults(grads->host, grads->gpu, [&](size_t i,
                                                    const std::string &) {
    return Tolerance{i == 0 ? kLossTolerance : kGradTolerance, 0};
  });
  size_t compared = grads->host.results().size();

  // One train_step from the same point (zero AdamW state, step 0): the
  // gradient norm (sums of squares split in two stages on the GPU),
  // clipping and AdamW. The moments are linear and quadratic in the clipped
  // gradients: 1e-4 and 2e-4 of each tensor's largest entry. A parameter's
  // first update is lr * g / (|g| + eps), anywhere in (-lr, lr) where g is
  // within a few eps of zero, and gradients agreeing to 1e-4 of their
  // tensor's largest entry may differ there: parameters are held to 1e-4 of
  // their largest entry plus 2 lr. The loss and the norm: 1e-5.
  constexpr double kLearningRate = 1e-4;
  NamedTensors state = zeroAdamState(*params);
  for (auto &[name, t] : state)
    arguments[name] = &t;
  HostTensor lr = HostTensor::fromDoubles(DType::F32, {}, {kLearningRate});
  HostTensor stepIndex = HostTensor::zeros(DType::I64, {});
  arguments["lr"] = &lr;
  arguments["step"] = &stepIndex;
  StatusOr<BothSides> step = callOnBoth(host->artifact, *host->program, **gpu,
                                        "train_step", arguments);
  if (!step)
    return fail(step.status().message());
  auto endsWith = [](const std::string &s, const std::string &suffix) {
    return s.size() >= suffix.size() &&
           s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  std::printf("%-44s %12s %12s %10s %s\n", "train_step", "max |diff|",
              "max |host|", "relative", "");
  failures += compareResults(step->host, step->gpu, [&](size_t i,
                                                        const std::string &n) {
    if (i < 2) // loss, grad_norm
      return Tolerance{kLossTolerance, 0};
    if (endsWith(n, ".exp_avg_sq"))
      return Tolerance{2 * kGradTolerance, 0};
    if (endsWith(n, ".exp_avg"))
      return Tolerance{kGradTolerance, 0};
    return Tolerance{kGradTolerance, 2 * kLearningRate};
  });
  compared += step->host.results().size();

  // Two train_steps in place, as aim-run train calls it: the new parameters
  // and moments become the next step's arguments -- on the GPU written over
  // the old ones where the artifact allows it (GpuCode.in_place_results).
  // Each step adds its own differences: twice train_step's tolerances.
  std::printf("%-44s %12s %12s %10s %s\n", "train_step x2, in place",
              "max |diff|", "max |host|", "relative", "");
  NamedTensors sides[2] = {*params, *params};
  NamedTensors sideStates[2] = {zeroAdamState(*params),
                                zeroAdamState(*params)};
  Program *programs[2] = {host->program.get(), gpu->get()};
  for (int side = 0; side < 2; ++side) {
    StatusOr<EntryCall> call =
        EntryCall::prepare(host->artifact, *programs[side], "train_step");
    if (!call)
      return fail(call.status().message());
    call->updateArgumentsInPlace();
    std::map<std::string, HostTensor *> inPlace = byName(sides[side]);
    for (auto &[name, t] : sideStates[side])
      inPlace[name] = &t;
    inPlace["images"] = &batch.images;
    inPlace["prefix"] = &batch.prefix;
    inPlace["lr"] = &lr;
    HostTensor index = HostTensor::zeros(DType::I64, {});
    inPlace["step"] = &index;
    for (int64_t s = 0; s < 2; ++s) {
      reinterpret_cast<int64_t *>(index.bytes.data())[0] = s;
      if (Status st = (*call)(inPlace); !st)
        return fail(st.message());
    }
    if (Status st = call->syncArgumentsToHost(); !st)
      return fail(st.message());
  }
  auto compareSides = [&](const NamedTensors &onHost, const NamedTensors &onGpu,
                          auto toleranceOf) {
    for (size_t i = 0; i < onHost.size(); ++i)
      failures += !compareTensor(onHost[i].first, onHost[i].second,
                                 onGpu[i].second, toleranceOf(onHost[i].first));
    compared += onHost.size();
  };
  compareSides(sides[0], sides[1], [&](const std::string &) {
    return Tolerance{2 * kGradTolerance, 4 * kLearningRate};
  });
  compareSides(sideStates[0], sideStates[1], [&](const std::string &n) {
    return Tolerance{(endsWith(n, ".exp_avg_sq") ? 4 : 2) * kGradTolerance,
                     0};
  });
  std::printf("%s: %d of %zu tensors outside tolerance (loss and norm %.0e, "
              "gradients and moments %.0e-%.0e relative to each tensor's "
              "largest entry, parameters that plus 2 lr; twice all that after two "
              "steps in place)\n",
              failures ? "FAILED" : "passed", failures, compared,
              kLossTolerance, kGradTolerance, 2 * kGradTolerance);
  return failures ? 1 : 0;
}

int runBench(int argc, char **argv) {
  CommonOptions o;
  if (Status s = parseOptions(argc, argv, o, /*bench=*/true); !s)
    return fail(s.message());
  StatusOr<DeviceKind> device = parseDeviceKind(o.device);
  if (!device)
    return fail(device.status().message());
  if (o.perKernel && *device != DeviceKind::Cuda)
    return fail("--per-kernel times GPU kernels: give --device cuda");
  if (o.gemm != GemmPrecision::F32 && *device != DeviceKind::Cuda)
    return fail("--gemm-precision chooses how a GPU multiplies: give "
                "--device cuda (the host's GEMMs are float32)");
  StatusOr<LoadedModel> model = loadModel(o.artifact, *device, o.gemm);
  if (!model)
    return fail(model.status().message());
  if (Status s = refusePerRank(*model, "bench"); !s)
    return fail(s.message());
  StatusOr<EntryCall> step =
      EntryCall::prepare(model->artifact, *model->program, "train_step");
  if (!step)
    return fail(step.status().message());
  StatusOr<NamedTensors> params =
      initialParameters(model->artifact, "", o.seed);
  if (!params)
    return fail(params.status().message());
  NamedTensors state = zeroAdamState(*params);
  Batch batch = syntheticBatch(*model, o.seed);
  HostTensor lr = HostTensor::fromDoubles(DType::F32, {}, {1e-4});
  HostTensor stepIndex = HostTensor::zeros(DType::I64, {});
  std::map<std::string, HostTensor *> arguments = byName(*params);
  for (auto &[name, t] : state)
    arguments[name] = &t;
  arguments["images"] = &batch.images;
  arguments["prefix"] = &batch.prefix;
  arguments["lr"] = &lr;
  arguments["step"] = &stepIndex;
  step->updateArgumentsInPlace(); // parameters and AdamW state stay put
  std::printf("bench %s on %s: batch %lld, %lld warm-up + %lld timed steps "
              "of train_step\n",
              o.artifact.c_str(), model->program->description().c_str(),
              static_cast<long long>(model->batch()),
              static_cast<long long>(o.warmup),
              static_cast<long long>(o.steps));
  auto *cuda = dynamic_cast<CudaProgram *>(model->program.get());
  double seconds = 0;
  size_t allocationsAfterWarmup = 0;
  for (int64_t s = 0; s < o.warmup + o.steps; ++s) {
    if (s == o.warmup && cuda)
      allocationsAfterWarmup = cuda->temporaries().driverAllocations();
    auto begin = std::chrono::steady_clock::now();
    if (Status st = (*step)(arguments); !st)
      return fail(st.message());
    if (s >= o.warmup)
      seconds += std::chrono::duration<double>(
                     std::chrono::steady_clock::now() - begin)
                     .count();
  }
  double stepMs = seconds / o.steps * 1e3;
  std::printf("step %.3f ms, %.1f images/s%s\n", stepMs,
              model->batch() * o.steps / seconds,
              !cuda ? ""
              : model->artifact.root->gpu()->host_touches_memory()
                  ? " (each launch synchronised)"
              : cuda->replaysGraph(step->function())
                  ? " (a CUDA graph replayed)"
                  : " (launches asynchronous, no graph)");
  if (cuda) {
    std::printf("temporaries: %zu MiB held in %zu driver allocations, %zu of "
                "them during the timed steps; %zu bytes in use between steps\n",
                cuda->temporaries().bytesHeld() >> 20,
                cuda->temporaries().driverAllocations(),
                cuda->temporaries().driverAllocations() -
                    allocationsAfterWarmup,
                cuda->temporaries().bytesInUse());
    CudaProgram::StepArenas arenas = cuda->stepArenas();
    if (arenas.count)
      std::printf("step arenas (the graphs' temporaries, placed by the first "
                  "call's lifetimes): %zu MiB in %zu; at most %zu MiB alive "
                  "at once\n",
                  arenas.bytes >> 20, arenas.count, arenas.peakLive >> 20);
  }
  if (!cuda || !o.perKernel)
    return 0;

  // Per kernel, after the timed steps (a replayed graph's kernels cannot be
  // timed one by one): as many steps again, each launch between events.
  // Device time per step against ptxas' and the cost model's view of it
  // (the artifact's kernel table).
  cuda->setGraphs(false);
  cuda->setProfiling(true);
  cuda->takeKernelTimes();
  auto profiledBegin = std::chrono::steady_clock::now();
  for (int64_t s = 0; s < o.steps; ++s)
    if (Status st = (*step)(arguments); !st)
      return fail(st.message());
  double profiledMs = std::chrono::duration<double>(
                          std::chrono::steady_clock::now() - profiledBegin)
                          .count() /
                      o.steps * 1e3;
  std::map<std::string, KernelTime> times = cuda->takeKernelTimes();
  std::map<std::string, const aimx::GpuKernel *> table;
  if (const auto *kernels = model->artifact.root->gpu()->kernels())
    for (const aimx::GpuKernel *k : *kernels)
      if (k->name())
        table[k->name()->str()] = k;
  std::vector<std::pair<std::string, KernelTime>> sorted(times.begin(),
                                                         times.end());
  std::sort(sorted.begin(), sorted.end(), [](const auto &a, const auto &b) {
    return a.second.milliseconds > b.second.milliseconds;
  });
  double kernelMs = 0;
  for (const auto &[name, t] : sorted)
    kernelMs += t.milliseconds;
  std::FILE *csv = o.csv.empty() ? nullptr : std::fopen(o.csv.c_str(), "w");
  if (!o.csv.empty() && !csv)
    return fail("cannot write " + o.csv);
  if (csv)
    std::fprintf(csv, "kernel,launches_per_step,us_per_step,share,"
                      "roofline_us_per_step,registers\n");
  std::printf("%-40s %9s %12s %7s %12s %9s %5s\n", "kernel", "launches",
              "us/step", "share", "roofline us", "x roofline", "regs");
  int shown = 0;
  for (const auto &[name, t] : sorted) {
    const aimx::GpuKernel *k = table.count(name) ? table[name] : nullptr;
    double perStep = t.milliseconds * 1e3 / o.steps;
    double launches = double(t.launches) / o.steps;
    double roofline = k ? k->roofline_seconds() * 1e6 * launches
                        : gemmRooflineSeconds(*model->artifact.root->gpu(),
                                              name) *
                              1e6 * launches;
    if (csv)
      std::fprintf(csv, "%s,%.2f,%.3f,%.4f,%.3f,%d\n", name.c_str(), launches,
                   perStep, t.milliseconds / kernelMs, roofline,
                   k ? k->registers() : 0);
    if (shown++ < 25)
      std::printf("%-40s %9.1f %12.1f %6.1f%% %12.2f %9.1f %5d\n",
                  name.c_str(), launches, perStep,
                  100 * t.milliseconds / kernelMs, roofline,
                  roofline > 0 ? perStep / roofline : 0.0,
                  k ? k->registers() : 0);
  }
  if (csv)
    std::fclose(csv);
  std::printf("%zu kernels, %.3f ms of device time per step (%.0f%% of a "
              "step's %.3f ms with each launch timed)\n",
              sorted.size(), kernelMs / o.steps,
              100 * kernelMs / o.steps / profiledMs, profiledMs);
  return 0;
}

} // namespace aim::rt
