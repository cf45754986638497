// RUN: aim-opt %s --split-input-file --aim-prefix-mask | FileCheck %s
// RUN: aim-opt %s --split-input-file --aim-prefix-mask | FileCheck %s --check-prefix=SPLIT
// RUN: aim-opt %s --split-input-file --aim-prefix-mask=mode=iid | FileCheck %s --check-prefix=IID
// RUN: not aim-opt %s --split-input-file --aim-prefix-mask=mode=sometimes 2>&1 | FileCheck %s --check-prefix=MODE
// RUN: aim-opt %s --split-input-file --aim-prefix-mask | FileCheck %s --check-prefix=WEIGHT

// The tile rule of prefix-causal attention, for any tile sizes.
// CHECK-DAG: #[[$EMPTY:.+]] = affine_map<(d0, d1)[s0] -> (s0, d1)>
// CHECK-DAG: #[[$FULL:.+]] = affine_map<(d0, d1)[s0] -> (s0, d0 + 1)>

// CHECK-LABEL: func.func @forward
// CHECK-SAME: aim.prefix_mode = "antithetic"
// The attention output only feeds live rows: the attention computes the live
// query rows only (live_queries) and the residual stream is gathered once.
// CHECK: %[[XR:.+]] = aim.gather_live_rows %arg0, prefix %arg1 {aim.scope = "prefix_mask.gather"} : tensor<2x4x8xf32>, tensor<2xi32> -> tensor<4x8xf32>
// CHECK: %[[O:[^,]+]], %{{.+}} = aim.attention %[[XR]], %arg0, %arg0, heads = 2, mask = prefix_causal(%arg1), {{.*}} {live_queries, tile_empty_from = #[[$EMPTY]], tile_full_until = #[[$FULL]]} : tensor<4x8xf32>, tensor<2x4x8xf32>, tensor<2x4x8xf32>, tensor<2xi32> -> tensor<4x8xf32>, tensor<4x2xf32>
// CHECK: %[[P:.+]] = aim.linear %[[O]], %arg2 : tensor<4x8xf32>, tensor<8x8xf32> -> tensor<4x8xf32>
// CHECK: %[[S:.+]] = aim.add %[[XR]], %[[P]] : tensor<4x8xf32>, tensor<4x8xf32> -> tensor<4x8xf32>
// CHECK: %[[POS:.+]] = aim.pos_embed_2d grid_height = 2, grid_width = 2 : tensor<4x8xf32>
// CHECK: %[[POSR:.+]] = aim.gather_live_rows %[[POS]], prefix %arg1 {{.*}} : tensor<4x8xf32>, tensor<2xi32> -> tensor<4x8xf32>
// CHECK: %[[H:.+]] = aim.add %[[S]], %[[POSR]] : tensor<4x8xf32>, tensor<4x8xf32> -> tensor<4x8xf32>
// CHECK: %[[PRED:.+]] = aim.linear %[[H]], %arg3, %arg4 : tensor<4x8xf32>, tensor<6x8xf32>, tensor<6xf32> -> tensor<4x6xf32>
// CHECK: %[[FULLPRED:.+]] = aim.scatter_live_rows %[[PRED]], prefix %arg1 {aim.scope = "prefix_mask.scatter"} : tensor<4x6xf32>, tensor<2xi32> -> tensor<2x4x6xf32>
// CHECK: aim.normalized_pixel_loss %[[FULLPRED]], %arg5, prefix %arg1

// SPLIT-LABEL: func.func @forward
// SPLIT: aim.normalized_pixel_loss

// Under iid sampling the capacity is the upper bound B*(N-1) = 6.
// IID: aim.prefix_mode = "iid"
// IID: aim.gather_live_rows {{.*}} -> tensor<6x8xf32>
// IID: aim.scatter_live_rows {{.*}} : tensor<6x6xf32>, tensor<2xi32> -> tensor<2x4x6xf32>

// MODE: aim-prefix-mask: mode must be antithetic or iid, got 'sometimes'
func.func @forward(%x: tensor<2x4x8xf32>, %K: tensor<2xi32>, %wp: tensor<8x8xf32> {aim.param = "proj"},
                   %w: tensor<6x8xf32> {aim.param = "pred.weight"}, %b: tensor<6xf32> {aim.param = "pred.bias"},
                   %t: tensor<2x4x6xf32>) -> tensor<f32> {
  %o, %lse = aim.attention %x, %x, %x, heads = 2, mask = prefix_causal(%K), scale = 0.5 : tensor<2x4x8xf32>, tensor<2x4x8xf32>, tensor<2x4x8xf32>, tensor<2xi32> -> tensor<2x4x8xf32>, tensor<2x2x4xf32>
  %p = aim.linear %o, %wp : tensor<2x4x8xf32>, tensor<8x8xf32> -> tensor<2x4x8xf32>
  %s = aim.add %x, %p : tensor<2x4x8xf32>, tensor<2x4x8xf32> -> tensor<2x4x8xf32>
  %pos = aim.pos_embed_2d grid_height = 2, grid_width = 2 : tensor<4x8xf32>
  %h = aim.add %s, %pos : tensor<2x4x8xf32>, tensor<4x8xf32> -> tensor<2x4x8xf32>
  %pred = aim.linear %h, %w, %b : tensor<2x4x8xf32>, tensor<6x8xf32>, tensor<6xf32> -> tensor<2x4x6xf32>
  %l = aim.normalized_pixel_loss %pred, %t, prefix %K, epsilon = 1.0e-6 : tensor<2x4x6xf32>, tensor<2x4x6xf32>, tensor<2xi32> -> tensor<f32>
  return %l : tensor<f32>
}

// -----

// A fused qkv projection feeding the last attention is split: the query rows
// of W project only the live rows, the key and value rows every row.
// SPLIT-LABEL: func.func @forward
// SPLIT: %[[H:.+]] = aim.gather_live_rows %arg0, prefix %arg1
// SPLIT: %[[WQ:.+]] = aim.slice %arg2, dim = 0, offset = 0, size = 8 : tensor<24x8xf32> -> tensor<8x8xf32>
// SPLIT: %[[Q:.+]] = aim.linear %[[H]], %[[WQ]] : tensor<4x8xf32>, tensor<8x8xf32> -> tensor<4x8xf32>
// SPLIT: %[[WKV:.+]] = aim.slice %arg2, dim = 0, offset = 8, size = 16 : tensor<24x8xf32> -> tensor<16x8xf32>
// SPLIT: %[[KV:.+]] = aim.linear %arg0, %[[WKV]] : tensor<2x4x8xf32>, tensor<16x8xf32> -> tensor<2x4x16xf32>
// SPLIT: %[[K:.+]] = aim.slice %[[KV]], dim = 2, offset = 0, size = 8
// SPLIT: %[[V:.+]] = aim.slice %[[KV]], dim = 2, offset = 8, size = 8
// SPLIT: aim.attention %[[Q]], %[[K]], %[[V]], {{.*}}live_queries
// SPLIT-NOT: tensor<2x4x24xf32>
func.func @forward(%x: tensor<2x4x8xf32>, %K: tensor<2xi32>, %wqkv: tensor<24x8xf32> {aim.param = "qkv"},
                   %w: tensor<6x8xf32> {aim.param = "pred"}, %t: tensor<2x4x6xf32>) -> tensor<f32> {
  %qkv = aim.linear %x, %wqkv : tensor<2x4x8xf32>, tensor<24x8xf32> -> tensor<2x4x24xf32>
  %q = aim.slice %qkv, dim = 2, offset = 0, size = 8 : tensor<2x4x24xf32> -> tensor<2x4x8xf32>
  %k = aim.slice %qkv, dim = 2, offset = 8, size = 8 : tensor<2x4x24xf32> -> tensor<2x4x8xf32>
  %v = aim.slice %qkv, dim = 2, offset = 16, size = 8 : tensor<2x4x24xf32> -> tensor<2x4x8xf32>
  %o, %lse = aim.attention %q, %k, %v, heads = 2, mask = prefix_causal(%K), scale = 0.5 : tensor<2x4x8xf32>, tensor<2x4x8xf32>, tensor<2x4x8xf32>, tensor<2xi32> -> tensor<2x4x8xf32>, tensor<2x2x4xf32>
  %pred = aim.linear %o, %w : tensor<2x4x8xf32>, tensor<6x8xf32> -> tensor<2x4x6xf32>
  %l = aim.normalized_pixel_loss %pred, %t, prefix %K, epsilon = 1.0e-6 : tensor<2x4x6xf32>, tensor<2x4x6xf32>, tensor<2xi32> -> tensor<f32>
  return %l : tensor<f32>
}

// -----

// A weight whose first dimension happens to equal N is still a weight: only
// token operands are gathered (a regression: [N, D] weights were taken for a
// shared position embedding).
// WEIGHT-LABEL: func.func @forward
// WEIGHT: %[[H:.+]] = aim.gather_live_rows %arg0, prefix %arg1
// WEIGHT: aim.linear %[[H]], %arg2 : tensor<4x4xf32>, tensor<4x4xf32> -> tensor<4x4xf32>
// WEIGHT-NOT: aim.gather_live_rows %arg2
func.func @forward(%x: tensor<2x4x4xf32>, %K: tensor<2xi32>, %w: tensor<4x4xf32> {aim.param = "w"},
                   %t: tensor<2x4x4xf32>) -> tensor<f32> {
  %pred = aim.linear %x, %w : tensor<2x4x4xf32>, tensor<4x4xf32> -> tensor<2x4x4xf32>
  %l = aim.normalized_pixel_loss %pred, %t, prefix %K, epsilon = 1.0e-6 : tensor<2x4x4xf32>, tensor<2x4x4xf32>, tensor<2xi32> -> tensor<f32>
  return %l : tensor<f32>
}
