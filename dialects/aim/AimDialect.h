//===- AimDialect.h - the aim dialect ---------------------------*- C++ -*-===//
#ifndef AIMC_DIALECTS_AIM_AIMDIALECT_H
#define AIMC_DIALECTS_AIM_AIMDIALECT_H

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Shard/IR/ShardDialect.h"
#include "mlir/IR/Dialect.h"

#include "dialects/aim/AimOpsDialect.h.inc"

#endif // AIMC_DIALECTS_AIM_AIMDIALECT_H
