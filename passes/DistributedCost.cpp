//===- DistributedCost.cpp - memory and communication of a mesh -----------===//
#include "passes/DistributedCost.h"

#include "common/HostTensor.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/Format.h"

#include <algorithm>
#include <set>

namespace mlir::aim {

namespace {
llvm::Error failure(const llvm::Twine &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                 message.str().c_str());
}

/// The trunk's attention and MLP weights, which tensor parallelism splits.
bool splitByTensorParallel(llvm::StringRef name) {
  return name.starts_with("trunk.blocks.") &&
         (name.contains(".attn.qkv.") || name.contains(".attn.proj.") ||
          name.contains(".mlp.fc1.") || name.contains(".mlp.fc2."));
}

constexpr double kBucketBytes = 25e6; // PyTorch DDP's default bucket
} // namespace

llvm::Expected<Mesh> parseMesh(llvm::StringRef text) {
  Mesh mesh;
  std::set<std::string> seen;
  llvm::SmallVector<llvm::StringRef> parts;
  text.split(parts, ',');
  for (llvm::StringRef part : parts) {
    auto [key, value] = part.trim().split('=');
    int64_t degree = 0;
    if ((key != "dp" && key != "tp") || value.getAsInteger(10, degree) ||
        degree < 1)
      return failure("--mesh: '" + part +
                     "' is not dp=N or tp=N with N a positive integer "
                     "(example: --mesh dp=4,tp=2)");
    if (!seen.insert(key.str()).second)
      return failure("--mesh names " + key + " twice");
    (key == "dp" ? mesh.dp : mesh.tp) = degree;
  }
  return mesh;
}

std::vector<std::string> checkMesh(const ::aim::ModelConfig &config,
                                   int64_t batch, bool antithetic,
                                   const Mesh &mesh) {
  std::vector<std::string> problems;
  int64_t shares = mesh.dp * mesh.accumulate;
  if (batch % shares != 0)
    problems.push_back("the batch " + std::to_string(batch) +
                       " does not split into dp=" + std::to_string(mesh.dp) +
                       " x " + std::to_string(mesh.accumulate) +
                       " micro-batches");
  else if (antithetic && (batch / shares) % 2 != 0)
    problems.push_back("with antithetic prefix pairs each micro-batch needs "
                       "an even number of images (batch " +
                       std::to_string(batch) + " / dp=" +
                       std::to_string(mesh.dp) + " / " +
                       std::to_string(mesh.accumulate) + " micro-batches)");
  for (const std::string &p : ::aim::validateModelConfig(config, mesh.tp))
    problems.push_back(p);
  if (config.mlpHidden() % mesh.tp != 0)
    problems.push_back("the MLP width " + std::to_string(config.mlpHidden()) +
                       " does not split over tp=" + std::to_string(mesh.tp));
  if (mesh.zero1 && mesh.dp == 1)
    problems.push_back("--zero=1 shards the optimiser state over dp ranks: "
                       "give dp > 1");
  return problems;
}

DistributedCost estimateDistributedCost(const ::aim::ModelConfig &config,
                                        int64_t batch, const StepCost &step,
                                        const TargetDescription &target,
                                        const Mesh &mesh,
                                        double linkBandwidth) {
  DistributedCost c;
  const double dp = double(mesh.dp), tp = double(mesh.tp);
  for (const ::aim::ParamSpec &p : ::aim::parameterSpecs(config)) {
    double count = double(::aim::elementCount(p.shape));
    c.parameters += splitByTensorParallel(p.name) ? count / tp : count;
  }
  const double stateBytes = double(target.optimizerBytes);
  c.parameterBytes = c.parameters * stateBytes;
  c.gradientBytes = c.parameters * stateBytes;
  c.optimizerBytes = 2 * c.parameters * stateBytes / (mesh.zero1 ? dp : 1.0);

  double r = double(config.mlpRatio);
  double split = (4 + 2 * r) / (8 + 2 * r);
  c.activationBytes = step.peakActivationBytes / dp /
                      double(mesh.accumulate) * (split / tp + (1 - split));

  for (const KernelCost &k : step.kernels) {
    bool inBlock = llvm::StringRef(k.name).starts_with("trunk.blocks.") &&
                   !llvm::StringRef(k.kind).contains("layer_norm");
    c.computeSeconds += k.seconds / dp / (inBlock ? tp : 1.0);
  }
  c.backwardSeconds = c.computeSeconds * 2.0 / 3.0;

  double gradients = c.parameters * 4.0; // float32 gradients
  c.dataParallelBytes = 2 * (dp - 1) / dp * gradients;
  c.dataParallelSeconds = c.dataParallelBytes / linkBandwidth;
  if (mesh.dp > 1) {
    // Gradients are reduced once a step, beside the last micro-batch's
    // backward; ZeRO-1's half of the traffic that gathers the updated
    // parameters comes after the optimiser, exposed.
    double reduced = mesh.zero1 ? c.dataParallelSeconds / 2
                                : c.dataParallelSeconds;
    double window = c.backwardSeconds / double(mesh.accumulate);
    double lastBucket = (mesh.zero1 ? 1.0 : 2.0) * (dp - 1) / dp *
                        std::min(gradients, kBucketBytes) / linkBandwidth;
    c.exposedDataParallelSeconds =
        std::max(reduced - window, lastBucket) +
        (c.dataParallelSeconds - reduced);
  }
  if (mesh.tp > 1) {
    c.tensorParallelAllReduces = 4 * config.depth;
    double activation = double(batch) / dp * double(config.numPatches()) *
                        double(config.width) * double(target.activationBytes);
    c.tensorParallelBytes =
        c.tensorParallelAllReduces * 2 * (tp - 1) / tp * activation;
    c.tensorParallelSeconds = c.tensorParallelBytes / linkBandwidth;
  }
  c.stepSeconds = c.computeSeconds + c.exposedDataParallelSeconds +
                  c.tensorParallelSeconds;
  return c;
}

void printDistributedCost(llvm::raw_ostream &os,
                          const ::aim::ModelConfig &config, int64_t batch,
                          const TargetDescription &target, const Mesh &mesh,
                          double linkBandwidth, const DistributedCost &c) {
  int64_t ranks = mesh.dp * mesh.tp;
  os << llvm::format(
      "\ndistributed step on a mesh of dp=%lld x tp=%lld (%lld ranks, one %s "
      "each), ZeRO-1 %s: batch %lld, %lld per data-parallel rank in %lld "
      "micro-batches of %lld; links of %.0f GB/s per direction\n",
      (long long)mesh.dp, (long long)mesh.tp, (long long)ranks,
      target.name.c_str(), mesh.zero1 ? "on" : "off", (long long)batch,
      (long long)(batch / mesh.dp), (long long)mesh.accumulate,
      (long long)(batch / mesh.dp / mesh.accumulate), linkBandwidth / 1e9);
  os << "  memory per rank:\n";
  os << llvm::format("    %-44s %10.3f GB  (%.3f G parameters)\n",
                     "parameters (float32 master copy)", c.parameterBytes / 1e9,
                     c.parameters / 1e9);
  os << llvm::format("    %-44s %10.3f GB\n", "gradients", c.gradientBytes / 1e9);
  os << llvm::format("    %-44s %10.3f GB\n",
                     mesh.zero1 ? "AdamW moments (ZeRO-1: 1/dp of them)"
                                : "AdamW moments",
                     c.optimizerBytes / 1e9);
  os << llvm::format("    %-44s %10.3f GB\n",
                     "activations (peak of one micro-batch)",
                     c.activationBytes / 1e9);
  bool fits = c.totalBytes() <= target.memoryBytes;
  os << llvm::format("    %-44s %10.3f GB  of %.0f GB: %s\n", "total",
                     c.totalBytes() / 1e9, target.memoryBytes / 1e9,
                     fits ? "fits" : "does NOT fit");
  os << "  time per step and rank:\n";
  os << llvm::format("    %-44s %10.3f ms  (backward %.3f ms)\n",
                     "compute (roofline)", c.computeSeconds * 1e3,
                     c.backwardSeconds * 1e3);
  os << llvm::format("    %-44s %10.3f GB  %8.3f ms, exposed %.3f ms\n",
                     mesh.zero1 ? "gradient reduce-scatter + parameter "
                                  "all-gather"
                                : "gradient all-reduce (ring)",
                     c.dataParallelBytes / 1e9, c.dataParallelSeconds * 1e3,
                     c.exposedDataParallelSeconds * 1e3);
  os << llvm::format("    %-44s %10.3f GB  %8.3f ms, all exposed\n",
                     ("tensor-parallel all-reduces (" +
                      std::to_string(c.tensorParallelAllReduces) + ")")
                         .c_str(),
                     c.tensorParallelBytes / 1e9,
                     c.tensorParallelSeconds * 1e3);
  double overlap = c.dataParallelSeconds > 0
                       ? 1 - c.exposedDataParallelSeconds / c.dataParallelSeconds
                       : 0;
  os << llvm::format("    %-44s %10.3f ms  (%.0f%% of the gradient traffic "
                     "hidden behind the backward)\n",
                     "step", c.stepSeconds * 1e3, 100 * std::max(0.0, overlap));
}

} // namespace mlir::aim
