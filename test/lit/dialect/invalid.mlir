// Invalid aim IR gets a diagnostic that names the operand, the shape and the fix.
// RUN: aim-opt %s -split-input-file -verify-diagnostics

func.func @patchify_not_divisible(%x: tensor<2x1x9x12xf32>) {
  // expected-error @+1 {{image size 9x12 is not divisible by patch_size 4}}
  %0 = aim.patchify %x, patch_size = 4, order = channel_last : tensor<2x1x9x12xf32> -> tensor<2x6x16xf32>
  return
}

// -----

func.func @patchify_wrong_result(%x: tensor<2x1x8x12xf32>) {
  // expected-error @+1 {{result must have shape [2, 6, 16] but has [2, 6, 8]}}
  %0 = aim.patchify %x, patch_size = 4, order = channel_last : tensor<2x1x8x12xf32> -> tensor<2x6x8xf32>
  return
}

// -----

func.func @patchify_rank(%x: tensor<2x8x12xf32>) {
  // expected-error @+1 {{images must be [B, C, H, W] (rank 4) but have rank 3}}
  %0 = aim.patchify %x, patch_size = 4, order = channel_last : tensor<2x8x12xf32> -> tensor<2x6x16xf32>
  return
}

// -----

func.func @patchify_zero_patch(%x: tensor<2x1x8x12xf32>) {
  // expected-error @+1 {{attribute 'patch_size' failed to satisfy constraint}}
  %0 = aim.patchify %x, patch_size = 0, order = channel_last : tensor<2x1x8x12xf32> -> tensor<2x6x16xf32>
  return
}

// -----

func.func @reshape_count(%x: tensor<4x4xf32>) {
  // expected-error @+1 {{input [4, 4] has 16 elements but result [3, 5] has 15}}
  %0 = aim.reshape %x : tensor<4x4xf32> -> tensor<3x5xf32>
  return
}

// -----

func.func @reshape_element_type(%x: tensor<4x4xf32>) {
  // expected-error @+1 {{input has element type 'f32' but result has 'f64'; insert an aim.cast}}
  %0 = aim.reshape %x : tensor<4x4xf32> -> tensor<16xf64>
  return
}

// -----

func.func @slice_range(%x: tensor<2x6x48xf32>) {
  // expected-error @+1 {{range [40, 56) exceeds dimension 2 of size 48}}
  %0 = aim.slice %x, dim = 2, offset = 40, size = 16 : tensor<2x6x48xf32> -> tensor<2x6x16xf32>
  return
}

// -----

func.func @slice_dim(%x: tensor<2x6x48xf32>) {
  // expected-error @+1 {{dim 3 is out of range for input of rank 3}}
  %0 = aim.slice %x, dim = 3, offset = 0, size = 1 : tensor<2x6x48xf32> -> tensor<2x6x48xf32>
  return
}

// -----

func.func @slice_result(%x: tensor<2x6x48xf32>) {
  // expected-error @+1 {{result must have shape [2, 6, 16] but has [2, 6, 15]}}
  %0 = aim.slice %x, dim = 2, offset = 0, size = 16 : tensor<2x6x48xf32> -> tensor<2x6x15xf32>
  return
}

// -----

func.func @cast_shape(%x: tensor<2x6xf32>) {
  // expected-error @+1 {{result must have shape [2, 6] but has [6, 2]}}
  %0 = aim.cast %x : tensor<2x6xf32> -> tensor<6x2xbf16>
  return
}

// -----

func.func @linear_features(%x: tensor<2x6x16xf32>, %w: tensor<32x8xf32>) {
  // expected-error @+1 {{weight [32, 8] takes 8 input features but the input's last dimension is 16}}
  %0 = aim.linear %x, %w : tensor<2x6x16xf32>, tensor<32x8xf32> -> tensor<2x6x32xf32>
  return
}

// -----

func.func @linear_bias(%x: tensor<2x6x16xf32>, %w: tensor<32x16xf32>, %b: tensor<16xf32>) {
  // expected-error @+1 {{bias must have shape [32] but has [16]}}
  %0 = aim.linear %x, %w, %b : tensor<2x6x16xf32>, tensor<32x16xf32>, tensor<16xf32> -> tensor<2x6x32xf32>
  return
}

// -----

func.func @linear_weight_rank(%x: tensor<2x6x16xf32>, %w: tensor<16xf32>) {
  // expected-error @+1 {{weight must be [out, in] (rank 2) but has rank 1}}
  %0 = aim.linear %x, %w : tensor<2x6x16xf32>, tensor<16xf32> -> tensor<2x6x32xf32>
  return
}

// -----

func.func @linear_result(%x: tensor<2x6x16xf32>, %w: tensor<32x16xf32>) {
  // expected-error @+1 {{result must have shape [2, 6, 32] but has [2, 6, 16]}}
  %0 = aim.linear %x, %w : tensor<2x6x16xf32>, tensor<32x16xf32> -> tensor<2x6x16xf32>
  return
}

// -----

func.func @linear_mixed_operands(%x: tensor<2x6x16xbf16>, %w: tensor<32x16xf32>) {
  // expected-error @+1 {{input has element type 'bf16' but weight has 'f32'; insert an aim.cast}}
  %0 = aim.linear %x, %w : tensor<2x6x16xbf16>, tensor<32x16xf32> -> tensor<2x6x32xf32>
  return
}

// -----

func.func @linear_narrowed_result(%x: tensor<2x6x16xf32>, %w: tensor<32x16xf32>) {
  // expected-error @+1 {{result has element type 'bf16' but input has 'f32'; a GEMM's result has its operands' element type, or f32 for bf16 or f16 operands}}
  %0 = aim.linear %x, %w : tensor<2x6x16xf32>, tensor<32x16xf32> -> tensor<2x6x32xbf16>
  return
}

// -----

func.func @linear_bias_of_the_operands(%x: tensor<2x6x16xbf16>, %w: tensor<32x16xbf16>, %b: tensor<32xbf16>) {
  // expected-error @+1 {{result has element type 'f32' but bias has 'bf16'; insert an aim.cast}}
  %0 = aim.linear %x, %w, %b : tensor<2x6x16xbf16>, tensor<32x16xbf16>, tensor<32xbf16> -> tensor<2x6x32xf32>
  return
}

// -----

func.func @matmul_f64_result(%a: tensor<12x16xbf16>) {
  // expected-error @+1 {{result has element type 'f64' but lhs has 'bf16'}}
  %0 = aim.matmul %a, %a, transpose_lhs = true, transpose_rhs = false : tensor<12x16xbf16>, tensor<12x16xbf16> -> tensor<16x16xf64>
  return
}

// -----

func.func @layer_norm_weight(%x: tensor<2x6x16xf32>, %g: tensor<8xf32>, %b: tensor<16xf32>) {
  // expected-error @+1 {{weight must have shape [16] but has [8]}}
  %0 = aim.layer_norm %x, %g, %b, epsilon = 1.0e-6 : tensor<2x6x16xf32>, tensor<8xf32>, tensor<16xf32> -> tensor<2x6x16xf32>
  return
}

// -----

func.func @layer_norm_epsilon(%x: tensor<2x6x16xf32>, %g: tensor<16xf32>, %b: tensor<16xf32>) {
  // expected-error @+1 {{epsilon must be positive, got 0}}
  %0 = aim.layer_norm %x, %g, %b, epsilon = 0.0 : tensor<2x6x16xf32>, tensor<16xf32>, tensor<16xf32> -> tensor<2x6x16xf32>
  return
}

// -----

func.func @add_broadcast(%x: tensor<2x6x16xf32>, %y: tensor<5x16xf32>) {
  // expected-error @+1 {{rhs shape [5, 16] must equal the trailing dimensions of lhs shape [2, 6, 16]}}
  %0 = aim.add %x, %y : tensor<2x6x16xf32>, tensor<5x16xf32> -> tensor<2x6x16xf32>
  return
}

// -----

func.func @add_element_type(%x: tensor<2x6x16xf32>, %y: tensor<6x16xbf16>) {
  // expected-error @+1 {{lhs has element type 'f32' but rhs has 'bf16'}}
  %0 = aim.add %x, %y : tensor<2x6x16xf32>, tensor<6x16xbf16> -> tensor<2x6x16xf32>
  return
}

// -----

func.func @gelu_type(%x: tensor<2x6x16xf32>) {
  // expected-error @+1 {{result type 'tensor<2x6x16xbf16>' must equal the input type 'tensor<2x6x16xf32>'}}
  %0 = aim.gelu %x, approximation = erf : tensor<2x6x16xf32> -> tensor<2x6x16xbf16>
  return
}

// -----

func.func @gelu_unknown_approximation(%x: tensor<2x6x16xf32>) {
  // expected-error @+1 {{expected string or keyword containing one of the following enum values for attribute 'approximation' [erf, tanh]}}
  %0 = aim.gelu %x, approximation = sigmoid : tensor<2x6x16xf32> -> tensor<2x6x16xf32>
  return
}

// -----

func.func @pos_embed_rows() {
  // expected-error @+1 {{result has 5 rows but the grid 2x3 has 6 tokens}}
  %0 = aim.pos_embed_2d grid_height = 2, grid_width = 3 : tensor<5x16xf32>
  return
}

// -----

func.func @pos_embed_width() {
  // expected-error @+1 {{width 18 must be divisible by 4}}
  %0 = aim.pos_embed_2d grid_height = 2, grid_width = 3 : tensor<6x18xf32>
  return
}

// -----

func.func @attention_missing_prefix(%q: tensor<2x6x16xf32>) {
  // expected-error @+1 {{mask prefix_causal needs the per-sample prefix lengths: write `mask = prefix_causal(%K)` with %K : tensor<2xi32>}}
  %0, %1 = aim.attention %q, %q, %q, heads = 2, mask = prefix_causal, scale = 0.25 : tensor<2x6x16xf32>, tensor<2x6x16xf32>, tensor<2x6x16xf32> -> tensor<2x6x16xf32>, tensor<2x2x6xf32>
  return
}

// -----

func.func @attention_extra_prefix(%q: tensor<2x6x16xf32>, %K: tensor<2xi32>) {
  // expected-error @+1 {{mask causal takes no prefix lengths}}
  %0, %1 = aim.attention %q, %q, %q, heads = 2, mask = causal(%K), scale = 0.25 : tensor<2x6x16xf32>, tensor<2x6x16xf32>, tensor<2x6x16xf32>, tensor<2xi32> -> tensor<2x6x16xf32>, tensor<2x2x6xf32>
  return
}

// -----

func.func @attention_prefix_length(%q: tensor<2x6x16xf32>, %K: tensor<3xi32>) {
  // expected-error @+1 {{prefix must have shape [2] but has [3]}}
  %0, %1 = aim.attention %q, %q, %q, heads = 2, mask = prefix_causal(%K), scale = 0.25 : tensor<2x6x16xf32>, tensor<2x6x16xf32>, tensor<2x6x16xf32>, tensor<3xi32> -> tensor<2x6x16xf32>, tensor<2x2x6xf32>
  return
}

// -----

func.func @attention_heads(%q: tensor<2x6x16xf32>) {
  // expected-error @+1 {{width 16 is not divisible by heads 3}}
  %0, %1 = aim.attention %q, %q, %q, heads = 3, mask = causal, scale = 0.25 : tensor<2x6x16xf32>, tensor<2x6x16xf32>, tensor<2x6x16xf32> -> tensor<2x6x16xf32>, tensor<2x3x6xf32>
  return
}

// -----

func.func @attention_key_shape(%q: tensor<2x6x16xf32>, %k: tensor<2x5x16xf32>) {
  // expected-error @+1 {{query must have shape [2, 5, 16] but has [2, 6, 16]}}
  %0, %1 = aim.attention %q, %k, %q, heads = 2, mask = causal, scale = 0.25 : tensor<2x6x16xf32>, tensor<2x5x16xf32>, tensor<2x6x16xf32> -> tensor<2x6x16xf32>, tensor<2x2x6xf32>
  return
}

// -----

func.func @attention_prefix_float(%q: tensor<2x6x16xf32>, %K: tensor<2xf32>) {
  // expected-error @+1 {{operand #3 must be 1D tensor of 32-bit signless integer or 64-bit signless integer values}}
  %0, %1 = aim.attention %q, %q, %q, heads = 2, mask = prefix_causal(%K), scale = 0.25 : tensor<2x6x16xf32>, tensor<2x6x16xf32>, tensor<2x6x16xf32>, tensor<2xf32> -> tensor<2x6x16xf32>, tensor<2x2x6xf32>
  return
}

// -----

func.func @loss_target_shape(%p: tensor<2x6x16xf32>, %t: tensor<2x6x8xf32>, %K: tensor<2xi32>) {
  // expected-error @+1 {{target must have shape [2, 6, 16] but has [2, 6, 8]}}
  %0 = aim.normalized_pixel_loss %p, %t, prefix %K, epsilon = 1.0e-6 : tensor<2x6x16xf32>, tensor<2x6x8xf32>, tensor<2xi32> -> tensor<f32>
  return
}

// -----

func.func @loss_one_value_patches(%p: tensor<2x6x1xf32>, %K: tensor<2xi32>) {
  // expected-error @+1 {{needs P >= 2 values per patch}}
  %0 = aim.normalized_pixel_loss %p, %p, prefix %K, epsilon = 1.0e-6 : tensor<2x6x1xf32>, tensor<2x6x1xf32>, tensor<2xi32> -> tensor<f32>
  return
}

// -----

func.func @loss_one_patch(%p: tensor<2x1x16xf32>, %K: tensor<2xi32>) {
  // expected-error @+1 {{needs N >= 2 patches}}
  %0 = aim.normalized_pixel_loss %p, %p, prefix %K, epsilon = 1.0e-6 : tensor<2x1x16xf32>, tensor<2x1x16xf32>, tensor<2xi32> -> tensor<f32>
  return
}

// -----

func.func @loss_not_scalar(%p: tensor<2x6x16xf32>, %K: tensor<2xi32>) {
  // expected-error @+1 {{result #0 must be 0D tensor of}}
  %0 = aim.normalized_pixel_loss %p, %p, prefix %K, epsilon = 1.0e-6 : tensor<2x6x16xf32>, tensor<2x6x16xf32>, tensor<2xi32> -> tensor<1xf32>
  return
}

// -----

func.func @attention_row_stats_shape(%q: tensor<2x6x16xf32>) {
  // expected-error @+1 {{row_logsumexp must have shape [2, 4, 6] but has [2, 6, 4]}}
  %0, %1 = aim.attention %q, %q, %q, heads = 4, mask = causal, scale = 0.25 : tensor<2x6x16xf32>, tensor<2x6x16xf32>, tensor<2x6x16xf32> -> tensor<2x6x16xf32>, tensor<2x6x4xf32>
  return
}

// -----

func.func @matmul_contraction(%a: tensor<12x16xf32>) {
  // expected-error @+1 {{contracted dimensions differ: lhs gives 16 and rhs gives 12}}
  %0 = aim.matmul %a, %a, transpose_lhs = false, transpose_rhs = false : tensor<12x16xf32>, tensor<12x16xf32> -> tensor<12x16xf32>
  return
}

// -----

func.func @matmul_rank(%a: tensor<2x12x16xf32>) {
  // expected-error @+1 {{operands must be matrices (rank 2), got ranks 3 and 3}}
  %0 = aim.matmul %a, %a, transpose_lhs = false, transpose_rhs = true : tensor<2x12x16xf32>, tensor<2x12x16xf32> -> tensor<12x12xf32>
  return
}

// -----

func.func @sum_leading_shape(%a: tensor<2x6x16xf32>) {
  // expected-error @+1 {{result shape [6] must equal the trailing dimensions of input shape [2, 6, 16]}}
  %0 = aim.sum_leading %a : tensor<2x6x16xf32> -> tensor<6xf32>
  return
}

// -----

func.func @pad_result(%a: tensor<2x6x16xf32>) {
  // expected-error @+1 {{result must have shape [2, 6, 48] but has [2, 6, 40]}}
  %0 = aim.pad %a, dim = 2, before = 16, after = 16 : tensor<2x6x16xf32> -> tensor<2x6x40xf32>
  return
}

// -----

func.func @layer_norm_grad_weight(%a: tensor<2x6x16xf32>, %w: tensor<8xf32>) {
  // expected-error @+1 {{weight must have shape [16] but has [8]}}
  %0, %1, %2 = aim.layer_norm_grad %a, %a, %w, epsilon = 1.0e-6 : tensor<2x6x16xf32>, tensor<2x6x16xf32>, tensor<8xf32> -> tensor<2x6x16xf32>, tensor<16xf32>, tensor<16xf32>
  return
}

// -----

func.func @gelu_grad_types(%a: tensor<2x6x16xf32>, %b: tensor<2x6x8xf32>) {
  // expected-error @+1 {{grad, input and result must have one type}}
  %0 = aim.gelu_grad %a, %b, approximation = erf : tensor<2x6x16xf32>, tensor<2x6x8xf32> -> tensor<2x6x16xf32>
  return
}

// -----

func.func @attention_grad_missing_prefix(%a: tensor<2x6x16xf32>, %lse: tensor<2x2x6xf32>) {
  // expected-error @+1 {{mask prefix_causal needs the per-sample prefix lengths}}
  %0, %1, %2 = aim.attention_grad %a, %a, %a, %a, %a, %lse, heads = 2, mask = prefix_causal, scale = 0.25 : tensor<2x6x16xf32>, tensor<2x6x16xf32>, tensor<2x6x16xf32>, tensor<2x6x16xf32>, tensor<2x6x16xf32>, tensor<2x2x6xf32> -> tensor<2x6x16xf32>, tensor<2x6x16xf32>, tensor<2x6x16xf32>
  return
}

// -----

func.func @attention_grad_output_shape(%a: tensor<2x6x16xf32>, %o: tensor<2x6x8xf32>, %lse: tensor<2x2x6xf32>) {
  // expected-error @+1 {{output must have shape [2, 6, 16] but has [2, 6, 8]}}
  %0, %1, %2 = aim.attention_grad %a, %a, %a, %a, %o, %lse, heads = 2, mask = causal, scale = 0.25 : tensor<2x6x16xf32>, tensor<2x6x16xf32>, tensor<2x6x16xf32>, tensor<2x6x16xf32>, tensor<2x6x8xf32>, tensor<2x2x6xf32> -> tensor<2x6x16xf32>, tensor<2x6x16xf32>, tensor<2x6x16xf32>
  return
}

// -----

func.func @loss_grad_shape(%dl: tensor<f32>, %a: tensor<2x6x16xf32>, %K: tensor<3xi32>) {
  // expected-error @+1 {{prefix must have shape [2] but has [3]}}
  %0 = aim.normalized_pixel_loss_grad %dl, %a, %a, prefix %K, epsilon = 1.0e-6 : tensor<f32>, tensor<2x6x16xf32>, tensor<2x6x16xf32>, tensor<3xi32> -> tensor<2x6x16xf32>
  return
}

// -----

func.func @global_norm_empty() {
  // expected-error @+1 {{needs at least one tensor}}
  %0 = "aim.global_norm"() : () -> tensor<f32>
  return
}

// -----

func.func @adamw_beta(%p: tensor<4xf32>, %lr: tensor<f32>, %s: tensor<i64>) {
  // expected-error @+1 {{beta2 must be in [0, 1), got 1}}
  %0, %1, %2 = aim.adamw %p, %p, %p, %p, lr %lr, step %s, clip %lr, beta1 = 0.9, beta2 = 1.0, epsilon = 1.0e-8, weight_decay = 0.0 : tensor<4xf32>, tensor<f32>, tensor<i64>, tensor<f32>
  return
}

// -----

func.func @adamw_step_type(%p: tensor<4xf32>, %lr: tensor<f32>) {
  // expected-error @+1 {{operand #5 must be 0D tensor of 32-bit signless integer or 64-bit signless integer values}}
  %0, %1, %2 = aim.adamw %p, %p, %p, %p, lr %lr, step %lr, clip %lr, beta1 = 0.9, beta2 = 0.95, epsilon = 1.0e-8, weight_decay = 0.0 : tensor<4xf32>, tensor<f32>, tensor<f32>, tensor<f32>
  return
}

// -----

func.func @live_queries_need_prefix_causal(%q: tensor<4x16xf32>, %k: tensor<2x6x16xf32>) {
  // expected-error @+1 {{live_queries needs mask prefix_causal}}
  %0, %1 = aim.attention %q, %k, %k, heads = 2, mask = causal, scale = 0.25 {live_queries} : tensor<4x16xf32>, tensor<2x6x16xf32>, tensor<2x6x16xf32> -> tensor<4x16xf32>, tensor<4x2xf32>
  return
}

// -----

func.func @live_queries_stats_shape(%q: tensor<4x16xf32>, %k: tensor<2x6x16xf32>, %K: tensor<2xi32>) {
  // expected-error @+1 {{row_logsumexp must have shape [4, 2] but has [2, 2, 6]}}
  %0, %1 = aim.attention %q, %k, %k, heads = 2, mask = prefix_causal(%K), scale = 0.25 {live_queries} : tensor<4x16xf32>, tensor<2x6x16xf32>, tensor<2x6x16xf32>, tensor<2xi32> -> tensor<4x16xf32>, tensor<2x2x6xf32>
  return
}
