//===- ObjectEmitter.cpp - LLVM dialect to an x86-64 object file ---------===//
#include "codegen/host/ObjectEmitter.h"

#include "codegen/kernels/CodegenError.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/IR/Builders.h"
#include "mlir/Target/LLVMIR/Export.h"

#include "llvm/IR/LegacyPassManager.h"
#include "llvm/IR/Module.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/Passes/PassBuilder.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Target/TargetMachine.h"
#include "llvm/TargetParser/Host.h"
#include "llvm/TargetParser/Triple.h"

namespace mlir::aim {

void addPackedEntries(ModuleOp module) {
  OpBuilder b(module.getContext());
  auto ptr = LLVM::LLVMPointerType::get(module.getContext());
  SmallVector<LLVM::LLVMFuncOp> functions;
  for (auto f : module.getOps<LLVM::LLVMFuncOp>())
    if (!f.isExternal() && f.getVisibility() == SymbolTable::Visibility::Public)
      functions.push_back(f);
  for (LLVM::LLVMFuncOp f : functions) {
    b.setInsertionPointToEnd(module.getBody());
    auto packed = LLVM::LLVMFuncOp::create(
        b, f.getLoc(), (f.getName() + "_packed").str(),
        LLVM::LLVMFunctionType::get(LLVM::LLVMVoidType::get(b.getContext()),
                                    {ptr}));
    Block *body = packed.addEntryBlock(b);
    b.setInsertionPointToStart(body);
    SmallVector<Value> args;
    for (auto [i, type] : llvm::enumerate(f.getFunctionType().getParams())) {
      Value slot =
          LLVM::GEPOp::create(b, f.getLoc(), ptr, ptr, body->getArgument(0),
                              ArrayRef<LLVM::GEPArg>{static_cast<int32_t>(i)});
      args.push_back(LLVM::LoadOp::create(b, f.getLoc(), type, slot));
    }
    LLVM::CallOp::create(b, f.getLoc(), f, args);
    LLVM::ReturnOp::create(b, f.getLoc(), ValueRange());
  }
}

llvm::Expected<std::string> emitObjectFile(ModuleOp module,
                                           const std::string &cpu) {
  llvm::InitializeNativeTarget();
  llvm::InitializeNativeTargetAsmPrinter();
  llvm::LLVMContext llvmContext;
  std::unique_ptr<llvm::Module> llvmModule =
      translateModuleToLLVMIR(module, llvmContext);
  if (!llvmModule)
    return codegenError("translation to LLVM IR failed");
  llvm::Triple triple(llvm::sys::getDefaultTargetTriple());
  std::string error;
  const llvm::Target *target =
      llvm::TargetRegistry::lookupTarget(triple, error);
  if (!target)
    return codegenError("no LLVM target for " + triple.str() + ": " + error);
  llvm::TargetOptions targetOptions;
  std::unique_ptr<llvm::TargetMachine> machine(target->createTargetMachine(
      triple, cpu, "", targetOptions, llvm::Reloc::PIC_));
  if (!machine)
    return codegenError("LLVM does not know the CPU '" + cpu + "'");
  llvmModule->setTargetTriple(triple);
  llvmModule->setDataLayout(machine->createDataLayout());

  // LLVM's standard -O2 pipeline (inlining, SROA, LICM, GVN, vectorisers):
  // the loops MLIR emits are plain scalar code until this runs.
  llvm::LoopAnalysisManager loops;
  llvm::FunctionAnalysisManager functions;
  llvm::CGSCCAnalysisManager cgscc;
  llvm::ModuleAnalysisManager modules;
  llvm::PassBuilder builder(machine.get());
  builder.registerModuleAnalyses(modules);
  builder.registerCGSCCAnalyses(cgscc);
  builder.registerFunctionAnalyses(functions);
  builder.registerLoopAnalyses(loops);
  builder.crossRegisterProxies(loops, functions, cgscc, modules);
  builder.buildPerModuleDefaultPipeline(llvm::OptimizationLevel::O2)
      .run(*llvmModule, modules);
  llvm::SmallVector<char, 0> object;
  llvm::raw_svector_ostream os(object);
  llvm::legacy::PassManager codegen;
  if (machine->addPassesToEmitFile(codegen, os, nullptr,
                                   llvm::CodeGenFileType::ObjectFile))
    return codegenError("LLVM cannot emit an object file for " + cpu);
  codegen.run(*llvmModule);
  return std::string(object.begin(), object.end());
}

} // namespace mlir::aim
