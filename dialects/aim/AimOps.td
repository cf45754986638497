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

def Aim_ReshapeOp : Aim_Op<"reshape", [Pure]> {
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

def Aim_SliceOp : Aim_Op<"slice", [Pure]> {
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

def Aim_CastOp : Aim_Op<"cast", [Pure]> {
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

def Aim_LinearOp : Aim_Op<"linear", [Pure]> {
  let summary = "affine map over the last dimension (PyTorch Linear layout)";
  let description = [{
    `result[..., o] = sum_i input[..., i] * weight[o, i] (+ bias[o])` with
    `weight` of shape `[out, in]` as in `torch.nn.Linear`. The bias is optional
    (AIM's trunk linears have none).

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

def Aim_LayerNormOp : Aim_Op<"layer_norm", [Pure]> {
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

def Aim_AddOp : Aim_Op<"add", [Pure]> {
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

def Aim_GeluOp : Aim_Op<"gelu", [Pure]> {
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

def Aim_AttentionOp : Aim_Op<"attention", [Pure]> {
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

    Example:
    ```mlir
    %o = aim.attention %q, %k, %v, heads = 6, mask = prefix_causal(%K),
        scale = 0.17677669529663687
        : tensor<8x49x192xf32>, tensor<8x49x192xf32>, tensor<8x49x192xf32>,
          tensor<8xi32> -> tensor<8x49x192xf32>
    ```
  }];
  let arguments = (ins Aim_FloatTensor:$query, Aim_FloatTensor:$key,
                       Aim_FloatTensor:$value, Optional<Aim_PrefixTensor>:$prefix,
                       ConfinedAttr<I64Attr, [IntPositive]>:$heads,
                       Aim_MaskKind:$mask, F64Attr:$scale);
  let results = (outs Aim_FloatTensor:$result);
  let assemblyFormat = [{
    $query `,` $key `,` $value `,` `heads` `=` $heads `,`
    `mask` `=` $mask (`(` $prefix^ `)`)? `,` `scale` `=` $scale attr-dict
    `:` type($query) `,` type($key) `,` type($value) (`,` type($prefix)^)?
    `->` type($result)
  }];
  let hasVerifier = 1;
}

def Aim_NormalizedPixelLossOp : Aim_Op<"normalized_pixel_loss", [Pure]> {
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

#endif // AIM_OPS_TD
