//===- CostReport.h - the cost report printed by aimc --report=cost -*- C++
//-*-===//
#ifndef AIMC_PASSES_COSTREPORT_H
#define AIMC_PASSES_COSTREPORT_H

#include "passes/CostModel.h"

#include "llvm/Support/raw_ostream.h"

namespace mlir::aim {

/// One compiled variant of the step, named by the passes that ran.
struct CostVariant {
  std::string name;
  StepCost cost;
};

/// Prints the per-kernel table of the last variant, then the totals of every
/// variant and what each one removed relative to the one before it.
void printCostReport(llvm::raw_ostream &os, llvm::StringRef header,
                     const TargetDescription &target,
                     llvm::ArrayRef<CostVariant> variants);

} // namespace mlir::aim

#endif // AIMC_PASSES_COSTREPORT_H
