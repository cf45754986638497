//===- FashionMnist.h - Debian's Fashion-MNIST, normalised as AIM.md says -===//
#ifndef AIMC_COMMON_FASHIONMNIST_H
#define AIMC_COMMON_FASHIONMNIST_H

#include "common/HostTensor.h"
#include "common/Status.h"

#include <string>

namespace aim {

/// Where Debian's dataset-fashion-mnist package installs the files; the
/// environment variable AIM_FASHION_MNIST_DIR overrides it.
std::string fashionMnistDirectory();

/// Normalisation of Fashion-MNIST pixels in [0, 1] (AIM.md, "Validity").
constexpr double kFashionMnistMean = 0.2860;
constexpr double kFashionMnistStd = 0.3530;

/// Images [count, 1, 28, 28] as float32, (pixel / 255 - mean) / std, from
/// `split` ("train" or "t10k") starting at image `first`.
StatusOr<HostTensor> loadFashionMnistImages(const std::string &split,
                                            int64_t first, int64_t count);

} // namespace aim

#endif // AIMC_COMMON_FASHIONMNIST_H
