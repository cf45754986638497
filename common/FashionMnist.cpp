//===- FashionMnist.cpp - reading the gzip'd IDX files --------------------===//
#include "common/FashionMnist.h"

#include <algorithm>
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

StatusOr<IdxImages> readFashionMnist(const std::string &split) {
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
  IdxImages images;
  bool ok = gzread(file, header, sizeof(header)) == sizeof(header) &&
            bigEndian32(header) == 0x00000803;
  if (ok) {
    images.count = bigEndian32(header + 4);
    images.rows = bigEndian32(header + 8);
    images.cols = bigEndian32(header + 12);
    ok = images.rows > 0 && images.cols > 0 && images.rows <= 4096 &&
         images.cols <= 4096 && images.count <= (1 << 24);
  }
  if (!ok) {
    gzclose(file);
    return Status::error("'" + path + "' is not an IDX image file");
  }
  images.pixels.resize(
      static_cast<size_t>(images.count * images.rows * images.cols));
  size_t done = 0;
  while (done < images.pixels.size()) {
    int chunk = static_cast<int>(
        std::min<size_t>(images.pixels.size() - done, 1 << 30));
    int got = gzread(file, images.pixels.data() + done, chunk);
    if (got <= 0)
      break;
    done += got;
  }
  gzclose(file);
  if (done != images.pixels.size())
    return Status::error("'" + path + "' is truncated");
  return images;
}

StatusOr<HostTensor> loadFashionMnistImages(const std::string &split,
                                            int64_t first, int64_t count) {
  StatusOr<IdxImages> images = readFashionMnist(split);
  if (!images)
    return images.status();
  if (first < 0 || count <= 0 || first + count > images->count)
    return Status::error("asked for images [" + std::to_string(first) + ", " +
                         std::to_string(first + count) + ") but the " + split +
                         " split holds " + std::to_string(images->count));
  const int64_t size = images->rows * images->cols;
  std::vector<double> values(static_cast<size_t>(count * size));
  for (size_t i = 0; i < values.size(); ++i)
    values[i] = normalizeFashionMnistPixel(images->pixels[first * size + i]);
  return HostTensor::fromDoubles(
      DType::F32, {count, 1, images->rows, images->cols}, values);
}

} // namespace aim
