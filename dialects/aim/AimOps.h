//===- AimOps.h - ops of the aim dialect ------------------------*- C++ -*-===//
#ifndef AIMC_DIALECTS_AIM_AIMOPS_H
#define AIMC_DIALECTS_AIM_AIMOPS_H

#include "dialects/aim/AimDialect.h"
#include "dialects/aim/AimInterfaces.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/Interfaces/ControlFlowInterfaces.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "dialects/aim/AimOpsEnums.h.inc"

#define GET_OP_CLASSES
#include "dialects/aim/AimOps.h.inc"

namespace mlir::aim {
/// Attaches DifferentiableOpInterface to the shard collectives that a
/// per-rank forward holds (AimVjps.cpp).
void attachShardVjps(MLIRContext &context);
} // namespace mlir::aim

#endif // AIMC_DIALECTS_AIM_AIMOPS_H
