// Every aim op parses, verifies, prints and parses again to the same text.
// RUN: aim-opt %s | aim-opt | FileCheck %s
// RUN: aim-opt %s --mlir-print-op-generic | aim-opt | FileCheck %s

// CHECK-LABEL: func.func @data_movement
func.func @data_movement(%x: tensor<2x3x8x12xf32>, %w: tensor<5x3x4x4xf32>)
    -> (tensor<2x6x48xf32>, tensor<2x6x48xf32>, tensor<5x48xf32>, tensor<2x6x16xf32>, tensor<2x6x48xbf16>) {
  // CHECK: aim.patchify %{{.*}}, patch_size = 4, order = channel_first : tensor<2x3x8x12xf32> -> tensor<2x6x48xf32>
  %a = aim.patchify %x, patch_size = 4, order = channel_first : tensor<2x3x8x12xf32> -> tensor<2x6x48xf32>
  // CHECK: aim.patchify %{{.*}}, patch_size = 4, order = channel_last : tensor<2x3x8x12xf32> -> tensor<2x6x48xf32>
  %b = aim.patchify %x, patch_size = 4, order = channel_last : tensor<2x3x8x12xf32> -> tensor<2x6x48xf32>
  // CHECK: aim.reshape %{{.*}} : tensor<5x3x4x4xf32> -> tensor<5x48xf32>
  %c = aim.reshape %w : tensor<5x3x4x4xf32> -> tensor<5x48xf32>
  // CHECK: aim.slice %{{.*}}, dim = 2, offset = 16, size = 16 : tensor<2x6x48xf32> -> tensor<2x6x16xf32>
  %d = aim.slice %a, dim = 2, offset = 16, size = 16 : tensor<2x6x48xf32> -> tensor<2x6x16xf32>
  // CHECK: aim.cast %{{.*}} : tensor<2x6x48xf32> -> tensor<2x6x48xbf16>
  %e = aim.cast %a : tensor<2x6x48xf32> -> tensor<2x6x48xbf16>
  return %a, %b, %c, %d, %e : tensor<2x6x48xf32>, tensor<2x6x48xf32>, tensor<5x48xf32>, tensor<2x6x16xf32>, tensor<2x6x48xbf16>
}

// CHECK-LABEL: func.func @compute
func.func @compute(%x: tensor<2x6x16xf32>, %w: tensor<32x16xf32>, %b: tensor<32xf32>,
                   %g: tensor<16xf32>, %be: tensor<16xf32>)
    -> (tensor<2x6x32xf32>, tensor<2x6x32xf32>, tensor<2x6x16xf32>, tensor<2x6x16xf32>, tensor<2x6x32xf32>, tensor<2x6x32xf32>) {
  // CHECK: aim.linear %{{.*}}, %{{.*}}, %{{.*}} : tensor<2x6x16xf32>, tensor<32x16xf32>, tensor<32xf32> -> tensor<2x6x32xf32>
  %l1 = aim.linear %x, %w, %b : tensor<2x6x16xf32>, tensor<32x16xf32>, tensor<32xf32> -> tensor<2x6x32xf32>
  // CHECK: aim.linear %{{.*}}, %{{.*}} : tensor<2x6x16xf32>, tensor<32x16xf32> -> tensor<2x6x32xf32>
  %l2 = aim.linear %x, %w : tensor<2x6x16xf32>, tensor<32x16xf32> -> tensor<2x6x32xf32>
  // CHECK: aim.layer_norm %{{.*}}, %{{.*}}, %{{.*}}, epsilon = 9.9999999999999995E-7 : tensor<2x6x16xf32>, tensor<16xf32>, tensor<16xf32> -> tensor<2x6x16xf32>
  %n = aim.layer_norm %x, %g, %be, epsilon = 1.0e-6 : tensor<2x6x16xf32>, tensor<16xf32>, tensor<16xf32> -> tensor<2x6x16xf32>
  // CHECK: %[[POS:.+]] = aim.pos_embed_2d grid_height = 2, grid_width = 3 : tensor<6x16xf32>
  %pos = aim.pos_embed_2d grid_height = 2, grid_width = 3 : tensor<6x16xf32>
  // CHECK: aim.add %{{.*}}, %[[POS]] : tensor<2x6x16xf32>, tensor<6x16xf32> -> tensor<2x6x16xf32>
  %s = aim.add %n, %pos : tensor<2x6x16xf32>, tensor<6x16xf32> -> tensor<2x6x16xf32>
  // CHECK: aim.gelu %{{.*}}, approximation = erf : tensor<2x6x32xf32> -> tensor<2x6x32xf32>
  %g1 = aim.gelu %l1, approximation = erf : tensor<2x6x32xf32> -> tensor<2x6x32xf32>
  // CHECK: aim.gelu %{{.*}}, approximation = tanh : tensor<2x6x32xf32> -> tensor<2x6x32xf32>
  %g2 = aim.gelu %l2, approximation = tanh : tensor<2x6x32xf32> -> tensor<2x6x32xf32>
  return %l1, %l2, %n, %s, %g1, %g2 : tensor<2x6x32xf32>, tensor<2x6x32xf32>, tensor<2x6x16xf32>, tensor<2x6x16xf32>, tensor<2x6x32xf32>, tensor<2x6x32xf32>
}

// CHECK-LABEL: func.func @attention_and_loss
func.func @attention_and_loss(%q: tensor<2x6x16xf32>, %K: tensor<2xi32>, %K64: tensor<2xi64>)
    -> (tensor<2x6x16xf32>, tensor<2x6x16xf32>, tensor<2x6x16xf32>, tensor<f32>) {
  // CHECK: aim.attention %{{.*}}, %{{.*}}, %{{.*}}, heads = 2, mask = prefix_causal(%{{.*}}), scale = 2.500000e-01 : tensor<2x6x16xf32>, tensor<2x6x16xf32>, tensor<2x6x16xf32>, tensor<2xi32> -> tensor<2x6x16xf32>, tensor<2x2x6xf32>
  %a, %a_lse = aim.attention %q, %q, %q, heads = 2, mask = prefix_causal(%K), scale = 0.25 : tensor<2x6x16xf32>, tensor<2x6x16xf32>, tensor<2x6x16xf32>, tensor<2xi32> -> tensor<2x6x16xf32>, tensor<2x2x6xf32>
  // CHECK: aim.attention %{{.*}}, %{{.*}}, %{{.*}}, heads = 4, mask = causal, scale = 5.000000e-01 : {{.*}}
  %b, %b_lse = aim.attention %q, %q, %q, heads = 4, mask = causal, scale = 0.5 : tensor<2x6x16xf32>, tensor<2x6x16xf32>, tensor<2x6x16xf32> -> tensor<2x6x16xf32>, tensor<2x4x6xf32>
  // CHECK: aim.attention %{{.*}}, %{{.*}}, %{{.*}}, heads = 1, mask = bidirectional, scale = 2.500000e-01 : {{.*}}
  %c, %c_lse = aim.attention %q, %q, %q, heads = 1, mask = bidirectional, scale = 0.25 : tensor<2x6x16xf32>, tensor<2x6x16xf32>, tensor<2x6x16xf32> -> tensor<2x6x16xf32>, tensor<2x1x6xf32>
  // CHECK: aim.normalized_pixel_loss %{{.*}}, %{{.*}}, prefix %{{.*}}, epsilon = 9.9999999999999995E-7 : tensor<2x6x16xf32>, tensor<2x6x16xf32>, tensor<2xi64> -> tensor<f32>
  %l = aim.normalized_pixel_loss %a, %b, prefix %K64, epsilon = 1.0e-6 : tensor<2x6x16xf32>, tensor<2x6x16xf32>, tensor<2xi64> -> tensor<f32>
  return %a, %b, %c, %l : tensor<2x6x16xf32>, tensor<2x6x16xf32>, tensor<2x6x16xf32>, tensor<f32>
}

// CHECK-LABEL: func.func @backward
func.func @backward(%dy: tensor<2x6x16xf32>, %x: tensor<2x6x16xf32>, %w: tensor<16xf32>,
                    %m: tensor<12x16xf32>, %lse: tensor<2x2x6xf32>, %K: tensor<2xi32>, %dl: tensor<f32>)
    -> (tensor<12x12xf32>, tensor<16x16xf32>, tensor<16xf32>, tensor<2x6x48xf32>, tensor<2x6x16xf32>,
        tensor<16xf32>, tensor<2x6x16xf32>, tensor<2x6x16xf32>, tensor<2x6x16xf32>) {
  // CHECK: aim.matmul %{{.*}}, %{{.*}}, transpose_lhs = false, transpose_rhs = true : tensor<12x16xf32>, tensor<12x16xf32> -> tensor<12x12xf32>
  %mm = aim.matmul %m, %m, transpose_lhs = false, transpose_rhs = true : tensor<12x16xf32>, tensor<12x16xf32> -> tensor<12x12xf32>
  // CHECK: aim.matmul %{{.*}}, %{{.*}}, transpose_lhs = true, transpose_rhs = false : tensor<12x16xf32>, tensor<12x16xf32> -> tensor<16x16xf32>
  %mt = aim.matmul %m, %m, transpose_lhs = true, transpose_rhs = false : tensor<12x16xf32>, tensor<12x16xf32> -> tensor<16x16xf32>
  // CHECK: aim.sum_leading %{{.*}} : tensor<2x6x16xf32> -> tensor<16xf32>
  %s = aim.sum_leading %dy : tensor<2x6x16xf32> -> tensor<16xf32>
  // CHECK: aim.pad %{{.*}}, dim = 2, before = 16, after = 16 : tensor<2x6x16xf32> -> tensor<2x6x48xf32>
  %p = aim.pad %dy, dim = 2, before = 16, after = 16 : tensor<2x6x16xf32> -> tensor<2x6x48xf32>
  // CHECK: aim.layer_norm_grad %{{.*}}, %{{.*}}, %{{.*}}, epsilon = 9.9999999999999995E-7 : tensor<2x6x16xf32>, tensor<2x6x16xf32>, tensor<16xf32> -> tensor<2x6x16xf32>, tensor<16xf32>, tensor<16xf32>
  %dx, %dw, %db = aim.layer_norm_grad %dy, %x, %w, epsilon = 1.0e-6 : tensor<2x6x16xf32>, tensor<2x6x16xf32>, tensor<16xf32> -> tensor<2x6x16xf32>, tensor<16xf32>, tensor<16xf32>
  // CHECK: aim.gelu_grad %{{.*}}, %{{.*}}, approximation = erf : tensor<2x6x16xf32>, tensor<2x6x16xf32> -> tensor<2x6x16xf32>
  %dg = aim.gelu_grad %dy, %x, approximation = erf : tensor<2x6x16xf32>, tensor<2x6x16xf32> -> tensor<2x6x16xf32>
  // CHECK: aim.attention_grad {{.*}}, heads = 2, mask = prefix_causal(%{{.*}}), scale = 2.500000e-01 : {{.*}} -> tensor<2x6x16xf32>, tensor<2x6x16xf32>, tensor<2x6x16xf32>
  %dq, %dk, %dv = aim.attention_grad %dy, %x, %x, %x, %x, %lse, heads = 2, mask = prefix_causal(%K), scale = 0.25 : tensor<2x6x16xf32>, tensor<2x6x16xf32>, tensor<2x6x16xf32>, tensor<2x6x16xf32>, tensor<2x6x16xf32>, tensor<2x2x6xf32>, tensor<2xi32> -> tensor<2x6x16xf32>, tensor<2x6x16xf32>, tensor<2x6x16xf32>
  // CHECK: aim.normalized_pixel_loss_grad %{{.*}}, %{{.*}}, %{{.*}}, prefix %{{.*}}, epsilon = 9.9999999999999995E-7 : tensor<f32>, tensor<2x6x16xf32>, tensor<2x6x16xf32>, tensor<2xi32> -> tensor<2x6x16xf32>
  %dp = aim.normalized_pixel_loss_grad %dl, %x, %x, prefix %K, epsilon = 1.0e-6 : tensor<f32>, tensor<2x6x16xf32>, tensor<2x6x16xf32>, tensor<2xi32> -> tensor<2x6x16xf32>
  return %mm, %mt, %s, %p, %dx, %dw, %dg, %dq, %dp : tensor<12x12xf32>, tensor<16x16xf32>, tensor<16xf32>, tensor<2x6x48xf32>, tensor<2x6x16xf32>, tensor<16xf32>, tensor<2x6x16xf32>, tensor<2x6x16xf32>, tensor<2x6x16xf32>
}

// CHECK-LABEL: func.func @optimizer
func.func @optimizer(%p: tensor<4x3xf32>, %g: tensor<4x3xf32>, %b: tensor<3xf32>, %lr: tensor<f32>, %s: tensor<i64>)
    -> (tensor<4x3xf32>, tensor<4x3xf32>, tensor<4x3xf32>) {
  // CHECK: %[[N:.+]] = aim.global_norm %{{.*}}, %{{.*}} : tensor<4x3xf32>, tensor<3xf32> -> tensor<f32>
  %n = aim.global_norm %g, %b : tensor<4x3xf32>, tensor<3xf32> -> tensor<f32>
  // CHECK: %[[C:.+]] = aim.clip_coefficient %[[N]], max_norm = 1.000000e+00, epsilon = 9.9999999999999995E-7 : tensor<f32> -> tensor<f32>
  %c = aim.clip_coefficient %n, max_norm = 1.0, epsilon = 1.0e-6 : tensor<f32> -> tensor<f32>
  // CHECK: aim.adamw %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, lr %{{.*}}, step %{{.*}}, clip %[[C]], beta1 = 9.000000e-01, beta2 = 0.94999999999999996, epsilon = 1.000000e-08, weight_decay = 5.000000e-02 : tensor<4x3xf32>, tensor<f32>, tensor<i64>, tensor<f32>
  %p1, %m1, %v1 = aim.adamw %p, %g, %p, %p, lr %lr, step %s, clip %c, beta1 = 0.9, beta2 = 0.95, epsilon = 1.0e-8, weight_decay = 0.05 : tensor<4x3xf32>, tensor<f32>, tensor<i64>, tensor<f32>
  return %p1, %m1, %v1 : tensor<4x3xf32>, tensor<4x3xf32>, tensor<4x3xf32>
}

// GEMMs of bfloat16 operands accumulate into float32 results
// (aim-bf16-gemm-operands); the bias has the result's type.
// CHECK-LABEL: func.func @mixed_precision_gemms
func.func @mixed_precision_gemms(%x: tensor<2x6x16xbf16>, %w: tensor<32x16xbf16>, %b: tensor<32xf32>,
                                 %m: tensor<12x16xbf16>) -> (tensor<2x6x32xf32>, tensor<16x16xf32>) {
  // CHECK: aim.linear %{{.*}}, %{{.*}}, %{{.*}} : tensor<2x6x16xbf16>, tensor<32x16xbf16>, tensor<32xf32> -> tensor<2x6x32xf32>
  %l = aim.linear %x, %w, %b : tensor<2x6x16xbf16>, tensor<32x16xbf16>, tensor<32xf32> -> tensor<2x6x32xf32>
  // CHECK: aim.matmul %{{.*}}, %{{.*}}, transpose_lhs = true, transpose_rhs = false : tensor<12x16xbf16>, tensor<12x16xbf16> -> tensor<16x16xf32>
  %mt = aim.matmul %m, %m, transpose_lhs = true, transpose_rhs = false : tensor<12x16xbf16>, tensor<12x16xbf16> -> tensor<16x16xf32>
  return %l, %mt : tensor<2x6x32xf32>, tensor<16x16xf32>
}
