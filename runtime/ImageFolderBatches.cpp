//===- ImageFolderBatches.cpp - training batches from a folder of images --===//
#include "runtime/ImageFolderBatches.h"

#include "common/ImageCodec.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <system_error>

namespace aim::rt {

namespace fs = std::filesystem;

namespace {
bool hasImageExtension(const fs::path &path) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg";
}
} // namespace

StatusOr<std::vector<std::string>>
listImageFiles(const std::string &directory) {
  std::error_code error;
  if (!fs::is_directory(directory, error))
    return Status::error("--data '" + directory + "' is not a directory");
  std::vector<std::string> files;
  fs::recursive_directory_iterator it(
      directory, fs::directory_options::skip_permission_denied, error);
  for (; !error && it != fs::recursive_directory_iterator();
       it.increment(error)) {
    std::error_code ignored;
    if (it->is_regular_file(ignored) && hasImageExtension(it->path()))
      files.push_back(it->path().string());
  }
  if (error)
    return Status::error("cannot list '" + directory + "': " +
                         error.message());
  if (files.empty())
    return Status::error("--data '" + directory +
                         "' holds no .png, .jpg or .jpeg files (searched "
                         "recursively)");
  std::sort(files.begin(), files.end());
  return files;
}

Status loadModelInput(const std::string &path, const ModelImageShape &shape,
                      const Augmentation &augmentation, SampleRandom &random,
                      float *out) {
  StatusOr<Image> decoded = readImageFile(path);
  if (!decoded)
    return decoded.status();
  Image image = prepareImage(*decoded, shape.channels, shape.height,
                             shape.width, augmentation, random);
  for (int64_t c = 0; c < shape.channels; ++c)
    for (int64_t y = 0; y < shape.height; ++y)
      for (int64_t x = 0; x < shape.width; ++x)
        *out++ = static_cast<float>(
            normalizePixel(image.at(y, x, c), c, shape.channels));
  return Status::ok();
}

StatusOr<std::unique_ptr<ImageFolderBatches>>
ImageFolderBatches::open(const std::string &directory,
                         const ModelImageShape &shape,
                         const Augmentation &augmentation,
                         const BatchOptions &options) {
  if (shape.channels != 1 && shape.channels != 3)
    return Status::error("images become inputs of 1 (gray) or 3 (RGB) "
                         "channels; this model takes " +
                         std::to_string(shape.channels));
  if (Status s = checkBatchOptions(options); !s)
    return s;
  StatusOr<std::vector<std::string>> files = listImageFiles(directory);
  if (!files)
    return files.status();
  return std::unique_ptr<ImageFolderBatches>(new ImageFolderBatches(
      std::move(*files), shape, augmentation, options));
}

ImageFolderBatches::ImageFolderBatches(std::vector<std::string> files,
                                       ModelImageShape shape,
                                       Augmentation augmentation,
                                       BatchOptions options)
    : files(std::move(files)), shape(shape), augmentation(augmentation),
      options(options), bad(this->files.size(), false) {
  prefetcher = std::make_unique<Prefetcher>(
      [this](int64_t step) { return make(step); }, options.firstStep,
      options.prefetch, options.threads);
}

Status ImageFolderBatches::loadSample(int64_t position, float *out) {
  const int64_t n = fileCount();
  const int64_t first = sampleAt(options.seed, position, n);
  for (int64_t tried = 0; tried < n; ++tried) {
    int64_t index = (first + tried) % n;
    {
      std::lock_guard<std::mutex> lock(badMutex);
      if (bad[index])
        continue;
    }
    SampleRandom random(options.seed, position);
    Status loaded = loadModelInput(files[index], shape, augmentation, random,
                                   out);
    if (loaded)
      return loaded;
    std::lock_guard<std::mutex> lock(badMutex);
    if (!bad[index]) {
      bad[index] = true;
      std::fprintf(stderr,
                   "aim-run: warning: skipping an unreadable image (%lld so "
                   "far): %s\n",
                   static_cast<long long>(++skipped), loaded.message().c_str());
    }
  }
  return Status::error("none of the " + std::to_string(n) +
                       " image files could be decoded");
}

StatusOr<Batch> ImageFolderBatches::make(int64_t step) {
  const int64_t local = options.globalBatch / options.ranks;
  const int64_t firstInBatch = options.rank * local;
  Batch batch;
  batch.step = step;
  batch.images = HostTensor::zeros(
      DType::F32, {local, shape.channels, shape.height, shape.width});
  const int64_t size = shape.channels * shape.height * shape.width;
  auto *pixels = reinterpret_cast<float *>(batch.images.bytes.data());
  for (int64_t i = 0; i < local; ++i)
    if (Status s = loadSample(step * options.globalBatch + firstInBatch + i,
                              pixels + i * size);
        !s)
      return s;
  batch.prefix = prefixLengthsOf(options, step);
  return batch;
}

} // namespace aim::rt
