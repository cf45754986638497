//===- ImageTransform.h - resizing and AIM's augmentations ----------------===//
//
// What turns a decoded file into a model input (docs/data.md):
//  - channels: RGB to gray by ITU-R BT.601 luma (PIL's "L"), gray to RGB by
//    repetition;
//  - RandomResizedCrop as torchvision draws it (area scale 0.4-1.0, aspect
//    ratio 3/4-4/3 log-uniform, ten tries, then the centre crop), resampled
//    bicubically (a = -0.5, PIL's) with the filter widened when shrinking so
//    that downscaling does not alias;
//  - horizontal flip with probability 1/2;
//  - colour jitter on RGB with probability 0.8: brightness 0.4, contrast 0.4,
//    saturation 0.2, hue 0.1, in that fixed order (torchvision shuffles it);
//  - normalisation: Fashion-MNIST's mean and std for one channel, ImageNet's
//    for three (AIM.md).
// Every random draw comes from a SampleRandom, keyed by the sample, never by
// the thread that happens to decode it.
//
//===----------------------------------------------------------------------===//
#ifndef AIMC_COMMON_IMAGETRANSFORM_H
#define AIMC_COMMON_IMAGETRANSFORM_H

#include "common/Image.h"
#include "common/Philox.h"

namespace aim {

/// Uniform draws for one sample: Philox keyed by (seed, "augment") at counter
/// (position, draw number), position being the global sample position.
class SampleRandom {
public:
  SampleRandom(uint64_t seed, int64_t position);
  double uniform(); // [0, 1)
  double uniform(double low, double high) {
    return low + (high - low) * uniform();
  }

private:
  PhiloxKey key;
  uint64_t position;
  uint32_t draw = 0;
};

struct CropBox {
  int64_t top = 0, left = 0, height = 0, width = 0;
};

Image convertChannels(const Image &image, int64_t channels);

/// torchvision's RandomResizedCrop box for an image of height x width.
CropBox randomResizedCrop(int64_t height, int64_t width, SampleRandom &random,
                          double minScale = 0.4, double maxScale = 1.0);

/// `box` of `image` resampled to height x width (bicubic, antialiased).
Image resizeBicubic(const Image &image, const CropBox &box, int64_t height,
                    int64_t width);
inline Image resizeBicubic(const Image &image, int64_t height, int64_t width) {
  return resizeBicubic(image, {0, 0, image.height, image.width}, height, width);
}

void flipHorizontally(Image &image);

/// The colour jitter above, applied with probability `probability`.
void jitterColours(Image &image, SampleRandom &random,
                   double probability = 0.8);

/// How a file becomes an input.
struct Augmentation {
  bool crop = true;   // RandomResizedCrop; off: the whole image resized
  bool flip = true;
  bool jitter = true; // RGB only
};

/// The full path: channels, crop or resize to height x width, flip, jitter.
Image prepareImage(const Image &decoded, int64_t channels, int64_t height,
                   int64_t width, const Augmentation &augmentation,
                   SampleRandom &random);

/// (pixel / 255 - mean[c]) / std[c] for the model's channel count.
double normalizePixel(uint8_t pixel, int64_t channel, int64_t channels);
/// The inverse, rounded and clamped to a byte (for pictures).
uint8_t denormalizePixel(double value, int64_t channel, int64_t channels);

} // namespace aim

#endif // AIMC_COMMON_IMAGETRANSFORM_H
