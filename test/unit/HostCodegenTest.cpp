//===- HostCodegenTest.cpp - compiled host code against the interpreter ---===//
//
// Each case: a function of aim ops is compiled to an object file for
// x86-64-v3, linked into a shared library with the system C compiler, loaded
// with dlopen and called through its packed entry; its float32 results must
// match the interpreter's float32 results. Tolerance 1e-5 relative: both
// compute in float32 with the same summation order, so only contraction of
// multiply-adds or libm's erf/tanh can differ, by a few ulps.
//
//===----------------------------------------------------------------------===//

#include "codegen/host/HostCompiler.h"
#include "codegen/kernels/BufferizedKernels.h"
#include "codegen/kernels/ElementwiseKernels.h"
#include "codegen/kernels/GemmCalls.h"
#include "codegen/kernels/LowerToLinalg.h"
#include "codegen/kernels/MergedLaunches.h"
#include "codegen/kernels/MultiTensorKernels.h"
#include "codegen/kernels/RowReductions.h"
#include "codegen/kernels/SharedResultBuffers.h"
#include "codegen/kernels/SplitFullReductions.h"
#include "codegen/kernels/SummedSlices.h"
#include "common/FileIO.h"
#include "common/ModelConfig.h"
#include "dialects/aim/AimDialect.h"
#include "frontends/ForwardBuilder.h"
#include "interpreter/Interpreter.h"
#include "passes/Pipelines.h"

#include "mlir/Pass/PassManager.h"

#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"
#include "llvm/ADT/DenseSet.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <functional>
#include <random>
#include <set>

using namespace mlir;

namespace {

/// Random arguments: normal float32 values (absolute values for arguments
/// tagged {test.non_negative}, such as second moments), small non-negative
/// integers.
std::vector<::aim::HostTensor> randomArguments(func::FuncOp f, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::vector<::aim::HostTensor> args;
  for (auto [i, t] : llvm::enumerate(f.getArgumentTypes())) {
    auto type = cast<RankedTensorType>(t);
    bool isInt = isa<IntegerType>(type.getElementType());
    bool nonNegative = bool(f.getArgAttr(i, "test.non_negative"));
    std::vector<double> values(type.getNumElements());
    for (double &v : values) {
      v = isInt ? static_cast<double>(rng() % 5)
                : static_cast<double>(static_cast<float>(normal(rng)));
      if (nonNegative)
        v = std::abs(v);
      if (isInt && f.getArgAttr(i, "test.at_least_one"))
        v = std::max(v, 1.0); // the interpreter requires 1 <= K
    }
    args.push_back(::aim::HostTensor::fromDoubles(
        isInt ? (type.getElementType().getIntOrFloatBitWidth() == 64
                     ? ::aim::DType::I64
                     : ::aim::DType::I32)
              : ::aim::DType::F32,
        std::vector<int64_t>(type.getShape().begin(), type.getShape().end()),
        values));
  }
  return args;
}

/// Compiles `compiled` to an object, links it into a shared library and
/// loads it; null on failure (the failure is recorded).
void *compileAndLoad(ModuleOp compiled, const char *name,
                     const mlir::aim::HostCompileOptions &options = {}) {
  llvm::Expected<mlir::aim::HostObject> object =
      mlir::aim::compileToObject(compiled, options);
  EXPECT_TRUE(bool(object)) << llvm::toString(object.takeError());
  if (!object)
    return nullptr;
  std::string base = ::testing::TempDir() + "/aimc-host-" + name;
  EXPECT_TRUE(::aim::writeFileAtomically(base + ".o", object->bytes).isOk());
  std::string link = "cc -shared -o " + base + ".so " + base + ".o -lm";
  EXPECT_EQ(std::system(link.c_str()), 0) << link;
  void *library = dlopen((base + ".so").c_str(), RTLD_NOW | RTLD_LOCAL);
  EXPECT_NE(library, nullptr) << dlerror();
  return library;
}

/// Runs `function` of a loaded library on `args`; one float32 vector per
/// result.
std::vector<std::vector<float>>
callEntry(void *library, const std::string &function,
          const std::vector<::aim::HostTensor> &args,
          const std::vector<int64_t> &resultSizes) {
  auto entry = reinterpret_cast<void (*)(void **)>(
      dlsym(library, (function + "_packed").c_str()));
  EXPECT_NE(entry, nullptr) << dlerror();
  // Operands as they are stored, then one float32 buffer per result.
  std::vector<std::vector<uint8_t>> operands;
  for (const ::aim::HostTensor &arg : args)
    operands.push_back(arg.bytes);
  std::vector<std::vector<float>> results;
  for (int64_t size : resultSizes)
    results.emplace_back(size, std::nanf(""));
  std::vector<void *> buffers;
  for (auto &o : operands)
    buffers.push_back(o.data());
  for (auto &r : results)
    buffers.push_back(r.data());
  if (entry)
    entry(buffers.data());
  // The caller's arguments are read, never written (a GEMM that starts from
  // its residual copies one it is handed).
  for (size_t i = 0; i < args.size(); ++i)
    EXPECT_TRUE(operands[i] == args[i].bytes)
        << function << " wrote its argument " << i;
  return results;
}

std::vector<std::vector<float>>
compileAndRun(ModuleOp compiled, const std::string &function, const char *name,
              const std::vector<::aim::HostTensor> &args,
              const std::vector<int64_t> &resultSizes,
              const mlir::aim::HostCompileOptions &options = {}) {
  void *library = compileAndLoad(compiled, name, options);
  if (!library)
    return {};
  auto results = callEntry(library, function, args, resultSizes);
  dlclose(library);
  return results;
}

/// The interpreter's results of `f` in float32, and their sizes.
std::vector<::aim::HostTensor>
interpretF32(func::FuncOp f, const std::vector<::aim::HostTensor> &args,
             std::vector<int64_t> &sizes) {
  auto expected = ::aim::interp::runFunction(
      f, args, ::aim::interp::Options(::aim::interp::Precision::F32));
  EXPECT_TRUE(bool(expected)) << llvm::toString(expected.takeError());
  if (!expected)
    return {};
  for (const ::aim::HostTensor &r : *expected)
    sizes.push_back(r.numElements());
  return *expected;
}

/// Every result within `tolerance` of the interpreter's, relative to the
/// result's largest magnitude.
void expectClose(const std::vector<::aim::HostTensor> &expected,
                 const std::vector<std::vector<float>> &got, double tolerance,
                 const char *name) {
  ASSERT_EQ(got.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    std::vector<double> want = expected[i].toDoubles();
    double scale = 1e-30;
    for (double w : want)
      scale = std::max(scale, std::abs(w));
    for (size_t j = 0; j < want.size(); ++j)
      ASSERT_NEAR(got[i][j], want[j], tolerance * scale)
          << name << ": result " << i << " element " << j;
  }
}

/// Whether the host object of `source` calls cblas_sgemm.
bool callsBlas(const std::string &source,
               const mlir::aim::HostCompileOptions &options) {
  MLIRContext context;
  context.loadDialect<mlir::aim::AimDialect, func::FuncDialect,
                      arith::ArithDialect>();
  OwningOpRef<ModuleOp> module = parseSourceString<ModuleOp>(source, &context);
  llvm::Expected<mlir::aim::HostObject> object =
      mlir::aim::compileToObject(*module, options);
  EXPECT_TRUE(bool(object)) << llvm::toString(object.takeError());
  return object && object->bytes.find("cblas_sgemm") != std::string::npos;
}

mlir::aim::HostCompileOptions tiledAttention() {
  mlir::aim::HostCompileOptions options;
  options.attention = mlir::aim::AttentionLowering::Tiled;
  return options;
}

/// `source`'s @kernel compiled with `options` against the interpreter on
/// random arguments (`adjust` may change them first); within 1e-5 of the
/// largest magnitude of each result.
void checkAgainstInterpreter(
    const std::string &source, const char *name,
    const mlir::aim::HostCompileOptions &options = {},
    const std::function<void(std::vector<::aim::HostTensor> &)> &adjust = {}) {
  MLIRContext context;
  context.loadDialect<mlir::aim::AimDialect, func::FuncDialect,
                      arith::ArithDialect>();
  OwningOpRef<ModuleOp> reference =
      parseSourceString<ModuleOp>(source, &context);
  OwningOpRef<ModuleOp> compiled =
      parseSourceString<ModuleOp>(source, &context);
  ASSERT_TRUE(reference && compiled);
  auto f = reference->lookupSymbol<func::FuncOp>("kernel");
  std::vector<::aim::HostTensor> args = randomArguments(f, 3);
  if (adjust)
    adjust(args);
  auto expected = ::aim::interp::runFunction(
      f, args, ::aim::interp::Options(::aim::interp::Precision::F32));
  ASSERT_TRUE(bool(expected)) << llvm::toString(expected.takeError());
  std::vector<int64_t> sizes;
  for (const ::aim::HostTensor &r : *expected)
    sizes.push_back(r.numElements());
  expectClose(*expected,
              compileAndRun(*compiled, "kernel", name, args, sizes, options),
              1e-5, name);
}

} // namespace

TEST(HostCodegen, LinearGeluResidual) {
  checkAgainstInterpreter(R"(
    func.func @kernel(%x: tensor<2x3x8xf32>, %w: tensor<16x8xf32>, %b: tensor<16xf32>,
                      %r: tensor<2x3x16xf32>) -> tensor<2x3x16xf32> {
      %0 = aim.linear %x, %w, %b : tensor<2x3x8xf32>, tensor<16x8xf32>, tensor<16xf32> -> tensor<2x3x16xf32>
      %1 = aim.gelu %0, approximation = erf : tensor<2x3x16xf32> -> tensor<2x3x16xf32>
      %2 = aim.add %1, %r : tensor<2x3x16xf32>, tensor<2x3x16xf32> -> tensor<2x3x16xf32>
      return %2 : tensor<2x3x16xf32>
    })",
                          "linear");
}

/// GEMMs as cblas_sgemm calls; attention's products as batches of them (a
/// call per sample and head, LowerToLinalg.h's kBatchedGemmAttrName: how the
/// GPU backend hands them to cuBLASLt).
mlir::aim::HostCompileOptions withBlas() {
  mlir::aim::HostCompileOptions options;
  options.blas = true;
  return options;
}

// A GEMM whose only use adds a tensor of its own shape starts from that
// tensor (C = A B + R, the BLAS's beta = 1): the residual adds of the trunk
// and the gradient sums of the backward. Here with a bias, without one (the
// residual also returned, so it is copied, not overwritten), a residual
// computed after the GEMM's operands, and a matmul whose residual is an
// argument (the caller's buffer: copied too); loops and BLAS.
const char *kResidualGemms = R"(
    func.func @kernel(%x: tensor<2x3x8xf32>, %w: tensor<16x8xf32>, %b: tensor<16xf32>,
                      %r: tensor<2x3x16xf32>, %v: tensor<16x16xf32>, %a: tensor<6x16xf32>,
                      %c: tensor<6x16xf32>)
        -> (tensor<2x3x16xf32>, tensor<2x3x16xf32>, tensor<2x3x16xf32>, tensor<6x16xf32>) {
      %0 = aim.linear %x, %w, %b : tensor<2x3x8xf32>, tensor<16x8xf32>, tensor<16xf32> -> tensor<2x3x16xf32>
      %1 = aim.add %r, %0 : tensor<2x3x16xf32>, tensor<2x3x16xf32> -> tensor<2x3x16xf32>
      %2 = aim.linear %1, %v : tensor<2x3x16xf32>, tensor<16x16xf32> -> tensor<2x3x16xf32>
      %g = aim.gelu %r, approximation = erf : tensor<2x3x16xf32> -> tensor<2x3x16xf32>
      %3 = aim.add %2, %g : tensor<2x3x16xf32>, tensor<2x3x16xf32> -> tensor<2x3x16xf32>
      %m = aim.matmul %a, %v, transpose_lhs = false, transpose_rhs = true : tensor<6x16xf32>, tensor<16x16xf32> -> tensor<6x16xf32>
      %4 = aim.add %c, %m : tensor<6x16xf32>, tensor<6x16xf32> -> tensor<6x16xf32>
      return %1, %3, %g, %4 : tensor<2x3x16xf32>, tensor<2x3x16xf32>, tensor<2x3x16xf32>, tensor<6x16xf32>
    })";

TEST(HostCodegen, GemmsStartFromTheirResiduals) {
  for (bool blas : {false, true}) {
    MLIRContext context;
    context.loadDialect<mlir::aim::AimDialect, func::FuncDialect,
                        arith::ArithDialect>();
    OwningOpRef<ModuleOp> module =
        parseSourceString<ModuleOp>(kResidualGemms, &context);
    ASSERT_TRUE(module);
    mlir::aim::LinalgLoweringOptions lowering;
    lowering.blas = blas;
    ASSERT_TRUE(succeeded(mlir::aim::lowerAimToLinalg(*module, lowering)));
    // Three contractions (m, k, n), none starting from zeros, and nothing
    // reads a contraction's result but the return and the next contraction
    // (through reshapes): no add.
    int contractions = 0;
    auto isContraction = [](Operation *op) {
      auto generic = dyn_cast<linalg::GenericOp>(op);
      return generic && generic.getNumReductionLoops() == 1 &&
             generic.getNumLoops() == 3;
    };
    module->walk([&](linalg::GenericOp op) {
      if (!isContraction(op))
        return;
      ++contractions;
      EXPECT_FALSE(op.getDpsInits()[0].getDefiningOp<linalg::FillOp>())
          << "blas " << blas;
      SmallVector<Value> results = {op.getResult(0)};
      while (!results.empty()) {
        Value v = results.pop_back_val();
        for (Operation *user : v.getUsers()) {
          if (isa<tensor::ExpandShapeOp, tensor::CollapseShapeOp>(user))
            results.push_back(user->getResult(0));
          else
            EXPECT_TRUE(isa<func::ReturnOp>(user) || isContraction(user))
                << "blas " << blas << ": "
                << user->getName().getStringRef().str();
        }
      }
    });
    EXPECT_EQ(contractions, 3) << "blas " << blas;
  }
  checkAgainstInterpreter(kResidualGemms, "residual-loops");
  checkAgainstInterpreter(kResidualGemms, "residual-blas", withBlas());
}

// A GEMM that starts from zeros calls the BLAS with beta 0 and no fill
// before it (C is written once); one that starts from its bias, beta 1.
const char *kPlainGemms = R"(
    func.func @kernel(%a: tensor<6x16xf32>, %v: tensor<16x16xf32>, %x: tensor<2x3x16xf32>,
                      %b: tensor<16xf32>) -> (tensor<6x16xf32>, tensor<2x3x16xf32>) {
      %m = aim.matmul %a, %v, transpose_lhs = false, transpose_rhs = true : tensor<6x16xf32>, tensor<16x16xf32> -> tensor<6x16xf32>
      %y = aim.linear %x, %v, %b : tensor<2x3x16xf32>, tensor<16x16xf32>, tensor<16xf32> -> tensor<2x3x16xf32>
      return %m, %y : tensor<6x16xf32>, tensor<2x3x16xf32>
    })";

TEST(HostCodegen, ZeroStartedGemmsHaveBetaZero) {
  MLIRContext context;
  context.loadDialect<mlir::aim::AimDialect, func::FuncDialect,
                      arith::ArithDialect, LLVM::LLVMDialect>();
  OwningOpRef<ModuleOp> module =
      parseSourceString<ModuleOp>(kPlainGemms, &context);
  ASSERT_TRUE(module);
  mlir::aim::BufferizedKernelOptions lowering;
  lowering.linalg.blas = true;
  ASSERT_TRUE(bool(mlir::aim::lowerToBufferizedKernels(*module, lowering)));
  mlir::aim::callGemmFunction(*module, "cblas_sgemm");
  std::multiset<double> betas;
  int fills = 0;
  module->walk([&](linalg::FillOp) { ++fills; });
  module->walk([&](func::CallOp call) {
    if (call.getCallee() != "cblas_sgemm")
      return;
    auto beta = call.getOperand(11).getDefiningOp<arith::ConstantOp>();
    ASSERT_TRUE(beta);
    betas.insert(cast<FloatAttr>(beta.getValue()).getValueAsDouble());
  });
  EXPECT_EQ(betas, std::multiset<double>({0, 1}));
  EXPECT_EQ(fills, 0);
  // And the numbers: the result buffers the calls write start as NaN
  // (callEntry), so a C that were still read would show.
  checkAgainstInterpreter(kPlainGemms, "beta-zero", withBlas());
}

mlir::aim::HostCompileOptions withEpilogues() {
  mlir::aim::HostCompileOptions options = withBlas();
  options.gemmEpilogues = true;
  return options;
}

// The GPU backend's GEMMs carry their epilogue (LowerToLinalg.h,
// kGemmEpilogueAttrName): each is one call of aimcCudaGemm with the bias and
// the residual (as C, apart from D), and no kernel builds a starting C --
// after bufferization nothing but the calls is left of their fusions. The same
// calls on the host (the stand-in adds bias and C, then cblas_sgemm) match
// the interpreter, the GEMMs that start from zeros too (their D buffers
// start as NaN: a D that were read would show).
TEST(HostCodegen, GemmEpiloguesAddBiasAndResidualInTheCall) {
  MLIRContext context;
  context.loadDialect<mlir::aim::AimDialect, func::FuncDialect,
                      arith::ArithDialect, LLVM::LLVMDialect>();
  // The GEMMs as aim-fuse groups them: each with its residual's add.
  const char *fused = R"(
    func.func @kernel(%x: tensor<2x3x8xf32>, %w: tensor<16x8xf32>, %b: tensor<16xf32>,
                      %r: tensor<2x3x16xf32>, %a: tensor<6x16xf32>, %v: tensor<16x16xf32>)
        -> (tensor<2x3x16xf32>, tensor<6x16xf32>, tensor<6x16xf32>) {
      %y = aim.fusion "gemm" (%x, %w, %b, %r) : (tensor<2x3x8xf32>, tensor<16x8xf32>, tensor<16xf32>, tensor<2x3x16xf32>) -> tensor<2x3x16xf32> {
      ^bb0(%x0: tensor<2x3x8xf32>, %w0: tensor<16x8xf32>, %b0: tensor<16xf32>, %r0: tensor<2x3x16xf32>):
        %0 = aim.linear %x0, %w0, %b0 : tensor<2x3x8xf32>, tensor<16x8xf32>, tensor<16xf32> -> tensor<2x3x16xf32>
        %1 = aim.add %r0, %0 : tensor<2x3x16xf32>, tensor<2x3x16xf32> -> tensor<2x3x16xf32>
        aim.yield %1 : tensor<2x3x16xf32>
      }
      %z = aim.fusion "gemm" (%a, %v) : (tensor<6x16xf32>, tensor<16x16xf32>) -> tensor<6x16xf32> {
      ^bb0(%a0: tensor<6x16xf32>, %v0: tensor<16x16xf32>):
        %0 = aim.matmul %a0, %v0, transpose_lhs = false, transpose_rhs = true : tensor<6x16xf32>, tensor<16x16xf32> -> tensor<6x16xf32>
        %1 = aim.add %a0, %0 : tensor<6x16xf32>, tensor<6x16xf32> -> tensor<6x16xf32>
        aim.yield %1 : tensor<6x16xf32>
      }
      %m = aim.fusion "gemm" (%a, %v) : (tensor<6x16xf32>, tensor<16x16xf32>) -> tensor<6x16xf32> {
      ^bb0(%a1: tensor<6x16xf32>, %v1: tensor<16x16xf32>):
        %0 = aim.matmul %a1, %v1, transpose_lhs = false, transpose_rhs = false : tensor<6x16xf32>, tensor<16x16xf32> -> tensor<6x16xf32>
        aim.yield %0 : tensor<6x16xf32>
      }
      return %y, %z, %m : tensor<2x3x16xf32>, tensor<6x16xf32>, tensor<6x16xf32>
    })";
  OwningOpRef<ModuleOp> module = parseSourceString<ModuleOp>(fused, &context);
  ASSERT_TRUE(module);
  mlir::aim::BufferizedKernelOptions lowering;
  lowering.linalg.blas = true;
  lowering.linalg.gemmEpilogues = true;
  lowering.fuseElementwise = true;
  ASSERT_TRUE(bool(mlir::aim::lowerToBufferizedKernels(*module, lowering)));
  mlir::aim::callGemmFunction(*module, "cblas_sgemm", {},
                              mlir::aim::GemmOperands::F32, "aimcCudaGemm");
  int calls = 0, withBias = 0, withResidual = 0, generics = 0;
  module->walk([&](func::CallOp call) {
    if (call.getCallee() != "aimcCudaGemm")
      return;
    ++calls;
    withBias += !call.getOperand(17).getDefiningOp<LLVM::ZeroOp>();
    auto beta = call.getOperand(12).getDefiningOp<arith::ConstantOp>();
    ASSERT_TRUE(beta);
    withResidual += cast<FloatAttr>(beta.getValue()).getValueAsDouble() == 1.0;
  });
  // No kernel: no starting C, no copy into the results' buffers.
  module->walk([&](linalg::LinalgOp) { ++generics; });
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(withBias, 1);     // the linear
  EXPECT_EQ(withResidual, 2); // the linear and the first matmul
  EXPECT_EQ(generics, 0);
  checkAgainstInterpreter(fused, "fused-epilogues", withEpilogues());
  checkAgainstInterpreter(kResidualGemms, "residual-epilogues",
                          withEpilogues());
  checkAgainstInterpreter(kPlainGemms, "plain-epilogues", withEpilogues());
}

TEST(HostCodegen, LayerNormWithBroadcastAddAndTanhGelu) {
  checkAgainstInterpreter(R"(
    func.func @kernel(%x: tensor<2x5x12xf32>, %g: tensor<12xf32>, %b: tensor<12xf32>,
                      %p: tensor<5x12xf32>) -> (tensor<2x5x12xf32>, tensor<2x5x12xf32>) {
      %0 = aim.layer_norm %x, %g, %b, epsilon = 1.0e-6 : tensor<2x5x12xf32>, tensor<12xf32>, tensor<12xf32> -> tensor<2x5x12xf32>
      %1 = aim.add %0, %p : tensor<2x5x12xf32>, tensor<5x12xf32> -> tensor<2x5x12xf32>
      %2 = aim.gelu %1, approximation = tanh : tensor<2x5x12xf32> -> tensor<2x5x12xf32>
      return %1, %2 : tensor<2x5x12xf32>, tensor<2x5x12xf32>
    })",
                          "layernorm");
}

TEST(HostCodegen, BackwardOfALinear) {
  // The ops aim-autodiff builds for a linear layer: reshapes, matmuls with
  // transposes, a bias sum, and the slice/pad pair of a split projection.
  checkAgainstInterpreter(R"(
    func.func @kernel(%dy: tensor<2x3x16xf32>, %x: tensor<2x3x8xf32>, %w: tensor<16x8xf32>)
        -> (tensor<2x3x8xf32>, tensor<16x8xf32>, tensor<16xf32>, tensor<2x3x24xf32>) {
      %dy2 = aim.reshape %dy : tensor<2x3x16xf32> -> tensor<6x16xf32>
      %dx2 = aim.matmul %dy2, %w, transpose_lhs = false, transpose_rhs = false : tensor<6x16xf32>, tensor<16x8xf32> -> tensor<6x8xf32>
      %dx = aim.reshape %dx2 : tensor<6x8xf32> -> tensor<2x3x8xf32>
      %x2 = aim.reshape %x : tensor<2x3x8xf32> -> tensor<6x8xf32>
      %dw = aim.matmul %dy2, %x2, transpose_lhs = true, transpose_rhs = false : tensor<6x16xf32>, tensor<6x8xf32> -> tensor<16x8xf32>
      %db = aim.sum_leading %dy : tensor<2x3x16xf32> -> tensor<16xf32>
      %s = aim.slice %dy, dim = 2, offset = 4, size = 8 : tensor<2x3x16xf32> -> tensor<2x3x8xf32>
      %p = aim.pad %s, dim = 2, before = 10, after = 6 : tensor<2x3x8xf32> -> tensor<2x3x24xf32>
      return %dx, %dw, %db, %p : tensor<2x3x8xf32>, tensor<16x8xf32>, tensor<16xf32>, tensor<2x3x24xf32>
    })",
                          "backward");
}

TEST(HostCodegen, GeluGradients) {
  checkAgainstInterpreter(R"(
    func.func @kernel(%dy: tensor<4x9xf32>, %x: tensor<4x9xf32>) -> (tensor<4x9xf32>, tensor<4x9xf32>) {
      %0 = aim.gelu_grad %dy, %x, approximation = erf : tensor<4x9xf32>, tensor<4x9xf32> -> tensor<4x9xf32>
      %1 = aim.gelu_grad %dy, %x, approximation = tanh : tensor<4x9xf32>, tensor<4x9xf32> -> tensor<4x9xf32>
      return %0, %1 : tensor<4x9xf32>, tensor<4x9xf32>
    })",
                          "gelu-grad");
}

TEST(HostCodegen, PatchifyAndPositionEmbedding) {
  checkAgainstInterpreter(R"(
    func.func @kernel(%x: tensor<2x3x8x12xf32>) -> (tensor<2x6x48xf32>, tensor<2x6x48xf32>, tensor<6x16xf32>) {
      %0 = aim.patchify %x, patch_size = 4, order = channel_first : tensor<2x3x8x12xf32> -> tensor<2x6x48xf32>
      %1 = aim.patchify %x, patch_size = 4, order = channel_last : tensor<2x3x8x12xf32> -> tensor<2x6x48xf32>
      %2 = aim.pos_embed_2d grid_height = 2, grid_width = 3 : tensor<6x16xf32>
      return %0, %1, %2 : tensor<2x6x48xf32>, tensor<2x6x48xf32>, tensor<6x16xf32>
    })",
                          "patchify");
}

TEST(HostCodegen, OptimizerStepInAFusion) {
  checkAgainstInterpreter(R"(
    func.func @kernel(%p: tensor<4x3xf32>, %g: tensor<4x3xf32>, %m: tensor<4x3xf32>, %v: tensor<4x3xf32> {test.non_negative},
                      %q: tensor<3xf32>, %lr: tensor<f32>, %s: tensor<i64>)
        -> (tensor<f32>, tensor<4x3xf32>, tensor<4x3xf32>, tensor<4x3xf32>) {
      %n = aim.global_norm %g, %q : tensor<4x3xf32>, tensor<3xf32> -> tensor<f32>
      %c = aim.clip_coefficient %n, max_norm = 1.0, epsilon = 1.0e-6 : tensor<f32> -> tensor<f32>
      %r:3 = aim.fusion "optimizer" (%p, %g, %m, %v, %lr, %s, %c) : (tensor<4x3xf32>, tensor<4x3xf32>, tensor<4x3xf32>, tensor<4x3xf32>, tensor<f32>, tensor<i64>, tensor<f32>) -> (tensor<4x3xf32>, tensor<4x3xf32>, tensor<4x3xf32>) {
      ^bb0(%a: tensor<4x3xf32>, %b: tensor<4x3xf32>, %e: tensor<4x3xf32>, %f: tensor<4x3xf32>, %l: tensor<f32>, %t: tensor<i64>, %k: tensor<f32>):
        %p1, %m1, %v1 = aim.adamw %a, %b, %e, %f, lr %l, step %t, clip %k, beta1 = 0.9, beta2 = 0.95, epsilon = 1.0e-8, weight_decay = 0.05 : tensor<4x3xf32>, tensor<f32>, tensor<i64>, tensor<f32>
        aim.yield %p1, %m1, %v1 : tensor<4x3xf32>, tensor<4x3xf32>, tensor<4x3xf32>
      }
      return %n, %r#0, %r#1, %r#2 : tensor<f32>, tensor<4x3xf32>, tensor<4x3xf32>, tensor<4x3xf32>
    })",
                          "optimizer");
}

TEST(HostCodegen, LayerNormGradient) {
  checkAgainstInterpreter(R"(
    func.func @kernel(%dy: tensor<2x3x10xf32>, %x: tensor<2x3x10xf32>, %w: tensor<10xf32>)
        -> (tensor<2x3x10xf32>, tensor<10xf32>, tensor<10xf32>) {
      %dx, %dw, %db = aim.layer_norm_grad %dy, %x, %w, epsilon = 1.0e-6 : tensor<2x3x10xf32>, tensor<2x3x10xf32>, tensor<10xf32> -> tensor<2x3x10xf32>, tensor<10xf32>, tensor<10xf32>
      return %dx, %dw, %db : tensor<2x3x10xf32>, tensor<10xf32>, tensor<10xf32>
    })",
                          "layernorm-grad");
}

TEST(HostCodegen, LossAndItsGradient) {
  // Prefix lengths are random in [1, 4] over N = 5 patches (K = 1 up to
  // K = N - 1).
  checkAgainstInterpreter(R"(
    func.func @kernel(%pred: tensor<3x5x6xf32>, %t: tensor<3x5x6xf32>, %K: tensor<3xi32> {test.at_least_one},
                      %dl: tensor<f32>) -> (tensor<f32>, tensor<3x5x6xf32>) {
      %l = aim.normalized_pixel_loss %pred, %t, prefix %K, epsilon = 1.0e-6 : tensor<3x5x6xf32>, tensor<3x5x6xf32>, tensor<3xi32> -> tensor<f32>
      %d = aim.normalized_pixel_loss_grad %dl, %pred, %t, prefix %K, epsilon = 1.0e-6 : tensor<f32>, tensor<3x5x6xf32>, tensor<3x5x6xf32>, tensor<3xi32> -> tensor<3x5x6xf32>
      return %l, %d : tensor<f32>, tensor<3x5x6xf32>
    })",
                          "loss");
}

TEST(HostCodegen, AttentionEveryMaskAndLiveQueries) {
  const char *source = R"(
    func.func @kernel(%q: tensor<2x5x8xf32>, %k: tensor<2x5x8xf32>, %v: tensor<2x5x8xf32>,
                      %K: tensor<2xi32> {test.at_least_one})
        -> (tensor<2x5x8xf32>, tensor<2x2x5xf32>, tensor<2x5x8xf32>, tensor<2x5x8xf32>,
            tensor<10x8xf32>, tensor<10x2xf32>) {
      %o, %l = aim.attention %q, %k, %v, heads = 2, mask = prefix_causal(%K), scale = 0.5 : tensor<2x5x8xf32>, tensor<2x5x8xf32>, tensor<2x5x8xf32>, tensor<2xi32> -> tensor<2x5x8xf32>, tensor<2x2x5xf32>
      %c, %cl = aim.attention %q, %k, %v, heads = 4, mask = causal, scale = 0.7 : tensor<2x5x8xf32>, tensor<2x5x8xf32>, tensor<2x5x8xf32> -> tensor<2x5x8xf32>, tensor<2x4x5xf32>
      %f, %fl = aim.attention %q, %k, %v, heads = 1, mask = bidirectional, scale = 0.3 : tensor<2x5x8xf32>, tensor<2x5x8xf32>, tensor<2x5x8xf32> -> tensor<2x5x8xf32>, tensor<2x1x5xf32>
      %lq = aim.gather_live_rows %q, prefix %K : tensor<2x5x8xf32>, tensor<2xi32> -> tensor<10x8xf32>
      %lo, %ll = aim.attention %lq, %k, %v, heads = 2, mask = prefix_causal(%K), scale = 0.5 {live_queries} : tensor<10x8xf32>, tensor<2x5x8xf32>, tensor<2x5x8xf32>, tensor<2xi32> -> tensor<10x8xf32>, tensor<10x2xf32>
      return %o, %l, %c, %f, %lo, %ll : tensor<2x5x8xf32>, tensor<2x2x5xf32>, tensor<2x5x8xf32>, tensor<2x5x8xf32>, tensor<10x8xf32>, tensor<10x2xf32>
    })";
  checkAgainstInterpreter(source, "attention");
  EXPECT_TRUE(callsBlas(source, withBlas()));
  checkAgainstInterpreter(source, "attention-blas", withBlas());
  checkAgainstInterpreter(source, "attention-tiled", tiledAttention());
}

TEST(HostCodegen, LiveRowsRoundTrip) {
  checkAgainstInterpreter(R"(
    func.func @kernel(%x: tensor<3x4x2xf32>, %p: tensor<4x2xf32>, %K: tensor<3xi32> {test.at_least_one})
        -> (tensor<9x2xf32>, tensor<9x2xf32>, tensor<3x4x2xf32>) {
      %r = aim.gather_live_rows %x, prefix %K : tensor<3x4x2xf32>, tensor<3xi32> -> tensor<9x2xf32>
      %s = aim.gather_live_rows %p, prefix %K : tensor<4x2xf32>, tensor<3xi32> -> tensor<9x2xf32>
      %b = aim.scatter_live_rows %r, prefix %K : tensor<9x2xf32>, tensor<3xi32> -> tensor<3x4x2xf32>
      return %r, %s, %b : tensor<9x2xf32>, tensor<9x2xf32>, tensor<3x4x2xf32>
    })",
                          "rows");
}

TEST(HostCodegen, AttentionGradients) {
  const char *source = R"(
    func.func @kernel(%q: tensor<2x5x8xf32>, %k: tensor<2x5x8xf32>, %v: tensor<2x5x8xf32>,
                      %dout: tensor<2x5x8xf32>, %K: tensor<2xi32> {test.at_least_one})
        -> (tensor<2x5x8xf32>, tensor<2x5x8xf32>, tensor<2x5x8xf32>,
            tensor<2x5x8xf32>, tensor<2x5x8xf32>, tensor<2x5x8xf32>,
            tensor<10x8xf32>, tensor<2x5x8xf32>, tensor<2x5x8xf32>) {
      %o, %l = aim.attention %q, %k, %v, heads = 2, mask = prefix_causal(%K), scale = 0.5 : tensor<2x5x8xf32>, tensor<2x5x8xf32>, tensor<2x5x8xf32>, tensor<2xi32> -> tensor<2x5x8xf32>, tensor<2x2x5xf32>
      %dq, %dk, %dv = aim.attention_grad %dout, %q, %k, %v, %o, %l, heads = 2, mask = prefix_causal(%K), scale = 0.5 : tensor<2x5x8xf32>, tensor<2x5x8xf32>, tensor<2x5x8xf32>, tensor<2x5x8xf32>, tensor<2x5x8xf32>, tensor<2x2x5xf32>, tensor<2xi32> -> tensor<2x5x8xf32>, tensor<2x5x8xf32>, tensor<2x5x8xf32>
      %co, %cl = aim.attention %q, %k, %v, heads = 4, mask = causal, scale = 0.7 : tensor<2x5x8xf32>, tensor<2x5x8xf32>, tensor<2x5x8xf32> -> tensor<2x5x8xf32>, tensor<2x4x5xf32>
      %cq, %ck, %cv = aim.attention_grad %dout, %q, %k, %v, %co, %cl, heads = 4, mask = causal, scale = 0.7 : tensor<2x5x8xf32>, tensor<2x5x8xf32>, tensor<2x5x8xf32>, tensor<2x5x8xf32>, tensor<2x5x8xf32>, tensor<2x4x5xf32> -> tensor<2x5x8xf32>, tensor<2x5x8xf32>, tensor<2x5x8xf32>
      %lq = aim.gather_live_rows %q, prefix %K : tensor<2x5x8xf32>, tensor<2xi32> -> tensor<10x8xf32>
      %ld = aim.gather_live_rows %dout, prefix %K : tensor<2x5x8xf32>, tensor<2xi32> -> tensor<10x8xf32>
      %lo, %ll = aim.attention %lq, %k, %v, heads = 2, mask = prefix_causal(%K), scale = 0.5 {live_queries} : tensor<10x8xf32>, tensor<2x5x8xf32>, tensor<2x5x8xf32>, tensor<2xi32> -> tensor<10x8xf32>, tensor<10x2xf32>
      %xq, %xk, %xv = aim.attention_grad %ld, %lq, %k, %v, %lo, %ll, heads = 2, mask = prefix_causal(%K), scale = 0.5 {live_queries} : tensor<10x8xf32>, tensor<10x8xf32>, tensor<2x5x8xf32>, tensor<2x5x8xf32>, tensor<10x8xf32>, tensor<10x2xf32>, tensor<2xi32> -> tensor<10x8xf32>, tensor<2x5x8xf32>, tensor<2x5x8xf32>
      return %dq, %dk, %dv, %cq, %ck, %cv, %xq, %xk, %xv : tensor<2x5x8xf32>, tensor<2x5x8xf32>, tensor<2x5x8xf32>, tensor<2x5x8xf32>, tensor<2x5x8xf32>, tensor<2x5x8xf32>, tensor<10x8xf32>, tensor<2x5x8xf32>, tensor<2x5x8xf32>
    })";
  checkAgainstInterpreter(source, "attention-grad");
  EXPECT_TRUE(callsBlas(source, withBlas()));
  checkAgainstInterpreter(source, "attention-grad-blas", withBlas());
  checkAgainstInterpreter(source, "attention-grad-tiled", tiledAttention());
}

/// `v` rounded to bfloat16 (nearest, ties to even), as float32.
double roundedToBf16(double v) {
  float x = static_cast<float>(v);
  uint32_t bits;
  std::memcpy(&bits, &x, 4);
  bits = (bits + 0x7fff + ((bits >> 16) & 1)) & 0xffff0000u;
  std::memcpy(&x, &bits, 4);
  return x;
}

void roundArgumentToBf16(std::vector<::aim::HostTensor> &args, size_t i) {
  std::vector<double> v = args[i].toDoubles();
  for (double &x : v)
    x = roundedToBf16(x);
  args[i] = ::aim::HostTensor::fromDoubles(::aim::DType::F32, args[i].shape, v);
}

// The GPU backend's --gemm-operands bf16 (GemmCalls.h: A and B copied to
// bfloat16, C float32), with the host's stand-in that keeps the rounded
// values as float32 for cblas_sgemm. A linear layer: equal within 1e-5 to the
// interpreter given x and W rounded to bfloat16 (the bias, C, is not), and
// not equal to it given them unrounded -- the rounding happens, on exactly
// the GEMM's operands. Attention's batched products (copied batch-major,
// rounding as they copy): within bfloat16's error (2^-8 of the largest
// output; the probabilities are rounded too, which the interpreter does not
// do) of the interpreter given q, k and v rounded.
TEST(GemmOperands, Bf16CopiesRoundExactlyTheGemmOperands) {
  mlir::aim::HostCompileOptions bf16 = withBlas();
  bf16.stridedBatchedGemms = true;
  bf16.gemmEpilogues = true; // as the GPU backend calls them
  bf16.bf16GemmOperands = true;
  const char *linear = R"(
    func.func @kernel(%x: tensor<2x3x8xf32>, %w: tensor<16x8xf32>, %b: tensor<16xf32>)
        -> tensor<2x3x16xf32> {
      %0 = aim.linear %x, %w, %b : tensor<2x3x8xf32>, tensor<16x8xf32>, tensor<16xf32> -> tensor<2x3x16xf32>
      return %0 : tensor<2x3x16xf32>
    })";
  auto roundXAndW = [](std::vector<::aim::HostTensor> &args) {
    roundArgumentToBf16(args, 0);
    roundArgumentToBf16(args, 1);
  };
  checkAgainstInterpreter(linear, "bf16-linear-exact-inputs", bf16, roundXAndW);
  MLIRContext context;
  context.loadDialect<mlir::aim::AimDialect, func::FuncDialect,
                      arith::ArithDialect>();
  OwningOpRef<ModuleOp> reference =
      parseSourceString<ModuleOp>(linear, &context);
  OwningOpRef<ModuleOp> compiled =
      parseSourceString<ModuleOp>(linear, &context);
  ASSERT_TRUE(reference && compiled);
  auto f = reference->lookupSymbol<func::FuncOp>("kernel");
  std::vector<::aim::HostTensor> args = randomArguments(f, 3), rounded = args;
  roundXAndW(rounded);
  std::vector<int64_t> sizes;
  std::vector<::aim::HostTensor> exact = interpretF32(f, args, sizes),
                                 ofRounded = interpretF32(f, rounded, sizes);
  auto got =
      compileAndRun(*compiled, "kernel", "bf16-linear", args, {sizes[0]}, bf16);
  ASSERT_EQ(got.size(), 1u);
  expectClose(ofRounded, got, 1e-5, "bf16 linear");
  std::vector<double> want = exact[0].toDoubles();
  double largest = 0;
  for (size_t i = 0; i < want.size(); ++i)
    largest = std::max(largest, std::abs(got[0][i] - want[i]));
  EXPECT_GT(largest, 1e-4) << "the operands were not rounded";

  const char *attention = R"(
    func.func @kernel(%q: tensor<2x5x8xf32>, %k: tensor<2x5x8xf32>, %v: tensor<2x5x8xf32>,
                      %K: tensor<2xi32> {test.at_least_one})
        -> (tensor<2x5x8xf32>, tensor<2x2x5xf32>) {
      %o, %l = aim.attention %q, %k, %v, heads = 2, mask = prefix_causal(%K), scale = 0.5 : tensor<2x5x8xf32>, tensor<2x5x8xf32>, tensor<2x5x8xf32>, tensor<2xi32> -> tensor<2x5x8xf32>, tensor<2x2x5xf32>
      return %o, %l : tensor<2x5x8xf32>, tensor<2x2x5xf32>
    })";
  context.getOrLoadDialect<mlir::aim::AimDialect>();
  OwningOpRef<ModuleOp> attentionReference =
      parseSourceString<ModuleOp>(attention, &context);
  OwningOpRef<ModuleOp> attentionCompiled =
      parseSourceString<ModuleOp>(attention, &context);
  ASSERT_TRUE(attentionReference && attentionCompiled);
  auto g = attentionReference->lookupSymbol<func::FuncOp>("kernel");
  std::vector<::aim::HostTensor> qkv = randomArguments(g, 5);
  for (size_t i = 0; i < 3; ++i)
    roundArgumentToBf16(qkv, i);
  std::vector<int64_t> attentionSizes;
  std::vector<::aim::HostTensor> attentionWant =
      interpretF32(g, qkv, attentionSizes);
  expectClose(attentionWant,
              compileAndRun(*attentionCompiled, "kernel", "bf16-attention", qkv,
                            attentionSizes, bf16),
              0x1p-8, "bf16 attention");
}

/// `source` lowered to bufferized kernels as the GPU backend lowers it with
/// bfloat16 GEMM operands (cuBLASLt calls with epilogues, elementwise
/// fusion); null if it does not parse or lower.
OwningOpRef<ModuleOp> bufferizedWithBf16Operands(const char *source,
                                                 MLIRContext &context) {
  context.loadDialect<mlir::aim::AimDialect, func::FuncDialect,
                      arith::ArithDialect, LLVM::LLVMDialect>();
  OwningOpRef<ModuleOp> module = parseSourceString<ModuleOp>(source, &context);
  if (!module)
    return module;
  mlir::aim::BufferizedKernelOptions lowering;
  lowering.linalg.blas = true;
  lowering.linalg.gemmEpilogues = true;
  lowering.linalg.gemmOperands = mlir::aim::GemmOperands::BF16;
  lowering.fuseElementwise = true;
  llvm::Expected<mlir::aim::KernelCount> kernels =
      mlir::aim::lowerToBufferizedKernels(*module, lowering);
  if (!kernels) {
    llvm::consumeError(kernels.takeError());
    return nullptr;
  }
  return module;
}

// With bfloat16 operands the GPU backend rounds a GEMM's A and B before
// fusion, and fusion moves an elementwise producer into that copy even when
// the producer's float32 result is used elsewhere (a saved activation): one
// kernel writes GELU's float32 result and its bfloat16 copy; only the
// weight, an argument, is copied on its own.
TEST(GemmOperands, Bf16CopiesAreFusedIntoTheirProducers) {
  MLIRContext context;
  const char *source = R"(
    func.func @kernel(%x: tensor<6x16xf32>, %w: tensor<8x16xf32>, %b: tensor<8xf32>)
        -> (tensor<6x16xf32>, tensor<6x8xf32>) {
      %g, %y = aim.fusion "gemm" (%x, %w, %b) : (tensor<6x16xf32>, tensor<8x16xf32>, tensor<8xf32>) -> (tensor<6x16xf32>, tensor<6x8xf32>) {
      ^bb0(%x0: tensor<6x16xf32>, %w0: tensor<8x16xf32>, %b0: tensor<8xf32>):
        %0 = aim.gelu %x0, approximation = erf : tensor<6x16xf32> -> tensor<6x16xf32>
        %1 = aim.linear %0, %w0, %b0 : tensor<6x16xf32>, tensor<8x16xf32>, tensor<8xf32> -> tensor<6x8xf32>
        aim.yield %0, %1 : tensor<6x16xf32>, tensor<6x8xf32>
      }
      return %g, %y : tensor<6x16xf32>, tensor<6x8xf32>
    })";
  OwningOpRef<ModuleOp> module = bufferizedWithBf16Operands(source, context);
  ASSERT_TRUE(module);
  int elementwise = 0, geluWithCopy = 0, gemms = 0;
  module->walk([&](linalg::GenericOp op) {
    if (op->hasAttr(mlir::aim::kGemmAttrName)) {
      ++gemms;
      for (Value in : ArrayRef<Value>(op.getDpsInputs()).take_front(2))
        EXPECT_TRUE(cast<MemRefType>(in.getType()).getElementType().isBF16());
      return;
    }
    ++elementwise;
    bool erf = false;
    op.walk([&](math::ErfOp) { erf = true; });
    SmallVector<Type> outs;
    for (Value v : op.getDpsInits())
      outs.push_back(cast<MemRefType>(v.getType()).getElementType());
    if (erf && outs.size() == 2 && outs[0].isF32() != outs[1].isF32())
      ++geluWithCopy;
  });
  EXPECT_EQ(gemms, 1);
  EXPECT_EQ(geluWithCopy, 1);
  EXPECT_EQ(elementwise, 2); // GELU with its copy; the weight's copy
}

// Attention's [B, heads, N, N] GEMM operands with bfloat16 operands: the
// probabilities and the score gradients are rounded before fusion, so the
// kernels computing them write the bfloat16 copies -- no copy of their own
// reads a float32 N x N tensor back. The forward's probabilities and the
// score gradients (used only by GEMMs) are never stored in float32; the
// backward's probabilities are (the score gradients read them) with their
// copy beside, in one kernel; ds is rounded once for its two products.
TEST(GemmOperands, AttentionPairsAreRoundedByTheKernelsComputingThem) {
  MLIRContext context;
  const char *source = R"(
    func.func @kernel(%q: tensor<2x5x8xf32>, %k: tensor<2x5x8xf32>, %v: tensor<2x5x8xf32>,
                      %dout: tensor<2x5x8xf32>, %K: tensor<2xi32>)
        -> (tensor<2x5x8xf32>, tensor<2x5x8xf32>, tensor<2x5x8xf32>, tensor<2x5x8xf32>) {
      %o, %l = aim.attention %q, %k, %v, heads = 2, mask = prefix_causal(%K), scale = 0.5 : tensor<2x5x8xf32>, tensor<2x5x8xf32>, tensor<2x5x8xf32>, tensor<2xi32> -> tensor<2x5x8xf32>, tensor<2x2x5xf32>
      %dq, %dk, %dv = aim.attention_grad %dout, %q, %k, %v, %o, %l, heads = 2, mask = prefix_causal(%K), scale = 0.5 : tensor<2x5x8xf32>, tensor<2x5x8xf32>, tensor<2x5x8xf32>, tensor<2x5x8xf32>, tensor<2x5x8xf32>, tensor<2x2x5xf32>, tensor<2xi32> -> tensor<2x5x8xf32>, tensor<2x5x8xf32>, tensor<2x5x8xf32>
      return %o, %dq, %dk, %dv : tensor<2x5x8xf32>, tensor<2x5x8xf32>, tensor<2x5x8xf32>, tensor<2x5x8xf32>
    })";
  OwningOpRef<ModuleOp> module = bufferizedWithBf16Operands(source, context);
  ASSERT_TRUE(module);
  auto isPairs = [](Value v, bool bf16) {
    auto type = cast<MemRefType>(v.getType());
    return type.getShape() == ArrayRef<int64_t>{2, 2, 5, 5} &&
           type.getElementType().isBF16() == bf16;
  };
  int pairProducts = 0, bf16PairWriters = 0, bf16AndF32PairWriters = 0;
  module->walk([&](linalg::GenericOp op) {
    ValueRange ins = op.getDpsInputs(), outs = op.getDpsInits();
    if (op->hasAttr(mlir::aim::kBatchedGemmAttrName)) {
      // Scores (q k, dout v) read rows; the products read pairs, bfloat16.
      if (isPairs(ins[0], false) || isPairs(ins[0], true)) {
        ++pairProducts;
        EXPECT_TRUE(isPairs(ins[0], true)) << "a product reads float32 pairs";
      }
      return;
    }
    int bf16Outs =
        llvm::count_if(outs, [&](Value v) { return isPairs(v, true); });
    int f32Outs =
        llvm::count_if(outs, [&](Value v) { return isPairs(v, false); });
    if (bf16Outs == 0)
      return;
    EXPECT_EQ(bf16Outs, 1);
    // The kernel computes the pairs (p: exp; ds: products), not only
    // rounds stored ones.
    bool computes = false;
    op.getBody()->walk(
        [&](Operation *o) { computes |= isa<math::ExpOp, arith::MulFOp>(o); });
    EXPECT_TRUE(computes) << "a kernel only rounds float32 pairs";
    ++bf16PairWriters;
    if (f32Outs == 1)
      ++bf16AndF32PairWriters;
  });
  EXPECT_EQ(pairProducts, 4);          // p v; ds k, ds^T q, p^T dout
  EXPECT_EQ(bf16PairWriters, 3);       // p (forward), p and ds (backward)
  EXPECT_EQ(bf16AndF32PairWriters, 1); // the backward's p, read by ds
}

// --gemm-kernel wgmma (WgmmaGemm.h): the generated GEMM's schedule on the
// host -- its "TMA" copies swizzled boxes into an emulated shared memory,
// each wgmma decodes its matrix descriptors and computes the product from
// the PTX ISA's accumulator layout. A linear layer with bias and residual
// whose M (200), N (136) and K (328) all end in partial tiles, K six
// slices (three refills of the three stages); a matmul without either (N = 136:
// the epilogue's 8-byte pairs) and one with N = 9 (pairs element by
// element); and one whose B is not transposed, which the rule leaves to
// the library. x and W are rounded to bfloat16 first, so that the
// interpreter's products are the kernel's: within 1e-5 of the largest
// result (float32 sums in another order).
constexpr const char *kWgmmaGemmSource = R"(
    func.func @kernel(%x: tensor<2x100x328xf32>, %w: tensor<136x328xf32>,
                      %b: tensor<136xf32>, %r: tensor<2x100x136xf32>,
                      %v: tensor<136x136xf32>, %u: tensor<9x136xf32>)
        -> (tensor<2x100x136xf32>, tensor<200x136xf32>, tensor<200x136xf32>,
            tensor<200x9xf32>) {
      %y = aim.fusion "gemm" (%x, %w, %b, %r) : (tensor<2x100x328xf32>, tensor<136x328xf32>, tensor<136xf32>, tensor<2x100x136xf32>) -> tensor<2x100x136xf32> {
      ^bb0(%x0: tensor<2x100x328xf32>, %w0: tensor<136x328xf32>, %b0: tensor<136xf32>, %r0: tensor<2x100x136xf32>):
        %0 = aim.linear %x0, %w0, %b0 : tensor<2x100x328xf32>, tensor<136x328xf32>, tensor<136xf32> -> tensor<2x100x136xf32>
        %1 = aim.add %r0, %0 : tensor<2x100x136xf32>, tensor<2x100x136xf32> -> tensor<2x100x136xf32>
        aim.yield %1 : tensor<2x100x136xf32>
      }
      %a = aim.reshape %r : tensor<2x100x136xf32> -> tensor<200x136xf32>
      %t = aim.matmul %a, %v, transpose_lhs = false, transpose_rhs = true : tensor<200x136xf32>, tensor<136x136xf32> -> tensor<200x136xf32>
      %n = aim.matmul %a, %v, transpose_lhs = false, transpose_rhs = false : tensor<200x136xf32>, tensor<136x136xf32> -> tensor<200x136xf32>
      %o = aim.matmul %a, %u, transpose_lhs = false, transpose_rhs = true : tensor<200x136xf32>, tensor<9x136xf32> -> tensor<200x9xf32>
      return %y, %t, %n, %o : tensor<2x100x136xf32>, tensor<200x136xf32>, tensor<200x136xf32>, tensor<200x9xf32>
    })";

mlir::aim::HostCompileOptions wgmmaGemms() {
  mlir::aim::HostCompileOptions options = withBlas();
  options.gemmEpilogues = true;
  options.bf16GemmOperands = true;
  options.gemmKernel = mlir::aim::GemmKernel::Wgmma;
  return options;
}

TEST(WgmmaGemm, EmulatedKernelMatchesTheInterpreter) {
  checkAgainstInterpreter(kWgmmaGemmSource, "wgmma-gemm", wgmmaGemms(),
                          [](std::vector<::aim::HostTensor> &args) {
                            for (size_t i : {0, 1, 3, 4, 5})
                              roundArgumentToBf16(args, i);
                          });
  // The kernel ran: its emulated wgmma is in the object (and not without
  // --gemm-kernel wgmma).
  auto objectHas = [](const mlir::aim::HostCompileOptions &options) {
    MLIRContext context;
    context.loadDialect<mlir::aim::AimDialect, func::FuncDialect,
                        arith::ArithDialect>();
    OwningOpRef<ModuleOp> module =
        parseSourceString<ModuleOp>(kWgmmaGemmSource, &context);
    llvm::Expected<mlir::aim::HostObject> object =
        mlir::aim::compileToObject(*module, options);
    EXPECT_TRUE(bool(object)) << llvm::toString(object.takeError());
    return object &&
           object->bytes.find("aim_emulated_wgmma") != std::string::npos;
  };
  EXPECT_TRUE(objectHas(wgmmaGemms()));
  mlir::aim::HostCompileOptions library = wgmmaGemms();
  library.gemmKernel = mlir::aim::GemmKernel::Library;
  EXPECT_FALSE(objectHas(library));
}

// The tiled attention kernels (codegen/kernels/TiledAttention.h), emulated
// on the host with the GPU's rows, lanes and tiles, against the
// interpreter: 70 tokens (key and query tiles of 32: two full-size tiles and
// a partial one), dh = 40 (two values a lane, lanes 8..31 without a
// second), the prefix-causal tile rule as aim-prefix-mask records it, and
// prefixes 1, 40 (past the first tile: full tiles from the prefix) and 70.
// Tolerance 1e-5 of the largest magnitude, as the other attention tests:
// the online softmax rescales in a different order than the interpreter's
// two passes.
constexpr const char *kTiledAttentionSource = R"(
    func.func @kernel(%q: tensor<3x70x80xf32>, %k: tensor<3x70x80xf32>,
                      %v: tensor<3x70x80xf32>, %dout: tensor<3x70x80xf32>,
                      %K: tensor<3xi32>)
        -> (tensor<3x70x80xf32>, tensor<3x2x70xf32>, tensor<3x70x80xf32>,
            tensor<3x70x80xf32>, tensor<3x70x80xf32>) {
      %o, %l = aim.attention %q, %k, %v, heads = 2, mask = prefix_causal(%K), scale = 0.25 {tile_empty_from = EMPTY, tile_full_until = FULL} : tensor<3x70x80xf32>, tensor<3x70x80xf32>, tensor<3x70x80xf32>, tensor<3xi32> -> tensor<3x70x80xf32>, tensor<3x2x70xf32>
      %dq, %dk, %dv = aim.attention_grad %dout, %q, %k, %v, %o, %l, heads = 2, mask = prefix_causal(%K), scale = 0.25 {tile_empty_from = EMPTY, tile_full_until = FULL} : tensor<3x70x80xf32>, tensor<3x70x80xf32>, tensor<3x70x80xf32>, tensor<3x70x80xf32>, tensor<3x70x80xf32>, tensor<3x2x70xf32>, tensor<3xi32> -> tensor<3x70x80xf32>, tensor<3x70x80xf32>, tensor<3x70x80xf32>
      return %o, %l, %dq, %dk, %dv : tensor<3x70x80xf32>, tensor<3x2x70xf32>, tensor<3x70x80xf32>, tensor<3x70x80xf32>, tensor<3x70x80xf32>
    })";

std::string tiledAttentionSource(const std::string &empty,
                                 const std::string &full) {
  std::string s = kTiledAttentionSource;
  for (auto [key, value] : {std::pair{std::string("EMPTY"), empty},
                            std::pair{std::string("FULL"), full}})
    for (size_t at; (at = s.find(key)) != std::string::npos;)
      s.replace(at, key.size(), value);
  return s;
}

void prefixes1And40And70(std::vector<::aim::HostTensor> &args) {
  args[4] = ::aim::HostTensor::fromDoubles(::aim::DType::I32, {3}, {1, 40, 70});
}

TEST(TiledAttention, KernelsFollowTheTileRuleAndMatchTheInterpreter) {
  const std::string rule =
      tiledAttentionSource("affine_map<(d0, d1)[s0] -> (s0, d1)>",
                           "affine_map<(d0, d1)[s0] -> (s0, d0 + 1)>");
  checkAgainstInterpreter(rule, "tiled-attention-rule", tiledAttention(),
                          prefixes1And40And70);
}

// The kernels read the rule, not the mask alone: a rule that calls every
// tile full (no mask test) or every key past the prefix empty (never
// visited) gives other results than the interpreter's, which ignores it.
TEST(TiledAttention, AWrongTileRuleChangesTheKernels) {
  MLIRContext context;
  context.loadDialect<mlir::aim::AimDialect, func::FuncDialect,
                      arith::ArithDialect>();
  for (auto [empty, full, name] :
       {std::tuple{"affine_map<(d0, d1)[s0] -> (s0, d1)>",
                   "affine_map<(d0, d1)[s0] -> (1000)>", "tiled-all-full"},
        std::tuple{"affine_map<(d0, d1)[s0] -> (s0)>",
                   "affine_map<(d0, d1)[s0] -> (s0, d0 + 1)>",
                   "tiled-prefix-only"}}) {
    std::string source = tiledAttentionSource(empty, full);
    OwningOpRef<ModuleOp> reference =
        parseSourceString<ModuleOp>(source, &context);
    OwningOpRef<ModuleOp> compiled =
        parseSourceString<ModuleOp>(source, &context);
    ASSERT_TRUE(reference && compiled);
    auto f = reference->lookupSymbol<func::FuncOp>("kernel");
    std::vector<::aim::HostTensor> args = randomArguments(f, 3);
    prefixes1And40And70(args);
    std::vector<int64_t> sizes;
    std::vector<::aim::HostTensor> expected = interpretF32(f, args, sizes);
    auto got =
        compileAndRun(*compiled, "kernel", name, args, sizes, tiledAttention());
    ASSERT_EQ(got.size(), expected.size());
    std::vector<double> want = expected[0].toDoubles();
    double largest = 0;
    for (size_t i = 0; i < want.size(); ++i)
      largest = std::max(largest, std::abs(got[0][i] - want[i]));
    EXPECT_GT(largest, 1e-2) << name;
  }
}

// --attention=flash's forward (FlashAttention.h), its warps' 32 lanes
// emulated on the host and each mma.sync computed from the PTX ISA's
// fragment layouts. Three shapes: the tile rule of the prefix mask with 70
// tokens (a second query tile and key tile that pass N) and 40 channels a
// head (padded to 48), prefixes 1, 40 and 70; causal with 20 channels (the
// last n-block all padding) and bidirectional with 80, without a rule.
constexpr const char *kFlashAttentionSource = R"(
    func.func @kernel(%q: tensor<3x70x80xf32>, %k: tensor<3x70x80xf32>,
                      %v: tensor<3x70x80xf32>, %K: tensor<3xi32>)
        -> (tensor<3x70x80xf32>, tensor<3x2x70xf32>, tensor<3x70x80xf32>,
            tensor<3x4x70xf32>, tensor<3x70x80xf32>, tensor<3x1x70xf32>) {
      %o, %l = aim.attention %q, %k, %v, heads = 2, mask = prefix_causal(%K), scale = 0.25 {tile_empty_from = affine_map<(d0, d1)[s0] -> (s0, d1)>, tile_full_until = affine_map<(d0, d1)[s0] -> (s0, d0 + 1)>} : tensor<3x70x80xf32>, tensor<3x70x80xf32>, tensor<3x70x80xf32>, tensor<3xi32> -> tensor<3x70x80xf32>, tensor<3x2x70xf32>
      %c, %cl = aim.attention %q, %k, %v, heads = 4, mask = causal, scale = 0.5 : tensor<3x70x80xf32>, tensor<3x70x80xf32>, tensor<3x70x80xf32> -> tensor<3x70x80xf32>, tensor<3x4x70xf32>
      %f, %fl = aim.attention %q, %k, %v, heads = 1, mask = bidirectional, scale = 0.125 : tensor<3x70x80xf32>, tensor<3x70x80xf32>, tensor<3x70x80xf32> -> tensor<3x70x80xf32>, tensor<3x1x70xf32>
      return %o, %l, %c, %cl, %f, %fl : tensor<3x70x80xf32>, tensor<3x2x70xf32>, tensor<3x70x80xf32>, tensor<3x4x70xf32>, tensor<3x70x80xf32>, tensor<3x1x70xf32>
    })";

mlir::aim::HostCompileOptions flashAttention() {
  mlir::aim::HostCompileOptions options;
  options.attention = mlir::aim::AttentionLowering::Flash;
  return options;
}

/// The largest difference of each result of `source` compiled with
/// `options` from the interpreter's, relative to `scales[i]`, on q, k and v
/// rounded to bfloat16 (so that the interpreter's products are the
/// kernel's) and prefixes 1, 40 and 70.
std::vector<double> flashErrors(const std::string &source, const char *name,
                                const std::vector<double> &scales) {
  MLIRContext context;
  context.loadDialect<mlir::aim::AimDialect, func::FuncDialect,
                      arith::ArithDialect>();
  OwningOpRef<ModuleOp> reference =
      parseSourceString<ModuleOp>(source, &context);
  OwningOpRef<ModuleOp> compiled =
      parseSourceString<ModuleOp>(source, &context);
  EXPECT_TRUE(reference && compiled);
  if (!reference || !compiled)
    return {};
  auto f = reference->lookupSymbol<func::FuncOp>("kernel");
  std::vector<::aim::HostTensor> args = randomArguments(f, 3);
  for (size_t i = 0; i < 3; ++i)
    roundArgumentToBf16(args, i);
  args[3] = ::aim::HostTensor::fromDoubles(::aim::DType::I32, {3}, {1, 40, 70});
  std::vector<int64_t> sizes;
  std::vector<::aim::HostTensor> expected = interpretF32(f, args, sizes);
  auto got =
      compileAndRun(*compiled, "kernel", name, args, sizes, flashAttention());
  std::vector<double> errors;
  for (size_t i = 0; i < std::min(got.size(), expected.size()); ++i) {
    std::vector<double> want = expected[i].toDoubles();
    double largest = 0;
    for (size_t j = 0; j < want.size(); ++j)
      largest = std::max(largest, std::abs(got[i][j] - want[j]));
    errors.push_back(largest / scales[i]);
  }
  EXPECT_EQ(errors.size(), scales.size()) << name;
  return errors;
}

/// max |x| over `tensor`.
double largestMagnitude(const ::aim::HostTensor &tensor) {
  double m = 0;
  for (double x : tensor.toDoubles())
    m = std::max(m, std::abs(x));
  return m;
}

// With q, k and v already bfloat16, the kernel's scores are the
// interpreter's up to float32 summation order, and so are the row
// statistics: row_logsumexp (up to about 10 here) within 1e-4, about 1e-5
// of its magnitude (measured: 1e-6; the kernel's exponentials are base 2,
// the interpreter's base e). The
// output differs by the rounding of the unnormalised probabilities to
// bfloat16 for p v: each weight by a relative 2^-8 at most (bfloat16's 8
// significant bits, to nearest), so an output, a weighted average of v,
// by at most 2^-8 max|v|; stated as that plus 1e-5 of float32 slack.
TEST(FlashAttention, ForwardMatchesTheInterpreterWithinBf16Rounding) {
  MLIRContext context;
  context.loadDialect<mlir::aim::AimDialect, func::FuncDialect,
                      arith::ArithDialect>();
  OwningOpRef<ModuleOp> parsed =
      parseSourceString<ModuleOp>(kFlashAttentionSource, &context);
  ASSERT_TRUE(parsed);
  std::vector<::aim::HostTensor> args =
      randomArguments(parsed->lookupSymbol<func::FuncOp>("kernel"), 3);
  roundArgumentToBf16(args, 2);
  const double maxV = largestMagnitude(args[2]);
  // Outputs relative to max|v|, logsumexps absolute.
  std::vector<double> scales = {maxV, 1, maxV, 1, maxV, 1};
  std::vector<double> errors =
      flashErrors(kFlashAttentionSource, "flash-attention", scales);
  ASSERT_EQ(errors.size(), 6u);
  const char *names[] = {"prefix o",   "prefix lse",      "causal o",
                         "causal lse", "bidirectional o", "bidirectional lse"};
  for (size_t i = 0; i < 6; ++i) {
    const double bound = i % 2 == 0 ? std::ldexp(1.0, -8) + 1e-5 : 1e-4;
    EXPECT_LE(errors[i], bound) << names[i];
    // Rounding p is real: the outputs are not float32-exact (measured:
    // 3e-4 to 6e-4 of max|v|).
    if (i % 2 == 0)
      EXPECT_GT(errors[i], 1e-6) << names[i];
  }
}

// The backward's kernels (dq and delta, then dk and dv) on the forward's
// shapes, o and lse from the interpreter's forward.
constexpr const char *kFlashAttentionGradSource = R"(
    func.func @kernel(%dout: tensor<3x70x80xf32>, %q: tensor<3x70x80xf32>,
                      %k: tensor<3x70x80xf32>, %v: tensor<3x70x80xf32>,
                      %o: tensor<3x70x80xf32>, %l: tensor<3x2x70xf32>,
                      %c: tensor<3x70x80xf32>, %cl: tensor<3x4x70xf32>,
                      %f: tensor<3x70x80xf32>, %fl: tensor<3x1x70xf32>,
                      %K: tensor<3xi32>)
        -> (tensor<3x70x80xf32>, tensor<3x70x80xf32>, tensor<3x70x80xf32>,
            tensor<3x70x80xf32>, tensor<3x70x80xf32>, tensor<3x70x80xf32>,
            tensor<3x70x80xf32>, tensor<3x70x80xf32>, tensor<3x70x80xf32>) {
      %dq, %dk, %dv = aim.attention_grad %dout, %q, %k, %v, %o, %l, heads = 2, mask = prefix_causal(%K), scale = 0.25 {tile_empty_from = affine_map<(d0, d1)[s0] -> (s0, d1)>, tile_full_until = affine_map<(d0, d1)[s0] -> (s0, d0 + 1)>} : tensor<3x70x80xf32>, tensor<3x70x80xf32>, tensor<3x70x80xf32>, tensor<3x70x80xf32>, tensor<3x70x80xf32>, tensor<3x2x70xf32>, tensor<3xi32> -> tensor<3x70x80xf32>, tensor<3x70x80xf32>, tensor<3x70x80xf32>
      %cq, %ck, %cv = aim.attention_grad %dout, %q, %k, %v, %c, %cl, heads = 4, mask = causal, scale = 0.5 : tensor<3x70x80xf32>, tensor<3x70x80xf32>, tensor<3x70x80xf32>, tensor<3x70x80xf32>, tensor<3x70x80xf32>, tensor<3x4x70xf32> -> tensor<3x70x80xf32>, tensor<3x70x80xf32>, tensor<3x70x80xf32>
      %fq, %fk, %fv = aim.attention_grad %dout, %q, %k, %v, %f, %fl, heads = 1, mask = bidirectional, scale = 0.125 : tensor<3x70x80xf32>, tensor<3x70x80xf32>, tensor<3x70x80xf32>, tensor<3x70x80xf32>, tensor<3x70x80xf32>, tensor<3x1x70xf32> -> tensor<3x70x80xf32>, tensor<3x70x80xf32>, tensor<3x70x80xf32>
      return %dq, %dk, %dv, %cq, %ck, %cv, %fq, %fk, %fv : tensor<3x70x80xf32>, tensor<3x70x80xf32>, tensor<3x70x80xf32>, tensor<3x70x80xf32>, tensor<3x70x80xf32>, tensor<3x70x80xf32>, tensor<3x70x80xf32>, tensor<3x70x80xf32>, tensor<3x70x80xf32>
    })";

/// Attention's gradients in double precision from the formulas
/// (p = exp(scale q.k - lse) on visible pairs, delta = <do, o>, ds = p (do.v
/// - delta); dq = scale ds k, dk = scale ds^T q, dv = p^T do), with p and ds
/// rounded to bfloat16 before their products where `roundLikeKernels` (as
/// the flash kernels round them); `bound` gets each element's sum of the
/// products' magnitudes.
struct GradReference {
  std::vector<double> dq, dk, dv, rq, rk, rv;
};
GradReference attentionGradReference(
    const std::vector<double> &q, const std::vector<double> &k,
    const std::vector<double> &v, const std::vector<double> &o,
    const std::vector<double> &lse, const std::vector<double> &dout,
    int64_t heads, double scale, const std::string &mask,
    const std::vector<int> &prefix, bool roundLikeKernels) {
  const int64_t batch = 3, n = 70, width = 80, dh = width / heads;
  GradReference g;
  for (auto *x : {&g.dq, &g.dk, &g.dv, &g.rq, &g.rk, &g.rv})
    x->assign(batch * n * width, 0.0);
  auto at = [&](int64_t b, int64_t t, int64_t h, int64_t c) {
    return (b * n + t) * width + h * dh + c;
  };
  auto rounded = [&](double x) {
    return roundLikeKernels ? roundedToBf16(x) : x;
  };
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < n; ++i) {
        double delta = 0;
        for (int64_t c = 0; c < dh; ++c)
          delta += dout[at(b, i, h, c)] * o[at(b, i, h, c)];
        for (int64_t j = 0; j < n; ++j) {
          bool visible = mask == "bidirectional" ||
                         (mask == "causal" && j <= i) ||
                         (mask == "prefix" && (j <= i || j < prefix[b]));
          if (!visible)
            continue;
          double score = 0, dp = 0;
          for (int64_t c = 0; c < dh; ++c) {
            score += q[at(b, i, h, c)] * k[at(b, j, h, c)];
            dp += dout[at(b, i, h, c)] * v[at(b, j, h, c)];
          }
          double p = std::exp(scale * score - lse[(b * heads + h) * n + i]);
          double pr = rounded(p), ds = rounded(p * (dp - delta));
          for (int64_t c = 0; c < dh; ++c) {
            g.dv[at(b, j, h, c)] += pr * dout[at(b, i, h, c)];
            g.rv[at(b, j, h, c)] += std::abs(pr * dout[at(b, i, h, c)]);
            g.dq[at(b, i, h, c)] += scale * ds * k[at(b, j, h, c)];
            g.rq[at(b, i, h, c)] += std::abs(scale * ds * k[at(b, j, h, c)]);
            g.dk[at(b, j, h, c)] += scale * ds * q[at(b, i, h, c)];
            g.rk[at(b, j, h, c)] += std::abs(scale * ds * q[at(b, i, h, c)]);
          }
        }
      }
  return g;
}

// The reference without rounding is first checked against the interpreter
// (1e-5: the formulas are the interpreter's). With the kernels' roundings,
// each product's rounded factor (p for dv, ds for dq and dk) is the
// kernels' up to one bfloat16 step (2^-7 relative) where float32 and double
// round across a tie differently, so each element is held within 2^-7 of
// its products' summed magnitudes, plus 1e-5 of the result's largest
// magnitude for float32 sums.
TEST(FlashAttention, BackwardMatchesAReferenceThatRoundsLikeIt) {
  MLIRContext context;
  context.loadDialect<mlir::aim::AimDialect, func::FuncDialect,
                      arith::ArithDialect>();
  OwningOpRef<ModuleOp> forward =
      parseSourceString<ModuleOp>(kFlashAttentionSource, &context);
  OwningOpRef<ModuleOp> reference =
      parseSourceString<ModuleOp>(kFlashAttentionGradSource, &context);
  OwningOpRef<ModuleOp> compiled =
      parseSourceString<ModuleOp>(kFlashAttentionGradSource, &context);
  ASSERT_TRUE(forward && reference && compiled);
  auto f = reference->lookupSymbol<func::FuncOp>("kernel");
  std::vector<::aim::HostTensor> args = randomArguments(f, 5);
  for (size_t i = 0; i < 4; ++i) // dout, q, k, v
    roundArgumentToBf16(args, i);
  const std::vector<int> prefix = {1, 40, 70};
  args[10] =
      ::aim::HostTensor::fromDoubles(::aim::DType::I32, {3}, {1.0, 40.0, 70.0});
  // o and lse: the interpreter's forward on q, k, v.
  std::vector<int64_t> forwardSizes;
  std::vector<::aim::HostTensor> outputs =
      interpretF32(forward->lookupSymbol<func::FuncOp>("kernel"),
                   {args[1], args[2], args[3], args[10]}, forwardSizes);
  ASSERT_EQ(outputs.size(), 6u);
  for (size_t i = 0; i < 6; ++i)
    args[4 + i] = outputs[i];
  std::vector<int64_t> sizes;
  std::vector<::aim::HostTensor> expected = interpretF32(f, args, sizes);
  auto got = compileAndRun(*compiled, "kernel", "flash-attention-grad", args,
                           sizes, flashAttention());
  ASSERT_EQ(got.size(), 9u);
  struct Case {
    int64_t heads;
    double scale;
    const char *mask;
  };
  const Case cases[] = {
      {2, 0.25, "prefix"}, {4, 0.5, "causal"}, {1, 0.125, "bidirectional"}};
  for (int c = 0; c < 3; ++c) {
    auto inputs = [&](size_t i) { return args[i].toDoubles(); };
    for (bool round : {false, true}) {
      GradReference g = attentionGradReference(
          inputs(1), inputs(2), inputs(3), inputs(4 + 2 * c), inputs(5 + 2 * c),
          inputs(0), cases[c].heads, cases[c].scale, cases[c].mask, prefix,
          round);
      const std::vector<double> *want[] = {&g.dq, &g.dk, &g.dv};
      const std::vector<double> *magnitude[] = {&g.rq, &g.rk, &g.rv};
      for (int r = 0; r < 3; ++r) {
        double largest = 1e-30;
        for (double x : *want[r])
          largest = std::max(largest, std::abs(x));
        std::vector<double> interpreted = expected[3 * c + r].toDoubles();
        for (size_t e = 0; e < want[r]->size(); ++e) {
          if (!round) {
            ASSERT_NEAR(interpreted[e], (*want[r])[e], 1e-5 * largest)
                << cases[c].mask << " gradient " << r << " element " << e;
            continue;
          }
          ASSERT_NEAR(got[3 * c + r][e], (*want[r])[e],
                      std::ldexp((*magnitude[r])[e], -7) + 1e-5 * largest)
              << cases[c].mask << " gradient " << r << " element " << e;
        }
      }
    }
  }
}

/// A non-square model small enough to interpret a training step of.
::aim::ModelConfig smallModelConfig() {
  ::aim::ModelConfig config;
  config.imageHeight = 8;
  config.imageWidth = 12;
  config.channels = 3;
  config.patchSize = 4;
  config.width = 16;
  config.depth = 2;
  config.heads = 2;
  config.mlpRatio = 2;
  config.headWidth = 8;
  config.headDepth = 1;
  return config;
}

/// @train_step's arguments for `config` at batch 4, by name: images,
/// antithetic prefix lengths (1, N-1), (2, N-2), lr, step 3; parameters
/// random; moments small and non-negative.
std::vector<::aim::HostTensor>
trainStepArguments(func::FuncOp step, const ::aim::ModelConfig &config) {
  std::mt19937 rng(9);
  std::normal_distribution<double> normal(0.0, 0.5);
  std::vector<::aim::HostTensor> args;
  for (unsigned i = 0; i < step.getNumArguments(); ++i) {
    auto type = cast<RankedTensorType>(step.getArgumentTypes()[i]);
    std::vector<int64_t> shape(type.getShape().begin(), type.getShape().end());
    std::vector<double> v(type.getNumElements());
    auto input = step.getArgAttrOfType<StringAttr>(
        i, mlir::aim::AimDialect::kInputAttrName);
    auto state = step.getArgAttrOfType<StringAttr>(
        i, mlir::aim::AimDialect::kStateAttrName);
    if (input && input.getValue() == "prefix") {
      int64_t n = config.numPatches();
      args.push_back(::aim::HostTensor::fromDoubles(
          ::aim::DType::I32, shape, {1, double(n - 1), 2, double(n - 2)}));
      continue;
    }
    if (input && input.getValue() == "step") {
      args.push_back(
          ::aim::HostTensor::fromDoubles(::aim::DType::I64, shape, {3}));
      continue;
    }
    for (double &x : v)
      x = static_cast<float>(normal(rng));
    if (input && input.getValue() == "lr")
      v = {1e-3};
    if (state)
      for (double &x : v)
        x = static_cast<float>(std::abs(x) * 1e-2);
    args.push_back(::aim::HostTensor::fromDoubles(::aim::DType::F32, shape, v));
  }
  return args;
}

/// @loss_and_grads' arguments out of @train_step's: the data and the
/// parameters.
std::vector<::aim::HostTensor>
lossAndGradsArguments(func::FuncOp step,
                      const std::vector<::aim::HostTensor> &stepArgs) {
  std::vector<::aim::HostTensor> gradArgs;
  for (unsigned i = 0; i < step.getNumArguments(); ++i) {
    auto input = step.getArgAttrOfType<StringAttr>(
        i, mlir::aim::AimDialect::kInputAttrName);
    bool data =
        input && (input.getValue() == "images" || input.getValue() == "prefix");
    if (data || step.getArgAttr(i, mlir::aim::AimDialect::kParamAttrName))
      gradArgs.push_back(stepArgs[i]);
  }
  return gradArgs;
}

TEST(HostCodegen, WholeTrainingStepOfASmallModel) {
  // A non-square model through the whole pipeline (prefix mask, autodiff,
  // train step, fusion, memory plan); @train_step and @loss_and_grads
  // compiled, loaded and run against the interpreter on the same IR: loss,
  // every gradient, gradient norm, every new parameter and both moments.
  // Tolerance 1e-4 relative: float32 through a few hundred ops in the same
  // order, libm versus std::exp.
  MLIRContext context;
  const ::aim::ModelConfig config = smallModelConfig();
  const int64_t batch = 4;
  auto build = [&] {
    OwningOpRef<ModuleOp> m = ::aim::buildForwardModule(context, config, batch);
    PassManager pm(&context);
    mlir::aim::addStagePipeline(pm, mlir::aim::Stage::Kernels);
    EXPECT_TRUE(succeeded(pm.run(*m)));
    return m;
  };
  OwningOpRef<ModuleOp> reference = build(), compiled = build();
  auto step = reference->lookupSymbol<func::FuncOp>("train_step");
  ASSERT_TRUE(step);
  std::vector<::aim::HostTensor> args = trainStepArguments(step, config);
  // The step, and the loss and every gradient of the same parameters; GEMMs
  // through cblas_sgemm (this test links OpenBLAS and exports it, as aim-run
  // does), the per-op tests above cover the loop form.
  mlir::aim::HostCompileOptions withBlas;
  withBlas.blas = true;
  void *library = compileAndLoad(*compiled, "train-step", withBlas);
  ASSERT_NE(library, nullptr);
  std::vector<int64_t> sizes;
  std::vector<::aim::HostTensor> expected = interpretF32(step, args, sizes);
  expectClose(expected, callEntry(library, "train_step", args, sizes), 1e-4,
              "train_step");
  auto grads = reference->lookupSymbol<func::FuncOp>("loss_and_grads");
  std::vector<::aim::HostTensor> gradArgs = lossAndGradsArguments(step, args);
  std::vector<int64_t> gradSizes;
  std::vector<::aim::HostTensor> expectedGrads =
      interpretF32(grads, gradArgs, gradSizes);
  expectClose(expectedGrads,
              callEntry(library, "loss_and_grads", gradArgs, gradSizes), 1e-4,
              "loss_and_grads");
  dlclose(library);

  // The loop nests tiled as the GPU backend tiles them (codegen/nvptx), run
  // on the CPU: 5 threads a tile, so that the model's dimensions (6, 8, 12,
  // 16, ...) give full tiles and guarded partial ones; GEMMs as loops too.
  OwningOpRef<ModuleOp> tiled = build();
  mlir::aim::HostCompileOptions gpuTiling;
  gpuTiling.gpuTileThreads = 5;
  // Small enough that the gradient norm's and the loss's sums (28), and the
  // long narrow ones such as LayerNorm's weight gradients (26), are split in
  // two stages, as the GPU backend splits aim-600m's.
  gpuTiling.splitReductionsFrom = 16;
  void *tiledLibrary =
      compileAndLoad(*tiled, "train-step-gpu-tiling", gpuTiling);
  ASSERT_NE(tiledLibrary, nullptr);
  expectClose(expected, callEntry(tiledLibrary, "train_step", args, sizes),
              1e-4, "train_step, GPU tiling");
  dlclose(tiledLibrary);

  // And with the GEMMs as the GPU backend calls them: attention's batches
  // over (sample, head) one strided-batched call, its [B, N, heads, dh]
  // operands and results copied batch-major and back, the others with
  // their bias and residual in the call (GemmCalls.h).
  OwningOpRef<ModuleOp> batched = build();
  gpuTiling.blas = true;
  gpuTiling.stridedBatchedGemms = true;
  gpuTiling.gemmEpilogues = true;
  void *batchedLibrary =
      compileAndLoad(*batched, "train-step-gpu-gemm-batches", gpuTiling);
  ASSERT_NE(batchedLibrary, nullptr);
  expectClose(expected, callEntry(batchedLibrary, "train_step", args, sizes),
              1e-4, "train_step, GPU GEMM batches");
  dlclose(batchedLibrary);

  // And with attention as the tiled kernels (TiledAttention.h), on the tile
  // rule aim-prefix-mask recorded, the live rows of the last block too.
  OwningOpRef<ModuleOp> tiledAttentionStep = build();
  gpuTiling.attention = mlir::aim::AttentionLowering::Tiled;
  void *tiledAttentionLibrary = compileAndLoad(
      *tiledAttentionStep, "train-step-gpu-tiled-attention", gpuTiling);
  ASSERT_NE(tiledAttentionLibrary, nullptr);
  expectClose(expected,
              callEntry(tiledAttentionLibrary, "train_step", args, sizes), 1e-4,
              "train_step, GPU tiled attention");
  dlclose(tiledAttentionLibrary);
}

// aim-bf16-gemm-operands, as aimc runs it for GPU code: every GEMM operand
// of the step rounded to bfloat16 once a value in the aim IR, the GEMMs
// float32 sums. Compiled as the host compiles it (loops; cblas_sgemm given
// the copies widened) and as the GPU backend does (tiles, attention's
// batches, the epilogue calls, the copies written by the kernels computing
// their values; and with the generated GEMMs), against the interpreter on the same IR, within 1e-4 as
// above: the roundings are the IR's, so both sides round the same float32
// values, which agree to a few ulps -- a value a few ulps from a bfloat16
// rounding boundary would round apart (one bfloat16 ulp, 2^-8), which
// these arguments do not hit. The roundings are real: the float32 step's
// results differ by far more.
TEST(GemmOperands, RoundedOnceAValueTheStepMatchesTheInterpreter) {
  MLIRContext context;
  const ::aim::ModelConfig config = smallModelConfig();
  auto build = [&](bool bf16) {
    OwningOpRef<ModuleOp> m = ::aim::buildForwardModule(context, config, 4);
    PassManager pm(&context);
    mlir::aim::PipelineOptions pipeline;
    pipeline.bf16GemmOperands = bf16;
    mlir::aim::addStagePipeline(pm, mlir::aim::Stage::Kernels, pipeline);
    EXPECT_TRUE(succeeded(pm.run(*m)));
    return m;
  };
  OwningOpRef<ModuleOp> reference = build(true), f32 = build(false);
  auto step = reference->lookupSymbol<func::FuncOp>("train_step");
  auto grads = reference->lookupSymbol<func::FuncOp>("loss_and_grads");
  ASSERT_TRUE(step && grads);
  // One copy a value: no two casts of the same value.
  llvm::DenseSet<Value> rounded;
  int gemms = 0;
  reference->walk([&](Operation *op) {
    if (auto cast = dyn_cast<mlir::aim::CastOp>(op))
      EXPECT_TRUE(rounded.insert(cast.getInput()).second)
          << "a value is rounded twice";
    if (isa<mlir::aim::LinearOp, mlir::aim::MatmulOp>(op)) {
      ++gemms;
      EXPECT_TRUE(cast<RankedTensorType>(op->getOperand(0).getType())
                      .getElementType()
                      .isBF16());
    }
  });
  EXPECT_GT(gemms, 0);
  EXPECT_LT(static_cast<int>(rounded.size()), 2 * gemms);

  std::vector<::aim::HostTensor> args = trainStepArguments(step, config);
  std::vector<::aim::HostTensor> gradArgs = lossAndGradsArguments(step, args);
  std::vector<int64_t> sizes, gradSizes, f32Sizes;
  std::vector<::aim::HostTensor> expected = interpretF32(step, args, sizes),
                                 expectedGrads =
                                     interpretF32(grads, gradArgs, gradSizes);
  std::vector<::aim::HostTensor> ofF32 = interpretF32(
      f32->lookupSymbol<func::FuncOp>("train_step"), args, f32Sizes);
  ASSERT_EQ(ofF32.size(), expected.size());
  double largest = 0; // relative to each result's largest magnitude
  for (size_t i = 0; i < expected.size(); ++i) {
    std::vector<double> a = expected[i].toDoubles(), b = ofF32[i].toDoubles();
    double scale = 1e-30, diff = 0;
    for (size_t j = 0; j < a.size(); ++j) {
      scale = std::max(scale, std::abs(b[j]));
      diff = std::max(diff, std::abs(a[j] - b[j]));
    }
    largest = std::max(largest, diff / scale);
  }
  EXPECT_GT(largest, 1e-3) << "rounding the operands changed nothing";

  mlir::aim::HostCompileOptions loops, blas, gpu;
  blas.blas = true;
  gpu.blas = true;
  gpu.gpuTileThreads = 5;
  gpu.splitReductionsFrom = 16;
  gpu.stridedBatchedGemms = true;
  gpu.gemmEpilogues = true;
  // And the linear layers' forward as the generated GEMM kernels, their TMA
  // copies and wgmma products emulated (WgmmaGemm.h): they read the copies
  // rounded in the aim IR.
  mlir::aim::HostCompileOptions wgmma = gpu;
  wgmma.gemmKernel = mlir::aim::GemmKernel::Wgmma;
  {
    OwningOpRef<ModuleOp> compiled = build(true);
    llvm::Expected<mlir::aim::HostObject> object =
        mlir::aim::compileToObject(*compiled, wgmma);
    ASSERT_TRUE(bool(object)) << llvm::toString(object.takeError());
    EXPECT_NE(object->bytes.find("aim_emulated_wgmma"), std::string::npos)
        << "no generated GEMM in the step";
  }
  for (auto [options, name] :
       {std::pair{loops, "bf16-step-loops"}, std::pair{blas, "bf16-step-blas"},
        std::pair{gpu, "bf16-step-gpu"}, std::pair{wgmma, "bf16-step-wgmma"}}) {
    OwningOpRef<ModuleOp> compiled = build(true);
    void *library = compileAndLoad(*compiled, name, options);
    ASSERT_NE(library, nullptr);
    expectClose(expected, callEntry(library, "train_step", args, sizes), 1e-4,
                name);
    expectClose(expectedGrads,
                callEntry(library, "loss_and_grads", gradArgs, gradSizes), 1e-4,
                name);
    dlclose(library);
  }
}

// The GPU backend's reduction splits (codegen/kernels/SplitFullReductions.h)
// on linalg directly: what is split, into what, and what is left alone.
// The gradient norm of aim-fmnist's shapes against the float64 interpreter,
// compiled as the host compiles it and as the GPU backend tiles it (blocks
// of 128 threads). Both split the long sums (SplitFullReductions.h); one
// float32 accumulator per sum was 7e-5 low here (0.35% on aim-fmnist's real
// gradients), the split sums are within 2e-7. Bound: 1e-6, 16 float32 ulps.
TEST(SplitReductions, GlobalNormOfModelShapesIsAccurate) {
  const char *source = R"(
    func.func @kernel(%a: tensor<192x1x4x4xf32>, %b: tensor<192xf32>,
                      %c: tensor<576x192xf32>, %d: tensor<192x192xf32>,
                      %e: tensor<768x192xf32>, %f: tensor<192x768xf32>,
                      %g: tensor<16x192xf32>) -> tensor<f32> {
      %0 = aim.global_norm %a, %b, %c, %d, %e, %f, %g
          : tensor<192x1x4x4xf32>, tensor<192xf32>, tensor<576x192xf32>,
            tensor<192x192xf32>, tensor<768x192xf32>, tensor<192x768xf32>,
            tensor<16x192xf32> -> tensor<f32>
      return %0 : tensor<f32>
    })";
  MLIRContext context;
  context.loadDialect<mlir::aim::AimDialect, func::FuncDialect,
                      arith::ArithDialect>();
  OwningOpRef<ModuleOp> reference =
      parseSourceString<ModuleOp>(source, &context);
  ASSERT_TRUE(reference);
  auto f = reference->lookupSymbol<func::FuncOp>("kernel");
  std::vector<::aim::HostTensor> args = randomArguments(f, 3);
  auto exact = ::aim::interp::runFunction(
      f, args, ::aim::interp::Options(::aim::interp::Precision::F64));
  ASSERT_TRUE(bool(exact)) << llvm::toString(exact.takeError());
  double want = (*exact)[0].toDoubles()[0];
  mlir::aim::HostCompileOptions host, gpuTiling;
  gpuTiling.gpuTileThreads = 128;
  for (auto [options, name] :
       {std::pair{host, "global-norm-host"},
        std::pair{gpuTiling, "global-norm-gpu-tiling"}}) {
    OwningOpRef<ModuleOp> compiled =
        parseSourceString<ModuleOp>(source, &context);
    ASSERT_TRUE(compiled);
    auto got = compileAndRun(*compiled, "kernel", name, args, {1}, options);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_NEAR(got[0][0], want, 1e-6 * want) << name;
  }
}

TEST(SplitReductions, FullNarrowAndNonAdditive) {
  MLIRContext ctx;
  ctx.loadDialect<func::FuncDialect, arith::ArithDialect, linalg::LinalgDialect,
                  tensor::TensorDialect>();
  const char *source = R"mlir(
    #id2 = affine_map<(d0, d1) -> (d0, d1)>
    #to0 = affine_map<(d0, d1) -> ()>
    #col = affine_map<(d0, d1) -> (d1)>
    func.func @f(%x: tensor<64x32xf32>, %s: tensor<f32>, %c: tensor<32xf32>)
        -> (tensor<f32>, tensor<32xf32>, tensor<f32>) {
      // A sum of squares to a scalar: split by the outermost dimension.
      %sq = linalg.generic {indexing_maps = [#id2, #to0],
                            iterator_types = ["reduction", "reduction"]}
          ins(%x : tensor<64x32xf32>) outs(%s : tensor<f32>) {
        ^bb0(%a: f32, %acc: f32):
          %m = arith.mulf %a, %a : f32
          %r = arith.addf %acc, %m : f32
          linalg.yield %r : f32
      } -> tensor<f32>
      // Column sums (a LayerNorm weight gradient's shape): 32 columns,
      // 64 rows each: split into chunks of rows.
      %cols = linalg.generic {indexing_maps = [#id2, #col],
                              iterator_types = ["reduction", "parallel"]}
          ins(%x : tensor<64x32xf32>) outs(%c : tensor<32xf32>) {
        ^bb0(%a: f32, %acc: f32):
          %r = arith.addf %acc, %a : f32
          linalg.yield %r : f32
      } -> tensor<32xf32>
      // A maximum is not a sum: left alone.
      %max = linalg.generic {indexing_maps = [#id2, #to0],
                             iterator_types = ["reduction", "reduction"]}
          ins(%x : tensor<64x32xf32>) outs(%s : tensor<f32>) {
        ^bb0(%a: f32, %acc: f32):
          %r = arith.maximumf %acc, %a : f32
          linalg.yield %r : f32
      } -> tensor<f32>
      return %sq, %cols, %max : tensor<f32>, tensor<32xf32>, tensor<f32>
    })mlir";
  OwningOpRef<ModuleOp> module = parseSourceString<ModuleOp>(source, &ctx);
  ASSERT_TRUE(module);
  EXPECT_EQ(mlir::aim::splitFullReductions(*module, /*minElements=*/1024), 1);
  // The full sum's two stages (64 rows of 32, then 64 partials) and the
  // column sums.
  EXPECT_EQ(mlir::aim::splitNarrowReductions(*module, /*maxParallel=*/1 << 15,
                                             /*minReduced=*/32),
            3);
  ASSERT_TRUE(succeeded(verify(*module)));
  int generics = 0, oneThread = 0;
  module->walk([&](linalg::GenericOp op) {
    ++generics;
    oneThread += op.getNumParallelLoops() == 0;
  });
  // sq: 2 stages, each now chunks + their sum; cols: chunks + their sum;
  // max: itself.
  EXPECT_EQ(generics, 7);
  // Left without a parallel loop (one GPU thread): the last sum, over 4
  // chunks, and the maximum.
  EXPECT_EQ(oneThread, 2);
}

/// The dialects of kernels on buffers, as the GPU backend's preparation
/// sees them.
void loadBufferKernelDialects(MLIRContext &ctx) {
  ctx.loadDialect<func::FuncDialect, arith::ArithDialect, linalg::LinalgDialect,
                  memref::MemRefDialect, gpu::GPUDialect, scf::SCFDialect,
                  affine::AffineDialect, math::MathDialect>();
}

template <typename OpTy> int countOps(ModuleOp module) {
  int n = 0;
  module->walk([&](OpTy) { ++n; });
  return n;
}

// Which reductions take a block a row (codegen/kernels/RowReductions.h), on
// linalg on buffers as the GPU backend sees it: consecutive reductions of the
// same rows become one gpu.launch of a block a row with one gpu.all_reduce
// an output; a fill of the identity just before is dropped, any other
// initial value is combined with the row's result.
TEST(RowReductions, WhatIsRewritten) {
  MLIRContext ctx;
  loadBufferKernelDialects(ctx);
  const char *source = R"mlir(
    #rows = affine_map<(d0, d1) -> (d0, d1)>
    #row = affine_map<(d0, d1) -> (d0)>
    #cols = affine_map<(d0, d1) -> (d1, d0)>
    #all = affine_map<(d0) -> (d0)>
    #none = affine_map<(d0) -> ()>
    func.func @f(%x: memref<6x40xf32>, %mean: memref<6xf32>,
                 %max: memref<6xf32>, %acc: memref<6xf32>,
                 %colsum: memref<40xf32>, %short: memref<6xf32>,
                 %sum: memref<6xf32>, %sq: memref<6xf32>,
                 %v: memref<200xf32>, %total: memref<f32>) {
      %zero = arith.constant 0.0 : f32
      %lowest = arith.constant 0xFF800000 : f32
      // A row sum after a fill of zeros: the fill goes.
      linalg.fill ins(%zero : f32) outs(%mean : memref<6xf32>)
      linalg.generic {indexing_maps = [#rows, #row],
                      iterator_types = ["parallel", "reduction"]}
          ins(%x : memref<6x40xf32>) outs(%mean : memref<6xf32>) {
        ^bb0(%a: f32, %o: f32):
          %r = arith.addf %o, %a : f32
          linalg.yield %r : f32
      }
      // A masked maximum (softmax over the visible keys) after -inf.
      linalg.fill ins(%lowest : f32) outs(%max : memref<6xf32>)
      linalg.generic {indexing_maps = [#rows, #row],
                      iterator_types = ["parallel", "reduction"]}
          ins(%x : memref<6x40xf32>) outs(%max : memref<6xf32>) {
        ^bb0(%a: f32, %o: f32):
          %k = linalg.index 1 : index
          %c20 = arith.constant 20 : index
          %visible = arith.cmpi ult, %k, %c20 : index
          %m = arith.maximumf %o, %a : f32
          %r = arith.select %visible, %m, %o : f32
          linalg.yield %r : f32
      }
      // Accumulating into what the output holds: kept, combined.
      linalg.generic {indexing_maps = [#rows, #row],
                      iterator_types = ["parallel", "reduction"]}
          ins(%x : memref<6x40xf32>) outs(%acc : memref<6xf32>) {
        ^bb0(%a: f32, %o: f32):
          %r = arith.addf %a, %o : f32
          linalg.yield %r : f32
      }
      // Column sums read across rows: left to a thread a column.
      linalg.generic {indexing_maps = [#cols, #row],
                      iterator_types = ["parallel", "reduction"]}
          ins(%x : memref<6x40xf32>) outs(%colsum : memref<40xf32>) {
        ^bb0(%a: f32, %o: f32):
          %r = arith.addf %o, %a : f32
          linalg.yield %r : f32
      }
      // Two outputs, a sum and a sum of squares, in one op.
      linalg.fill ins(%zero : f32) outs(%sum : memref<6xf32>)
      linalg.fill ins(%zero : f32) outs(%sq : memref<6xf32>)
      linalg.generic {indexing_maps = [#rows, #row, #row],
                      iterator_types = ["parallel", "reduction"]}
          ins(%x : memref<6x40xf32>) outs(%sum, %sq : memref<6xf32>, memref<6xf32>) {
        ^bb0(%a: f32, %s: f32, %q: f32):
          %a2 = arith.mulf %a, %a : f32
          %r = arith.addf %s, %a : f32
          %r2 = arith.addf %q, %a2 : f32
          linalg.yield %r, %r2 : f32, f32
      }
      // A sum to a scalar: one block.
      linalg.generic {indexing_maps = [#all, #none],
                      iterator_types = ["reduction"]}
          ins(%v : memref<200xf32>) outs(%total : memref<f32>) {
        ^bb0(%a: f32, %o: f32):
          %r = arith.addf %o, %a : f32
          linalg.yield %r : f32
      }
      // Not a combination of the output with the rest: left alone.
      linalg.generic {indexing_maps = [#rows, #row],
                      iterator_types = ["parallel", "reduction"]}
          ins(%x : memref<6x40xf32>) outs(%short : memref<6xf32>) {
        ^bb0(%a: f32, %o: f32):
          %r = arith.addf %o, %a : f32
          %r2 = arith.mulf %r, %o : f32
          linalg.yield %r2 : f32
      }
      return
    })mlir";
  OwningOpRef<ModuleOp> module = parseSourceString<ModuleOp>(source, &ctx);
  ASSERT_TRUE(module);
  mlir::aim::RowReductionOptions options;
  options.minLength = 32;
  // The three reductions of x's rows, then the sum and the sum of squares
  // (the column sums end the first kernel), then the sum to a scalar.
  EXPECT_EQ(mlir::aim::lowerRowReductions(
                *module, mlir::aim::KernelTarget::GpuLaunch, options),
            3);
  ASSERT_TRUE(succeeded(verify(*module)));
  std::vector<int64_t> blocks, threads;
  int combinedIntoOutput = 0;
  module->walk([&](gpu::LaunchOp launch) {
    blocks.push_back(*getConstantIntValue(launch.getGridSizeX()));
    threads.push_back(*getConstantIntValue(launch.getBlockSizeX()));
    launch.walk([&](memref::LoadOp load) {
      combinedIntoOutput +=
          load.getMemref() ==
          module->lookupSymbol<func::FuncOp>("f").getArgument(3);
    });
  });
  int allReduces = countOps<gpu::AllReduceOp>(*module),
      fills = countOps<linalg::FillOp>(*module),
      generics = countOps<linalg::GenericOp>(*module);
  // Rows of 40: 32 threads; 200 to a scalar: 64 threads, one block.
  EXPECT_EQ(blocks, (std::vector<int64_t>{6, 6, 1}));
  EXPECT_EQ(threads, (std::vector<int64_t>{32, 32, 64}));
  EXPECT_EQ(allReduces, 6);
  EXPECT_EQ(fills, 0);
  EXPECT_EQ(generics, 2); // the column sums and the non-combination
  EXPECT_EQ(combinedIntoOutput, 1);
  // Rows shorter than minLength stay a thread a row.
  OwningOpRef<ModuleOp> again = parseSourceString<ModuleOp>(source, &ctx);
  options.minLength = 41;
  EXPECT_EQ(mlir::aim::lowerRowReductions(
                *again, mlir::aim::KernelTarget::GpuLaunch, options),
            1);
  EXPECT_EQ(mlir::aim::rowReductionThreads(1536), 256);
  EXPECT_EQ(mlir::aim::rowReductionThreads(257), 96);
}

// Which in-place results may be written into their arguments' buffers
// (codegen/kernels/SharedResultBuffers.h): only where every read of the
// argument comes before the result's first write, or is that write's own
// element-wise kernel at the same element.
TEST(SharedResultBuffers, OnlyWhereNoReadFollowsTheWrite) {
  MLIRContext ctx;
  loadBufferKernelDialects(ctx);
  ctx.loadDialect<mlir::aim::AimDialect>();
  const char *source = R"mlir(
    #id = affine_map<(d0) -> (d0)>
    #reversed = affine_map<(d0) -> (3 - d0)>
    #none = affine_map<(d0) -> ()>
    func.func private @update(%p: memref<4xf32>, %g: memref<4xf32>,
                              %out: memref<4xf32>) {
      linalg.generic {indexing_maps = [#id, #id, #id],
                      iterator_types = ["parallel"]}
          ins(%p, %g : memref<4xf32>, memref<4xf32>)
          outs(%out : memref<4xf32>) {
        ^bb0(%a: f32, %b: f32, %o: f32):
          %s = arith.subf %a, %b : f32
          linalg.yield %s : f32
      }
      return
    }
    func.func private @reverse(%p: memref<4xf32>, %out: memref<4xf32>) {
      linalg.generic {indexing_maps = [#reversed, #id],
                      iterator_types = ["parallel"]}
          ins(%p : memref<4xf32>) outs(%out : memref<4xf32>) {
        ^bb0(%a: f32, %o: f32):
          linalg.yield %a : f32
      }
      return
    }
    func.func private @sum(%p: memref<4xf32>, %out: memref<f32>) {
      linalg.generic {indexing_maps = [#id, #none],
                      iterator_types = ["reduction"]}
          ins(%p : memref<4xf32>) outs(%out : memref<f32>) {
        ^bb0(%a: f32, %o: f32):
          %s = arith.addf %a, %o : f32
          linalg.yield %s : f32
      }
      return
    }
    func.func @step(%w: memref<4xf32> {aim.param = "w"},
                    %v: memref<4xf32> {aim.param = "v"},
                    %u: memref<4xf32> {aim.state = "u"},
                    %g: memref<4xf32> {aim.input = "g"},
                    %loss: memref<f32> {aim.output = "loss"},
                    %w2: memref<4xf32> {aim.param = "w"},
                    %v2: memref<4xf32> {aim.param = "v"},
                    %u2: memref<4xf32> {aim.state = "u"}) {
      // w: read, then updated element by element: shared.
      call @sum(%w, %loss) : (memref<4xf32>, memref<f32>) -> ()
      call @update(%w, %g, %w2)
          : (memref<4xf32>, memref<4xf32>, memref<4xf32>) -> ()
      // v: read again after its update: a buffer of its own.
      call @update(%v, %g, %v2)
          : (memref<4xf32>, memref<4xf32>, memref<4xf32>) -> ()
      call @sum(%v, %loss) : (memref<4xf32>, memref<f32>) -> ()
      // u: each element written from another one: a buffer of its own.
      call @reverse(%u, %u2) : (memref<4xf32>, memref<4xf32>) -> ()
      return
    })mlir";
  OwningOpRef<ModuleOp> module = parseSourceString<ModuleOp>(source, &ctx);
  ASSERT_TRUE(module);
  auto shared = mlir::aim::resultsSharingArgumentBuffers(*module);
  ASSERT_EQ(shared.size(), 1u);
  EXPECT_EQ(shared["step"], std::vector<std::string>({"w"}));
}

// LayerNorm's forward pass on buffers (as the GPU backend sees it): the sum,
// the mean, the sum of squares, the reciprocal deviation and the normalised
// rows become one block a row (two block reductions), the mean and the
// deviation kept in registers. An element-wise op reading another thread's
// element (the row reversed) starts a kernel of its own.
TEST(RowReductions, LayerNormIsOneKernel) {
  MLIRContext ctx;
  loadBufferKernelDialects(ctx);
  const char *source = R"mlir(
    #rows = affine_map<(d0, d1) -> (d0, d1)>
    #row = affine_map<(d0, d1) -> (d0)>
    #col = affine_map<(d0, d1) -> (d1)>
    #reversed = affine_map<(d0, d1) -> (d0, 39 - d1)>
    #id = affine_map<(d0) -> (d0)>
    func.func @f(%x: memref<6x40xf32>, %g: memref<40xf32>,
                 %y: memref<6x40xf32>, %z: memref<6x40xf32>) {
      %zero = arith.constant 0.0 : f32
      %n = arith.constant 40.0 : f32
      %eps = arith.constant 1.0e-6 : f32
      %sum = memref.alloc() : memref<6xf32>
      linalg.fill ins(%zero : f32) outs(%sum : memref<6xf32>)
      linalg.generic {indexing_maps = [#rows, #row],
                      iterator_types = ["parallel", "reduction"]}
          ins(%x : memref<6x40xf32>) outs(%sum : memref<6xf32>) {
        ^bb0(%a: f32, %o: f32):
          %r = arith.addf %o, %a : f32
          linalg.yield %r : f32
      }
      %mean = memref.alloc() : memref<6xf32>
      linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel"]}
          ins(%sum : memref<6xf32>) outs(%mean : memref<6xf32>) {
        ^bb0(%a: f32, %o: f32):
          %r = arith.divf %a, %n : f32
          linalg.yield %r : f32
      }
      %sq = memref.alloc() : memref<6xf32>
      linalg.fill ins(%zero : f32) outs(%sq : memref<6xf32>)
      linalg.generic {indexing_maps = [#rows, #row, #row],
                      iterator_types = ["parallel", "reduction"]}
          ins(%x, %mean : memref<6x40xf32>, memref<6xf32>)
          outs(%sq : memref<6xf32>) {
        ^bb0(%a: f32, %m: f32, %o: f32):
          %d = arith.subf %a, %m : f32
          %d2 = arith.mulf %d, %d : f32
          %r = arith.addf %o, %d2 : f32
          linalg.yield %r : f32
      }
      %rstd = memref.alloc() : memref<6xf32>
      linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel"]}
          ins(%sq : memref<6xf32>) outs(%rstd : memref<6xf32>) {
        ^bb0(%a: f32, %o: f32):
          %v = arith.divf %a, %n : f32
          %ve = arith.addf %v, %eps : f32
          %r = math.rsqrt %ve : f32
          linalg.yield %r : f32
      }
      linalg.generic {indexing_maps = [#rows, #row, #row, #col, #rows],
                      iterator_types = ["parallel", "parallel"]}
          ins(%x, %mean, %rstd, %g
              : memref<6x40xf32>, memref<6xf32>, memref<6xf32>, memref<40xf32>)
          outs(%y : memref<6x40xf32>) {
        ^bb0(%a: f32, %m: f32, %s: f32, %w: f32, %o: f32):
          %d = arith.subf %a, %m : f32
          %n1 = arith.mulf %d, %s : f32
          %r = arith.mulf %n1, %w : f32
          linalg.yield %r : f32
      }
      linalg.generic {indexing_maps = [#reversed, #rows],
                      iterator_types = ["parallel", "parallel"]}
          ins(%y : memref<6x40xf32>) outs(%z : memref<6x40xf32>) {
        ^bb0(%a: f32, %o: f32):
          linalg.yield %a : f32
      }
      return
    })mlir";
  OwningOpRef<ModuleOp> module = parseSourceString<ModuleOp>(source, &ctx);
  ASSERT_TRUE(module);
  EXPECT_EQ(mlir::aim::lowerRowReductions(
                *module, mlir::aim::KernelTarget::GpuLaunch, {}),
            1);
  ASSERT_TRUE(succeeded(verify(*module)));
  int launches = countOps<gpu::LaunchOp>(*module),
      allReduces = countOps<gpu::AllReduceOp>(*module),
      generics = countOps<linalg::GenericOp>(*module),
      fills = countOps<linalg::FillOp>(*module);
  EXPECT_EQ(launches, 1);
  EXPECT_EQ(allReduces, 2);
  EXPECT_EQ(generics, 1); // the reversal
  EXPECT_EQ(fills, 0);
  // The mean is read from registers: the launch loads %sum and %mean
  // nowhere (it stores them, once a row).
  int rowLoads = 0;
  module->walk([&](memref::LoadOp load) {
    rowLoads += load.getMemref().getDefiningOp<memref::AllocOp>() != nullptr;
  });
  EXPECT_EQ(rowLoads, 0);
}

// Independent element-wise ops of one kernel function (the optimiser's
// updates, one a parameter) become one multi-tensor kernel
// (codegen/kernels/MultiTensorKernels.h); an op reading what one of them
// wrote -- as an operand, or loaded in its body -- starts another.
TEST(MultiTensorKernels, IndependentOpsShareAKernel) {
  MLIRContext ctx;
  loadBufferKernelDialects(ctx);
  const char *source = R"mlir(
    #id1 = affine_map<(d0) -> (d0)>
    #id2 = affine_map<(d0, d1) -> (d0, d1)>
    #t2 = affine_map<(d0, d1) -> (d1, d0)>
    func.func @f(%a: memref<300xf32>, %b: memref<20x30xf32>,
                 %c: memref<7xf32>, %a2: memref<300xf32>,
                 %b2: memref<30x20xf32>, %c2: memref<7xf32>,
                 %d: memref<300xf32>, %e: memref<7xf32>) {
      %two = arith.constant 2.0 : f32
      linalg.generic {indexing_maps = [#id1, #id1],
                      iterator_types = ["parallel"]}
          ins(%a : memref<300xf32>) outs(%a2 : memref<300xf32>) {
        ^bb0(%x: f32, %o: f32):
          %r = arith.mulf %x, %two : f32
          linalg.yield %r : f32
      }
      // Transposed into its output: still one element an iteration.
      linalg.generic {indexing_maps = [#id2, #t2],
                      iterator_types = ["parallel", "parallel"]}
          ins(%b : memref<20x30xf32>) outs(%b2 : memref<30x20xf32>) {
        ^bb0(%x: f32, %o: f32):
          %r = arith.addf %x, %two : f32
          linalg.yield %r : f32
      }
      linalg.generic {indexing_maps = [#id1, #id1],
                      iterator_types = ["parallel"]}
          ins(%c : memref<7xf32>) outs(%c2 : memref<7xf32>) {
        ^bb0(%x: f32, %o: f32):
          %r = arith.subf %x, %two : f32
          linalg.yield %r : f32
      }
      // Reads %a2, written above: a new kernel...
      linalg.generic {indexing_maps = [#id1, #id1],
                      iterator_types = ["parallel"]}
          ins(%a2 : memref<300xf32>) outs(%d : memref<300xf32>) {
        ^bb0(%x: f32, %o: f32):
          %r = arith.mulf %x, %x : f32
          linalg.yield %r : f32
      }
      // ... and so does this one, loading %d in its body.
      linalg.generic {indexing_maps = [#id1], iterator_types = ["parallel"]}
          outs(%e : memref<7xf32>) {
        ^bb0(%o: f32):
          %i = linalg.index 0 : index
          %x = memref.load %d[%i] : memref<300xf32>
          linalg.yield %x : f32
      }
      return
    })mlir";
  OwningOpRef<ModuleOp> module = parseSourceString<ModuleOp>(source, &ctx);
  ASSERT_TRUE(module);
  EXPECT_EQ(mlir::aim::mergeIndependentElementwise(
                *module, mlir::aim::KernelTarget::GpuLaunch, {}),
            1);
  ASSERT_TRUE(succeeded(verify(*module)));
  std::vector<int64_t> blocks, threads;
  module->walk([&](gpu::LaunchOp launch) {
    blocks.push_back(*getConstantIntValue(launch.getGridSizeX()));
    threads.push_back(*getConstantIntValue(launch.getBlockSizeX()));
  });
  // The largest op, 600 elements: 3 blocks of 256 threads.
  EXPECT_EQ(blocks, std::vector<int64_t>({3}));
  EXPECT_EQ(threads, std::vector<int64_t>({256}));
  int generics = countOps<linalg::GenericOp>(*module);
  EXPECT_EQ(generics, 2); // the last two, each a kernel of its own
}

// Softmax on buffers: the scaling of the scores just before the row maximum
// joins its row kernel, so the scaled scores are written and read back by
// the same thread; the whole softmax is one kernel.
TEST(RowReductions, SoftmaxWithItsScalingIsOneKernel) {
  MLIRContext ctx;
  loadBufferKernelDialects(ctx);
  const char *source = R"mlir(
    #rows = affine_map<(d0, d1) -> (d0, d1)>
    #row = affine_map<(d0, d1) -> (d0)>
    func.func @f(%x: memref<6x40xf32>, %p: memref<6x40xf32>) {
      %scale = arith.constant 0.125 : f32
      %zero = arith.constant 0.0 : f32
      %lowest = arith.constant 0xFF800000 : f32
      %s = memref.alloc() : memref<6x40xf32>
      linalg.generic {indexing_maps = [#rows, #rows],
                      iterator_types = ["parallel", "parallel"]}
          ins(%x : memref<6x40xf32>) outs(%s : memref<6x40xf32>) {
        ^bb0(%a: f32, %o: f32):
          %r = arith.mulf %a, %scale : f32
          linalg.yield %r : f32
      }
      %m = memref.alloc() : memref<6xf32>
      linalg.fill ins(%lowest : f32) outs(%m : memref<6xf32>)
      linalg.generic {indexing_maps = [#rows, #row],
                      iterator_types = ["parallel", "reduction"]}
          ins(%s : memref<6x40xf32>) outs(%m : memref<6xf32>) {
        ^bb0(%a: f32, %o: f32):
          %r = arith.maximumf %o, %a : f32
          linalg.yield %r : f32
      }
      %d = memref.alloc() : memref<6xf32>
      linalg.fill ins(%zero : f32) outs(%d : memref<6xf32>)
      linalg.generic {indexing_maps = [#rows, #row, #row],
                      iterator_types = ["parallel", "reduction"]}
          ins(%s, %m : memref<6x40xf32>, memref<6xf32>)
          outs(%d : memref<6xf32>) {
        ^bb0(%a: f32, %mx: f32, %o: f32):
          %e = arith.subf %a, %mx : f32
          %x2 = math.exp %e : f32
          %r = arith.addf %o, %x2 : f32
          linalg.yield %r : f32
      }
      linalg.generic {indexing_maps = [#rows, #row, #row, #rows],
                      iterator_types = ["parallel", "parallel"]}
          ins(%s, %m, %d : memref<6x40xf32>, memref<6xf32>, memref<6xf32>)
          outs(%p : memref<6x40xf32>) {
        ^bb0(%a: f32, %mx: f32, %sum: f32, %o: f32):
          %e = arith.subf %a, %mx : f32
          %x2 = math.exp %e : f32
          %r = arith.divf %x2, %sum : f32
          linalg.yield %r : f32
      }
      return
    })mlir";
  OwningOpRef<ModuleOp> module = parseSourceString<ModuleOp>(source, &ctx);
  ASSERT_TRUE(module);
  EXPECT_EQ(mlir::aim::lowerRowReductions(
                *module, mlir::aim::KernelTarget::GpuLaunch, {}),
            1);
  ASSERT_TRUE(succeeded(verify(*module)));
  int launches = countOps<gpu::LaunchOp>(*module),
      generics = countOps<linalg::GenericOp>(*module),
      fills = countOps<linalg::FillOp>(*module);
  EXPECT_EQ(launches, 1);
  EXPECT_EQ(generics, 0);
  EXPECT_EQ(fills, 0);
}

// Independent launches become one (codegen/kernels/MergedLaunches.h): each
// keeps its own range of the merged grid, a launch with fewer threads runs
// in the first ones, one that synchronises its block joins only a kernel of
// its own block size, and a launch that reads what another writes waits for
// the next level. The run's deallocation moves after the merged kernels.
TEST(MergedLaunches, IndependentLaunchesShareAKernel) {
  MLIRContext ctx;
  loadBufferKernelDialects(ctx);
  const char *source = R"mlir(
    func.func @f(%x: memref<64xf32>, %y: memref<64xf32>, %w: memref<4x64xf32>,
                 %s: memref<4xf32>, %s2: memref<4xf32>, %t: memref<64xf32>,
                 %z: memref<8xf32>) {
      %c0 = arith.constant 0 : index
      %c1 = arith.constant 1 : index
      %c2 = arith.constant 2 : index
      %c4 = arith.constant 4 : index
      %c8 = arith.constant 8 : index
      %c32 = arith.constant 32 : index
      %c64 = arith.constant 64 : index
      %one = arith.constant 1.0 : f32
      // A: y = x + 1, 2 blocks of 32 threads.
      gpu.launch blocks(%bx, %by, %bz) in (%gx = %c2, %gy = %c1, %gz = %c1)
                 threads(%tx, %ty, %tz) in (%sx = %c32, %sy = %c1, %sz = %c1) {
        %base = arith.muli %bx, %sx : index
        %i = arith.addi %base, %tx : index
        %v = memref.load %x[%i] : memref<64xf32>
        %r = arith.addf %v, %one : f32
        memref.store %r, %y[%i] : memref<64xf32>
        gpu.terminator
      }
      %tmp = memref.alloc() : memref<8xf32>
      // B: a 1x2 grid of 4 threads fills %tmp.
      gpu.launch blocks(%bx, %by, %bz) in (%gx = %c1, %gy = %c2, %gz = %c1)
                 threads(%tx, %ty, %tz) in (%sx = %c4, %sy = %c1, %sz = %c1) {
        %base = arith.muli %by, %c4 : index
        %i = arith.addi %base, %tx : index
        memref.store %one, %tmp[%i] : memref<8xf32>
        gpu.terminator
      }
      // C: row sums of %w, a block of 64 a row.
      gpu.launch blocks(%bx, %by, %bz) in (%gx = %c4, %gy = %c1, %gz = %c1)
                 threads(%tx, %ty, %tz) in (%sx = %c64, %sy = %c1, %sz = %c1) {
        %v = memref.load %w[%bx, %tx] : memref<4x64xf32>
        %sum = gpu.all_reduce add %v uniform {} : (f32) -> f32
        memref.store %sum, %s[%bx] : memref<4xf32>
        gpu.terminator
      }
      // C2: the same with 32 threads a row: not in C's kernel.
      gpu.launch blocks(%bx, %by, %bz) in (%gx = %c4, %gy = %c1, %gz = %c1)
                 threads(%tx, %ty, %tz) in (%sx = %c32, %sy = %c1, %sz = %c1) {
        %v = memref.load %w[%bx, %tx] : memref<4x64xf32>
        %sum = gpu.all_reduce add %v uniform {} : (f32) -> f32
        memref.store %sum, %s2[%bx] : memref<4xf32>
        gpu.terminator
      }
      // D reads %y (A's) and E reads %tmp (B's): the next level.
      gpu.launch blocks(%bx, %by, %bz) in (%gx = %c1, %gy = %c1, %gz = %c1)
                 threads(%tx, %ty, %tz) in (%sx = %c64, %sy = %c1, %sz = %c1) {
        %v = memref.load %y[%tx] : memref<64xf32>
        memref.store %v, %t[%tx] : memref<64xf32>
        gpu.terminator
      }
      gpu.launch blocks(%bx, %by, %bz) in (%gx = %c1, %gy = %c1, %gz = %c1)
                 threads(%tx, %ty, %tz) in (%sx = %c8, %sy = %c1, %sz = %c1) {
        %v = memref.load %tmp[%tx] : memref<8xf32>
        memref.store %v, %z[%tx] : memref<8xf32>
        gpu.terminator
      }
      memref.dealloc %tmp : memref<8xf32>
      return
    })mlir";
  OwningOpRef<ModuleOp> module = parseSourceString<ModuleOp>(source, &ctx);
  ASSERT_TRUE(module);
  // Six launches in, three out.
  EXPECT_EQ(mlir::aim::mergeIndependentLaunches(*module), 5);
  ASSERT_TRUE(succeeded(verify(*module)));
  std::vector<int64_t> blocks, threads;
  std::vector<int> branches;
  module->walk([&](gpu::LaunchOp launch) {
    blocks.push_back(*getConstantIntValue(launch.getGridSizeX()));
    threads.push_back(*getConstantIntValue(launch.getBlockSizeX()));
    int ifs = 0;
    launch.getBody().walk([&](scf::IfOp) { ++ifs; });
    branches.push_back(ifs);
  });
  // Level 0: A (2 blocks), B (2), C (4) in 64 threads, then C2 alone;
  // level 1: D and E (a block each) in 64 threads.
  EXPECT_EQ(blocks, std::vector<int64_t>({8, 4, 2}));
  EXPECT_EQ(threads, std::vector<int64_t>({64, 32, 64}));
  // A binary search on the block id (two comparisons for three launches),
  // and a guard for each launch with fewer threads (A, B; E).
  EXPECT_EQ(branches, std::vector<int>({4, 0, 2}));
  // The deallocation follows the last kernel that reads %tmp.
  Operation *last = nullptr;
  module->walk([&](gpu::LaunchOp launch) { last = launch; });
  EXPECT_TRUE(isa<memref::DeallocOp>(last->getNextNode()));
}

// The gradient of disjoint slices (codegen/kernels/SummedSlices.h): a sum of
// zero-padded slices becomes the slices copied into their places; zeros
// only where no slice lands; overlapping slices stay a sum.
TEST(SummedSlices, DisjointSlicesAreCopiedIntoPlace) {
  MLIRContext ctx;
  loadBufferKernelDialects(ctx);
  const char *source = R"mlir(
    #id = affine_map<(d0, d1) -> (d0, d1)>
    func.func @f(%a: memref<4x2xf32>, %b: memref<4x3xf32>, %out: memref<4x6xf32>,
                 %out2: memref<4x6xf32>) {
      %zero = arith.constant 0.0 : f32
      %pa = memref.alloc() : memref<4x6xf32>
      linalg.fill ins(%zero : f32) outs(%pa : memref<4x6xf32>)
      %sa = memref.subview %pa[0, 0] [4, 2] [1, 1]
          : memref<4x6xf32> to memref<4x2xf32, strided<[6, 1]>>
      linalg.copy ins(%a : memref<4x2xf32>) outs(%sa : memref<4x2xf32, strided<[6, 1]>>)
      %pb = memref.alloc() : memref<4x6xf32>
      linalg.fill ins(%zero : f32) outs(%pb : memref<4x6xf32>)
      %sb = memref.subview %pb[0, 3] [4, 3] [1, 1]
          : memref<4x6xf32> to memref<4x3xf32, strided<[6, 1], offset: 3>>
      linalg.copy ins(%b : memref<4x3xf32>) outs(%sb : memref<4x3xf32, strided<[6, 1], offset: 3>>)
      linalg.generic {indexing_maps = [#id, #id, #id],
                      iterator_types = ["parallel", "parallel"]}
          ins(%pa, %pb : memref<4x6xf32>, memref<4x6xf32>)
          outs(%out : memref<4x6xf32>) {
        ^bb0(%x: f32, %y: f32, %o: f32):
          %s = arith.addf %x, %y : f32
          linalg.yield %s : f32
      }
      memref.dealloc %pa : memref<4x6xf32>
      memref.dealloc %pb : memref<4x6xf32>
      // Overlapping (columns 1 and 2 of both): a sum, left alone.
      %qa = memref.alloc() : memref<4x6xf32>
      linalg.fill ins(%zero : f32) outs(%qa : memref<4x6xf32>)
      %ta = memref.subview %qa[0, 1] [4, 2] [1, 1]
          : memref<4x6xf32> to memref<4x2xf32, strided<[6, 1], offset: 1>>
      linalg.copy ins(%a : memref<4x2xf32>) outs(%ta : memref<4x2xf32, strided<[6, 1], offset: 1>>)
      %qb = memref.alloc() : memref<4x6xf32>
      linalg.fill ins(%zero : f32) outs(%qb : memref<4x6xf32>)
      %tb = memref.subview %qb[0, 0] [4, 3] [1, 1]
          : memref<4x6xf32> to memref<4x3xf32, strided<[6, 1]>>
      linalg.copy ins(%b : memref<4x3xf32>) outs(%tb : memref<4x3xf32, strided<[6, 1]>>)
      linalg.generic {indexing_maps = [#id, #id, #id],
                      iterator_types = ["parallel", "parallel"]}
          ins(%qa, %qb : memref<4x6xf32>, memref<4x6xf32>)
          outs(%out2 : memref<4x6xf32>) {
        ^bb0(%x: f32, %y: f32, %o: f32):
          %s = arith.addf %x, %y : f32
          linalg.yield %s : f32
      }
      memref.dealloc %qa : memref<4x6xf32>
      memref.dealloc %qb : memref<4x6xf32>
      return
    })mlir";
  OwningOpRef<ModuleOp> module = parseSourceString<ModuleOp>(source, &ctx);
  ASSERT_TRUE(module);
  EXPECT_EQ(mlir::aim::copySlicesInsteadOfSummingPads(*module), 1);
  ASSERT_TRUE(succeeded(verify(*module)));
  // The first sum: %out zero-filled (column 2 is in no slice), two copies
  // into it. The second untouched: two fills, two copies, the sum.
  std::vector<Value> filled, copiedInto;
  module->walk([&](linalg::FillOp fill) {
    filled.push_back(mlir::aim::rootBuffer(fill.getOutputs()[0]));
  });
  module->walk([&](linalg::CopyOp copy) {
    copiedInto.push_back(mlir::aim::rootBuffer(copy.getOutputs()[0]));
  });
  func::FuncOp f = *module->getOps<func::FuncOp>().begin();
  Value out = f.getArgument(2);
  ASSERT_EQ(filled.size(), 3u);
  EXPECT_EQ(filled[0], out);
  ASSERT_EQ(copiedInto.size(), 4u);
  EXPECT_EQ(copiedInto[0], out);
  EXPECT_EQ(copiedInto[1], out);
  EXPECT_EQ(countOps<linalg::GenericOp>(*module), 1);
}

// Attention's products on the GPU (codegen/kernels/GemmCalls.h): a batch of
// GEMMs over (sample, head) is one strided-batched call; operands laid out
// [B, N, heads, dh] (per (sample, head) offsets b N H dh + h dh, not one
// stride) are copied to [B, heads, N, dh] first, and a result so laid out is
// copied back after the call.
TEST(GemmCalls, AttentionBatchIsOneCall) {
  MLIRContext ctx;
  loadBufferKernelDialects(ctx);
  ctx.loadDialect<LLVM::LLVMDialect>();
  const char *source = R"mlir(
    #a = affine_map<(o, i, m, n, k) -> (o, i, m, k)>
    #b = affine_map<(o, i, m, n, k) -> (o, k, i, n)>
    #c = affine_map<(o, i, m, n, k) -> (o, m, i, n)>
    func.func @f(%p: memref<2x4x6x6xf32>, %v: memref<2x6x4x8xf32>,
                 %out: memref<2x6x4x8xf32>) {
      %zero = arith.constant 0.0 : f32
      linalg.fill ins(%zero : f32) outs(%out : memref<2x6x4x8xf32>)
      linalg.generic {indexing_maps = [#a, #b, #c],
                      iterator_types = ["parallel", "parallel", "parallel",
                                        "parallel", "reduction"]}
          ins(%p, %v : memref<2x4x6x6xf32>, memref<2x6x4x8xf32>)
          outs(%out : memref<2x6x4x8xf32>) attrs = {aim.batched_gemm} {
        ^bb0(%x: f32, %y: f32, %acc: f32):
          %m = arith.mulf %x, %y : f32
          %s = arith.addf %acc, %m : f32
          linalg.yield %s : f32
      }
      return
    })mlir";
  OwningOpRef<ModuleOp> module = parseSourceString<ModuleOp>(source, &ctx);
  ASSERT_TRUE(module);
  mlir::aim::callGemmFunction(*module, "gemm", "gemm_batched");
  ASSERT_TRUE(succeeded(verify(*module)));
  std::vector<int64_t> batches;
  module->walk([&](func::CallOp call) {
    ASSERT_EQ(call.getCallee(), "gemm_batched");
    batches.push_back(*getConstantIntValue(call.getOperands().back()));
  });
  EXPECT_EQ(batches, std::vector<int64_t>({8})); // 2 samples x 4 heads
  // P is already one batch; V copied in, the result copied out (beta 0:
  // the zero fill went, nothing copied in), both buffers freed.
  std::vector<std::vector<int64_t>> copied;
  module->walk([&](linalg::GenericOp copy) {
    ArrayRef<int64_t> shape =
        cast<MemRefType>(copy.getDpsInits()[0].getType()).getShape();
    copied.emplace_back(shape.begin(), shape.end());
  });
  EXPECT_EQ(copied,
            (std::vector<std::vector<int64_t>>{{2, 4, 6, 8}, {2, 6, 4, 8}}));
  EXPECT_EQ(countOps<linalg::FillOp>(*module), 0);
  EXPECT_EQ(countOps<memref::DeallocOp>(*module), 2);
}

// Element-wise ops of several elements a thread
// (codegen/kernels/ElementwiseKernels.h): outputs written at a permutation
// of the iteration, inputs read at projections of it, big enough; all loads
// of a thread before its first store; vectors where every operand that
// varies along the innermost loop has it innermost.
TEST(ElementwiseKernels, WhatIsRewritten) {
  MLIRContext ctx;
  loadBufferKernelDialects(ctx);
  const char *source = R"mlir(
    #id = affine_map<(d0, d1) -> (d0, d1)>
    #t = affine_map<(d0, d1) -> (d1, d0)>
    #row = affine_map<(d0, d1) -> (d0)>
    #col = affine_map<(d0, d1) -> (d1)>
    #id4 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
    #swap4 = affine_map<(d0, d1, d2, d3) -> (d0, d2, d1, d3)>
    func.func @f(%x: memref<48x100xf32>, %y: memref<48x100xf32>,
                 %z: memref<48x100xf32>, %xt: memref<100x48xf32>,
                 %s: memref<2x3xf32>, %s2: memref<2x3xf32>,
                 %r: memref<48xf32>, %c: memref<100xf32>,
                 %q: memref<2x16x4x32xf32>, %qb: memref<2x4x16x32xbf16>,
                 %sq: memref<64x64xf32>) {
      // y = x * x + y, in place on y: vectors.
      linalg.generic {indexing_maps = [#id, #id, #id],
                      iterator_types = ["parallel", "parallel"]}
          ins(%x, %y : memref<48x100xf32>, memref<48x100xf32>)
          outs(%y : memref<48x100xf32>) {
        ^bb0(%a: f32, %b: f32, %o: f32):
          %m = arith.mulf %a, %a : f32
          %r0 = arith.addf %m, %b : f32
          linalg.yield %r0 : f32
      }
      // A transposed read: scalars (its innermost dimension is not the
      // loop's).
      linalg.generic {indexing_maps = [#t, #id],
                      iterator_types = ["parallel", "parallel"]}
          ins(%xt : memref<100x48xf32>) outs(%z : memref<48x100xf32>) {
        ^bb0(%a: f32, %o: f32):
          linalg.yield %a : f32
      }
      // A row's scalar and a column's bias: vectors (the row's value one
      // scalar for the vector).
      linalg.generic {indexing_maps = [#row, #col, #id],
                      iterator_types = ["parallel", "parallel"]}
          ins(%r, %c : memref<48xf32>, memref<100xf32>) outs(%z : memref<48x100xf32>) {
        ^bb0(%a: f32, %b: f32, %o: f32):
          %m = arith.mulf %a, %b : f32
          linalg.yield %m : f32
      }
      // Attention's batch-major copy, rounded to bfloat16: 16-byte loads at
      // the permuted indices, 8-byte stores.
      linalg.generic {indexing_maps = [#swap4, #id4],
                      iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
          ins(%q : memref<2x16x4x32xf32>) outs(%qb : memref<2x4x16x32xbf16>) {
        ^bb0(%a: f32, %o: bf16):
          %h = arith.truncf %a : f32 to bf16
          linalg.yield %h : bf16
      }
      // Too small: left alone.
      linalg.generic {indexing_maps = [#id, #id],
                      iterator_types = ["parallel", "parallel"]}
          ins(%s : memref<2x3xf32>) outs(%s2 : memref<2x3xf32>) {
        ^bb0(%a: f32, %o: f32):
          linalg.yield %a : f32
      }
      // In place through another map (a matrix transposed into itself): an
      // iteration would read what another one wrote. Left alone.
      linalg.generic {indexing_maps = [#t, #id],
                      iterator_types = ["parallel", "parallel"]}
          ins(%sq : memref<64x64xf32>) outs(%sq : memref<64x64xf32>) {
        ^bb0(%a: f32, %o: f32):
          linalg.yield %a : f32
      }
      return
    })mlir";
  OwningOpRef<ModuleOp> module = parseSourceString<ModuleOp>(source, &ctx);
  ASSERT_TRUE(module);
  EXPECT_EQ(mlir::aim::lowerElementwiseOps(*module,
                                           mlir::aim::KernelTarget::GpuLaunch),
            4);
  ASSERT_TRUE(succeeded(verify(*module)));
  EXPECT_EQ(countOps<linalg::GenericOp>(*module), 2);
  SmallVector<gpu::LaunchOp> launches;
  module->walk([&](gpu::LaunchOp l) { launches.push_back(l); });
  ASSERT_EQ(launches.size(), 4u);
  struct Accesses {
    int vectorLoads = 0, scalarLoads = 0, vectorStores = 0, scalarStores = 0;
    int accessesAfterAStore = 0;
    SmallVector<uint64_t> loadAlignments, storeAlignments;
  };
  auto accessesOf = [](gpu::LaunchOp launch) {
    Accesses a;
    bool stored = false;
    launch.getBody().walk([&](Operation *op) {
      if (auto load = dyn_cast<vector::LoadOp>(op)) {
        ++a.vectorLoads;
        a.loadAlignments.push_back(load.getAlignment().value_or(0));
      }
      a.scalarLoads += isa<memref::LoadOp>(op);
      a.accessesAfterAStore +=
          stored && isa<vector::LoadOp, memref::LoadOp>(op);
      if (auto store = dyn_cast<vector::StoreOp>(op)) {
        ++a.vectorStores;
        a.storeAlignments.push_back(store.getAlignment().value_or(0));
      }
      a.scalarStores += isa<memref::StoreOp>(op);
      stored |= isa<vector::StoreOp, memref::StoreOp>(op);
    });
    return a;
  };
  // 4800 float32s, rows of 100: vectors of 4, two a thread, chunks of
  // 256 x 8 elements: 3 blocks, the last partial. Four 16-byte loads (x and
  // y, two vectors each), all before the first store; two guarded stores.
  EXPECT_EQ(*getConstantIntValue(launches[0].getGridSizeX()), 3);
  EXPECT_EQ(*getConstantIntValue(launches[0].getBlockSizeX()), 256);
  Accesses same = accessesOf(launches[0]);
  EXPECT_EQ(same.vectorLoads, 4);
  EXPECT_EQ(same.scalarLoads, 0);
  EXPECT_EQ(same.vectorStores, 2);
  EXPECT_EQ(same.accessesAfterAStore, 0);
  EXPECT_EQ(same.loadAlignments, (SmallVector<uint64_t>{16, 16, 16, 16}));
  // The transposed read: four scalars a thread, loads first.
  Accesses transposed = accessesOf(launches[1]);
  EXPECT_EQ(transposed.vectorLoads, 0);
  EXPECT_EQ(transposed.scalarLoads, 4);
  EXPECT_EQ(transposed.scalarStores, 4);
  EXPECT_EQ(transposed.accessesAfterAStore, 0);
  // The broadcasts: the bias as two vectors, the row's value as two scalars.
  Accesses broadcast = accessesOf(launches[2]);
  EXPECT_EQ(broadcast.vectorLoads, 2);
  EXPECT_EQ(broadcast.scalarLoads, 2);
  EXPECT_EQ(broadcast.vectorStores, 2);
  // The batch-major bfloat16 copy: 4096 elements, 2 blocks, no partial one.
  EXPECT_EQ(*getConstantIntValue(launches[3].getGridSizeX()), 2);
  Accesses copy = accessesOf(launches[3]);
  EXPECT_EQ(copy.loadAlignments, (SmallVector<uint64_t>{16, 16}));
  EXPECT_EQ(copy.storeAlignments, (SmallVector<uint64_t>{8, 8}));
  EXPECT_EQ(countOps<scf::IfOp>(*module), 2 + 4 + 2);
}

// Attention's batch-major copies and their copies back, vectors at
// permuted indices, on the host as the GPU runs them: the same values as a
// plain copy loop.
TEST(ElementwiseKernels, PermutedCopiesMoveEveryElement) {
  const char *source = R"(
    func.func @kernel(%q: tensor<2x16x4x32xf32>) -> tensor<2x16x4x32xf32> {
      %0 = aim.reshape %q : tensor<2x16x4x32xf32> -> tensor<2x16x128xf32>
      %o, %l = aim.attention %0, %0, %0, heads = 4, mask = bidirectional, scale = 0.25 : tensor<2x16x128xf32>, tensor<2x16x128xf32>, tensor<2x16x128xf32> -> tensor<2x16x128xf32>, tensor<2x4x16xf32>
      %2 = aim.reshape %o : tensor<2x16x128xf32> -> tensor<2x16x4x32xf32>
      return %2 : tensor<2x16x4x32xf32>
    })";
  mlir::aim::HostCompileOptions gpu;
  gpu.blas = true;
  gpu.gpuTileThreads = 5;
  gpu.stridedBatchedGemms = true;
  gpu.gemmEpilogues = true;
  checkAgainstInterpreter(source, "permuted-copies", gpu);
}

// Rows of 6 (not a multiple of 4): scalars, four a thread.
TEST(ElementwiseKernels, ScalarsWhereRowsDoNotTakeVectors) {
  MLIRContext ctx;
  loadBufferKernelDialects(ctx);
  const char *source = R"mlir(
    #id = affine_map<(d0, d1) -> (d0, d1)>
    func.func @f(%x: memref<1000x6xf32>, %y: memref<1000x6xf32>) {
      linalg.generic {indexing_maps = [#id, #id],
                      iterator_types = ["parallel", "parallel"]}
          ins(%x : memref<1000x6xf32>) outs(%y : memref<1000x6xf32>) {
        ^bb0(%a: f32, %o: f32):
          %r = arith.negf %a : f32
          linalg.yield %r : f32
      }
      return
    })mlir";
  OwningOpRef<ModuleOp> module = parseSourceString<ModuleOp>(source, &ctx);
  ASSERT_TRUE(module);
  EXPECT_EQ(mlir::aim::lowerElementwiseOps(*module,
                                           mlir::aim::KernelTarget::GpuLaunch),
            1);
  ASSERT_TRUE(succeeded(verify(*module)));
  EXPECT_EQ(countOps<vector::LoadOp>(*module), 0);
  EXPECT_EQ(countOps<memref::LoadOp>(*module), 4);
  gpu::LaunchOp launch;
  module->walk([&](gpu::LaunchOp l) { launch = l; });
  // 6000 elements, chunks of 256 x 4: 6 blocks.
  EXPECT_EQ(*getConstantIntValue(launch.getGridSizeX()), 6);
}

// The element-wise kernels' 16-byte loads and stores count as reads and
// writes: launches that use them merge, but one reading with vector.load
// what another wrote with vector.store waits for the next level.
TEST(MergedLaunches, VectorAccessesAreReadsAndWrites) {
  MLIRContext ctx;
  loadBufferKernelDialects(ctx);
  ctx.loadDialect<vector::VectorDialect>();
  const char *source = R"mlir(
    func.func @f(%x: memref<64xf32>, %y: memref<64xf32>, %z: memref<64xf32>,
                 %w: memref<64xf32>) {
      %c0 = arith.constant 0 : index
      %c1 = arith.constant 1 : index
      %c4 = arith.constant 4 : index
      %c16 = arith.constant 16 : index
      gpu.launch blocks(%bx, %by, %bz) in (%gx = %c1, %gy = %c1, %gz = %c1)
                 threads(%tx, %ty, %tz) in (%sx = %c16, %sy = %c1, %sz = %c1) {
        %i = arith.muli %tx, %c4 : index
        %v = vector.load %x[%i] : memref<64xf32>, vector<4xf32>
        vector.store %v, %y[%i] : memref<64xf32>, vector<4xf32>
        gpu.terminator
      }
      gpu.launch blocks(%bx, %by, %bz) in (%gx = %c1, %gy = %c1, %gz = %c1)
                 threads(%tx, %ty, %tz) in (%sx = %c16, %sy = %c1, %sz = %c1) {
        %i = arith.muli %tx, %c4 : index
        %v = vector.load %y[%i] : memref<64xf32>, vector<4xf32>
        vector.store %v, %z[%i] : memref<64xf32>, vector<4xf32>
        gpu.terminator
      }
      gpu.launch blocks(%bx, %by, %bz) in (%gx = %c1, %gy = %c1, %gz = %c1)
                 threads(%tx, %ty, %tz) in (%sx = %c16, %sy = %c1, %sz = %c1) {
        %i = arith.muli %tx, %c4 : index
        %v = vector.load %x[%i] : memref<64xf32>, vector<4xf32>
        vector.store %v, %w[%i] : memref<64xf32>, vector<4xf32>
        gpu.terminator
      }
      return
    })mlir";
  OwningOpRef<ModuleOp> module = parseSourceString<ModuleOp>(source, &ctx);
  ASSERT_TRUE(module);
  // x -> y and x -> w in one kernel (two launches gone, one made), then
  // y -> z after it.
  EXPECT_EQ(mlir::aim::mergeIndependentLaunches(*module), 2);
  ASSERT_TRUE(succeeded(verify(*module)));
  std::vector<int64_t> blocks;
  module->walk([&](gpu::LaunchOp launch) {
    blocks.push_back(*getConstantIntValue(launch.getGridSizeX()));
  });
  EXPECT_EQ(blocks, std::vector<int64_t>({2, 1}));
}
