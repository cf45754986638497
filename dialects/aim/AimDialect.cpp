//===- AimDialect.cpp - registration of the aim dialect -------------------===//
#include "dialects/aim/AimDialect.h"
#include "dialects/aim/AimOps.h"

using namespace mlir;
using namespace mlir::aim;

#include "dialects/aim/AimOpsDialect.cpp.inc"

void AimDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "dialects/aim/AimOps.cpp.inc"
      >();
  // The shard dialect is loaded first (a dependent dialect): its all_reduce
  // gets its vector-Jacobian product here, beside the aim ops'.
  attachShardVjps(*getContext());
}
