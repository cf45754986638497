//===- SyntheticBatches.cpp - generated images, for machines without data -===//
#include "runtime/SyntheticBatches.h"

#include "common/Philox.h"

#include <cmath>

namespace aim::rt {

std::vector<float> syntheticImage(const ModelImageShape &shape, uint64_t seed,
                                  int64_t position) {
  PhiloxKey key = streamKey(seed, "synthetic-images");
  uint64_t counter = 0;
  PhiloxCounter bits{};
  int used = 4;
  auto uniform = [&]() { // [0, 1)
    if (used == 4) {
      bits = philox4x32_10(
          {static_cast<uint32_t>(position), static_cast<uint32_t>(position >> 32),
           static_cast<uint32_t>(counter), static_cast<uint32_t>(counter >> 32)},
          key);
      ++counter;
      used = 0;
    }
    return unitFromBits(bits[used++]);
  };
  constexpr double kTwoPi = 6.283185307179586;
  std::vector<float> pixels(
      static_cast<size_t>(shape.channels * shape.height * shape.width));
  for (int64_t c = 0; c < shape.channels; ++c) {
    // Three waves of at most 3 cycles across the image; amplitude sqrt(2/3)
    // each makes the sum's variance about 1.
    double fy[3], fx[3], phase[3];
    for (int w = 0; w < 3; ++w) {
      fy[w] = (uniform() * 2 - 1) * 3 * kTwoPi / shape.height;
      fx[w] = (uniform() * 2 - 1) * 3 * kTwoPi / shape.width;
      phase[w] = uniform() * kTwoPi;
    }
    for (int64_t y = 0; y < shape.height; ++y)
      for (int64_t x = 0; x < shape.width; ++x) {
        double v = 0;
        for (int w = 0; w < 3; ++w)
          v += std::sqrt(2.0 / 3.0) * std::sin(fy[w] * y + fx[w] * x + phase[w]);
        v += 0.1 * (uniform() * 2 - 1);
        pixels[(c * shape.height + y) * shape.width + x] = static_cast<float>(v);
      }
  }
  return pixels;
}

StatusOr<std::unique_ptr<SyntheticBatches>>
SyntheticBatches::open(const ModelImageShape &shape,
                       const BatchOptions &options) {
  if (Status s = checkBatchOptions(options); !s)
    return s;
  return std::unique_ptr<SyntheticBatches>(
      new SyntheticBatches(shape, options));
}

SyntheticBatches::SyntheticBatches(ModelImageShape shape, BatchOptions options)
    : shape(shape), options(options) {
  prefetcher = std::make_unique<Prefetcher>(
      [this](int64_t step) -> StatusOr<Batch> {
        return make(this->shape, this->options, step);
      },
      options.firstStep, options.prefetch, options.threads);
}

Batch SyntheticBatches::make(const ModelImageShape &shape,
                             const BatchOptions &options, int64_t step) {
  const int64_t local = options.globalBatch / options.ranks;
  const int64_t firstInBatch = options.rank * local;
  const int64_t size = shape.channels * shape.height * shape.width;
  Batch batch;
  batch.step = step;
  batch.images =
      HostTensor::zeros(DType::F32, {local, shape.channels, shape.height,
                                     shape.width});
  auto *out = reinterpret_cast<float *>(batch.images.bytes.data());
  for (int64_t i = 0; i < local; ++i) {
    int64_t position = step * options.globalBatch + firstInBatch + i;
    std::vector<float> image = syntheticImage(shape, options.seed, position);
    std::copy(image.begin(), image.end(), out + i * size);
  }
  batch.prefix = prefixLengthsOf(options, step);
  return batch;
}

} // namespace aim::rt
