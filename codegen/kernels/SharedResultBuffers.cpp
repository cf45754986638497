//===- SharedResultBuffers.cpp - results written over their arguments -----===//
#include "codegen/kernels/SharedResultBuffers.h"

#include "codegen/kernels/KernelBuilding.h"
#include "dialects/aim/AimDialect.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Interfaces/ViewLikeInterface.h"

namespace mlir::aim {

namespace {

/// The ops of `block` that use `buffer`, directly or through views of it.
SmallVector<Operation *> usersInBlock(Value buffer, Block &block) {
  SmallVector<Operation *> users;
  SmallVector<Value> worklist = {buffer};
  while (!worklist.empty()) {
    Value v = worklist.pop_back_val();
    for (Operation *user : v.getUsers()) {
      if (auto view = dyn_cast<ViewLikeOpInterface>(user))
        if (view.getViewSource() == v) {
          llvm::append_range(worklist, user->getResults());
          continue;
        }
      if (Operation *top = block.findAncestorOpInBlock(*user))
        users.push_back(top);
    }
  }
  return users;
}

/// Whether `call` passes the argument as `argumentOperands` and the result
/// as `resultOperand` to a function whose one use of them is one
/// element-wise linalg.generic reading each element of the argument and
/// writing the same element of the result.
bool updatesElementwise(func::CallOp call, ArrayRef<unsigned> argumentOperands,
                        unsigned resultOperand) {
  auto callee =
      SymbolTable::lookupNearestSymbolFrom<func::FuncOp>(call, call.getCalleeAttr());
  if (!callee || callee.isExternal())
    return false;
  BlockArgument result = callee.getArgument(resultOperand);
  if (!result.hasOneUse())
    return false;
  auto generic = dyn_cast<linalg::GenericOp>(*result.getUsers().begin());
  if (!generic || generic->getBlock() != &callee.front() ||
      generic.getNumParallelLoops() != generic.getNumLoops())
    return false;
  OpOperand *written = nullptr;
  for (OpOperand &init : generic.getDpsInitsMutable())
    if (init.get() == result)
      written = &init;
  if (!written)
    return false;
  AffineMap resultMap = generic.getMatchingIndexingMap(written);
  if (!resultMap.isPermutation())
    return false;
  for (unsigned i : argumentOperands)
    for (OpOperand &use : callee.getArgument(i).getUses())
      if (use.getOwner() != generic.getOperation() ||
          !generic.isDpsInput(&use) ||
          generic.getMatchingIndexingMap(&use) != resultMap)
        return false;
  return true;
}

/// Whether `function` may write out parameter `result` into the buffer of
/// argument `argument` (see the header).
bool mayShare(func::FuncOp function, unsigned argument, unsigned result) {
  Block &entry = function.front();
  SmallVector<Operation *> writers =
      usersInBlock(function.getArgument(result), entry);
  if (writers.empty())
    return false;
  Operation *first = writers.front();
  for (Operation *w : writers)
    if (w->isBeforeInBlock(first))
      first = w;
  for (Operation *reader : usersInBlock(function.getArgument(argument), entry)) {
    if (reader->isBeforeInBlock(first))
      continue;
    auto call = dyn_cast<func::CallOp>(reader);
    if (reader != first || !call)
      return false;
    SmallVector<unsigned> argumentOperands;
    std::optional<unsigned> resultOperand;
    bool throughViews = false;
    for (OpOperand &operand : call->getOpOperands()) {
      Value v = operand.get();
      if (v == function.getArgument(argument))
        argumentOperands.push_back(operand.getOperandNumber());
      else if (v == function.getArgument(result))
        resultOperand = operand.getOperandNumber();
      else if (rootBuffer(v) == function.getArgument(argument) ||
               rootBuffer(v) == function.getArgument(result))
        throughViews = true;
    }
    // Either passed through a view too: not analysed.
    if (throughViews || argumentOperands.empty() || !resultOperand ||
        !updatesElementwise(call, argumentOperands, *resultOperand))
      return false;
  }
  return true;
}

} // namespace

std::map<std::string, std::vector<std::string>>
resultsSharingArgumentBuffers(ModuleOp bufferized) {
  std::map<std::string, std::vector<std::string>> shared;
  for (auto function : bufferized.getOps<func::FuncOp>()) {
    if (function.isExternal() || function.isPrivate())
      continue;
    // (attribute, name) -> the first argument so named; a later one is the
    // out parameter of a result named like it.
    std::map<std::pair<StringRef, StringRef>, unsigned> arguments;
    for (unsigned i = 0; i < function.getNumArguments(); ++i)
      for (StringRef kind :
           {AimDialect::kParamAttrName, AimDialect::kStateAttrName}) {
        auto name = function.getArgAttrOfType<StringAttr>(i, kind);
        if (!name)
          continue;
        auto [it, first] = arguments.try_emplace({kind, name.getValue()}, i);
        if (!first && mayShare(function, it->second, i))
          shared[function.getSymName().str()].push_back(name.str());
      }
  }
  return shared;
}

} // namespace mlir::aim
