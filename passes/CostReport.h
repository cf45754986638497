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
  /// The activation arena aim-plan-memory assigned (IR element types), summed
  /// over @train_step and the @loss_and_grads it calls.
  int64_t arenaBytes = 0;
};

/// Prints the per-kernel table of the last variant, then the totals of every
/// variant and what each one removed relative to the one before it.
void printCostReport(llvm::raw_ostream &os, llvm::StringRef header,
                     const TargetDescription &target,
                     llvm::ArrayRef<CostVariant> variants);

} // namespace mlir::aim

#endif // AIMC_PASSES_COSTREPORT_H
