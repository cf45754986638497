//===- LearningRate.h - AIM's learning-rate schedule ------------*- C++ -*-===//
#ifndef AIMC_RUNTIME_LEARNINGRATE_H
#define AIMC_RUNTIME_LEARNINGRATE_H

#include <cstdint>

namespace aim::rt {

/// AIM.md "Training recipe": with W = round(0.025 T) warm-up steps, linear
/// from 1e-6 to `peak` over [0, W), then half a cosine from `peak` down to 0
/// at step T. `step` is 0-based; the train step takes the result as an
/// input, so one artifact serves runs of any length.
double learningRate(int64_t step, int64_t totalSteps, double peak);

} // namespace aim::rt

#endif // AIMC_RUNTIME_LEARNINGRATE_H
