//===- AimInterfaces.td - op interfaces of the aim dialect -*- tablegen -*-===//
#ifndef AIM_INTERFACES_TD
#define AIM_INTERFACES_TD

include "mlir/IR/OpBase.td"

def Aim_DifferentiableOpInterface : OpInterface<"DifferentiableOpInterface"> {
  let cppNamespace = "::mlir::aim";
  let description = [{
    An op that knows its own vector-Jacobian product. aim-autodiff walks the
    forward graph backwards and asks each op for the gradients of its operands
    given the gradients of its results; adding a differentiable op means
    implementing this interface on it, never editing the pass.
  }];
  let methods = [
    InterfaceMethod<[{
        Builds, at the builder's insertion point, the gradient of every operand
        `i` with `wantOperandGrads[i]` set, from `resultGrads` (one per result;
        a null Value where a result has no gradient, as for statistics that
        only the backward reads). Appends one Value per operand to
        `operandGrads`: the gradient, or a null Value where none was asked for
        or none exists (integer operands). Fails with a diagnostic when the op
        cannot be differentiated in this configuration.
      }],
      "::llvm::LogicalResult", "buildVjp",
      (ins "::mlir::OpBuilder &":$builder,
           "::mlir::ValueRange":$resultGrads,
           "::llvm::ArrayRef<bool>":$wantOperandGrads,
           "::llvm::SmallVectorImpl<::mlir::Value> &":$operandGrads)>
  ];
}

#endif // AIM_INTERFACES_TD
