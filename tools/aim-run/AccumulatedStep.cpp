//===- AccumulatedStep.cpp - one optimiser step over micro-batches --------===//
#include "tools/aim-run/AccumulatedStep.h"

#include <cstring>

namespace aim::rt {

StatusOr<AccumulatedStep> AccumulatedStep::prepare(LoadedModel &model,
                                                   int64_t microBatches,
                                                   MpiComm *ranks) {
  StatusOr<EntryCall> grads =
      EntryCall::prepare(model.artifact, *model.program, "loss_and_grads");
  if (!grads)
    return grads.status();
  StatusOr<EntryCall> apply =
      EntryCall::prepare(model.artifact, *model.program, "apply_gradients");
  if (!apply)
    return Status::error(apply.status().message() +
                         " (--accumulate needs it: recompile with this aimc)");
  AccumulatedStep step(std::move(*grads), std::move(*apply));
  step.microBatches = microBatches;
  step.ranks = ranks;
  step.microBatch = model.batch();
  step.numPatches = model.numPatches();
  for (size_t i = 1; i < step.grads.results().size(); ++i)
    step.sums.push_back(HostTensor::zeros(DType::F32,
                                          step.grads.result(i).shape));
  return step;
}

StatusOr<AccumulatedStep>
AccumulatedStep::preparePerRank(LoadedModel &model, int64_t microBatches,
                                MpiComm &dpGroup, int64_t dp) {
  StatusOr<AccumulatedStep> step = prepare(model, microBatches);
  if (!step)
    return step.status();
  step->microBatch = model.batch() / dp; // the artifact's batch is the grid's
  step->dpGroup = &dpGroup;
  return step;
}

Status AccumulatedStep::operator()(const HostTensor &images,
                                   const HostTensor &prefix,
                                   std::map<std::string, HostTensor *> &arguments,
                                   float &loss, float &gradNorm) {
  const size_t perImage = images.bytes.size() / (microBatches * microBatch);
  std::vector<int64_t> imageShape = images.shape, prefixShape = {microBatch};
  imageShape[0] = microBatch;
  HostTensor part = HostTensor::zeros(DType::F32, imageShape),
             partPrefix = HostTensor::zeros(DType::I32, prefixShape);
  std::vector<std::vector<double>> sum(sums.size());
  for (size_t g = 0; g < sums.size(); ++g)
    sum[g].assign(sums[g].numElements(), 0.0);
  double lossSum = 0, targets = 0;
  std::vector<int64_t> lengths = prefix.toInt64s();
  // Each micro-batch's share of the loss normaliser: its own targets, or on
  // a grid those of the dp ranks' micro-batches together (whose loss the
  // per-rank program returns).
  std::vector<double> counts(microBatches, 0.0);
  for (int64_t j = 0; j < microBatches; ++j)
    for (int64_t i = j * microBatch; i < (j + 1) * microBatch; ++i)
      counts[j] += double(numPatches - std::max<int64_t>(lengths[i], 1));
  if (dpGroup)
    if (Status s = dpGroup->sum(counts, "the micro-batches' target counts");
        !s)
      return s;
  for (int64_t j = 0; j < microBatches; ++j) {
    std::memcpy(part.bytes.data(), images.bytes.data() + j * microBatch * perImage,
                part.bytes.size());
    std::memcpy(partPrefix.bytes.data(),
                prefix.bytes.data() + j * microBatch * sizeof(int32_t),
                partPrefix.bytes.size());
    arguments["images"] = &part;
    arguments["prefix"] = &partPrefix;
    if (Status s = grads(arguments); !s)
      return s;
    const double count = counts[j];
    float partLoss;
    std::memcpy(&partLoss, grads.result(0).bytes.data(), 4);
    lossSum += count * partLoss;
    targets += count;
    for (size_t g = 0; g < sums.size(); ++g) {
      const auto *x =
          reinterpret_cast<const float *>(grads.result(g + 1).bytes.data());
      for (size_t e = 0; e < sum[g].size(); ++e)
        sum[g][e] += count * double(x[e]);
    }
  }
  if (ranks && ranks->size() > 1) {
    std::vector<double> packed = {lossSum, targets};
    for (const std::vector<double> &g : sum)
      packed.insert(packed.end(), g.begin(), g.end());
    if (Status s = ranks->sum(packed, "the gradient all-reduce"); !s)
      return s;
    lossSum = packed[0];
    targets = packed[1];
    size_t at = 2;
    for (std::vector<double> &g : sum) {
      std::copy(packed.begin() + at, packed.begin() + at + g.size(), g.begin());
      at += g.size();
    }
  }
  loss = static_cast<float>(lossSum / targets);
  for (size_t g = 0; g < sums.size(); ++g) {
    auto *out = reinterpret_cast<float *>(sums[g].bytes.data());
    for (size_t e = 0; e < sum[g].size(); ++e)
      out[e] = static_cast<float>(sum[g][e] / targets);
    arguments[grads.resultNames()[g + 1]] = &sums[g];
  }
  if (Status s = apply(arguments); !s)
    return s;
  std::memcpy(&gradNorm, apply.result(0).bytes.data(), 4);
  for (size_t i = 1; i < apply.results().size(); ++i) {
    auto it = arguments.find(apply.resultNames()[i]);
    if (it == arguments.end())
      return Status::error("the artifact's apply_gradients returns an unknown "
                           "tensor '" + apply.resultNames()[i] + "'");
    std::memcpy(it->second->bytes.data(), apply.result(i).bytes.data(),
                it->second->bytes.size());
  }
  return Status::ok();
}

} // namespace aim::rt
