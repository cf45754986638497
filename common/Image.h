//===- Image.h - an 8-bit image in memory ---------------------------------===//
#ifndef AIMC_COMMON_IMAGE_H
#define AIMC_COMMON_IMAGE_H

#include <cstddef>
#include <cstdint>
#include <vector>

namespace aim {

/// Rows of pixels, each pixel `channels` bytes (1: gray, 3: RGB), row-major.
struct Image {
  int64_t height = 0, width = 0, channels = 0;
  std::vector<uint8_t> pixels;

  uint8_t &at(int64_t y, int64_t x, int64_t c) {
    return pixels[static_cast<size_t>((y * width + x) * channels + c)];
  }
  uint8_t at(int64_t y, int64_t x, int64_t c) const {
    return pixels[static_cast<size_t>((y * width + x) * channels + c)];
  }
  static Image blank(int64_t height, int64_t width, int64_t channels,
                     uint8_t value = 0) {
    Image image;
    image.height = height;
    image.width = width;
    image.channels = channels;
    image.pixels.assign(static_cast<size_t>(height * width * channels), value);
    return image;
  }
};

} // namespace aim

#endif // AIMC_COMMON_IMAGE_H
