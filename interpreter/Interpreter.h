//===- Interpreter.h - the reference interpreter of aim IR ----------------===//
//
// Evaluates a function of aim ops on the CPU in float64 (default) or float32,
// op by op, with Kernels.h. It is the oracle of every pass and backend, so it
// favours being obviously right over being fast. The IR's element types are
// storage types: the interpreter computes in the chosen precision throughout,
// and aim.cast rounds values to its result type's precision.
//
//===----------------------------------------------------------------------===//
#ifndef AIMC_INTERPRETER_INTERPRETER_H
#define AIMC_INTERPRETER_INTERPRETER_H

#include "common/HostTensor.h"
#include "common/Safetensors.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "llvm/Support/Error.h"

#include <map>
#include <string>
#include <vector>

namespace aim::interp {

enum class Precision { F64, F32 };

/// Attention tiles visited by the tiled mode, by class.
struct AttentionTileCounts {
  int64_t empty = 0, full = 0, partial = 0;
};

/// The other ranks of a grid, as one rank's program sees them: what the
/// shard collectives of a per-rank program (aim-shard) exchange.
class Collectives {
public:
  virtual ~Collectives() = default;
  /// Every rank of this rank's group over `axes` contributes its `part`;
  /// returns all parts, ordered by the ranks' index in the group (row-major
  /// over `axes` in the order given). An error when another rank failed.
  virtual llvm::Expected<std::vector<std::vector<double>>>
  exchange(llvm::ArrayRef<int16_t> axes, std::vector<double> part) = 0;
  /// This rank's index in its group over `axes`, and the group's size.
  virtual std::pair<int64_t, int64_t>
  groupPosition(llvm::ArrayRef<int16_t> axes) const = 0;
};

struct Options {
  Options(Precision precision = Precision::F64) : precision(precision) {}
  Precision precision;
  /// Tiled attention (both directions) with these tile sizes, following the
  /// tile rule recorded on each op; 0 = the plain untiled loops.
  int64_t attentionQueryTile = 0, attentionKeyTile = 0;
  /// Where to count the tiles the tiled mode visited (may be null).
  AttentionTileCounts *tileCounts = nullptr;
  /// The grid of a per-rank program; null runs programs without collectives.
  Collectives *collectives = nullptr;
};

/// Runs `function` on `arguments` (one per function argument, shapes as in
/// its signature; floats of any float dtype, integers I32/I64). Returns one
/// tensor per result: F64 or F32 as `precision`, integers as I64.
llvm::Expected<std::vector<HostTensor>>
runFunction(mlir::func::FuncOp function,
            const std::vector<HostTensor> &arguments, const Options &options);

/// Orders named tensors as `function`'s arguments: an argument tagged
/// {aim.param = name} takes `params[name]`, {aim.state = name} takes
/// `state[name]`, {aim.input = name} takes `inputs[name]`. Missing, extra or
/// misshapen tensors are errors that name the tensor and its expected shape.
llvm::Expected<std::vector<HostTensor>>
bindArguments(mlir::func::FuncOp function, const NamedTensors &params,
              const std::map<std::string, HostTensor> &inputs,
              const NamedTensors &state = {});

} // namespace aim::interp

#endif // AIMC_INTERPRETER_INTERPRETER_H
