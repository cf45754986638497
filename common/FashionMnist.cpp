//===- FashionMnist.cpp - reading the gzip'd IDX files --------------------===//
#include "common/FashionMnist.h"

#include <cstdlib>
#include <cstring>
#include <vector>
#include <zlib.h>

namespace aim {

std::string fashionMnistDirectory() {
  if (const char *dir = std::getenv("AIM_FASHION_MNIST_DIR"))
    return dir;
  return "/usr/share/datasets/fashion-mnist";
}

namespace {
uint32_t bigEndian32(const unsigned char *p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) |
         (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}
} // namespace

StatusOr<HostTensor> loadFashionMnistImages(const std::string &split,
                                            int64_t first, int64_t count) {
  if (split != "train" && split != "t10k")
    return Status::error(
        "Fashion-MNIST split must be 'train' or 't10k', got '" + split + "'");
  std::string path =
      fashionMnistDirectory() + "/" + split + "-images-idx3-ubyte.gz";
  gzFile file = gzopen(path.c_str(), "rb");
  if (!file)
    return Status::error("cannot open '" + path +
                         "': install Debian's dataset-fashion-mnist "
                         "(scripts/setup.sh) or set AIM_FASHION_MNIST_DIR");
  unsigned char header[16];
  if (gzread(file, header, sizeof(header)) != sizeof(header) ||
      bigEndian32(header) != 0x00000803) {
    gzclose(file);
    return Status::error("'" + path + "' is not an IDX image file");
  }
  int64_t total = bigEndian32(header + 4), rows = bigEndian32(header + 8),
          cols = bigEndian32(header + 12);
  if (first < 0 || count <= 0 || first + count > total) {
    gzclose(file);
    return Status::error("asked for images [" + std::to_string(first) + ", " +
                         std::to_string(first + count) + ") but '" + path +
                         "' holds " + std::to_string(total));
  }
  std::vector<unsigned char> pixels(static_cast<size_t>(count * rows * cols));
  bool ok = gzseek(file, 16 + first * rows * cols, SEEK_SET) >= 0 &&
            gzread(file, pixels.data(), pixels.size()) ==
                static_cast<int>(pixels.size());
  gzclose(file);
  if (!ok)
    return Status::error("'" + path + "' is truncated");
  std::vector<double> values(pixels.size());
  for (size_t i = 0; i < pixels.size(); ++i)
    values[i] = (pixels[i] / 255.0 - kFashionMnistMean) / kFashionMnistStd;
  return HostTensor::fromDoubles(DType::F32, {count, 1, rows, cols}, values);
}

} // namespace aim
