//===- ParameterInit.cpp - AIM's parameter initialisation -----------------===//
#include "common/ParameterInit.h"

#include "common/Philox.h"

#include <algorithm>
#include <cmath>
#include <thread>
#include <vector>

namespace aim {

double xavierBound(const std::vector<int64_t> &shape) {
  int64_t receptive = 1;
  for (size_t i = 2; i < shape.size(); ++i)
    receptive *= shape[i];
  double fanOut = static_cast<double>(shape[0] * receptive);
  double fanIn = static_cast<double>(shape[1] * receptive);
  return std::sqrt(6.0 / (fanIn + fanOut));
}

double initialValue(const ParamSpec &spec, uint64_t seed, int64_t index) {
  switch (spec.init) {
  case InitKind::Zeros:
    return 0.0;
  case InitKind::Ones:
    return 1.0;
  case InitKind::XavierUniform: {
    auto i = static_cast<uint64_t>(index);
    PhiloxCounter counter = {static_cast<uint32_t>(i),
                             static_cast<uint32_t>(i >> 32), 0, 0};
    uint32_t bits = philox4x32_10(counter, streamKey(seed, spec.name))[0];
    return xavierBound(spec.shape) * (2.0 * unitFromBits(bits) - 1.0);
  }
  }
  return 0.0;
}

HostTensor initialTensor(const ParamSpec &spec, uint64_t seed, DType dtype) {
  HostTensor t = HostTensor::zeros(dtype, spec.shape);
  auto fill = [&](auto *out) {
    int64_t n = t.numElements();
    if (spec.init == InitKind::Ones)
      for (int64_t i = 0; i < n; ++i)
        out[i] = 1.0;
    if (spec.init != InitKind::XavierUniform)
      return;
    // initialValue's arithmetic, with the key and bound hoisted; large
    // tensors in slices on every core (elements are independent).
    PhiloxKey key = streamKey(seed, spec.name);
    double bound = xavierBound(spec.shape);
    auto slice = [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        auto u = static_cast<uint64_t>(i);
        PhiloxCounter counter = {static_cast<uint32_t>(u),
                                 static_cast<uint32_t>(u >> 32), 0, 0};
        uint32_t bits = philox4x32_10(counter, key)[0];
        out[i] = bound * (2.0 * unitFromBits(bits) - 1.0);
      }
    };
    int64_t workers = std::max<int64_t>(
        1, std::min<int64_t>(std::thread::hardware_concurrency(),
                             n / (int64_t(1) << 20)));
    std::vector<std::thread> threads;
    for (int64_t w = 1; w < workers; ++w)
      threads.emplace_back(slice, n * w / workers, n * (w + 1) / workers);
    slice(0, n / workers);
    for (std::thread &t : threads)
      t.join();
  };
  if (dtype == DType::F64)
    fill(reinterpret_cast<double *>(t.bytes.data()));
  else
    fill(reinterpret_cast<float *>(t.bytes.data()));
  return t;
}

NamedTensors initParameters(const ModelConfig &config, uint64_t seed,
                            DType dtype) {
  NamedTensors tensors;
  for (const ParamSpec &spec : parameterSpecs(config))
    tensors.emplace_back(spec.name, initialTensor(spec, seed, dtype));
  return tensors;
}

} // namespace aim
