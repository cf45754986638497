//===- LearningRate.cpp - AIM's learning-rate schedule --------------------===//
#include "runtime/LearningRate.h"

#include <cmath>

namespace aim::rt {

double learningRate(int64_t step, int64_t totalSteps, double peak) {
  constexpr double kStart = 1e-6;
  const int64_t warmup = std::llround(0.025 * static_cast<double>(totalSteps));
  if (step < warmup)
    return kStart + (peak - kStart) * static_cast<double>(step) / warmup;
  const int64_t decay = totalSteps - warmup;
  if (decay <= 0)
    return peak;
  double progress = static_cast<double>(step - warmup) / decay;
  return peak * (1 + std::cos(M_PI * progress)) / 2;
}

} // namespace aim::rt
