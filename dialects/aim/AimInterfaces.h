//===- AimInterfaces.h - op interfaces of the aim dialect -------*- C++ -*-===//
#ifndef AIMC_DIALECTS_AIM_AIMINTERFACES_H
#define AIMC_DIALECTS_AIM_AIMINTERFACES_H

#include "mlir/IR/Builders.h"
#include "mlir/IR/OpDefinition.h"

#include "dialects/aim/AimInterfaces.h.inc"

#endif // AIMC_DIALECTS_AIM_AIMINTERFACES_H
