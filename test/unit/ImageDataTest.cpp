//===- ImageDataTest.cpp - PNG/JPEG decoding, augmentation, image folders -===//
//
// Links only libaimrt and common/. Test images are written with libpng and
// libjpeg (ImageCodec's writers) into a fresh temporary folder.
//
//===----------------------------------------------------------------------===//

#include "common/FileIO.h"
#include "common/ImageCodec.h"
#include "common/ImageTransform.h"
#include "runtime/ImageFolderBatches.h"
#include "runtime/Prefetcher.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>

using namespace aim;
using namespace aim::rt;
namespace fs = std::filesystem;

namespace {

std::string freshDir(const std::string &name) {
  std::string dir = ::testing::TempDir() + "/aimc-images-" + name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

/// A smooth test pattern: channel c of pixel (y, x).
Image pattern(int64_t height, int64_t width, int64_t channels) {
  Image image = Image::blank(height, width, channels);
  for (int64_t y = 0; y < height; ++y)
    for (int64_t x = 0; x < width; ++x)
      for (int64_t c = 0; c < channels; ++c)
        image.at(y, x, c) =
            static_cast<uint8_t>((x * 7 + y * 3 + c * 60) % 256);
  return image;
}

double meanAbsDifference(const Image &a, const Image &b) {
  double sum = 0.0;
  for (size_t i = 0; i < a.pixels.size(); ++i)
    sum += std::abs(int(a.pixels[i]) - int(b.pixels[i]));
  return sum / a.pixels.size();
}

} // namespace

TEST(ImageCodec, PngRoundTripsExactlyAndJpegClosely) {
  std::string dir = freshDir("codec");
  for (int64_t channels : {1, 3}) {
    Image image = pattern(13, 21, channels);
    std::string png = dir + "/p" + std::to_string(channels) + ".png";
    ASSERT_TRUE(writePng(png, image).isOk());
    StatusOr<Image> back = readImageFile(png);
    ASSERT_TRUE(back.isOk()) << back.status().message();
    EXPECT_EQ(back->channels, channels);
    EXPECT_EQ(back->pixels, image.pixels);

    std::string jpg = dir + "/j" + std::to_string(channels) + ".jpg";
    ASSERT_TRUE(writeJpeg(jpg, image, 95).isOk());
    StatusOr<Image> lossy = readImageFile(jpg);
    ASSERT_TRUE(lossy.isOk()) << lossy.status().message();
    EXPECT_EQ(lossy->channels, channels);
    ASSERT_EQ(lossy->pixels.size(), image.pixels.size());
    // Quality 95 on a smooth pattern: a few levels of error on average.
    EXPECT_LT(meanAbsDifference(*lossy, image), 6.0);
  }
}

TEST(ImageCodec, DamagedFilesAreErrorsNamingTheFile) {
  std::string dir = freshDir("damaged");
  Image image = pattern(16, 16, 3);
  ASSERT_TRUE(writePng(dir + "/a.png", image).isOk());
  ASSERT_TRUE(writeJpeg(dir + "/a.jpg", image).isOk());
  for (const char *name : {"a.png", "a.jpg"}) {
    std::string bytes = *readWholeFile(dir + "/" + name);
    // (A PNG cut inside its final IEND chunk still holds the whole image and
    // decodes; a cut into the pixel data does not.)
    for (size_t keep : {size_t(4), size_t(40), bytes.size() / 2}) {
      StatusOr<Image> d = decodeImage(bytes.substr(0, keep), name);
      EXPECT_FALSE(d.isOk()) << name << " cut to " << keep;
      if (!d.isOk()) {
        EXPECT_NE(d.status().message().find(name), std::string::npos);
      }
    }
  }
  StatusOr<Image> text = decodeImage("hello, world", "notes.png");
  ASSERT_FALSE(text.isOk());
  EXPECT_NE(text.status().message().find("neither a PNG nor a JPEG"),
            std::string::npos);
}

TEST(ImageTransform, ChannelConversionAndResizing) {
  Image red = Image::blank(2, 2, 3);
  for (int64_t y = 0; y < 2; ++y)
    for (int64_t x = 0; x < 2; ++x)
      red.at(y, x, 0) = 255;
  EXPECT_EQ(convertChannels(red, 1).at(1, 1, 0), 76); // BT.601: 0.299 * 255
  Image gray = pattern(5, 6, 1);
  EXPECT_EQ(convertChannels(convertChannels(gray, 3), 1).pixels, gray.pixels);

  // Same size, whole box: the identity. A constant image stays constant at
  // any size (the weights are normalised).
  Image p = pattern(9, 11, 3);
  EXPECT_EQ(resizeBicubic(p, 9, 11).pixels, p.pixels);
  Image flat = Image::blank(10, 30, 1, 137);
  for (uint8_t v : resizeBicubic(flat, 7, 4).pixels)
    EXPECT_EQ(v, 137);
  // Shrinking a one-pixel checkerboard 4x averages it (antialiasing): a
  // sampling resize would return 0s and 255s.
  Image checker = Image::blank(16, 16, 1);
  for (int64_t y = 0; y < 16; ++y)
    for (int64_t x = 0; x < 16; ++x)
      checker.at(y, x, 0) = (x + y) % 2 ? 255 : 0;
  for (uint8_t v : resizeBicubic(checker, 4, 4).pixels)
    EXPECT_NEAR(v, 127.5, 3.0);
  // A horizontal ramp stays a ramp, sampled at pixel centres.
  Image ramp = Image::blank(1, 8, 1);
  for (int64_t x = 0; x < 8; ++x)
    ramp.at(0, x, 0) = static_cast<uint8_t>(20 * x);
  Image up = resizeBicubic(ramp, 1, 16);
  for (int64_t x = 2; x < 14; ++x) // away from the clamped edges
    EXPECT_NEAR(up.at(0, x, 0), 20.0 * ((x + 0.5) / 2.0 - 0.5), 1.0) << x;
}

TEST(ImageTransform, RandomResizedCropFollowsTorchvisionsRanges) {
  for (int64_t position = 0; position < 200; ++position) {
    SampleRandom random(7, position);
    CropBox box = randomResizedCrop(60, 80, random);
    ASSERT_GE(box.top, 0);
    ASSERT_GE(box.left, 0);
    ASSERT_LE(box.top + box.height, 60);
    ASSERT_LE(box.left + box.width, 80);
    double area = static_cast<double>(box.height) * box.width / (60.0 * 80.0);
    double aspect = static_cast<double>(box.width) / box.height;
    EXPECT_GE(area, 0.4 * 0.9) << position; // rounding of the sides
    EXPECT_LE(area, 1.0);
    EXPECT_GE(aspect, 0.75 * 0.9);
    EXPECT_LE(aspect, 4.0 / 3.0 * 1.1);
    // Keyed by the sample: the same draws every time.
    SampleRandom again(7, position);
    CropBox same = randomResizedCrop(60, 80, again);
    EXPECT_EQ(same.top, box.top);
    EXPECT_EQ(same.width, box.width);
  }
}

TEST(ImageTransform, JitterChangesRgbOnlyAndFlipMirrors) {
  Image p = pattern(8, 8, 3);
  Image jittered = p;
  SampleRandom random(1, 0);
  jitterColours(jittered, random, /*probability=*/1.0);
  EXPECT_NE(jittered.pixels, p.pixels);
  Image gray = pattern(8, 8, 1), grayJittered = gray;
  SampleRandom again(1, 0);
  jitterColours(grayJittered, again, 1.0);
  EXPECT_EQ(grayJittered.pixels, gray.pixels);
  Image flipped = p;
  flipHorizontally(flipped);
  EXPECT_EQ(flipped.at(3, 0, 2), p.at(3, 7, 2));
  flipHorizontally(flipped);
  EXPECT_EQ(flipped.pixels, p.pixels);
}

TEST(Prefetcher, HandsBatchesOverInStepOrder) {
  Prefetcher prefetcher(
      [](int64_t step) -> StatusOr<Batch> {
        Batch b;
        b.step = step;
        return b;
      },
      5, 3, 3);
  for (int64_t step = 5; step < 40; ++step)
    EXPECT_EQ(prefetcher.next()->step, step);
}

namespace {
/// A folder with PNG and JPEG, gray and RGB, odd sizes, a subfolder, an
/// upper-case extension, a corrupt file and a file that is not an image.
std::string mixedFolder() {
  std::string dir = freshDir("mixed");
  fs::create_directories(dir + "/sub/deeper");
  EXPECT_TRUE(writePng(dir + "/gray.png", pattern(28, 28, 1)).isOk());
  EXPECT_TRUE(writePng(dir + "/sub/rgb.png", pattern(40, 30, 3)).isOk());
  EXPECT_TRUE(writeJpeg(dir + "/sub/deeper/rgb.JPG", pattern(50, 64, 3)).isOk());
  EXPECT_TRUE(writeJpeg(dir + "/gray.jpeg", pattern(20, 36, 1)).isOk());
  EXPECT_TRUE(writeFileAtomically(dir + "/sub/corrupt.png",
                                  "\x89PNG\r\n\x1a\n not really").isOk());
  EXPECT_TRUE(writeFileAtomically(dir + "/readme.txt", "not an image").isOk());
  return dir;
}

BatchOptions folderOptions(int threads) {
  BatchOptions options;
  options.globalBatch = 4;
  options.seed = 3;
  options.numPatches = 49;
  options.threads = threads;
  return options;
}
} // namespace

TEST(ImageFolderBatches, MixedFolderGivesNormalisedBatchesAndSkipsTheCorruptFile) {
  std::string dir = mixedFolder();
  StatusOr<std::vector<std::string>> files = listImageFiles(dir);
  ASSERT_TRUE(files.isOk());
  EXPECT_EQ(files->size(), 5u); // four images and the corrupt one; no .txt
  for (ModelImageShape shape : {ModelImageShape{1, 28, 28},
                                ModelImageShape{3, 16, 24}}) {
    auto one = ImageFolderBatches::open(dir, shape, Augmentation{},
                                        folderOptions(1));
    auto three = ImageFolderBatches::open(dir, shape, Augmentation{},
                                          folderOptions(3));
    ASSERT_TRUE(one.isOk()) << one.status().message();
    ASSERT_TRUE(three.isOk());
    for (int64_t step = 0; step < 6; ++step) { // 24 samples: every file
      StatusOr<Batch> a = (*one)->next();
      StatusOr<Batch> b = (*three)->next();
      ASSERT_TRUE(a.isOk()) << a.status().message();
      ASSERT_TRUE(b.isOk());
      EXPECT_EQ(a->images.shape, (std::vector<int64_t>{4, shape.channels,
                                                       shape.height,
                                                       shape.width}));
      // The data threads change speed, never content.
      EXPECT_EQ(a->images.bytes, b->images.bytes) << "step " << step;
      EXPECT_EQ(a->prefix.bytes, b->prefix.bytes);
      for (double v : a->images.toDoubles())
        ASSERT_TRUE(std::isfinite(v) && std::abs(v) < 4.0) << v;
    }
    EXPECT_EQ((*one)->skippedCount(), 1);
  }
}

TEST(ImageFolderBatches, EmptyMissingAndUnreadableFoldersAreClearErrors) {
  ModelImageShape shape{1, 28, 28};
  std::string empty = freshDir("empty");
  fs::create_directories(empty + "/nothing-here");
  auto e = ImageFolderBatches::open(empty, shape, Augmentation{},
                                    folderOptions(1));
  ASSERT_FALSE(e.isOk());
  EXPECT_NE(e.status().message().find("holds no .png, .jpg or .jpeg files"),
            std::string::npos);
  auto missing = ImageFolderBatches::open(empty + "/absent", shape,
                                          Augmentation{}, folderOptions(1));
  ASSERT_FALSE(missing.isOk());
  EXPECT_NE(missing.status().message().find("is not a directory"),
            std::string::npos);

  std::string broken = freshDir("broken");
  ASSERT_TRUE(writeFileAtomically(broken + "/a.png", "garbage").isOk());
  ASSERT_TRUE(writeFileAtomically(broken + "/b.jpg", "\xff\xd8\xff").isOk());
  auto b = ImageFolderBatches::open(broken, shape, Augmentation{},
                                    folderOptions(1));
  ASSERT_TRUE(b.isOk());
  StatusOr<Batch> batch = (*b)->next();
  ASSERT_FALSE(batch.isOk());
  EXPECT_NE(batch.status().message().find("none of the 2 image files"),
            std::string::npos);

  auto rgba = ImageFolderBatches::open(broken, ModelImageShape{4, 8, 8},
                                       Augmentation{}, folderOptions(1));
  ASSERT_FALSE(rgba.isOk());
  EXPECT_NE(rgba.status().message().find("1 (gray) or 3 (RGB)"),
            std::string::npos);
}
