//===- ParameterInit.h - AIM's parameter initialisation -------------------===//
//
// AIM.md "Initialisation" and "Randomness": Xavier uniform for every linear and
// the patch-embedding weight (viewed as [D, C*p*p]), zero biases, LayerNorm
// weight 1 and bias 0. Element i of parameter `name` is drawn from Philox keyed
// by (seed, name) at counter (i, 0, 0, 0), so a shard of a tensor is exactly a
// slice of the whole one, whoever draws it.
//
//===----------------------------------------------------------------------===//
#ifndef AIMC_COMMON_PARAMETERINIT_H
#define AIMC_COMMON_PARAMETERINIT_H

#include "common/ModelConfig.h"
#include "common/Safetensors.h"

namespace aim {

/// The Xavier-uniform bound sqrt(6 / (fan_in + fan_out)) of a weight shape
/// [out, in, ...]: fan_in = in * prod(rest), fan_out = out * prod(rest).
double xavierBound(const std::vector<int64_t> &shape);

/// Element `index` of parameter `spec` under `seed`, in double precision.
double initialValue(const ParamSpec &spec, uint64_t seed, int64_t index);

/// The whole parameter `spec` under `seed`, stored as `dtype` (F32 or F64):
/// element i equals initialValue(spec, seed, i), computed without a per-
/// element key derivation (aim-600m's 1.1 B values take seconds, not minutes).
HostTensor initialTensor(const ParamSpec &spec, uint64_t seed,
                         DType dtype = DType::F32);

/// Every parameter of `config` in order, stored as `dtype` (F32 or F64).
NamedTensors initParameters(const ModelConfig &config, uint64_t seed,
                            DType dtype = DType::F32);

} // namespace aim

#endif // AIMC_COMMON_PARAMETERINIT_H
