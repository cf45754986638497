//===- GemmPrecision.cpp - how a GPU step's GEMMs multiply ----------------===//
#include "runtime/GemmPrecision.h"

namespace aim::rt {

StatusOr<GemmPrecision> parseGemmPrecision(const std::string &text) {
  for (GemmPrecision p :
       {GemmPrecision::F32, GemmPrecision::TF32, GemmPrecision::BF16})
    if (text == gemmPrecisionName(p))
      return p;
  return Status::error("--gemm-precision " + text +
                       " is not a precision: fp32, tf32 or bf16");
}

const char *gemmPrecisionName(GemmPrecision p) {
  switch (p) {
  case GemmPrecision::F32:
    return "fp32";
  case GemmPrecision::TF32:
    return "tf32";
  case GemmPrecision::BF16:
    return "bf16";
  }
  return "?";
}

double gemmUnitRoundoff(GemmPrecision p) {
  switch (p) {
  case GemmPrecision::F32:
    return 0x1p-24;
  case GemmPrecision::TF32:
    return 0x1p-11;
  case GemmPrecision::BF16:
    return 0x1p-8;
  }
  return 1;
}

} // namespace aim::rt
