//===- HostTensor.cpp - typed host buffers --------------------------------===//
#include "common/HostTensor.h"

#include <cassert>
#include <cstring>

namespace aim {

size_t dtypeSize(DType dtype) {
  switch (dtype) {
  case DType::F32:
  case DType::I32:
    return 4;
  case DType::F64:
  case DType::I64:
    return 8;
  }
  return 0;
}

const char *dtypeName(DType dtype) {
  switch (dtype) {
  case DType::F32:
    return "F32";
  case DType::F64:
    return "F64";
  case DType::I32:
    return "I32";
  case DType::I64:
    return "I64";
  }
  return "?";
}

std::string shapeToString(const std::vector<int64_t> &shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

int64_t elementCount(const std::vector<int64_t> &shape) {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

bool checkedByteCount(const std::vector<int64_t> &shape, size_t elementBytes,
                      uint64_t &bytes) {
  // Files hold at most 2^48 bytes here; anything larger is a damaged header.
  constexpr uint64_t kLimit = uint64_t(1) << 48;
  uint64_t count = elementBytes;
  for (int64_t d : shape) {
    if (d < 0)
      return false;
    if (d != 0 && count > kLimit / static_cast<uint64_t>(d))
      return false;
    count *= static_cast<uint64_t>(d);
  }
  bytes = count;
  return true;
}

HostTensor HostTensor::zeros(DType dtype, std::vector<int64_t> shape) {
  HostTensor t;
  t.dtype = dtype;
  t.shape = std::move(shape);
  t.bytes.assign(t.numElements() * dtypeSize(dtype), 0);
  return t;
}

namespace {
template <typename T> T load(const uint8_t *p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}
template <typename T> void store(uint8_t *p, T v) {
  std::memcpy(p, &v, sizeof(T));
}
} // namespace

HostTensor HostTensor::fromDoubles(DType dtype, std::vector<int64_t> shape,
                                   const std::vector<double> &values) {
  HostTensor t = zeros(dtype, std::move(shape));
  assert(static_cast<int64_t>(values.size()) == t.numElements());
  size_t size = dtypeSize(dtype);
  for (size_t i = 0; i < values.size(); ++i) {
    uint8_t *p = t.bytes.data() + i * size;
    switch (dtype) {
    case DType::F32:
      store<float>(p, static_cast<float>(values[i]));
      break;
    case DType::F64:
      store<double>(p, values[i]);
      break;
    case DType::I32:
      store<int32_t>(p, static_cast<int32_t>(values[i]));
      break;
    case DType::I64:
      store<int64_t>(p, static_cast<int64_t>(values[i]));
      break;
    }
  }
  return t;
}

std::vector<double> HostTensor::toDoubles() const {
  std::vector<double> out(numElements());
  size_t size = dtypeSize(dtype);
  for (size_t i = 0; i < out.size(); ++i) {
    const uint8_t *p = bytes.data() + i * size;
    switch (dtype) {
    case DType::F32:
      out[i] = load<float>(p);
      break;
    case DType::F64:
      out[i] = load<double>(p);
      break;
    case DType::I32:
      out[i] = load<int32_t>(p);
      break;
    case DType::I64:
      out[i] = static_cast<double>(load<int64_t>(p));
      break;
    }
  }
  return out;
}

std::vector<int64_t> HostTensor::toInt64s() const {
  assert((dtype == DType::I32 || dtype == DType::I64) && "integer tensor");
  std::vector<int64_t> out(numElements());
  for (size_t i = 0; i < out.size(); ++i)
    out[i] = dtype == DType::I32 ? load<int32_t>(bytes.data() + 4 * i)
                                 : load<int64_t>(bytes.data() + 8 * i);
  return out;
}

} // namespace aim
