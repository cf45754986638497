//===- ImageTransform.cpp - resizing and AIM's augmentations --------------===//
#include "common/ImageTransform.h"

#include "common/FashionMnist.h"

#include <algorithm>
#include <cmath>

namespace aim {

SampleRandom::SampleRandom(uint64_t seed, int64_t position)
    : key(streamKey(seed, "augment")), position(static_cast<uint64_t>(position)) {}

double SampleRandom::uniform() {
  PhiloxCounter counter = {static_cast<uint32_t>(position),
                           static_cast<uint32_t>(position >> 32), draw++, 0};
  return unitFromBits(philox4x32_10(counter, key)[0]);
}

namespace {

uint8_t toByte(double v) {
  return static_cast<uint8_t>(std::clamp(std::lround(v), 0L, 255L));
}

/// PIL's bicubic kernel (a = -0.5).
double cubic(double x) {
  constexpr double a = -0.5;
  x = std::fabs(x);
  if (x < 1.0)
    return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
  if (x < 2.0)
    return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
  return 0.0;
}

/// For each of `out` output samples over input [start, start + length) of a
/// dimension of `size`: the first input index and the normalised weights.
struct Taps {
  std::vector<int64_t> first;
  std::vector<std::vector<double>> weights;
};

Taps resamplingTaps(int64_t start, int64_t length, int64_t size, int64_t out) {
  Taps taps;
  double scale = static_cast<double>(length) / out;
  double filterScale = std::max(scale, 1.0);
  double support = 2.0 * filterScale;
  for (int64_t i = 0; i < out; ++i) {
    double centre = start + (i + 0.5) * scale;
    int64_t lo = std::max<int64_t>(
        0, static_cast<int64_t>(std::floor(centre - support + 0.5)));
    int64_t hi = std::min<int64_t>(
        size, static_cast<int64_t>(std::floor(centre + support + 0.5)));
    std::vector<double> w;
    double total = 0.0;
    for (int64_t j = lo; j < hi; ++j) {
      w.push_back(cubic((j + 0.5 - centre) / filterScale));
      total += w.back();
    }
    for (double &v : w)
      v = total != 0.0 ? v / total : 0.0;
    taps.first.push_back(lo);
    taps.weights.push_back(std::move(w));
  }
  return taps;
}

double luma(double r, double g, double b) {
  return 0.299 * r + 0.587 * g + 0.114 * b;
}

void rgbToHsv(double r, double g, double b, double &h, double &s, double &v) {
  double hi = std::max({r, g, b}), lo = std::min({r, g, b});
  v = hi;
  double range = hi - lo;
  s = hi > 0.0 ? range / hi : 0.0;
  if (range <= 0.0) {
    h = 0.0;
    return;
  }
  if (hi == r)
    h = (g - b) / range;
  else if (hi == g)
    h = 2.0 + (b - r) / range;
  else
    h = 4.0 + (r - g) / range;
  h = h / 6.0;
  h -= std::floor(h);
}

void hsvToRgb(double h, double s, double v, double &r, double &g, double &b) {
  double sector = h * 6.0;
  int64_t i = static_cast<int64_t>(std::floor(sector)) % 6;
  double f = sector - std::floor(sector);
  double p = v * (1.0 - s), q = v * (1.0 - s * f), t = v * (1.0 - s * (1.0 - f));
  switch (i) {
  case 0: r = v, g = t, b = p; break;
  case 1: r = q, g = v, b = p; break;
  case 2: r = p, g = v, b = t; break;
  case 3: r = p, g = q, b = v; break;
  case 4: r = t, g = p, b = v; break;
  default: r = v, g = p, b = q; break;
  }
}

} // namespace

Image convertChannels(const Image &image, int64_t channels) {
  if (image.channels == channels)
    return image;
  Image out = Image::blank(image.height, image.width, channels);
  for (int64_t y = 0; y < image.height; ++y)
    for (int64_t x = 0; x < image.width; ++x) {
      if (channels == 1) { // PIL's integer luma, rounded
        uint32_t l = (image.at(y, x, 0) * 19595u + image.at(y, x, 1) * 38470u +
                      image.at(y, x, 2) * 7471u + 0x8000u) >>
                     16;
        out.at(y, x, 0) = static_cast<uint8_t>(l);
      } else {
        for (int64_t c = 0; c < channels; ++c)
          out.at(y, x, c) = image.at(y, x, 0);
      }
    }
  return out;
}

CropBox randomResizedCrop(int64_t height, int64_t width, SampleRandom &random,
                          double minScale, double maxScale) {
  const double area = static_cast<double>(height) * width;
  const double logLow = std::log(3.0 / 4.0), logHigh = std::log(4.0 / 3.0);
  for (int attempt = 0; attempt < 10; ++attempt) {
    double target = area * random.uniform(minScale, maxScale);
    double aspect = std::exp(random.uniform(logLow, logHigh));
    int64_t w = std::lround(std::sqrt(target * aspect));
    int64_t h = std::lround(std::sqrt(target / aspect));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      int64_t top = static_cast<int64_t>(random.uniform() * (height - h + 1));
      int64_t left = static_cast<int64_t>(random.uniform() * (width - w + 1));
      return {top, left, h, w};
    }
  }
  double ratio = static_cast<double>(width) / height;
  int64_t w = width, h = height;
  if (ratio < 3.0 / 4.0)
    h = std::min<int64_t>(height, std::lround(w / (3.0 / 4.0)));
  else if (ratio > 4.0 / 3.0)
    w = std::min<int64_t>(width, std::lround(h * (4.0 / 3.0)));
  return {(height - h) / 2, (width - w) / 2, h, w};
}

Image resizeBicubic(const Image &image, const CropBox &box, int64_t height,
                    int64_t width) {
  const int64_t channels = image.channels;
  Taps across = resamplingTaps(box.left, box.width, image.width, width);
  Taps down = resamplingTaps(box.top, box.height, image.height, height);
  // Horizontal pass over the rows the vertical pass reads, in float.
  int64_t firstRow = down.first.front(), lastRow = firstRow;
  for (int64_t i = 0; i < height; ++i)
    lastRow = std::max<int64_t>(lastRow, down.first[i] +
                                             static_cast<int64_t>(
                                                 down.weights[i].size()));
  std::vector<double> rows(
      static_cast<size_t>((lastRow - firstRow) * width * channels));
  for (int64_t y = firstRow; y < lastRow; ++y)
    for (int64_t x = 0; x < width; ++x)
      for (int64_t c = 0; c < channels; ++c) {
        double sum = 0.0;
        const std::vector<double> &w = across.weights[x];
        for (size_t t = 0; t < w.size(); ++t)
          sum += w[t] * image.at(y, across.first[x] + t, c);
        rows[((y - firstRow) * width + x) * channels + c] = sum;
      }
  Image out = Image::blank(height, width, channels);
  for (int64_t y = 0; y < height; ++y)
    for (int64_t x = 0; x < width; ++x)
      for (int64_t c = 0; c < channels; ++c) {
        double sum = 0.0;
        const std::vector<double> &w = down.weights[y];
        for (size_t t = 0; t < w.size(); ++t)
          sum += w[t] *
                 rows[((down.first[y] + t - firstRow) * width + x) * channels + c];
        out.at(y, x, c) = toByte(sum);
      }
  return out;
}

void flipHorizontally(Image &image) {
  for (int64_t y = 0; y < image.height; ++y)
    for (int64_t x = 0; x < image.width / 2; ++x)
      for (int64_t c = 0; c < image.channels; ++c)
        std::swap(image.at(y, x, c), image.at(y, image.width - 1 - x, c));
}

void jitterColours(Image &image, SampleRandom &random, double probability) {
  double apply = random.uniform();
  double brightness = random.uniform(0.6, 1.4);
  double contrast = random.uniform(0.6, 1.4);
  double saturation = random.uniform(0.8, 1.2);
  double hue = random.uniform(-0.1, 0.1);
  if (image.channels != 3 || apply >= probability)
    return;
  const int64_t count = image.height * image.width;
  std::vector<double> rgb(image.pixels.begin(), image.pixels.end());
  for (double &v : rgb)
    v = std::clamp(v * brightness, 0.0, 255.0);
  double mean = 0.0;
  for (int64_t i = 0; i < count; ++i)
    mean += luma(rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2]);
  mean /= static_cast<double>(count);
  for (double &v : rgb)
    v = std::clamp(contrast * v + (1.0 - contrast) * mean, 0.0, 255.0);
  for (int64_t i = 0; i < count; ++i) {
    double gray = luma(rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2]);
    for (int64_t c = 0; c < 3; ++c)
      rgb[3 * i + c] = std::clamp(
          saturation * rgb[3 * i + c] + (1.0 - saturation) * gray, 0.0, 255.0);
    double h, s, v;
    rgbToHsv(rgb[3 * i] / 255.0, rgb[3 * i + 1] / 255.0, rgb[3 * i + 2] / 255.0,
             h, s, v);
    h += hue;
    h -= std::floor(h);
    double r, g, b;
    hsvToRgb(h, s, v, r, g, b);
    rgb[3 * i] = r * 255.0, rgb[3 * i + 1] = g * 255.0, rgb[3 * i + 2] = b * 255.0;
  }
  for (size_t i = 0; i < rgb.size(); ++i)
    image.pixels[i] = toByte(rgb[i]);
}

Image prepareImage(const Image &decoded, int64_t channels, int64_t height,
                   int64_t width, const Augmentation &augmentation,
                   SampleRandom &random) {
  Image converted = convertChannels(decoded, channels);
  CropBox box = augmentation.crop
                    ? randomResizedCrop(converted.height, converted.width, random)
                    : CropBox{0, 0, converted.height, converted.width};
  Image out = resizeBicubic(converted, box, height, width);
  if (augmentation.flip && random.uniform() < 0.5)
    flipHorizontally(out);
  if (augmentation.jitter && channels == 3)
    jitterColours(out, random);
  return out;
}

namespace {
constexpr double kImageNetMean[3] = {0.485, 0.456, 0.406};
constexpr double kImageNetStd[3] = {0.229, 0.224, 0.225};
} // namespace

double normalizePixel(uint8_t pixel, int64_t channel, int64_t channels) {
  if (channels == 1)
    return normalizeFashionMnistPixel(pixel);
  return (pixel / 255.0 - kImageNetMean[channel]) / kImageNetStd[channel];
}

uint8_t denormalizePixel(double value, int64_t channel, int64_t channels) {
  double unit = channels == 1
                    ? value * kFashionMnistStd + kFashionMnistMean
                    : value * kImageNetStd[channel] + kImageNetMean[channel];
  return toByte(unit * 255.0);
}

} // namespace aim
