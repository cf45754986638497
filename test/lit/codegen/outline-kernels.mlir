// RUN: aim-opt %s --aim-outline-kernels | FileCheck %s

// Two blocks that differ only in their weights and annotations call the same
// kernels; a GEMM of another shape, a different epsilon and a fusion of
// another kind are kernels of their own. Views (reshape, slice) stay in the
// entry point.

// CHECK-LABEL: func.func @forward
// CHECK: %[[N1:.+]] = call @layer_norm(%arg0, %arg3, %arg4)
// CHECK: %[[G1:.+]] = call @fused_gemm(%[[N1]], %arg1, %arg0)
// CHECK: %[[N2:.+]] = call @layer_norm(%[[G1]], %arg3, %arg4)
// CHECK: %[[G2:.+]] = call @fused_gemm(%[[N2]], %arg2, %[[G1]])
// CHECK: %[[N3:.+]] = call @layer_norm_0(%[[G2]], %arg3, %arg4)
// CHECK: %[[R:.+]] = aim.reshape %[[N3]]
// CHECK: %[[W:.+]] = call @linear(%[[R]], %arg5)
// CHECK: %[[E:.+]] = call @fused_elementwise(%[[W]])
// CHECK: return %[[E]]

// One function per distinct kernel, without the annotations.
// CHECK: func.func private @layer_norm(
// CHECK-NOT: aim.scope
// CHECK: func.func private @fused_gemm(
// CHECK-NEXT: aim.linear
// CHECK-NEXT: aim.gelu
// CHECK-NEXT: aim.add
// CHECK-NEXT: return
// CHECK: func.func private @layer_norm_0(
// CHECK: epsilon = 1.000000e-05
// CHECK: func.func private @linear(
// CHECK: func.func private @fused_elementwise(
// CHECK-NOT: func.func private
func.func @forward(%x: tensor<8x16xf32>, %w1: tensor<16x16xf32>, %w2: tensor<16x16xf32>,
                   %g: tensor<16xf32>, %b: tensor<16xf32>, %w3: tensor<4x64xf32>) -> tensor<2x4xf32> {
  %n1 = aim.layer_norm %x, %g, %b, epsilon = 1.0e-6 {aim.scope = "trunk.blocks.0"} : tensor<8x16xf32>, tensor<16xf32>, tensor<16xf32> -> tensor<8x16xf32>
  %h1 = aim.fusion "gemm" (%n1, %w1, %x) {aim.scope = "trunk.blocks.0"} : (tensor<8x16xf32>, tensor<16x16xf32>, tensor<8x16xf32>) -> tensor<8x16xf32> {
  ^bb0(%a: tensor<8x16xf32>, %w: tensor<16x16xf32>, %r: tensor<8x16xf32>):
    %0 = aim.linear %a, %w {aim.scope = "trunk.blocks.0.mlp"} : tensor<8x16xf32>, tensor<16x16xf32> -> tensor<8x16xf32>
    %1 = aim.gelu %0, approximation = erf : tensor<8x16xf32> -> tensor<8x16xf32>
    %2 = aim.add %1, %r : tensor<8x16xf32>, tensor<8x16xf32> -> tensor<8x16xf32>
    aim.yield %2 : tensor<8x16xf32>
  }
  %n2 = aim.layer_norm %h1, %g, %b, epsilon = 1.0e-6 {aim.scope = "trunk.blocks.1"} : tensor<8x16xf32>, tensor<16xf32>, tensor<16xf32> -> tensor<8x16xf32>
  %h2 = aim.fusion "gemm" (%n2, %w2, %h1) {aim.scope = "trunk.blocks.1"} : (tensor<8x16xf32>, tensor<16x16xf32>, tensor<8x16xf32>) -> tensor<8x16xf32> {
  ^bb0(%a: tensor<8x16xf32>, %w: tensor<16x16xf32>, %r: tensor<8x16xf32>):
    %0 = aim.linear %a, %w {aim.scope = "trunk.blocks.1.mlp"} : tensor<8x16xf32>, tensor<16x16xf32> -> tensor<8x16xf32>
    %1 = aim.gelu %0, approximation = erf : tensor<8x16xf32> -> tensor<8x16xf32>
    %2 = aim.add %1, %r : tensor<8x16xf32>, tensor<8x16xf32> -> tensor<8x16xf32>
    aim.yield %2 : tensor<8x16xf32>
  }
  %n3 = aim.layer_norm %h2, %g, %b, epsilon = 1.0e-5 : tensor<8x16xf32>, tensor<16xf32>, tensor<16xf32> -> tensor<8x16xf32>
  %r = aim.reshape %n3 : tensor<8x16xf32> -> tensor<2x64xf32>
  %y = aim.linear %r, %w3 : tensor<2x64xf32>, tensor<4x64xf32> -> tensor<2x4xf32>
  %e = aim.fusion "elementwise" (%y) : (tensor<2x4xf32>) -> tensor<2x4xf32> {
  ^bb0(%a: tensor<2x4xf32>):
    %0 = aim.gelu %a, approximation = erf : tensor<2x4xf32> -> tensor<2x4xf32>
    aim.yield %0 : tensor<2x4xf32>
  }
  return %e : tensor<2x4xf32>
}
