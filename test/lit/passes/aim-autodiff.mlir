// RUN: aim-opt %s --aim-autodiff --split-input-file --verify-diagnostics | FileCheck %s

// A linear layer with bias, its output used twice: the pass builds each VJP
// and accumulates the two gradients of %y.
// CHECK-LABEL: func.func @forward(
// CHECK-LABEL: func.func @loss_and_grads(
// CHECK-SAME: %[[X:[^:]+]]: tensor<2x4x5xf32> {aim.input = "x"}, %[[W:[^:]+]]: tensor<6x5xf32> {aim.param = "w"}, %[[B:[^:]+]]: tensor<6xf32> {aim.param = "b"}, %[[T:[^:]+]]: tensor<2x4x6xf32> {aim.input = "target"}, %[[K:[^:]+]]: tensor<2xi32> {aim.input = "prefix"})
// CHECK-SAME: -> (tensor<f32> {aim.output = "loss"}, tensor<6x5xf32> {aim.output = "w.grad"}, tensor<6xf32> {aim.output = "b.grad"})
// CHECK: %[[Y:.+]] = aim.linear %[[X]], %[[W]], %[[B]] {aim.scope = "layer"}
// CHECK: %[[S:.+]] = aim.add %[[Y]], %[[Y]] {aim.scope = "residual"}
// CHECK: %[[L:.+]] = aim.normalized_pixel_loss %[[S]], %[[T]], prefix %[[K]]
// CHECK: %[[ONE:.+]] = arith.constant {aim.scope = "loss.grad"} dense<1.000000e+00> : tensor<f32>
// CHECK: %[[DS:.+]] = aim.normalized_pixel_loss_grad %[[ONE]], %[[S]], %[[T]], prefix %[[K]], {{.*}} {aim.scope = "loss.grad"}
// CHECK: %[[DY:.+]] = aim.add %[[DS]], %[[DS]] {aim.scope = "residual.grad"}
// CHECK: %[[DY2:.+]] = aim.reshape %[[DY]] {aim.scope = "layer.grad"} : tensor<2x4x6xf32> -> tensor<8x6xf32>
// CHECK-NOT: transpose_rhs = false {aim.scope = "layer.grad"} : tensor<8x6xf32>, tensor<6x5xf32>
// CHECK: %[[X2:.+]] = aim.reshape %[[X]] {aim.scope = "layer.grad"} : tensor<2x4x5xf32> -> tensor<8x5xf32>
// CHECK: %[[DW:.+]] = aim.matmul %[[DY2]], %[[X2]], transpose_lhs = true, transpose_rhs = false {aim.scope = "layer.grad"} : tensor<8x6xf32>, tensor<8x5xf32> -> tensor<6x5xf32>
// CHECK: %[[DB:.+]] = aim.sum_leading %[[DY]] {aim.scope = "layer.grad"} : tensor<2x4x6xf32> -> tensor<6xf32>
// CHECK: return %[[L]], %[[DW]], %[[DB]]
func.func @forward(%x: tensor<2x4x5xf32> {aim.input = "x"}, %w: tensor<6x5xf32> {aim.param = "w"},
                   %b: tensor<6xf32> {aim.param = "b"}, %t: tensor<2x4x6xf32> {aim.input = "target"},
                   %K: tensor<2xi32> {aim.input = "prefix"}) -> tensor<f32> {
  %y = aim.linear %x, %w, %b {aim.scope = "layer"} : tensor<2x4x5xf32>, tensor<6x5xf32>, tensor<6xf32> -> tensor<2x4x6xf32>
  %s = aim.add %y, %y {aim.scope = "residual"} : tensor<2x4x6xf32>, tensor<2x4x6xf32> -> tensor<2x4x6xf32>
  %l = aim.normalized_pixel_loss %s, %t, prefix %K, epsilon = 1.0e-6 {aim.scope = "loss"} : tensor<2x4x6xf32>, tensor<2x4x6xf32>, tensor<2xi32> -> tensor<f32>
  return %l : tensor<f32>
}

// -----

// Attention: the backward recomputes from the row statistics; the prefix
// lengths get no gradient. A parameter the loss ignores gets zeros.
// CHECK-LABEL: func.func @loss_and_grads(
// CHECK: %[[O:[^,]+]], %[[LSE:[^ ]+]] = aim.attention %[[Q:[^,]+]], %[[Q]], %[[Q]], heads = 2, mask = prefix_causal(%[[K:[^)]+]])
// CHECK: %[[DQ:[^,]+]], %[[DK:[^,]+]], %[[DV:[^ ]+]] = aim.attention_grad %{{.+}}, %[[Q]], %[[Q]], %[[Q]], %[[O]], %[[LSE]], heads = 2, mask = prefix_causal(%[[K]])
// CHECK: %[[ACC:.+]] = aim.add %[[DQ]], %[[DK]] {aim.scope = "grad"}
// CHECK: %[[ACC2:.+]] = aim.add %[[ACC]], %[[DV]] {aim.scope = "grad"}
// CHECK: %[[ZERO:.+]] = arith.constant dense<0.000000e+00> : tensor<3xf32>
// CHECK: return %{{.+}}, %[[ACC2]], %[[ZERO]]
func.func @forward(%q: tensor<2x4x6xf32> {aim.param = "q"}, %unused: tensor<3xf32> {aim.param = "unused"},
                   %t: tensor<2x4x6xf32>, %K: tensor<2xi32>) -> tensor<f32> {
  %o, %lse = aim.attention %q, %q, %q, heads = 2, mask = prefix_causal(%K), scale = 0.5 : tensor<2x4x6xf32>, tensor<2x4x6xf32>, tensor<2x4x6xf32>, tensor<2xi32> -> tensor<2x4x6xf32>, tensor<2x2x4xf32>
  %l = aim.normalized_pixel_loss %o, %t, prefix %K, epsilon = 1.0e-6 : tensor<2x4x6xf32>, tensor<2x4x6xf32>, tensor<2xi32> -> tensor<f32>
  return %l : tensor<f32>
}

// -----

// An op without a VJP between a parameter and the loss is a clear error.
func.func @forward(%x: tensor<2x1x4x12xf32> {aim.param = "x"}, %t: tensor<2x3x16xf32>, %K: tensor<2xi32>) -> tensor<f32> {
  // expected-error @+1 {{'aim.patchify' op lies between a parameter and the loss but has no vector-Jacobian product}}
  %y = aim.patchify %x, patch_size = 4, order = channel_last : tensor<2x1x4x12xf32> -> tensor<2x3x16xf32>
  %l = aim.normalized_pixel_loss %y, %t, prefix %K, epsilon = 1.0e-6 : tensor<2x3x16xf32>, tensor<2x3x16xf32>, tensor<2xi32> -> tensor<f32>
  return %l : tensor<f32>
}

// -----

// expected-error @+1 {{aim-autodiff: no function @forward to differentiate}}
module {
  func.func @other() {
    return
  }
}
