//===- HostTensor.h - a typed, shaped byte buffer in host memory ----------===//
#ifndef AIMC_COMMON_HOSTTENSOR_H
#define AIMC_COMMON_HOSTTENSOR_H

#include <cstdint>
#include <string>
#include <vector>

namespace aim {

enum class DType { F32, F64, I32, I64 };

/// Size in bytes of one element.
size_t dtypeSize(DType dtype);
/// safetensors' spelling: "F32", "F64", "I32", "I64".
const char *dtypeName(DType dtype);

/// "[2, 3, 4]", for messages.
std::string shapeToString(const std::vector<int64_t> &shape);
int64_t elementCount(const std::vector<int64_t> &shape);
/// The element count, or false when a dimension is negative or the count
/// (times `elementBytes`) overflows: for shapes read from untrusted files.
bool checkedByteCount(const std::vector<int64_t> &shape, size_t elementBytes,
                      uint64_t &bytes);

/// Row-major tensor data as it is stored in files (little-endian, as on
/// x86-64).
struct HostTensor {
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;

  static HostTensor zeros(DType dtype, std::vector<int64_t> shape);
  static HostTensor fromDoubles(DType dtype, std::vector<int64_t> shape,
                                const std::vector<double> &values);
  int64_t numElements() const { return elementCount(shape); }
  /// Every element converted to double (exact for F32, F64, I32 and small I64).
  std::vector<double> toDoubles() const;
  /// Integer elements (I32 or I64 tensors only).
  std::vector<int64_t> toInt64s() const;
};

} // namespace aim

#endif // AIMC_COMMON_HOSTTENSOR_H
