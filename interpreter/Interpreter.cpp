//===- Interpreter.cpp - the reference interpreter of aim IR --------------===//
#include "interpreter/Interpreter.h"

#include "interpreter/Kernels.h"

#include "dialects/aim/AimOps.h"

#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace mlir::aim;
using llvm::createStringError;
using llvm::inconvertibleErrorCode;

namespace aim::interp {

namespace {

/// One SSA value: a float tensor (in T) or an integer tensor.
template <typename T> struct Slot {
  Tensor<T> floats;
  std::vector<int64_t> ints;
  std::vector<int64_t> intShape;
  bool isInt = false;
};

std::vector<int64_t> shapeOf(Type type) {
  auto ranked = cast<RankedTensorType>(type);
  return std::vector<int64_t>(ranked.getShape().begin(),
                              ranked.getShape().end());
}

RoundTo roundingFor(Type elementType) {
  if (elementType.isF16())
    return RoundTo::F16;
  if (elementType.isBF16())
    return RoundTo::BF16;
  if (elementType.isF32())
    return RoundTo::F32;
  return RoundTo::F64;
}

Mask maskOf(MaskKind kind) {
  switch (kind) {
  case MaskKind::bidirectional:
    return Mask::Bidirectional;
  case MaskKind::causal:
    return Mask::Causal;
  case MaskKind::prefix_causal:
    return Mask::PrefixCausal;
  }
  return Mask::Bidirectional;
}

/// Describes argument `i` for messages: its aim.param / aim.input name.
std::string argumentName(func::FuncOp function, unsigned i) {
  for (StringRef attr :
       {AimDialect::kParamAttrName, AimDialect::kInputAttrName})
    if (auto name = function.getArgAttrOfType<StringAttr>(i, attr))
      return "'" + name.getValue().str() + "'";
  return "#" + std::to_string(i);
}

template <typename T> class Evaluator {
public:
  explicit Evaluator(func::FuncOp function) : function(function) {}

  llvm::Expected<std::vector<HostTensor>>
  run(const std::vector<HostTensor> &arguments);

private:
  llvm::Error opError(Operation *op, const Twine &message) {
    std::string location;
    llvm::raw_string_ostream os(location);
    op->getLoc().print(os);
    return createStringError(inconvertibleErrorCode(), "%s: %s at %s",
                             op->getName().getStringRef().str().c_str(),
                             message.str().c_str(), location.c_str());
  }
  const Tensor<T> &floats(Value v) { return values[v].floats; }
  const std::vector<int64_t> &ints(Value v) { return values[v].ints; }
  void setFloats(Value v, Tensor<T> t) {
    Slot<T> slot;
    slot.floats = std::move(t);
    values[v] = std::move(slot);
  }

  llvm::Error evaluate(Operation *op);

  func::FuncOp function;
  llvm::DenseMap<Value, Slot<T>> values;
};

template <typename T> llvm::Error Evaluator<T>::evaluate(Operation *op) {
  llvm::Error error = llvm::Error::success();
  bool handled =
      llvm::TypeSwitch<Operation *, bool>(op)
          .Case([&](PatchifyOp o) {
            setFloats(o, patchify(floats(o.getImages()), o.getPatchSize(),
                                  o.getOrder() == PatchOrder::channel_last));
            return true;
          })
          .Case([&](ReshapeOp o) {
            Tensor<T> t = floats(o.getInput());
            t.shape = shapeOf(o.getType());
            setFloats(o, std::move(t));
            return true;
          })
          .Case([&](SliceOp o) {
            setFloats(o, slice(floats(o.getInput()), o.getDim(), o.getOffset(),
                               o.getSize()));
            return true;
          })
          .Case([&](CastOp o) {
            setFloats(o, cast(floats(o.getInput()),
                              roundingFor(o.getType().getElementType())));
            return true;
          })
          .Case([&](LinearOp o) {
            const Tensor<T> *bias =
                o.getBias() ? &floats(o.getBias()) : nullptr;
            setFloats(
                o, linear(floats(o.getInput()), floats(o.getWeight()), bias));
            return true;
          })
          .Case([&](LayerNormOp o) {
            setFloats(o, layerNorm(floats(o.getInput()), floats(o.getWeight()),
                                   floats(o.getBias()),
                                   o.getEpsilon().convertToDouble()));
            return true;
          })
          .Case([&](AddOp o) {
            setFloats(o, add(floats(o.getLhs()), floats(o.getRhs())));
            return true;
          })
          .Case([&](GeluOp o) {
            setFloats(o, gelu(floats(o.getInput()),
                              o.getApproximation() == GeluApproximation::tanh));
            return true;
          })
          .Case([&](PosEmbed2dOp o) {
            setFloats(o, posEmbed2d<T>(o.getGridHeight(), o.getGridWidth(),
                                       o.getType().getDimSize(1)));
            return true;
          })
          .Case([&](AttentionOp o) {
            std::vector<int64_t> prefix;
            if (o.getPrefix()) {
              prefix = ints(o.getPrefix());
              if (Status s = checkPrefixLengths(
                      prefix, o.getQuery().getType().getDimSize(1));
                  !s) {
                error = opError(op, s.message());
                return true;
              }
            }
            setFloats(o, attention(floats(o.getQuery()), floats(o.getKey()),
                                   floats(o.getValue()), o.getHeads(),
                                   maskOf(o.getMask()), prefix,
                                   o.getScale().convertToDouble()));
            return true;
          })
          .Case([&](NormalizedPixelLossOp o) {
            StatusOr<T> loss = normalizedPixelLoss(
                floats(o.getPrediction()), floats(o.getTarget()),
                ints(o.getPrefix()), o.getEpsilon().convertToDouble());
            if (!loss) {
              error = opError(op, loss.status().message());
              return true;
            }
            Tensor<T> scalar(std::vector<int64_t>{});
            scalar.data[0] = *loss;
            setFloats(o, std::move(scalar));
            return true;
          })
          .Default([](Operation *) { return false; });
  if (!handled)
    return opError(op, "the interpreter does not know this op");
  return error;
}

template <typename T>
llvm::Expected<std::vector<HostTensor>>
Evaluator<T>::run(const std::vector<HostTensor> &arguments) {
  Block &body = function.getBody().front();
  if (arguments.size() != body.getNumArguments())
    return createStringError(inconvertibleErrorCode(),
                             "@%s takes %u arguments but %zu were given",
                             function.getSymName().str().c_str(),
                             body.getNumArguments(), arguments.size());
  for (auto [i, arg] : llvm::enumerate(body.getArguments())) {
    const HostTensor &given = arguments[i];
    std::vector<int64_t> expected = shapeOf(arg.getType());
    if (given.shape != expected)
      return createStringError(
          inconvertibleErrorCode(),
          "argument %s of @%s must have shape %s but has %s",
          argumentName(function, i).c_str(),
          function.getSymName().str().c_str(), shapeToString(expected).c_str(),
          shapeToString(given.shape).c_str());
    Type elementType = cast<RankedTensorType>(arg.getType()).getElementType();
    bool wantsInt = isa<IntegerType>(elementType);
    bool isInt = given.dtype == DType::I32 || given.dtype == DType::I64;
    if (wantsInt != isInt)
      return createStringError(
          inconvertibleErrorCode(), "argument %s of @%s must be %s but is %s",
          argumentName(function, i).c_str(),
          function.getSymName().str().c_str(),
          wantsInt ? "an integer tensor" : "a float tensor",
          dtypeName(given.dtype));
    Slot<T> slot;
    if (isInt) {
      slot.isInt = true;
      slot.ints = given.toInt64s();
      slot.intShape = given.shape;
    } else {
      slot.floats.shape = given.shape;
      std::vector<double> doubles = given.toDoubles();
      slot.floats.data.assign(doubles.begin(), doubles.end());
    }
    values[arg] = std::move(slot);
  }

  // Free each value after its last use: a whole forward pass of a real batch
  // would otherwise hold every activation at once.
  llvm::DenseMap<Value, Operation *> lastUser;
  for (Operation &op : body)
    for (Value operand : op.getOperands())
      lastUser[operand] = &op;

  for (Operation &op : body) {
    if (auto ret = dyn_cast<func::ReturnOp>(op)) {
      std::vector<HostTensor> results;
      DType floatType = sizeof(T) == 8 ? DType::F64 : DType::F32;
      for (Value v : ret.getOperands()) {
        const Slot<T> &slot = values[v];
        if (slot.isInt) {
          HostTensor t = HostTensor::zeros(DType::I64, slot.intShape);
          std::memcpy(t.bytes.data(), slot.ints.data(), t.bytes.size());
          results.push_back(std::move(t));
        } else {
          std::vector<double> doubles(slot.floats.data.begin(),
                                      slot.floats.data.end());
          results.push_back(
              HostTensor::fromDoubles(floatType, slot.floats.shape, doubles));
        }
      }
      return results;
    }
    if (llvm::Error err = evaluate(&op))
      return std::move(err);
    for (Value operand : op.getOperands())
      if (lastUser[operand] == &op)
        values.erase(operand);
  }
  return createStringError(inconvertibleErrorCode(), "@%s has no func.return",
                           function.getSymName().str().c_str());
}

} // namespace

llvm::Expected<std::vector<HostTensor>>
runFunction(func::FuncOp function, const std::vector<HostTensor> &arguments,
            Precision precision) {
  if (!function.getBody().hasOneBlock())
    return createStringError(inconvertibleErrorCode(),
                             "@%s must have exactly one block",
                             function.getSymName().str().c_str());
  if (precision == Precision::F64)
    return Evaluator<double>(function).run(arguments);
  return Evaluator<float>(function).run(arguments);
}

llvm::Expected<std::vector<HostTensor>>
bindArguments(func::FuncOp function, const NamedTensors &params,
              const std::map<std::string, HostTensor> &inputs) {
  std::map<std::string, const HostTensor *> byName;
  for (const auto &[name, tensor] : params)
    byName[name] = &tensor;
  std::vector<HostTensor> bound;
  std::vector<std::string> errors;
  llvm::StringSet<> used;
  for (unsigned i = 0, e = function.getNumArguments(); i < e; ++i) {
    std::vector<int64_t> expected = shapeOf(function.getArgumentTypes()[i]);
    const HostTensor *tensor = nullptr;
    std::string what;
    if (auto name = function.getArgAttrOfType<StringAttr>(
            i, AimDialect::kParamAttrName)) {
      what = "parameter '" + name.getValue().str() + "'";
      auto it = byName.find(name.getValue().str());
      if (it == byName.end()) {
        errors.push_back("missing " + what + " with shape " +
                         shapeToString(expected) + " in the parameter file");
        continue;
      }
      used.insert(name.getValue());
      tensor = it->second;
    } else if (auto name = function.getArgAttrOfType<StringAttr>(
                   i, AimDialect::kInputAttrName)) {
      what = "input '" + name.getValue().str() + "'";
      auto it = inputs.find(name.getValue().str());
      if (it == inputs.end()) {
        errors.push_back("missing " + what + " with shape " +
                         shapeToString(expected));
        continue;
      }
      tensor = &it->second;
    } else {
      errors.push_back("argument #" + std::to_string(i) + " of @" +
                       function.getSymName().str() +
                       " has neither {aim.param} nor {aim.input}: the "
                       "interpreter cannot tell what to bind to it");
      continue;
    }
    if (tensor->shape != expected) {
      errors.push_back(what + " must have shape " + shapeToString(expected) +
                       " but has " + shapeToString(tensor->shape));
      continue;
    }
    bound.push_back(*tensor);
  }
  for (const auto &[name, tensor] : params)
    if (!used.contains(name))
      errors.push_back("the parameter file has '" + name +
                       "', which this model does not have (wrong model?)");
  if (!errors.empty()) {
    std::string all;
    for (const std::string &e : errors)
      all += (all.empty() ? "" : "\n") + e;
    return createStringError(inconvertibleErrorCode(), "%s", all.c_str());
  }
  return bound;
}

} // namespace aim::interp
