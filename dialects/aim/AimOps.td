//===- AimOps.td - ops of the aim dialect -----------------*- tablegen -*-===//
//
// The forward graph and loss of AIM. Each op's description states its exact
// semantics (the interpreter implements them literally) and shows an example.
//
//===----------------------------------------------------------------------===//

#ifndef AIM_OPS_TD
#define AIM_OPS_TD

include "dialects/aim/AimDialect.td"
include "mlir/IR/EnumAttr.td"
include "dialects/aim/AimInterfaces.td"
include "mlir/Interfaces/ControlFlowInterfaces.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

//===----------------------------------------------------------------------===//
// Enums
//===----------------------------------------------------------------------===//

def Aim_MaskKind : I32EnumAttr<"MaskKind", "which keys a query may attend", [
    I32EnumAttrCase<"bidirectional", 0>,
    I32EnumAttrCase<"causal", 1>,
    I32EnumAttrCase<"prefix_causal", 2>]> {
  let cppNamespace = "::mlir::aim";
}

def Aim_PatchOrder : I32EnumAttr<"PatchOrder",
    "order of the values of one patch when it is flattened", [
    // (channel, row, col): the order of the patch-embedding weight [D, C, p, p].
    I32EnumAttrCase<"channel_first", 0>,
    // (row, col, channel): the order of the loss targets.
    I32EnumAttrCase<"channel_last", 1>]> {
  let cppNamespace = "::mlir::aim";
}

def Aim_GeluApproximation : I32EnumAttr<"GeluApproximation",
    "formula used for GELU", [
    I32EnumAttrCase<"erf", 0>,
    I32EnumAttrCase<"tanh", 1>]> {
  let cppNamespace = "::mlir::aim";
}

//===----------------------------------------------------------------------===//
// Type constraints
//===----------------------------------------------------------------------===//

def Aim_FloatTensor : RankedTensorOf<[F32, F64, BF16, F16]>;
def Aim_PrefixTensor : 1DTensorOf<[I32, I64]>;
def Aim_ScalarFloatTensor : 0DTensorOf<[F32, F64, BF16, F16]>;
def Aim_ScalarIntTensor : 0DTensorOf<[I32, I64]>;

/// An op with its own vector-Jacobian product (AimVjps.cpp).
def Aim_Differentiable : DeclareOpInterfaceMethods<Aim_DifferentiableOpInterface>;

//===----------------------------------------------------------------------===//
// Data movement
//===----------------------------------------------------------------------===//

def Aim_PatchifyOp : Aim_Op<"patchify", [Pure]> {
  let summary = "cuts images into flattened non-overlapping patches";
  let description = [{
    Turns images `[B, C, H, W]` into `[B, N, P]` with `N = (H/p)(W/p)` patches in
    raster order (row-major over the patch grid) and `P = p*p*C` values per
    patch. `order` fixes how one patch is flattened: `channel_first` is
    (channel, row, col), the order of the patch-embedding convolution weight;
    `channel_last` is (row, col, channel), the order of the loss targets.

    Example:
    ```mlir
    %p = aim.patchify %x, patch_size = 4, order = channel_last
        : tensor<8x1x28x28xf32> -> tensor<8x49x16xf32>
    ```
  }];
  let arguments = (ins Aim_FloatTensor:$images,
                       ConfinedAttr<I64Attr, [IntPositive]>:$patch_size,
                       Aim_PatchOrder:$order);
  let results = (outs Aim_FloatTensor:$result);
  let assemblyFormat = [{
    $images `,` `patch_size` `=` $patch_size `,` `order` `=` $order attr-dict
    `:` type($images) `->` type($result)
  }];
  let hasVerifier = 1;
}

def Aim_ReshapeOp : Aim_Op<"reshape", [Pure, Aim_Differentiable]> {
  let summary = "reinterprets a tensor with another static shape";
  let description = [{
    Same elements in the same row-major order, new shape; the element count and
    element type must match.

    Example:
    ```mlir
    %w2 = aim.reshape %w : tensor<192x1x4x4xf32> -> tensor<192x16xf32>
    ```
  }];
  let arguments = (ins Aim_FloatTensor:$input);
  let results = (outs Aim_FloatTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input) `->` type($result)";
  let hasVerifier = 1;
}

def Aim_SliceOp : Aim_Op<"slice", [Pure, Aim_Differentiable]> {
  let summary = "takes a contiguous range along one dimension";
  let description = [{
    `result = input[..., offset : offset + size, ...]` along dimension `dim`;
    every other dimension is kept whole. Used to split the fused qkv projection.

    Example:
    ```mlir
    %q = aim.slice %qkv, dim = 2, offset = 0, size = 192
        : tensor<8x49x576xf32> -> tensor<8x49x192xf32>
    ```
  }];
  let arguments = (ins Aim_FloatTensor:$input,
                       ConfinedAttr<I64Attr, [IntNonNegative]>:$dim,
                       ConfinedAttr<I64Attr, [IntNonNegative]>:$offset,
                       ConfinedAttr<I64Attr, [IntPositive]>:$size);
  let results = (outs Aim_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` `dim` `=` $dim `,` `offset` `=` $offset `,` `size` `=` $size
    attr-dict `:` type($input) `->` type($result)
  }];
  let hasVerifier = 1;
}

def Aim_CastOp : Aim_Op<"cast", [Pure, Aim_Differentiable]> {
  let summary = "converts the element type (f32, bf16, f16, f64)";
  let description = [{
    Rounds every element to the result's element type (round to nearest even);
    the shape is unchanged. Mixed precision places these explicitly.

    Example:
    ```mlir
    %h = aim.cast %x : tensor<8x49x192xf32> -> tensor<8x49x192xbf16>
    ```
  }];
  let arguments = (ins Aim_FloatTensor:$input);
  let results = (outs Aim_FloatTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input) `->` type($result)";
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Compute
//===----------------------------------------------------------------------===//

def Aim_LinearOp : Aim_Op<"linear", [Pure, Aim_Differentiable]> {
  let summary = "affine map over the last dimension (PyTorch Linear layout)";
  let description = [{
    `result[..., o] = sum_i input[..., i] * weight[o, i] (+ bias[o])` with
    `weight` of shape `[out, in]` as in `torch.nn.Linear`. The bias is optional
    (AIM's trunk linears have none).

    The result has the operands' element type, or is f32 accumulated from
    bf16 (or f16) input and weight (aim-bf16-gemm-operands); the bias has the
    result's.

    Example:
    ```mlir
    %y = aim.linear %x, %w, %b
        : tensor<8x49x16xf32>, tensor<192x16xf32>, tensor<192xf32> -> tensor<8x49x192xf32>
    ```
  }];
  let arguments = (ins Aim_FloatTensor:$input, Aim_FloatTensor:$weight,
                       Optional<Aim_FloatTensor>:$bias);
  let results = (outs Aim_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $weight (`,` $bias^)? attr-dict `:` type($input) `,` type($weight)
    (`,` type($bias)^)? `->` type($result)
  }];
  let hasVerifier = 1;
}

def Aim_LayerNormOp : Aim_Op<"layer_norm", [Pure, Aim_Differentiable]> {
  let summary = "layer normalisation over the last dimension, with affine";
  let description = [{
    With `mu` and `var` the mean and the biased variance (divide by D) over the
    last dimension: `result = (input - mu) / sqrt(var + epsilon) * weight + bias`.
    AIM uses `epsilon = 1e-6` everywhere.

    Example:
    ```mlir
    %y = aim.layer_norm %x, %g, %b, epsilon = 1.0e-06
        : tensor<8x49x192xf32>, tensor<192xf32>, tensor<192xf32> -> tensor<8x49x192xf32>
    ```
  }];
  let arguments = (ins Aim_FloatTensor:$input, Aim_FloatTensor:$weight,
                       Aim_FloatTensor:$bias, F64Attr:$epsilon);
  let results = (outs Aim_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $weight `,` $bias `,` `epsilon` `=` $epsilon attr-dict
    `:` type($input) `,` type($weight) `,` type($bias) `->` type($result)
  }];
  let hasVerifier = 1;
}

def Aim_AddOp : Aim_Op<"add", [Pure, Aim_Differentiable]> {
  let summary = "elementwise sum, the right operand broadcast over leading dims";
  let description = [{
    `result = lhs + rhs`, where the shape of `rhs` must equal the trailing
    dimensions of `lhs`'s shape; `rhs` is repeated over the leading ones (so a
    `[N, D]` position embedding adds to every sample of `[B, N, D]`).

    Example:
    ```mlir
    %y = aim.add %x, %pos : tensor<8x49x192xf32>, tensor<49x192xf32> -> tensor<8x49x192xf32>
    ```
  }];
  let arguments = (ins Aim_FloatTensor:$lhs, Aim_FloatTensor:$rhs);
  let results = (outs Aim_FloatTensor:$result);
  let assemblyFormat = [{
    $lhs `,` $rhs attr-dict `:` type($lhs) `,` type($rhs) `->` type($result)
  }];
  let hasVerifier = 1;
}

def Aim_GeluOp : Aim_Op<"gelu", [Pure, Aim_Differentiable]> {
  let summary = "Gaussian error linear unit";
  let description = [{
    `erf` (AIM's choice): `x * (1 + erf(x / sqrt(2))) / 2`.
    `tanh`: `x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3))) / 2`, only for
    configs that ask for it.

    Example:
    ```mlir
    %y = aim.gelu %x, approximation = erf : tensor<8x49x768xf32> -> tensor<8x49x768xf32>
    ```
  }];
  let arguments = (ins Aim_FloatTensor:$input, Aim_GeluApproximation:$approximation);
  let results = (outs Aim_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` `approximation` `=` $approximation attr-dict
    `:` type($input) `->` type($result)
  }];
  let hasVerifier = 1;
}

def Aim_PosEmbed2dOp : Aim_Op<"pos_embed_2d", [Pure]> {
  let summary = "the fixed 2D sin-cos position embedding (a constant)";
  let description = [{
    Produces `[grid_height * grid_width, E]`. For the token at grid row i,
    column j (n = i * grid_width + j): channels `[0, E/2)` are `S(E/2, j)` and
    channels `[E/2, E)` are `S(E/2, i)`, where
    `S(F, t) = [sin(t w_0) .. sin(t w_{F/2-1}), cos(t w_0) .. cos(t w_{F/2-1})]`
    and `w_k = 10000^(-k / (F/2))`: the first half encodes the column, the
    second the row (the MAE convention). E must be divisible by 4.

    Example:
    ```mlir
    %pos = aim.pos_embed_2d grid_height = 7, grid_width = 7 : tensor<49x192xf32>
    ```
  }];
  let arguments = (ins ConfinedAttr<I64Attr, [IntPositive]>:$grid_height,
                       ConfinedAttr<I64Attr, [IntPositive]>:$grid_width);
  let results = (outs Aim_FloatTensor:$result);
  let assemblyFormat = [{
    `grid_height` `=` $grid_height `,` `grid_width` `=` $grid_width attr-dict
    `:` type($result)
  }];
  let hasVerifier = 1;
}

def Aim_AttentionOp : Aim_Op<"attention", [Pure, Aim_Differentiable]> {
  let summary = "multi-head scaled dot-product attention with a mask kind";
  let description = [{
    `query`, `key` and `value` are `[B, N, heads * dh]`; head `h` uses channels
    `[h * dh, (h + 1) * dh)`. For each sample b, head and query q:
    `result[b, q, head] = sum_k softmax_k(scale * <query[b,q], key[b,k]>) value[b,k]`
    over the keys k that the mask allows:
    - `bidirectional`: every key;
    - `causal`: k <= q;
    - `prefix_causal`: k < prefix[b] or k <= q (AIM's mask). `prefix` is then a
      required operand, written `mask = prefix_causal(%K)`, with one length per
      sample, 1 <= prefix[b] <= N.
    No N x N mask tensor exists: passes and backends derive the visible keys
    from the kind and the prefix lengths.

    Tile rule (recorded by aim-prefix-mask, read by tiled kernels): for a
    query tile `[q_begin, q_end)` and a key tile `[k_begin, k_end)` of sample
    b, with each map applied to `(q_begin, q_end)[prefix[b]]` and the maximum
    of its results taken, the tile is *empty* (no visible pair: never loaded)
    when `k_begin >= max(tile_empty_from)`, *full* (every pair visible: no
    mask test) when `k_end <= max(tile_full_until)`, and *partial* otherwise.
    Without the attributes every tile is partial. For prefix_causal the pass
    records `tile_empty_from = (qb, qe)[K] -> (K, qe)` and
    `tile_full_until = (qb, qe)[K] -> (K, qb + 1)`.

    With `live_queries` (set by aim-prefix-mask where only the rows that
    reach the loss matter), `query` and the result are `[R, heads * dh]`: the
    live rows of `aim.gather_live_rows` order, each attending the keys of its
    own sample and position; `row_logsumexp` is then `[R, heads]` and padding
    rows give zeros.

    The second result, `row_logsumexp` `[B, heads, N]` (always f32), holds
    `log sum_k exp(scale * <query, key_k>)` over the visible keys of each row:
    the statistics from which `aim.attention_grad` recomputes the softmax
    instead of storing an N x N probability tensor.

    Example:
    ```mlir
    %o, %lse = aim.attention %q, %k, %v, heads = 6, mask = prefix_causal(%K),
        scale = 0.17677669529663687
        : tensor<8x49x192xf32>, tensor<8x49x192xf32>, tensor<8x49x192xf32>,
          tensor<8xi32> -> tensor<8x49x192xf32>, tensor<8x6x49xf32>
    ```
  }];
  let arguments = (ins Aim_FloatTensor:$query, Aim_FloatTensor:$key,
                       Aim_FloatTensor:$value, Optional<Aim_PrefixTensor>:$prefix,
                       ConfinedAttr<I64Attr, [IntPositive]>:$heads,
                       Aim_MaskKind:$mask, F64Attr:$scale,
                       OptionalAttr<AffineMapAttr>:$tile_empty_from,
                       OptionalAttr<AffineMapAttr>:$tile_full_until,
                       UnitAttr:$live_queries);
  let results = (outs Aim_FloatTensor:$result, F32Tensor:$row_logsumexp);
  let assemblyFormat = [{
    $query `,` $key `,` $value `,` `heads` `=` $heads `,`
    `mask` `=` $mask (`(` $prefix^ `)`)? `,` `scale` `=` $scale attr-dict
    `:` type($query) `,` type($key) `,` type($value) (`,` type($prefix)^)?
    `->` type($result) `,` type($row_logsumexp)
  }];
  let hasVerifier = 1;
}

def Aim_NormalizedPixelLossOp : Aim_Op<"normalized_pixel_loss", [Pure, Aim_Differentiable]> {
  let summary = "AIM's loss: regression of normalised next patches, non-prefix only";
  let description = [{
    `prediction` and `target` are `[B, N, P]` (target patches in `channel_last`
    order). Each target patch is normalised over its P values:
    `t' = (t - mean) / sqrt(var + epsilon)` with Bessel's correction (divide by
    P - 1). The prediction at position n - 1 regresses patch n:
    `loss = sum_{b, n >= max(1, prefix[b])} mean_j (prediction[b, n-1, j] - t'[b, n, j])^2`
    divided by the number of such (b, n) pairs in the whole batch. A batch with
    no such pair (every prefix[b] = N) has no loss; evaluating it is an error.

    Example:
    ```mlir
    %loss = aim.normalized_pixel_loss %pred, %t, prefix %K, epsilon = 1.0e-06
        : tensor<8x49x16xf32>, tensor<8x49x16xf32>, tensor<8xi32> -> tensor<f32>
    ```
  }];
  let arguments = (ins Aim_FloatTensor:$prediction, Aim_FloatTensor:$target,
                       Aim_PrefixTensor:$prefix, F64Attr:$epsilon);
  let results = (outs Aim_ScalarFloatTensor:$result);
  let assemblyFormat = [{
    $prediction `,` $target `,` `prefix` $prefix `,` `epsilon` `=` $epsilon attr-dict
    `:` type($prediction) `,` type($target) `,` type($prefix) `->` type($result)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Backward: ops that vector-Jacobian products build (aim-autodiff)
//===----------------------------------------------------------------------===//

def Aim_MatmulOp : Aim_Op<"matmul", [Pure]> {
  let summary = "2D matrix product with optional transposed operands";
  let description = [{
    `result = op(lhs) @ op(rhs)` where `op` transposes its operand when the
    matching flag is set. The gradients of `aim.linear` are matmuls over the
    flattened leading dimensions. As for `aim.linear`, the result has the
    operands' element type, or is f32 accumulated from bf16 (or f16) ones.

    Example:
    ```mlir
    %dw = aim.matmul %dy, %x, transpose_lhs = true, transpose_rhs = false
        : tensor<392x192xf32>, tensor<392x768xf32> -> tensor<192x768xf32>
    ```
  }];
  let arguments = (ins Aim_FloatTensor:$lhs, Aim_FloatTensor:$rhs,
                       BoolAttr:$transpose_lhs, BoolAttr:$transpose_rhs);
  let results = (outs Aim_FloatTensor:$result);
  let assemblyFormat = [{
    $lhs `,` $rhs `,` `transpose_lhs` `=` $transpose_lhs `,`
    `transpose_rhs` `=` $transpose_rhs attr-dict
    `:` type($lhs) `,` type($rhs) `->` type($result)
  }];
  let hasVerifier = 1;
}

def Aim_SumLeadingOp : Aim_Op<"sum_leading", [Pure]> {
  let summary = "sums over leading dimensions down to a trailing shape";
  let description = [{
    The result's shape equals the input's trailing dimensions; every leading
    dimension is summed away. The gradient of a broadcast (`aim.add` rhs, a
    bias) is this sum.

    Example:
    ```mlir
    %db = aim.sum_leading %dy : tensor<8x49x16xf32> -> tensor<16xf32>
    ```
  }];
  let arguments = (ins Aim_FloatTensor:$input);
  let results = (outs Aim_FloatTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input) `->` type($result)";
  let hasVerifier = 1;
}

def Aim_PadOp : Aim_Op<"pad", [Pure]> {
  let summary = "surrounds a tensor with zeros along one dimension";
  let description = [{
    `before` zeros, the input, then `after` zeros along `dim`: the gradient of
    `aim.slice`.

    Example:
    ```mlir
    %dqkv_q = aim.pad %dq, dim = 2, before = 0, after = 384
        : tensor<8x49x192xf32> -> tensor<8x49x576xf32>
    ```
  }];
  let arguments = (ins Aim_FloatTensor:$input,
                       ConfinedAttr<I64Attr, [IntNonNegative]>:$dim,
                       ConfinedAttr<I64Attr, [IntNonNegative]>:$before,
                       ConfinedAttr<I64Attr, [IntNonNegative]>:$after);
  let results = (outs Aim_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` `dim` `=` $dim `,` `before` `=` $before `,` `after` `=` $after
    attr-dict `:` type($input) `->` type($result)
  }];
  let hasVerifier = 1;
}

def Aim_LayerNormGradOp : Aim_Op<"layer_norm_grad", [Pure]> {
  let summary = "gradients of layer_norm for input, weight and bias";
  let description = [{
    With `xhat = (x - mean) * rstd` recomputed from `input` and
    `g = grad * weight`:
    `input_grad = rstd * (g - mean(g) - xhat * mean(g * xhat))` per row,
    `weight_grad = sum_rows grad * xhat`, `bias_grad = sum_rows grad`.

    Example:
    ```mlir
    %dx, %dw, %db = aim.layer_norm_grad %dy, %x, %w, epsilon = 1.0e-06
        : tensor<8x49x192xf32>, tensor<8x49x192xf32>, tensor<192xf32>
        -> tensor<8x49x192xf32>, tensor<192xf32>, tensor<192xf32>
    ```
  }];
  let arguments = (ins Aim_FloatTensor:$grad, Aim_FloatTensor:$input,
                       Aim_FloatTensor:$weight, F64Attr:$epsilon);
  let results = (outs Aim_FloatTensor:$input_grad, Aim_FloatTensor:$weight_grad,
                      Aim_FloatTensor:$bias_grad);
  let assemblyFormat = [{
    $grad `,` $input `,` $weight `,` `epsilon` `=` $epsilon attr-dict
    `:` type($grad) `,` type($input) `,` type($weight) `->` type($input_grad)
    `,` type($weight_grad) `,` type($bias_grad)
  }];
  let hasVerifier = 1;
}

def Aim_GeluGradOp : Aim_Op<"gelu_grad", [Pure]> {
  let summary = "gradient of gelu: grad * gelu'(input)";
  let description = [{
    `erf`: `gelu'(x) = Phi(x) + x phi(x)` (standard normal cdf and pdf).
    `tanh`: the derivative of `x (1 + tanh(u)) / 2` with
    `u = sqrt(2/pi) (x + 0.044715 x^3)`.

    Example:
    ```mlir
    %dx = aim.gelu_grad %dy, %x, approximation = erf
        : tensor<8x49x768xf32>, tensor<8x49x768xf32> -> tensor<8x49x768xf32>
    ```
  }];
  let arguments = (ins Aim_FloatTensor:$grad, Aim_FloatTensor:$input,
                       Aim_GeluApproximation:$approximation);
  let results = (outs Aim_FloatTensor:$result);
  let assemblyFormat = [{
    $grad `,` $input `,` `approximation` `=` $approximation attr-dict
    `:` type($grad) `,` type($input) `->` type($result)
  }];
  let hasVerifier = 1;
}

def Aim_AttentionGradOp : Aim_Op<"attention_grad", [Pure]> {
  let summary = "gradients of attention, recomputing the softmax from row stats";
  let description = [{
    For each visible (query q, key k) of each head, with
    `p = exp(scale <q, k> - row_logsumexp[q])` recomputed on the fly and
    `delta_q = <grad_q, output_q>`:
    `value_grad_k += p grad_q`, `ds = p (<grad_q, value_k> - delta_q)`,
    `query_grad_q += scale ds key_k`, `key_grad_k += scale ds query_q`.
    Nothing N x N is stored. Mask kind, prefix operand and tile rule as
    `aim.attention`.

    Example:
    ```mlir
    %dq, %dk, %dv = aim.attention_grad %do, %q, %k, %v, %o, %lse, heads = 6,
        mask = prefix_causal(%K), scale = 0.17677669529663687
        : tensor<8x49x192xf32>, tensor<8x49x192xf32>, tensor<8x49x192xf32>,
          tensor<8x49x192xf32>, tensor<8x49x192xf32>, tensor<8x6x49xf32>,
          tensor<8xi32>
        -> tensor<8x49x192xf32>, tensor<8x49x192xf32>, tensor<8x49x192xf32>
    ```
  }];
  let arguments = (ins Aim_FloatTensor:$grad, Aim_FloatTensor:$query,
                       Aim_FloatTensor:$key, Aim_FloatTensor:$value,
                       Aim_FloatTensor:$output, F32Tensor:$row_logsumexp,
                       Optional<Aim_PrefixTensor>:$prefix,
                       ConfinedAttr<I64Attr, [IntPositive]>:$heads,
                       Aim_MaskKind:$mask, F64Attr:$scale,
                       OptionalAttr<AffineMapAttr>:$tile_empty_from,
                       OptionalAttr<AffineMapAttr>:$tile_full_until,
                       UnitAttr:$live_queries);
  let results = (outs Aim_FloatTensor:$query_grad, Aim_FloatTensor:$key_grad,
                      Aim_FloatTensor:$value_grad);
  let assemblyFormat = [{
    $grad `,` $query `,` $key `,` $value `,` $output `,` $row_logsumexp `,`
    `heads` `=` $heads `,` `mask` `=` $mask (`(` $prefix^ `)`)? `,`
    `scale` `=` $scale attr-dict
    `:` type($grad) `,` type($query) `,` type($key) `,` type($value) `,`
    type($output) `,` type($row_logsumexp) (`,` type($prefix)^)?
    `->` type($query_grad) `,` type($key_grad) `,` type($value_grad)
  }];
  let hasVerifier = 1;
}

def Aim_NormalizedPixelLossGradOp : Aim_Op<"normalized_pixel_loss_grad", [Pure]> {
  let summary = "gradient of normalized_pixel_loss with respect to the prediction";
  let description = [{
    `prediction_grad[b, n-1, j] = grad * 2 (prediction[b, n-1, j] - t'[b, n, j]) / (P * pairs)`
    for every counted pair (b, n) (n >= max(1, prefix[b])), zero elsewhere;
    `pairs` is the number of counted pairs in the batch and `t'` the
    normalised target, as in `aim.normalized_pixel_loss`.

    Example:
    ```mlir
    %dpred = aim.normalized_pixel_loss_grad %dl, %pred, %t, prefix %K, epsilon = 1.0e-06
        : tensor<f32>, tensor<8x49x16xf32>, tensor<8x49x16xf32>, tensor<8xi32>
        -> tensor<8x49x16xf32>
    ```
  }];
  let arguments = (ins Aim_ScalarFloatTensor:$grad, Aim_FloatTensor:$prediction,
                       Aim_FloatTensor:$target, Aim_PrefixTensor:$prefix,
                       F64Attr:$epsilon);
  let results = (outs Aim_FloatTensor:$result);
  let assemblyFormat = [{
    $grad `,` $prediction `,` $target `,` `prefix` $prefix `,` `epsilon` `=`
    $epsilon attr-dict `:` type($grad) `,` type($prediction) `,` type($target)
    `,` type($prefix) `->` type($result)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Token liveness (aim-prefix-mask)
//===----------------------------------------------------------------------===//

def Aim_GatherLiveRowsOp : Aim_Op<"gather_live_rows", [Pure, Aim_Differentiable]> {
  let summary = "compacts the rows that reach the loss into a fixed capacity";
  let description = [{
    Row m of sample b is *live* when `max(prefix[b], 1) - 1 <= m <= N - 2`:
    the output at position m predicts patch m + 1, which the loss counts only
    when it is not in the prefix (AIM.md, "Liveness"). The result holds the
    live rows of `input` in (b, m) order, then zero rows up to `capacity`.
    `input` is `[B, N, D]`, or `[N, D]` shared by every sample (a position
    embedding). More live rows than `capacity` is a run-time error: the
    capacity is B*N/2 under antithetic prefix pairs (exact) and B*(N-1) under
    iid sampling (the upper bound).

    Example:
    ```mlir
    %live = aim.gather_live_rows %x, prefix %K : tensor<8x49x192xf32>, tensor<8xi32> -> tensor<196x192xf32>
    ```
  }];
  let arguments = (ins Aim_FloatTensor:$input, Aim_PrefixTensor:$prefix);
  let results = (outs Aim_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` `prefix` $prefix attr-dict `:` type($input) `,` type($prefix)
    `->` type($result)
  }];
  let hasVerifier = 1;
}

def Aim_ScatterLiveRowsOp : Aim_Op<"scatter_live_rows", [Pure, Aim_Differentiable]> {
  let summary = "puts compacted live rows back in place, zeros elsewhere";
  let description = [{
    The inverse of `aim.gather_live_rows`: row r of `input` goes to the r-th
    live (b, m) of the `[B, N, D]` result; dead rows are zero and padding rows
    of `input` are ignored.

    Example:
    ```mlir
    %pred = aim.scatter_live_rows %live, prefix %K : tensor<196x16xf32>, tensor<8xi32> -> tensor<8x49x16xf32>
    ```
  }];
  let arguments = (ins Aim_FloatTensor:$input, Aim_PrefixTensor:$prefix);
  let results = (outs Aim_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` `prefix` $prefix attr-dict `:` type($input) `,` type($prefix)
    `->` type($result)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Optimiser: ops of @train_step
//===----------------------------------------------------------------------===//

def Aim_GlobalNormOp : Aim_Op<"global_norm", [Pure]> {
  let summary = "L2 norm of all elements of all operands together";
  let description = [{
    `sqrt(sum over every operand and element of x^2)`: the gradient norm of
    global-norm clipping, reported before clipping.

    Example:
    ```mlir
    %norm = aim.global_norm %g0, %g1 : tensor<192x16xf32>, tensor<192xf32> -> tensor<f32>
    ```
  }];
  let arguments = (ins Variadic<Aim_FloatTensor>:$inputs);
  let results = (outs Aim_ScalarFloatTensor:$result);
  let assemblyFormat = [{
    $inputs attr-dict `:` type($inputs) `->` type($result)
  }];
  let hasVerifier = 1;
}

def Aim_ClipCoefficientOp : Aim_Op<"clip_coefficient", [Pure]> {
  let summary = "the factor of global-norm gradient clipping";
  let description = [{
    `min(1, max_norm / (norm + epsilon))`, as torch.nn.utils.clip_grad_norm_
    computes it (AIM: max_norm 1, epsilon 1e-6).

    Example:
    ```mlir
    %coef = aim.clip_coefficient %norm, max_norm = 1.0, epsilon = 1.0e-06
        : tensor<f32> -> tensor<f32>
    ```
  }];
  let arguments = (ins Aim_ScalarFloatTensor:$norm, F64Attr:$max_norm,
                       F64Attr:$epsilon);
  let results = (outs Aim_ScalarFloatTensor:$result);
  let assemblyFormat = [{
    $norm `,` `max_norm` `=` $max_norm `,` `epsilon` `=` $epsilon attr-dict
    `:` type($norm) `->` type($result)
  }];
}

def Aim_AdamWOp : Aim_Op<"adamw", [Pure, AllTypesMatch<["param", "grad",
    "exp_avg", "exp_avg_sq", "new_param", "new_exp_avg", "new_exp_avg_sq"]>]> {
  let summary = "one AdamW update of one parameter (PyTorch's conventions)";
  let description = [{
    With `g = grad * clip_coefficient` and `t = step + 1` (`step` is 0-based):
    ```
    param     <- param - lr * weight_decay * param        (decoupled decay)
    exp_avg   <- beta1 exp_avg + (1 - beta1) g
    exp_avg_sq<- beta2 exp_avg_sq + (1 - beta2) g^2
    param     <- param - lr * (exp_avg / (1 - beta1^t))
                       / (sqrt(exp_avg_sq / (1 - beta2^t)) + epsilon)
    ```
    `weight_decay` is 0 for parameters outside the decay group (biases and
    LayerNorm parameters). `lr` and `step` are inputs, so one program serves
    any schedule.

    Example:
    ```mlir
    %p1, %m1, %v1 = aim.adamw %p, %g, %m, %v, lr %lr, step %s, clip %coef,
        beta1 = 0.9, beta2 = 0.95, epsilon = 1.0e-08, weight_decay = 0.05
        : tensor<192x16xf32>, tensor<f32>, tensor<i64>, tensor<f32>
    ```
  }];
  let arguments = (ins Aim_FloatTensor:$param, Aim_FloatTensor:$grad,
                       Aim_FloatTensor:$exp_avg, Aim_FloatTensor:$exp_avg_sq,
                       Aim_ScalarFloatTensor:$lr, Aim_ScalarIntTensor:$step,
                       Aim_ScalarFloatTensor:$clip_coefficient,
                       F64Attr:$beta1, F64Attr:$beta2, F64Attr:$epsilon,
                       F64Attr:$weight_decay);
  let results = (outs Aim_FloatTensor:$new_param, Aim_FloatTensor:$new_exp_avg,
                      Aim_FloatTensor:$new_exp_avg_sq);
  let assemblyFormat = [{
    $param `,` $grad `,` $exp_avg `,` $exp_avg_sq `,` `lr` $lr `,` `step` $step
    `,` `clip` $clip_coefficient `,` `beta1` `=` $beta1 `,` `beta2` `=` $beta2
    `,` `epsilon` `=` $epsilon `,` `weight_decay` `=` $weight_decay attr-dict
    `:` type($param) `,` type($lr) `,` type($step) `,` type($clip_coefficient)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Distribution (aim-shard): what a rank needs beside upstream's shard
// collectives (shard.all_reduce, shard.all_slice, shard.all_gather,
// shard.reduce_scatter on a shard.grid)
//===----------------------------------------------------------------------===//

def Aim_EnterPartialOp : Aim_Op<"enter_partial", [Pure, Aim_Differentiable,
    AllTypesMatch<["input", "result"]>]> {
  let summary = "a replicated value entering computation split over grid axes";
  let description = [{
    The identity. It marks where a value that every rank of `grid_axes` holds
    whole feeds computation each rank does on its own part (a column-parallel
    linear of tensor parallelism): each rank's cotangent is then only its
    part's, so the backward sums the cotangent over `grid_axes`
    (`shard.all_reduce`). Megatron-LM's "copy to the model-parallel region".

    Example:
    ```mlir
    %h1 = aim.enter_partial %h on @mesh grid_axes = [1] : tensor<2x16x32xf32>
    ```
  }];
  let arguments = (ins Aim_FloatTensor:$input, FlatSymbolRefAttr:$grid,
                       DenseI16ArrayAttr:$grid_axes);
  let results = (outs Aim_FloatTensor:$result);
  let assemblyFormat = [{
    $input `on` $grid `grid_axes` `=` $grid_axes attr-dict `:` type($input)
  }];
}

def Aim_TargetCountOp : Aim_Op<"target_count", [Pure]> {
  let summary = "the number of (image, position) pairs the loss averages over";
  let description = [{
    `sum_b (N - max(1, prefix[b]))` as a float: the normaliser of
    `aim.normalized_pixel_loss` for a batch with these prefix lengths and
    `patches` = N. A rank of a data-parallel mesh weighs its loss by it.

    Example:
    ```mlir
    %n = aim.target_count %K, patches = 49 : tensor<8xi32> -> tensor<f32>
    ```
  }];
  let arguments = (ins Aim_PrefixTensor:$prefix, I64Attr:$patches);
  let results = (outs Aim_ScalarFloatTensor:$result);
  let assemblyFormat = [{
    $prefix `,` `patches` `=` $patches attr-dict `:` type($prefix) `->`
    type($result)
  }];
}

def Aim_ReweightOp : Aim_Op<"reweight", [Pure, Aim_Differentiable,
    AllTypesMatch<["input", "weight", "total", "result"]>]> {
  let summary = "input * weight / total: a rank's mean as its share of the global one";
  let description = [{
    `input * weight / total` for scalars. A data-parallel rank turns the mean
    of its own targets (`weight` of them) into its share of the mean over all
    ranks' (`total`); the shares sum to the global mean. Differentiable in
    `input` only: `weight` and `total` are counts.

    Example:
    ```mlir
    %share = aim.reweight %loss, %n, %total : tensor<f32>
    ```
  }];
  let arguments = (ins Aim_ScalarFloatTensor:$input,
                       Aim_ScalarFloatTensor:$weight,
                       Aim_ScalarFloatTensor:$total);
  let results = (outs Aim_ScalarFloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $weight `,` $total attr-dict `:` type($input)
  }];
}

def Aim_SumSquaresOp : Aim_Op<"sum_squares", [Pure]> {
  let summary = "the sum of squares of all elements of all operands";
  let description = [{
    `sum over every operand and element of x^2`: a rank's part of the squared
    global gradient norm, before the parts are summed over the grid.

    Example:
    ```mlir
    %s = aim.sum_squares %g0, %g1 : tensor<96x16xf32>, tensor<192xf32> -> tensor<f32>
    ```
  }];
  let arguments = (ins Variadic<Aim_FloatTensor>:$inputs);
  let results = (outs Aim_ScalarFloatTensor:$result);
  let assemblyFormat = [{
    $inputs attr-dict `:` type($inputs) `->` type($result)
  }];
}

def Aim_SqrtOp : Aim_Op<"sqrt", [Pure, AllTypesMatch<["input", "result"]>]> {
  let summary = "square root of a scalar";
  let description = [{
    `sqrt(input)`: the global gradient norm from its summed squares.

    Example:
    ```mlir
    %norm = aim.sqrt %s : tensor<f32>
    ```
  }];
  let arguments = (ins Aim_ScalarFloatTensor:$input);
  let results = (outs Aim_ScalarFloatTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input)";
}

def Aim_WaitCollectivesOp : Aim_Op<"wait_collectives",
    [AllTypesMatch<["inputs", "results"]>]> {
  let summary = "waits for the collectives started ahead (aim-schedule)";
  let description = [{
    Returns `inputs` unchanged, once every collective marked `{aim.async}`
    that was started before this op has finished: aim-schedule starts each
    bucket of gradient reductions as soon as its gradients are ready, on the
    runtime's communication thread, and places this op where their results
    are first needed. Not pure: it orders the program, and must stay where it
    is.

    Example:
    ```mlir
    %g0, %g1 = aim.wait_collectives %r0, %r1 : tensor<96x16xf32>, tensor<192xf32>
    ```
  }];
  let arguments = (ins Variadic<AnyRankedTensor>:$inputs);
  let results = (outs Variadic<AnyRankedTensor>:$results);
  let assemblyFormat = "$inputs attr-dict `:` type($inputs)";
  let builders = [OpBuilder<(ins "ValueRange":$inputs), [{
    build($_builder, $_state, inputs.getTypes(), inputs);
  }]>];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Kernels (aim-fuse)
//===----------------------------------------------------------------------===//

def Aim_FusionOp : Aim_Op<"fusion", [IsolatedFromAbove, RecursiveMemoryEffects,
                                     SingleBlockImplicitTerminator<"YieldOp">]> {
  let summary = "a group of ops that becomes one kernel";
  let description = [{
    The region is one kernel: it reads `inputs` from device memory once,
    keeps every intermediate on chip and writes only the values it yields.
    `kind` names the kernel template (`gemm`, `layer_norm`, `attention`,
    `loss`, `optimizer`, `elementwise`, ...), chosen by aim-fuse from the cost
    model over a target description.

    Example:
    ```mlir
    %y = aim.fusion "gemm" (%x, %w) : (tensor<8x768xf32>, tensor<3072x768xf32>)
        -> tensor<8x3072xf32> {
    ^bb0(%a: tensor<8x768xf32>, %b: tensor<3072x768xf32>):
      %0 = aim.linear %a, %b : tensor<8x768xf32>, tensor<3072x768xf32> -> tensor<8x3072xf32>
      %1 = aim.gelu %0, approximation = erf : tensor<8x3072xf32> -> tensor<8x3072xf32>
      aim.yield %1 : tensor<8x3072xf32>
    }
    ```
  }];
  let arguments = (ins Variadic<AnyRankedTensor>:$inputs, StrAttr:$kind);
  let results = (outs Variadic<AnyRankedTensor>:$results);
  let regions = (region SizedRegion<1>:$body);
  let assemblyFormat = [{
    $kind `(` $inputs `)` attr-dict `:` functional-type($inputs, $results) $body
  }];
  let hasVerifier = 1;
}

def Aim_YieldOp : Aim_Op<"yield", [Pure, Terminator, ReturnLike,
                                   HasParent<"FusionOp">]> {
  let summary = "the values an aim.fusion writes";
  let arguments = (ins Variadic<AnyRankedTensor>:$values);
  let assemblyFormat = "($values^ `:` type($values))? attr-dict";
  let builders = [OpBuilder<(ins), [{ }]>];
}

//===----------------------------------------------------------------------===//
// Attention kernels on buffers (codegen, --attention=tiled)
//===----------------------------------------------------------------------===//

def Aim_F32Buffer : MemRefRankOf<[F32], [2, 3]>;
def Aim_PrefixBuffer : MemRefRankOf<[I32, I64], [1]>;

def Aim_AttentionKernelOp : Aim_Op<"attention_kernel"> {
  let summary = "aim.attention on buffers, for the tiled attention kernel";
  let description = [{
    What code generation turns an `aim.attention` into when attention is
    tiled (`aimc --attention=tiled`): the same operands and attributes, on
    float32 buffers, writing its results into `result` and `row_logsumexp`
    instead of returning tensors. It exists only between bufferization and
    the kernel that replaces it (codegen/kernels/TiledAttention.h), which
    walks the (query, key) tiles by the recorded tile rule: empty tiles are
    never loaded, full tiles test no mask. Not produced with `live_queries`
    (those rows are scattered to their positions first).

    Example:
    ```mlir
    aim.attention_kernel %q, %k, %v, heads = 6, mask = prefix_causal(%K),
        scale = 0.17677669529663687 into %o, %lse
        : memref<8x49x192xf32>, memref<8x49x192xf32>, memref<8x49x192xf32>,
          memref<8xi32>, memref<8x49x192xf32>, memref<8x6x49xf32>
    ```
  }];
  let arguments = (ins Arg<Aim_F32Buffer, "", [MemRead]>:$query,
                       Arg<Aim_F32Buffer, "", [MemRead]>:$key,
                       Arg<Aim_F32Buffer, "", [MemRead]>:$value,
                       Arg<Optional<Aim_PrefixBuffer>, "", [MemRead]>:$prefix,
                       Arg<Aim_F32Buffer, "", [MemWrite]>:$result,
                       Arg<Aim_F32Buffer, "", [MemWrite]>:$row_logsumexp,
                       ConfinedAttr<I64Attr, [IntPositive]>:$heads,
                       Aim_MaskKind:$mask, F64Attr:$scale,
                       OptionalAttr<AffineMapAttr>:$tile_empty_from,
                       OptionalAttr<AffineMapAttr>:$tile_full_until);
  let assemblyFormat = [{
    $query `,` $key `,` $value `,` `heads` `=` $heads `,`
    `mask` `=` $mask (`(` $prefix^ `)`)? `,` `scale` `=` $scale
    `into` $result `,` $row_logsumexp attr-dict
    `:` type($query) `,` type($key) `,` type($value) (`,` type($prefix)^)?
    `,` type($result) `,` type($row_logsumexp)
  }];
  let hasVerifier = 1;
}

def Aim_AttentionGradKernelOp : Aim_Op<"attention_grad_kernel"> {
  let summary = "aim.attention_grad on buffers, for the tiled attention kernels";
  let description = [{
    `aim.attention_grad` on float32 buffers, writing the three gradients into
    `query_grad`, `key_grad` and `value_grad`; as `aim.attention_kernel`, it
    lives only between bufferization and the kernels that replace it (one a
    query row for `query_grad`, one a key row for `key_grad` and
    `value_grad`; codegen/kernels/TiledAttention.h).

    Example:
    ```mlir
    aim.attention_grad_kernel %do, %q, %k, %v, %o, %lse, heads = 6,
        mask = prefix_causal(%K), scale = 0.17677669529663687
        into %dq, %dk, %dv
        : memref<8x49x192xf32>, memref<8x49x192xf32>, memref<8x49x192xf32>,
          memref<8x49x192xf32>, memref<8x49x192xf32>, memref<8x6x49xf32>,
          memref<8xi32>, memref<8x49x192xf32>, memref<8x49x192xf32>,
          memref<8x49x192xf32>
    ```
  }];
  let arguments = (ins Arg<Aim_F32Buffer, "", [MemRead]>:$grad,
                       Arg<Aim_F32Buffer, "", [MemRead]>:$query,
                       Arg<Aim_F32Buffer, "", [MemRead]>:$key,
                       Arg<Aim_F32Buffer, "", [MemRead]>:$value,
                       Arg<Aim_F32Buffer, "", [MemRead]>:$output,
                       Arg<Aim_F32Buffer, "", [MemRead]>:$row_logsumexp,
                       Arg<Optional<Aim_PrefixBuffer>, "", [MemRead]>:$prefix,
                       Arg<Aim_F32Buffer, "", [MemWrite]>:$query_grad,
                       Arg<Aim_F32Buffer, "", [MemWrite]>:$key_grad,
                       Arg<Aim_F32Buffer, "", [MemWrite]>:$value_grad,
                       ConfinedAttr<I64Attr, [IntPositive]>:$heads,
                       Aim_MaskKind:$mask, F64Attr:$scale,
                       OptionalAttr<AffineMapAttr>:$tile_empty_from,
                       OptionalAttr<AffineMapAttr>:$tile_full_until);
  let assemblyFormat = [{
    $grad `,` $query `,` $key `,` $value `,` $output `,` $row_logsumexp `,`
    `heads` `=` $heads `,` `mask` `=` $mask (`(` $prefix^ `)`)? `,`
    `scale` `=` $scale `into` $query_grad `,` $key_grad `,` $value_grad
    attr-dict `:` type($grad) `,` type($query) `,` type($key) `,`
    type($value) `,` type($output) `,` type($row_logsumexp)
    (`,` type($prefix)^)? `,` type($query_grad) `,` type($key_grad) `,`
    type($value_grad)
  }];
  let hasVerifier = 1;
}

#endif // AIM_OPS_TD
