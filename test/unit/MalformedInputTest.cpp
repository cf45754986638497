//===- MalformedInputTest.cpp - readers never crash on damaged files ------===//
//
// Every truncation and thousands of random byte flips of valid safetensors,
// .npy, PNG and JPEG files: each read must either succeed or return an error with a
// message, never crash or read out of bounds. Built a second time with
// AddressSanitizer and UndefinedBehaviorSanitizer (unit-malformed-inputs-asan)
// so that an out-of-bounds read fails the test instead of passing silently.
//
//===----------------------------------------------------------------------===//

#include "common/FileIO.h"
#include "common/ImageCodec.h"
#include "common/Npy.h"
#include "common/Safetensors.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>

using namespace aim;

namespace {
// The plain and the sanitized builds get their own files, so that ctest -j can
// run them side by side.
#ifndef AIM_TEMP_TAG
#define AIM_TEMP_TAG "plain"
#endif
std::string tempPath(const std::string &name) {
  return ::testing::TempDir() + "/aimc-malformed-" AIM_TEMP_TAG "-" + name;
}

/// Writes every damaged variant of `valid` to `path` and reads it back.
template <typename Read>
void damageAndRead(const std::string &valid, const std::string &path,
                   Read read) {
  int failures = 0;
  auto attempt = [&](const std::string &bytes) {
    ASSERT_TRUE(writeFileAtomically(path, bytes).isOk());
    Status status = read(path);
    if (!status.isOk()) {
      EXPECT_FALSE(status.message().empty());
      ++failures;
    }
  };
  for (size_t length = 0; length < valid.size(); ++length)
    attempt(valid.substr(0, length));
  std::mt19937 rng(7);
  for (int trial = 0; trial < 3000; ++trial) {
    std::string bytes = valid;
    int flips = 1 + trial % 4;
    for (int f = 0; f < flips; ++f)
      bytes[rng() % bytes.size()] = static_cast<char>(rng());
    attempt(bytes);
  }
  // Every proper prefix is damaged, so at least those must be rejected.
  EXPECT_GE(failures, static_cast<int>(valid.size()));
}
} // namespace

TEST(MalformedInput, SafetensorsReaderSurvivesDamage) {
  NamedTensors tensors;
  tensors.emplace_back("a.weight", HostTensor::fromDoubles(DType::F32, {2, 3},
                                                           {1, 2, 3, 4, 5, 6}));
  tensors.emplace_back("b", HostTensor::fromDoubles(DType::I64, {2}, {7, 8}));
  std::string path = tempPath("valid.safetensors");
  ASSERT_TRUE(writeSafetensors(path, tensors).isOk());
  StatusOr<std::string> valid = readWholeFile(path);
  ASSERT_TRUE(valid.isOk());
  damageAndRead(*valid, tempPath("damaged.safetensors"),
                [](const std::string &p) {
                  StatusOr<NamedTensors> r = readSafetensors(p);
                  return r.isOk() ? Status::ok() : r.status();
                });
}

TEST(MalformedInput, NpyReaderSurvivesDamage) {
  std::string path = tempPath("valid.npy");
  ASSERT_TRUE(
      writeNpy(path, HostTensor::fromDoubles(DType::F32, {2, 2}, {1, 2, 3, 4}))
          .isOk());
  StatusOr<std::string> valid = readWholeFile(path);
  ASSERT_TRUE(valid.isOk());
  damageAndRead(*valid, tempPath("damaged.npy"), [](const std::string &p) {
    StatusOr<HostTensor> r = readNpy(p);
    return r.isOk() ? Status::ok() : r.status();
  });
}

TEST(MalformedInput, ImageDecodersSurviveDamage) {
  Image image = Image::blank(12, 10, 3);
  for (size_t i = 0; i < image.pixels.size(); ++i)
    image.pixels[i] = static_cast<uint8_t>(i * 37);
  for (const char *name : {"valid.png", "valid.jpg"}) {
    std::string path = tempPath(name);
    ASSERT_TRUE((name[6] == 'p' ? writePng(path, image)
                                : writeJpeg(path, image))
                    .isOk());
    std::string valid = *readWholeFile(path);
    int failures = 0;
    auto attempt = [&](const std::string &bytes) {
      StatusOr<Image> decoded = decodeImage(bytes, name);
      if (decoded.isOk()) {
        EXPECT_EQ(decoded->pixels.size(),
                  static_cast<size_t>(decoded->height * decoded->width *
                                      decoded->channels));
      } else {
        ++failures;
        EXPECT_FALSE(decoded.status().message().empty());
      }
    };
    for (size_t length = 0; length < valid.size(); ++length)
      attempt(valid.substr(0, length));
    std::mt19937 rng(11);
    for (int trial = 0; trial < 3000; ++trial) {
      std::string bytes = valid;
      for (int f = 0; f <= trial % 4; ++f)
        bytes[rng() % bytes.size()] = static_cast<char>(rng());
      attempt(bytes);
    }
    // Cuts into the pixel data (all but the last dozen bytes) must fail.
    EXPECT_GE(failures, static_cast<int>(valid.size()) - 12) << name;
  }
}

TEST(MalformedInput, HugeShapesAreErrorsNotOverflows) {
  // Dimensions whose product overflows 64 bits must be rejected by the
  // header check, not wrap around (UBSan would flag the overflow).
  std::string header = "{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,"
                       "4294967296],\"data_offsets\":[0,0]}}";
  std::string file(8, '\0');
  uint64_t size = header.size();
  std::memcpy(file.data(), &size, 8);
  std::string path = tempPath("huge.safetensors");
  ASSERT_TRUE(writeFileAtomically(path, file + header).isOk());
  StatusOr<NamedTensors> st = readSafetensors(path);
  ASSERT_FALSE(st.isOk());
  EXPECT_NE(st.status().message().find("too large"), std::string::npos)
      << st.status().message();

  std::string npyHeader = "{'descr': '<f8', 'fortran_order': False, 'shape': "
                          "(1099511627776, 1099511627776), }";
  std::string npy = "\x93NUMPY\x01";
  npy += '\0';
  npy += static_cast<char>(npyHeader.size());
  npy += '\0';
  ASSERT_TRUE(
      writeFileAtomically(tempPath("huge.npy"), npy + npyHeader).isOk());
  StatusOr<HostTensor> n = readNpy(tempPath("huge.npy"));
  ASSERT_FALSE(n.isOk());
  EXPECT_NE(n.status().message().find("too large"), std::string::npos)
      << n.status().message();
}
