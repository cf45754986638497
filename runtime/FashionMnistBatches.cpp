//===- FashionMnistBatches.cpp - training batches on a worker thread ------===//
#include "runtime/FashionMnistBatches.h"

#include "common/Philox.h"

#include <vector>

namespace aim::rt {

namespace {
/// Fisher-Yates over [0, n) driven by Philox keyed by (seed, "shuffle") at
/// counter (epoch, i): the same permutation on every rank and every run.
std::vector<int64_t> epochPermutation(uint64_t seed, int64_t epoch, int64_t n) {
  std::vector<int64_t> perm(n);
  for (int64_t i = 0; i < n; ++i)
    perm[i] = i;
  PhiloxKey key = streamKey(seed, "shuffle");
  for (int64_t i = n - 1; i > 0; --i) {
    PhiloxCounter counter = {static_cast<uint32_t>(epoch),
                             static_cast<uint32_t>(i),
                             static_cast<uint32_t>(epoch >> 32), 0};
    uint32_t bits = philox4x32_10(counter, key)[0];
    int64_t j =
        static_cast<int64_t>((static_cast<uint64_t>(bits) * (i + 1)) >> 32);
    std::swap(perm[i], perm[j]);
  }
  return perm;
}
} // namespace

int64_t sampleAt(uint64_t seed, int64_t position, int64_t datasetSize) {
  // One permutation per epoch; recomputed when a batch crosses into another.
  thread_local int64_t cachedEpoch = -1;
  thread_local uint64_t cachedSeed = 0;
  thread_local int64_t cachedSize = 0;
  thread_local std::vector<int64_t> cached;
  int64_t epoch = position / datasetSize;
  if (epoch != cachedEpoch || seed != cachedSeed || datasetSize != cachedSize) {
    cached = epochPermutation(seed, epoch, datasetSize);
    cachedEpoch = epoch;
    cachedSeed = seed;
    cachedSize = datasetSize;
  }
  return cached[position % datasetSize];
}

StatusOr<std::unique_ptr<FashionMnistBatches>>
FashionMnistBatches::open(const BatchOptions &options) {
  if (options.ranks <= 0 || options.rank < 0 || options.rank >= options.ranks ||
      options.globalBatch % options.ranks != 0)
    return Status::error(
        "the global batch " + std::to_string(options.globalBatch) +
        " must split evenly over " + std::to_string(options.ranks) + " ranks");
  int64_t local = options.globalBatch / options.ranks;
  if (options.prefixMode == PrefixMode::Antithetic && local % 2 != 0)
    return Status::error("antithetic prefix pairs need an even batch per rank, "
                         "got " +
                         std::to_string(local));
  StatusOr<IdxImages> images = readFashionMnist("train");
  if (!images)
    return images.status();
  return std::unique_ptr<FashionMnistBatches>(
      new FashionMnistBatches(options, std::move(*images)));
}

FashionMnistBatches::FashionMnistBatches(BatchOptions options, IdxImages images)
    : options(options), images(std::move(images)) {
  worker = std::thread([this] { produce(); });
}

FashionMnistBatches::~FashionMnistBatches() {
  {
    std::lock_guard<std::mutex> lock(mutex);
    stopping = true;
  }
  changed.notify_all();
  worker.join();
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
  std::vector<int64_t> k =
      samplePrefixLengths(options.prefixMode, options.seed, step, firstInBatch,
                          local, options.numPatches);
  batch.prefix = HostTensor::fromDoubles(
      DType::I32, {local}, std::vector<double>(k.begin(), k.end()));
  return batch;
}

void FashionMnistBatches::produce() {
  for (int64_t step = options.firstStep;; ++step) {
    Batch batch = make(step);
    std::unique_lock<std::mutex> lock(mutex);
    changed.wait(lock, [&] {
      return stopping || static_cast<int>(ready.size()) < options.prefetch;
    });
    if (stopping)
      return;
    ready.push_back(std::move(batch));
    changed.notify_all();
  }
}

Batch FashionMnistBatches::next() {
  std::unique_lock<std::mutex> lock(mutex);
  changed.wait(lock, [&] { return !ready.empty(); });
  Batch batch = std::move(ready.front());
  ready.pop_front();
  changed.notify_all();
  return batch;
}

} // namespace aim::rt
