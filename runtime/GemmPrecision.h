//===- GemmPrecision.h - how a GPU step's GEMMs multiply --------*- C++ -*-===//
//
// aim-run --gemm-precision: float32 multiplies (the default, what the host
// computes), or the tensor cores' TF32 or bfloat16 multiplies of the float32
// operands, accumulated and stored in float32 (runtime/cuda/CublasLt.h).
//
//===----------------------------------------------------------------------===//
#ifndef AIMC_RUNTIME_GEMMPRECISION_H
#define AIMC_RUNTIME_GEMMPRECISION_H

#include "common/Status.h"

#include <string>

namespace aim::rt {

enum class GemmPrecision { F32, TF32, BF16 };

/// "fp32", "tf32" or "bf16", or an error naming the choices.
StatusOr<GemmPrecision> parseGemmPrecision(const std::string &text);
const char *gemmPrecisionName(GemmPrecision p);
/// The rounding of an operand's significand: 2^-24, 2^-11 or 2^-8.
double gemmUnitRoundoff(GemmPrecision p);

} // namespace aim::rt

#endif // AIMC_RUNTIME_GEMMPRECISION_H
