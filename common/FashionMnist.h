//===- FashionMnist.h - Debian's Fashion-MNIST, normalised as AIM.md says -===//
#ifndef AIMC_COMMON_FASHIONMNIST_H
#define AIMC_COMMON_FASHIONMNIST_H

#include "common/HostTensor.h"
#include "common/Status.h"

#include <string>
#include <vector>

namespace aim {

/// Where Debian's dataset-fashion-mnist package installs the files; the
/// environment variable AIM_FASHION_MNIST_DIR overrides it.
std::string fashionMnistDirectory();

/// Normalisation of Fashion-MNIST pixels in [0, 1] (AIM.md, "Validity").
constexpr double kFashionMnistMean = 0.2860;
constexpr double kFashionMnistStd = 0.3530;

/// The raw 8-bit images of a split ("train" or "t10k"), row-major.
struct IdxImages {
  int64_t count = 0, rows = 0, cols = 0;
  std::vector<uint8_t> pixels;
};
StatusOr<IdxImages> readFashionMnist(const std::string &split);

/// AIM.md's normalisation of one pixel.
inline double normalizeFashionMnistPixel(uint8_t pixel) {
  return (pixel / 255.0 - kFashionMnistMean) / kFashionMnistStd;
}

/// Images [count, 1, 28, 28] as float32, (pixel / 255 - mean) / std, from
/// `split` ("train" or "t10k") starting at image `first`.
StatusOr<HostTensor> loadFashionMnistImages(const std::string &split,
                                            int64_t first, int64_t count);

} // namespace aim

#endif // AIMC_COMMON_FASHIONMNIST_H
