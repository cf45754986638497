//===- ImageCodec.h - PNG and JPEG files to and from Image ----------------===//
//
// Decoding goes by the file's signature, not its name. Every PNG colour type
// and bit depth becomes 8-bit gray or RGB: palettes are expanded, 16-bit
// samples reduced, alpha dropped (composited on black, as PIL's convert
// does). JPEGs decode to gray or RGB (CMYK is an error). A damaged file is an
// error naming the file and what libpng or libjpeg said, never a crash.
//
//===----------------------------------------------------------------------===//
#ifndef AIMC_COMMON_IMAGECODEC_H
#define AIMC_COMMON_IMAGECODEC_H

#include "common/Image.h"
#include "common/Status.h"

#include <string>

namespace aim {

/// Images larger than this many pixels are refused (a corrupt header should
/// not make us allocate gigabytes).
inline constexpr int64_t kMaxImagePixels = int64_t(1) << 28;

StatusOr<Image> decodeImage(const std::string &bytes, const std::string &name);
StatusOr<Image> readImageFile(const std::string &path);

/// An 8-bit gray or RGB PNG, written atomically.
Status writePng(const std::string &path, const Image &image);
/// A baseline JPEG (quality 0-100), written atomically (tests make inputs).
Status writeJpeg(const std::string &path, const Image &image, int quality = 90);

} // namespace aim

#endif // AIMC_COMMON_IMAGECODEC_H
