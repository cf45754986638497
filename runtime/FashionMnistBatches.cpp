//===- FashionMnistBatches.cpp - the Fashion-MNIST training stream --------===//
#include "runtime/FashionMnistBatches.h"

#include <vector>

namespace aim::rt {

StatusOr<std::unique_ptr<FashionMnistBatches>>
FashionMnistBatches::open(const BatchOptions &options) {
  if (Status s = checkBatchOptions(options); !s)
    return s;
  StatusOr<IdxImages> images = readFashionMnist("train");
  if (!images)
    return images.status();
  return std::unique_ptr<FashionMnistBatches>(
      new FashionMnistBatches(options, std::move(*images)));
}

FashionMnistBatches::FashionMnistBatches(BatchOptions options, IdxImages images)
    : options(options), images(std::move(images)) {
  prefetcher = std::make_unique<Prefetcher>(
      [this](int64_t step) -> StatusOr<Batch> { return make(step); },
      options.firstStep, options.prefetch, options.threads);
}

Batch FashionMnistBatches::make(int64_t step) const {
  const int64_t local = options.globalBatch / options.ranks;
  const int64_t firstInBatch = options.rank * local;
  const int64_t size = images.rows * images.cols;
  Batch batch;
  batch.step = step;
  std::vector<double> pixels(static_cast<size_t>(local * size));
  for (int64_t i = 0; i < local; ++i) {
    int64_t position = step * options.globalBatch + firstInBatch + i;
    int64_t image = sampleAt(options.seed, position, images.count);
    for (int64_t j = 0; j < size; ++j)
      pixels[i * size + j] =
          normalizeFashionMnistPixel(images.pixels[image * size + j]);
  }
  batch.images = HostTensor::fromDoubles(
      DType::F32, {local, 1, images.rows, images.cols}, pixels);
  batch.prefix = prefixLengthsOf(options, step);
  return batch;
}

} // namespace aim::rt
