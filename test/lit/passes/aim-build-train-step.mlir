// RUN: aim-opt %s --aim-autodiff --aim-build-train-step | FileCheck %s
// RUN: aim-opt %s --aim-autodiff --aim-build-train-step="max-grad-norm=2.0 weight-decay=0.1" | FileCheck %s --check-prefix=OPTIONS
// RUN: not aim-opt %s --aim-build-train-step 2>&1 | FileCheck %s --check-prefix=ORDER

// CHECK-LABEL: func.func @train_step(
// CHECK-SAME: %[[X:[^:]+]]: tensor<2x4x5xf32> {aim.input = "x"}, %[[T:[^:]+]]: tensor<2x4x6xf32> {aim.input = "target"}, %[[K:[^:]+]]: tensor<2xi32> {aim.input = "prefix"},
// CHECK-SAME: %[[LR:[^:]+]]: tensor<f32> {aim.input = "lr"}, %[[STEP:[^:]+]]: tensor<i64> {aim.input = "step"},
// CHECK-SAME: %[[W:[^:]+]]: tensor<6x5xf32> {aim.param = "w"}, %[[B:[^:]+]]: tensor<6xf32> {aim.param = "b"},
// CHECK-SAME: %[[MW:[^:]+]]: tensor<6x5xf32> {aim.state = "w.exp_avg"}, %[[MB:[^:]+]]: tensor<6xf32> {aim.state = "b.exp_avg"},
// CHECK-SAME: %[[VW:[^:]+]]: tensor<6x5xf32> {aim.state = "w.exp_avg_sq"}, %[[VB:[^:]+]]: tensor<6xf32> {aim.state = "b.exp_avg_sq"})
// CHECK-SAME: -> (tensor<f32> {aim.output = "loss"}, tensor<f32> {aim.output = "grad_norm"}, tensor<6x5xf32> {aim.param = "w"}, tensor<6xf32> {aim.param = "b"}, tensor<6x5xf32> {aim.state = "w.exp_avg"}
// CHECK: %[[R:.+]]:3 = call @loss_and_grads(%[[X]], %[[W]], %[[B]], %[[T]], %[[K]])
// CHECK: %[[NORM:.+]] = aim.global_norm %[[R]]#1, %[[R]]#2 {aim.scope = "optimizer.clip"}
// CHECK: %[[COEF:.+]] = aim.clip_coefficient %[[NORM]], max_norm = 1.000000e+00, epsilon = 9.9999999999999995E-7
// Weights decay; biases do not.
// CHECK: aim.adamw %[[W]], %[[R]]#1, %[[MW]], %[[VW]], lr %[[LR]], step %[[STEP]], clip %[[COEF]], beta1 = 9.000000e-01, beta2 = 0.94999999999999996, epsilon = 1.000000e-08, weight_decay = 5.000000e-02 {aim.scope = "optimizer.w"}
// CHECK: aim.adamw %[[B]], %[[R]]#2, %[[MB]], %[[VB]], lr %[[LR]], step %[[STEP]], clip %[[COEF]], {{.*}} weight_decay = 0.000000e+00 {aim.scope = "optimizer.b"}
// CHECK: return %[[R]]#0, %[[NORM]],

// OPTIONS: aim.clip_coefficient %{{.*}}, max_norm = 2.000000e+00
// OPTIONS: weight_decay = 1.000000e-01 {aim.scope = "optimizer.w"}

// ORDER: aim-build-train-step needs @loss_and_grads: run aim-autodiff first
func.func @forward(%x: tensor<2x4x5xf32> {aim.input = "x"}, %w: tensor<6x5xf32> {aim.param = "w"},
                   %b: tensor<6xf32> {aim.param = "b"}, %t: tensor<2x4x6xf32> {aim.input = "target"},
                   %K: tensor<2xi32> {aim.input = "prefix"}) -> tensor<f32> {
  %y = aim.linear %x, %w, %b : tensor<2x4x5xf32>, tensor<6x5xf32>, tensor<6xf32> -> tensor<2x4x6xf32>
  %l = aim.normalized_pixel_loss %y, %t, prefix %K, epsilon = 1.0e-6 : tensor<2x4x6xf32>, tensor<2x4x6xf32>, tensor<2xi32> -> tensor<f32>
  return %l : tensor<f32>
}
