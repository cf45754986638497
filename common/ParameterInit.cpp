//===- ParameterInit.cpp - AIM's parameter initialisation -----------------===//
#include "common/ParameterInit.h"

#include "common/Philox.h"

#include <cmath>

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

NamedTensors initParameters(const ModelConfig &config, uint64_t seed,
                            DType dtype) {
  NamedTensors tensors;
  for (const ParamSpec &spec : parameterSpecs(config)) {
    std::vector<double> values(elementCount(spec.shape));
    for (size_t i = 0; i < values.size(); ++i)
      values[i] = initialValue(spec, seed, static_cast<int64_t>(i));
    tensors.emplace_back(spec.name,
                         HostTensor::fromDoubles(dtype, spec.shape, values));
  }
  return tensors;
}

} // namespace aim
