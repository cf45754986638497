//===- Evaluation.cpp - validation loss on fixed targets ------------------===//
#include "tools/aim-run/Evaluation.h"

#include "common/FashionMnist.h"
#include "runtime/SyntheticBatches.h"

#include <cstring>

namespace aim::rt {

StatusOr<EvalSet> loadEvalSet(const LoadedModel &model,
                              const std::string &dataDir, int64_t limit,
                              uint64_t seed) {
  const ModelImageShape shape = model.imageShape();
  const int64_t batch = model.batch();
  const int64_t size = shape.channels * shape.height * shape.width;
  EvalSet set;
  if (dataDir == kSyntheticData) {
    // Held out from training: positions past any run's (2^62 onwards).
    set.count = limit > 0 ? limit : 1024;
    set.count -= set.count % batch;
    if (set.count == 0)
      return Status::error("evaluation needs at least one batch of " +
                           std::to_string(batch) + " images");
    set.images = HostTensor::zeros(
        DType::F32, {set.count, shape.channels, shape.height, shape.width});
    auto *out = reinterpret_cast<float *>(set.images.bytes.data());
    for (int64_t i = 0; i < set.count; ++i) {
      std::vector<float> image =
          syntheticImage(shape, seed, (int64_t(1) << 62) + i);
      std::copy(image.begin(), image.end(), out + i * size);
    }
    set.source = "synthetic images";
  } else if (dataDir.empty()) {
    if (shape.channels != 1 || shape.height != 28 || shape.width != 28)
      return Status::error(
          "Fashion-MNIST images are 1x28x28 but this model takes " +
          std::to_string(shape.channels) + "x" + std::to_string(shape.height) +
          "x" + std::to_string(shape.width) + "; give --data DIR");
    int64_t count = limit > 0 ? std::min<int64_t>(limit, 10000) : 10000;
    count -= count % batch;
    if (count == 0)
      return Status::error("evaluation needs at least one batch of " +
                           std::to_string(batch) + " images");
    StatusOr<HostTensor> images = loadFashionMnistImages("t10k", 0, count);
    if (!images)
      return images.status();
    set.images = std::move(*images);
    set.count = count;
    set.source = "Fashion-MNIST t10k";
  } else {
    StatusOr<std::vector<std::string>> files = listImageFiles(dataDir);
    if (!files)
      return files.status();
    std::vector<float> pixels;
    std::vector<float> one(static_cast<size_t>(size));
    int64_t skipped = 0;
    for (const std::string &file : *files) {
      if (limit > 0 && set.count == limit)
        break;
      SampleRandom unused(seed, set.count);
      Status s = loadModelInput(file, shape, Augmentation{false, false, false},
                                unused, one.data());
      if (!s) {
        warn("skipping an unreadable image (" + std::to_string(++skipped) +
             " so far): " + s.message());
        continue;
      }
      pixels.insert(pixels.end(), one.begin(), one.end());
      ++set.count;
    }
    set.count -= set.count % batch;
    if (set.count == 0)
      return Status::error("evaluation needs at least one batch of " +
                           std::to_string(batch) + " readable images under '" +
                           dataDir + "'");
    set.images = HostTensor::zeros(
        DType::F32, {set.count, shape.channels, shape.height, shape.width});
    std::memcpy(set.images.bytes.data(), pixels.data(),
                set.images.bytes.size());
    set.source = dataDir;
  }
  set.prefix = samplePrefixLengths(model.prefixMode(), seed, 0, 0, set.count,
                                   model.numPatches(), "eval-prefix");
  return set;
}

HostTensor sliceImages(const EvalSet &set, int64_t first, int64_t count) {
  std::vector<int64_t> shape = set.images.shape;
  const size_t perImage = set.images.bytes.size() / shape[0];
  shape[0] = count;
  HostTensor out = HostTensor::zeros(DType::F32, shape);
  std::memcpy(out.bytes.data(), set.images.bytes.data() + first * perImage,
              count * perImage);
  return out;
}

HostTensor slicePrefix(const EvalSet &set, int64_t first, int64_t count) {
  return HostTensor::fromDoubles(
      DType::I32, {count},
      std::vector<double>(set.prefix.begin() + first,
                          set.prefix.begin() + first + count));
}

StatusOr<double> evaluateLoss(const LoadedModel &model, EntryCall &forward,
                              NamedTensors &params, const EvalSet &set,
                              int64_t rank, int64_t ranks) {
  const int64_t batch = model.batch(), n = model.numPatches();
  const int64_t slice = batch / ranks; // this rank's images of a batch
  std::map<std::string, HostTensor *> arguments = byName(params);
  double weighted = 0.0, targets = 0.0;
  for (int64_t first = 0; first + batch <= set.count; first += batch) {
    HostTensor images = sliceImages(set, first + rank * slice, slice);
    HostTensor prefix = slicePrefix(set, first + rank * slice, slice);
    arguments["images"] = &images;
    arguments["prefix"] = &prefix;
    if (Status s = forward(arguments); !s)
      return s;
    float loss;
    std::memcpy(&loss, forward.result(0).bytes.data(), 4);
    double count = 0;
    for (int64_t i = first; i < first + batch; ++i)
      count += static_cast<double>(n - set.prefix[i]);
    weighted += static_cast<double>(loss) * count;
    targets += count;
  }
  return weighted / targets;
}

} // namespace aim::rt
