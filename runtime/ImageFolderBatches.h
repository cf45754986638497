//===- ImageFolderBatches.h - training batches from a folder of images ----===//
//
// `aim-run train --data DIR`: every .png, .jpg and .jpeg file under DIR
// (recursively, any letter case; sorted by path so the stream does not depend
// on the file system's order) is one sample of the stream of Batch.h. Each
// sample is decoded and augmented (ImageTransform.h) on the data threads with
// randomness keyed by its global position. A file that cannot be decoded is
// skipped -- its sample takes the next readable file in path order -- and
// counted, with one warning per file; the choice depends only on the files,
// so a resumed run still reads what it would have read.
//
//===----------------------------------------------------------------------===//
#ifndef AIMC_RUNTIME_IMAGEFOLDERBATCHES_H
#define AIMC_RUNTIME_IMAGEFOLDERBATCHES_H

#include "common/ImageTransform.h"
#include "runtime/Batch.h"
#include "runtime/Prefetcher.h"

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace aim::rt {

struct ModelImageShape {
  int64_t channels = 1, height = 28, width = 28;
};

/// The image files under `directory`, sorted; an error when it is not a
/// directory or holds none.
StatusOr<std::vector<std::string>> listImageFiles(const std::string &directory);

/// One file as a normalised [C, H, W] model input, written at `out`.
Status loadModelInput(const std::string &path, const ModelImageShape &shape,
                      const Augmentation &augmentation, SampleRandom &random,
                      float *out);

class ImageFolderBatches {
public:
  static StatusOr<std::unique_ptr<ImageFolderBatches>>
  open(const std::string &directory, const ModelImageShape &shape,
       const Augmentation &augmentation, const BatchOptions &options);

  StatusOr<Batch> next() { return prefetcher->next(); }
  /// The batch of `step`; safe to call from several threads.
  StatusOr<Batch> make(int64_t step);

  int64_t fileCount() const { return static_cast<int64_t>(files.size()); }
  /// Files found unreadable so far.
  int64_t skippedCount() const { return skipped.load(); }

private:
  ImageFolderBatches(std::vector<std::string> files, ModelImageShape shape,
                     Augmentation augmentation, BatchOptions options);
  Status loadSample(int64_t position, float *out);

  std::vector<std::string> files;
  ModelImageShape shape;
  Augmentation augmentation;
  BatchOptions options;
  std::mutex badMutex;
  std::vector<bool> bad; // files that failed to decode
  std::atomic<int64_t> skipped{0};
  std::unique_ptr<Prefetcher> prefetcher; // last: stops before the rest goes
};

} // namespace aim::rt

#endif // AIMC_RUNTIME_IMAGEFOLDERBATCHES_H
