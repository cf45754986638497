//===- aim-interp.cpp - run aim IR with the reference interpreter ---------===//
//
// Two ways in: a model (preset or config file), built by the frontend, or IR
// printed at any stage (--ir F.mlir --entry NAME). Both bind the same data
// flags and print `loss <value>`. Also writes initial parameters.
//
//===----------------------------------------------------------------------===//

#include "common/FashionMnist.h"
#include "common/Npy.h"
#include "common/ParameterInit.h"
#include "common/PrefixSampling.h"
#include "common/Safetensors.h"
#include "dialects/aim/AimDialect.h"
#include "frontends/ConfigParser.h"
#include "frontends/ForwardBuilder.h"
#include "interpreter/Interpreter.h"
#include "passes/Passes.h"
#include "passes/Pipelines.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/WithColor.h"

#include <cstdio>
#include <map>

using namespace llvm;

namespace {
cl::OptionCategory category("aim-interp options");

cl::opt<std::string>
    modelOption("model", cl::desc("Preset name or YAML/JSON config file"),
                cl::value_desc("preset|file"), cl::cat(category));
cl::opt<std::string> irOption("ir",
                              cl::desc("An .mlir file to run instead "
                                       "of a model"),
                              cl::value_desc("file"), cl::cat(category));
cl::opt<std::string> entryOption("entry", cl::desc("Function to run with --ir"),
                                 cl::init("forward"), cl::cat(category));
cl::opt<std::string>
    paramsOption("params",
                 cl::desc("Parameters (.safetensors, float32 or float64, under "
                          "AIM's names)"),
                 cl::value_desc("file"), cl::cat(category));
cl::opt<std::string> imagesOption(
    "images",
    cl::desc("Images: an .npy float32 [B, C, H, W] (normalised), or "
             "fashion-mnist[:train|:t10k] for the first --batch images of "
             "Debian's Fashion-MNIST, normalised as AIM.md says"),
    cl::value_desc("file|fashion-mnist"), cl::cat(category));
cl::opt<std::string> prefixOption(
    "prefix",
    cl::desc("Prefix lengths: an .npy int32/int64 [B] with 1 <= K <= N, or "
             "antithetic / iid to sample them with --seed at step 0"),
    cl::value_desc("file|antithetic|iid"), cl::cat(category));
cl::opt<int64_t>
    batchOption("batch",
                cl::desc("Number of images with --images fashion-mnist"),
                cl::init(64), cl::cat(category));
cl::opt<bool> f32Option("f32", cl::desc("Compute in float32 (default float64)"),
                        cl::cat(category));
cl::opt<std::string> initParamsOption(
    "init-params",
    cl::desc("Write the model's initial parameters (AIM.md initialisation, "
             "seeded by --seed) to this .safetensors file and exit"),
    cl::value_desc("file"), cl::cat(category));
cl::opt<uint64_t> seedOption("seed", cl::desc("Random seed"), cl::init(0),
                             cl::cat(category));
cl::opt<std::string> gradsOption(
    "grads",
    cl::desc("Also write the gradient of every parameter (from "
             "@loss_and_grads, built by aim-autodiff when the IR lacks it) to "
             "this .safetensors file, float64 unless --f32"),
    cl::value_desc("file"), cl::cat(category));
cl::opt<int64_t> trainStepsOption(
    "train-steps",
    cl::desc("Run this many @train_step steps (clipping + AdamW) on the one "
             "given batch, from zero optimiser state, printing each loss"),
    cl::init(0), cl::cat(category));
cl::opt<double> lrOption("lr", cl::desc("Learning rate of --train-steps"),
                         cl::init(1e-3), cl::cat(category));
cl::opt<std::string> dumpStepsOption(
    "dump-steps",
    cl::desc("With --train-steps: write parameters and optimiser state after "
             "each step to DIR/step-<i>.safetensors"),
    cl::value_desc("dir"), cl::cat(category));
cl::opt<std::string> saveParamsOption(
    "save-params",
    cl::desc("With --train-steps: write the final parameters to this file"),
    cl::value_desc("file"), cl::cat(category));
cl::opt<std::string> attentionTilesOption(
    "attention-tiles",
    cl::desc("Run attention tile by tile (QxK, e.g. 16x16) following the tile "
             "rule recorded by aim-prefix-mask, and report the tiles visited"),
    cl::value_desc("QxK"), cl::cat(category));
cl::opt<bool> initF64Option("init-f64",
                            cl::desc("Store --init-params tensors as float64"),
                            cl::cat(category));

int fail(const Twine &message) {
  WithColor::error(errs(), "aim-interp") << message << "\n";
  return 1;
}

/// --images: a .npy file or Fashion-MNIST.
aim::StatusOr<aim::HostTensor> loadImages() {
  StringRef spec = imagesOption;
  if (spec.starts_with("fashion-mnist")) {
    StringRef split = spec.drop_front(strlen("fashion-mnist"));
    if (!split.empty() && !split.consume_front(":"))
      return aim::Status::error("--images " + spec.str() +
                                ": use fashion-mnist, fashion-mnist:train or "
                                "fashion-mnist:t10k");
    if (batchOption <= 0)
      return aim::Status::error("--batch must be positive");
    return aim::loadFashionMnistImages(split.empty() ? "train" : split.str(), 0,
                                       batchOption);
  }
  aim::StatusOr<aim::HostTensor> images = aim::readNpy(spec.str());
  if (!images)
    return images;
  if (images->dtype != aim::DType::F32 && images->dtype != aim::DType::F64)
    return aim::Status::error("--images '" + spec.str() +
                              "' must hold float32 values, not " +
                              aim::dtypeName(images->dtype));
  if (images->shape.size() != 4)
    return aim::Status::error("--images '" + spec.str() +
                              "' must be [B, C, H, W] but has shape " +
                              aim::shapeToString(images->shape));
  return images;
}

/// --prefix: a .npy file or sampled lengths.
aim::StatusOr<aim::HostTensor> loadPrefix(int64_t batch, int64_t numPatches) {
  StringRef spec = prefixOption;
  if (spec == "antithetic" || spec == "iid") {
    bool antithetic = spec == "antithetic";
    if (antithetic && batch % 2 != 0)
      return aim::Status::error("--prefix antithetic pairs samples, so the "
                                "batch must be even (it is " +
                                std::to_string(batch) + ")");
    std::vector<int64_t> k = aim::samplePrefixLengths(
        antithetic ? aim::PrefixMode::Antithetic : aim::PrefixMode::Iid,
        seedOption, /*step=*/0, /*firstSample=*/0, batch, numPatches);
    return aim::HostTensor::fromDoubles(
        aim::DType::I32, {batch}, std::vector<double>(k.begin(), k.end()));
  }
  aim::StatusOr<aim::HostTensor> prefix = aim::readNpy(spec.str());
  if (!prefix)
    return prefix;
  if (prefix->dtype != aim::DType::I32 && prefix->dtype != aim::DType::I64)
    return aim::Status::error("--prefix '" + spec.str() +
                              "' must hold int32 or int64 values, not " +
                              aim::dtypeName(prefix->dtype));
  if (prefix->shape != std::vector<int64_t>{batch})
    return aim::Status::error("--prefix '" + spec.str() +
                              "' must have shape [" + std::to_string(batch) +
                              "] (one length per image) but has " +
                              aim::shapeToString(prefix->shape));
  for (int64_t k : prefix->toInt64s())
    if (k < 1 || k > numPatches)
      return aim::Status::error(
          "--prefix '" + spec.str() + "' holds " + std::to_string(k) +
          "; every prefix length must be in [1, N] = [1, " +
          std::to_string(numPatches) + "]");
  return prefix;
}

/// The function `name` of the module, or an error listing those it has.
mlir::func::FuncOp findFunction(mlir::ModuleOp module, StringRef name,
                                std::string &error) {
  if (auto f = module.lookupSymbol<mlir::func::FuncOp>(name))
    return f;
  std::string names;
  module.walk([&](mlir::func::FuncOp f) {
    names += (names.empty() ? "" : ", ") + ("@" + f.getSymName()).str();
  });
  error = "no function @" + name.str() +
          " in the IR (it has: " + (names.empty() ? "none" : names) +
          "); pick one with --entry";
  return nullptr;
}

/// Runs aim-autodiff (and aim-build-train-step) when the module lacks the
/// entry points a flag needs.
bool ensureStage(mlir::ModuleOp module, mlir::aim::Stage stage) {
  bool hasGrads = bool(module.lookupSymbol(mlir::aim::kLossAndGradsName));
  bool hasTrain = bool(module.lookupSymbol(mlir::aim::kTrainStepName));
  mlir::PassManager pm(module.getContext());
  if (stage >= mlir::aim::Stage::LossAndGrads && !hasGrads)
    pm.addPass(mlir::aim::createAutodiffPass(
        mlir::aim::AutodiffPassOptions{entryOption}));
  if (stage >= mlir::aim::Stage::TrainStep && !hasTrain)
    pm.addPass(mlir::aim::createBuildTrainStepPass());
  return succeeded(pm.run(module));
}

/// Interpreter options from the flags; tile counts accumulate in `counts`.
aim::interp::Options
interpreterOptions(aim::interp::AttentionTileCounts *counts) {
  aim::interp::Options options(f32Option ? aim::interp::Precision::F32
                                         : aim::interp::Precision::F64);
  if (!attentionTilesOption.empty()) {
    auto [q, k] = StringRef(attentionTilesOption).split('x');
    // Validated in main(); here both parse.
    q.getAsInteger(10, options.attentionQueryTile);
    k.getAsInteger(10, options.attentionKeyTile);
    options.tileCounts = counts;
  }
  return options;
}

aim::interp::AttentionTileCounts tileCounts;

void printTileCounts() {
  if (attentionTilesOption.empty())
    return;
  std::printf("attention tiles %s: empty %lld (skipped), full %lld, partial "
              "%lld\n",
              attentionTilesOption.c_str(),
              static_cast<long long>(tileCounts.empty),
              static_cast<long long>(tileCounts.full),
              static_cast<long long>(tileCounts.partial));
}

/// A scalar input tensor.
aim::HostTensor scalarTensor(aim::DType dtype, double value) {
  return aim::HostTensor::fromDoubles(dtype, {}, {value});
}

/// --grads: runs @loss_and_grads and writes one gradient per parameter.
int writeGradients(mlir::ModuleOp module, const aim::NamedTensors &params,
                   const std::map<std::string, aim::HostTensor> &inputs) {
  if (!ensureStage(module, mlir::aim::Stage::LossAndGrads))
    return fail("cannot build @loss_and_grads (see above)");
  std::string error;
  auto function = findFunction(module, mlir::aim::kLossAndGradsName, error);
  if (!function)
    return fail(error);
  Expected<std::vector<aim::HostTensor>> arguments =
      aim::interp::bindArguments(function, params, inputs);
  if (!arguments)
    return fail(toString(arguments.takeError()));
  Expected<std::vector<aim::HostTensor>> results = aim::interp::runFunction(
      function, *arguments, interpreterOptions(&tileCounts));
  if (!results)
    return fail(toString(results.takeError()));
  aim::NamedTensors grads;
  for (unsigned i = 1; i < function.getNumResults(); ++i) {
    auto name = function.getResultAttrOfType<mlir::StringAttr>(
        i, mlir::aim::AimDialect::kOutputAttrName);
    // Results are named "<param>.grad"; the file uses the parameter's name.
    StringRef paramName = name ? name.getValue() : "";
    if (!paramName.consume_back(".grad"))
      return fail("result #" + Twine(i) +
                  " of @loss_and_grads has no {aim.output = "
                  "\"<param>.grad\"} name");
    grads.emplace_back(paramName.str(), (*results)[i]);
  }
  if (aim::Status s = aim::writeSafetensors(gradsOption, grads); !s)
    return fail(s.message());
  std::printf("loss %.17g\n", (*results)[0].toDoubles()[0]);
  std::printf("wrote %zu gradients to %s\n", grads.size(), gradsOption.c_str());
  printTileCounts();
  return 0;
}

/// --train-steps: runs @train_step on one batch, threading parameters and
/// optimiser state from each step into the next.
int train(mlir::ModuleOp module, aim::NamedTensors params,
          std::map<std::string, aim::HostTensor> inputs) {
  if (!ensureStage(module, mlir::aim::Stage::TrainStep))
    return fail("cannot build @train_step (see above)");
  std::string error;
  auto function = findFunction(module, mlir::aim::kTrainStepName, error);
  if (!function)
    return fail(error);
  aim::NamedTensors state;
  for (const char *suffix : {".exp_avg", ".exp_avg_sq"})
    for (const auto &[name, tensor] : params)
      state.emplace_back(name + suffix,
                         aim::HostTensor::zeros(aim::DType::F64, tensor.shape));
  inputs["lr"] = scalarTensor(aim::DType::F64, lrOption);
  const size_t count = params.size();
  for (int64_t step = 0; step < trainStepsOption; ++step) {
    inputs["step"] = scalarTensor(aim::DType::I64, static_cast<double>(step));
    Expected<std::vector<aim::HostTensor>> arguments =
        aim::interp::bindArguments(function, params, inputs, state);
    if (!arguments)
      return fail(toString(arguments.takeError()));
    Expected<std::vector<aim::HostTensor>> results = aim::interp::runFunction(
        function, *arguments, interpreterOptions(&tileCounts));
    if (!results)
      return fail(toString(results.takeError()));
    if (results->size() != 2 + 3 * count)
      return fail("@train_step returns " + Twine(results->size()) +
                  " values; expected loss, grad_norm and 3 per parameter");
    std::printf("step %lld loss %.17g grad_norm %.17g\n",
                static_cast<long long>(step), (*results)[0].toDoubles()[0],
                (*results)[1].toDoubles()[0]);
    std::fflush(stdout);
    for (size_t k = 0; k < count; ++k) {
      params[k].second = (*results)[2 + k];
      state[k].second = (*results)[2 + count + k];
      state[count + k].second = (*results)[2 + 2 * count + k];
    }
    if (!dumpStepsOption.empty()) {
      aim::NamedTensors all = params;
      all.insert(all.end(), state.begin(), state.end());
      std::string path = dumpStepsOption + "/step-" + std::to_string(step + 1) +
                         ".safetensors";
      if (aim::Status s = aim::writeSafetensors(path, all); !s)
        return fail(s.message());
    }
  }
  if (!saveParamsOption.empty())
    if (aim::Status s = aim::writeSafetensors(saveParamsOption, params); !s)
      return fail(s.message());
  return 0;
}
} // namespace

int main(int argc, char **argv) {
  InitLLVM init(argc, argv);
  cl::HideUnrelatedOptions(category);
  cl::ParseCommandLineOptions(
      argc, argv,
      "aim-interp: the reference interpreter of aim IR (float64 by default)\n\n"
      "  aim-interp --model aim-fmnist --init-params p.safetensors --seed 0\n"
      "  aim-interp --model aim-fmnist --params p.safetensors --images X.npy "
      "--prefix K.npy\n"
      "  aim-interp --ir forward.mlir --entry forward --params p.safetensors "
      "--images X.npy --prefix K.npy\n"
      "  aim-interp --model aim-fmnist --params p.safetensors --images "
      "fashion-mnist --batch 64 --prefix antithetic\n"
      "  aim-interp --model aim-fmnist --params p.safetensors --images X.npy "
      "--prefix K.npy --grads g.safetensors\n"
      "  aim-interp --model aim-fmnist --params p.safetensors --images "
      "fashion-mnist --batch 8 --prefix antithetic --train-steps 50 --lr "
      "1e-3\n");

  if (modelOption.empty() == irOption.empty())
    return fail(
        "give exactly one of --model <preset|file> or --ir <file.mlir>");

  std::optional<aim::ModelConfig> config;
  if (!modelOption.empty()) {
    Expected<aim::ModelConfig> loaded = aim::loadModelConfig(modelOption);
    if (!loaded)
      return fail(toString(loaded.takeError()));
    config = *loaded;
  }

  if (!initParamsOption.empty()) {
    if (!config)
      return fail("--init-params needs --model (the parameter list comes from "
                  "the config)");
    aim::Status written = aim::writeSafetensors(
        initParamsOption,
        aim::initParameters(*config, seedOption,
                            initF64Option ? aim::DType::F64 : aim::DType::F32));
    if (!written)
      return fail(written.message());
    outs() << "wrote " << aim::parameterSpecs(*config).size()
           << " parameters of " << config->name << " (seed " << seedOption
           << ") to " << initParamsOption << "\n";
    return 0;
  }

  if (paramsOption.empty() || imagesOption.empty() || prefixOption.empty())
    return fail("evaluating the loss needs --params, --images and --prefix "
                "(see --help)");

  aim::StatusOr<aim::NamedTensors> params = aim::readSafetensors(paramsOption);
  if (!params)
    return fail(params.status().message());
  for (const auto &[name, tensor] : *params)
    if (tensor.dtype != aim::DType::F32 && tensor.dtype != aim::DType::F64)
      return fail("parameter '" + name + "' in '" + paramsOption + "' is " +
                  aim::dtypeName(tensor.dtype) +
                  "; parameters must be float32 or float64");
  aim::StatusOr<aim::HostTensor> images = loadImages();
  if (!images)
    return fail(images.status().message());
  const int64_t batch = images->shape[0];

  mlir::MLIRContext context;
  context.loadDialect<mlir::aim::AimDialect, mlir::func::FuncDialect,
                      mlir::arith::ArithDialect>();
  mlir::OwningOpRef<mlir::ModuleOp> module;
  if (config) {
    std::vector<int64_t> expected = {batch, config->channels,
                                     config->imageHeight, config->imageWidth};
    if (images->shape != expected)
      return fail("the images have shape " + aim::shapeToString(images->shape) +
                  " but " + config->name + " takes [B, " +
                  std::to_string(config->channels) + ", " +
                  std::to_string(config->imageHeight) + ", " +
                  std::to_string(config->imageWidth) + "]");
    module = aim::buildForwardModule(context, *config, batch);
  } else {
    llvm::SourceMgr sourceMgr;
    mlir::SourceMgrDiagnosticHandler handler(sourceMgr, &context);
    module =
        mlir::parseSourceFile<mlir::ModuleOp>(irOption, sourceMgr, &context);
    if (!module)
      return fail("cannot read IR from '" + irOption + "' (see above)");
  }
  std::string entryError;
  mlir::func::FuncOp entry = findFunction(*module, entryOption, entryError);
  if (!entry)
    return fail(entryError);

  // N for prefix checks: from the config, or from the images and the IR's
  // patchify ops (any aim.patchify gives it).
  int64_t numPatches = 0;
  if (config) {
    numPatches = config->numPatches();
  } else {
    entry.walk([&](mlir::Operation *op) {
      if (op->getName().getStringRef() == "aim.patchify")
        numPatches = cast<mlir::RankedTensorType>(op->getResult(0).getType())
                         .getDimSize(1);
    });
    if (numPatches == 0)
      return fail("@" + entryOption +
                  " has no aim.patchify, so the number of patches N (needed "
                  "for --prefix) is unknown");
  }
  aim::StatusOr<aim::HostTensor> prefix = loadPrefix(batch, numPatches);
  if (!prefix)
    return fail(prefix.status().message());

  std::map<std::string, aim::HostTensor> inputs = {
      {aim::kImagesInputName, *images}, {aim::kPrefixInputName, *prefix}};
  if (trainStepsOption < 0)
    return fail("--train-steps must not be negative");
  if (!attentionTilesOption.empty()) {
    auto [q, k] = StringRef(attentionTilesOption).split('x');
    int64_t tq, tk;
    if (q.getAsInteger(10, tq) || k.getAsInteger(10, tk) || tq <= 0 || tk <= 0)
      return fail("--attention-tiles takes QxK with positive integers, for "
                  "example 16x16; got '" +
                  attentionTilesOption + "'");
  }
  if (trainStepsOption > 0)
    return train(*module, *params, inputs);
  if (!gradsOption.empty())
    return writeGradients(*module, *params, inputs);
  Expected<std::vector<aim::HostTensor>> arguments =
      aim::interp::bindArguments(entry, *params, inputs);
  if (!arguments)
    return fail(toString(arguments.takeError()));
  Expected<std::vector<aim::HostTensor>> results = aim::interp::runFunction(
      entry, *arguments, interpreterOptions(&tileCounts));
  if (!results)
    return fail(toString(results.takeError()));
  if (results->empty() || results->front().numElements() != 1)
    return fail("@" + entryOption + " does not return a scalar loss first");
  std::printf("loss %.17g\n", results->front().toDoubles()[0]);
  printTileCounts();
  return 0;
}
