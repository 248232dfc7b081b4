#pragma once

#include <string>
#include <vector>

#include "kiln/network.h"

namespace kiln::builder {

// Each pass returns a new network (see rewrite.h) and appends one line to `log` saying what it
// did. Order (DESIGN.md 3): dead code, constant folding, BN folding, simplification, outputs.

// Drops ops whose outputs reach no network output.
Result<Network> eliminate_dead_code(const Network& network, std::vector<std::string>& log);

// Evaluates on the CPU every op whose inputs are all constants (and whose output shape is
// constant), replacing it by a constant. Skips ops that would grow the engine: an output larger
// than max(1 MiB, its constant inputs) stays an op (a broadcast of a scalar, say).
Result<Network> fold_constants(const Network& network, std::vector<std::string>& log);

// conv (constant weight/bias, not transposed) followed only by batch_norm with constant
// statistics becomes one conv with scaled weights and a new bias.
Result<Network> fold_batch_norm(const Network& network, std::vector<std::string>& log);

// Removes no-ops: casts to the same dtype, reshapes/expands to the same shape, identity
// permutes, whole-tensor slices, copies that feed no output.
Result<Network> simplify(const Network& network, std::vector<std::string>& log);

// matmul(q, k^T) [* or / scalar constant] [+ mask] -> softmax(last dim) [between casts to a
// wider float and back] -> matmul(., v) becomes one attention op with that scale and mask
// (attention_fusion.cpp). Intermediates must have no other use and not be outputs.
Result<Network> fuse_attention(const Network& network, std::vector<std::string>& log);

// An attention mask that is a constant masking nothing (all true, or all zero; possibly expanded
// or reshaped, as HF's BERT builds the mask it makes when no attention_mask is given) is dropped:
// the attention runs unmasked, which is the same result (attention_masks.cpp).
Result<Network> drop_noop_attention_masks(const Network& network, std::vector<std::string>& log);

// Bool attention masks become additive, where(mask, 0, -inf) in the query's dtype, once per mask
// tensor for every attention reading it (attention_masks.cpp); an expanded mask is converted
// before its expand. The builder's entries: attention_masks_to_bias for CUDA targets (cuDNN's
// attention takes additive masks only), keep_bool_attention_masks (nothing) for the CPU.
Result<Network> attention_masks_to_bias(const Network& network, std::vector<std::string>& log);
Result<Network> keep_bool_attention_masks(const Network& network, std::vector<std::string>& log);

// A 2-D conv whose kernel equals its stride (no padding, dilation 1, one group, plain conv +
// bias; ViT's patch embedding) becomes gather-patches (one copy) + linear + a view back to NCHW
// (patch_conv.cpp). Runs before conv epilogue fusion and layout assignment.
Result<Network> patch_conv_to_gemm(const Network& network, std::vector<std::string>& log);

// The tanh GELU written out op by op (0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3))),
// GPT-2's gelu_new) becomes one unary gelu_tanh (gelu_recognition.cpp). Runs before gemm
// epilogue fusion, which folds it into the linear before it.
Result<Network> recognize_gelu(const Network& network, std::vector<std::string>& log);

// An attention op whose output is read only by permutes that keep the last dim last (HF's
// transpose(1, 2), ViT's permute(2, 0, 1, 3)), and is not an output, gets seq_major_out: it
// writes [..., L, H, Ev], and each permute is composed with that swap (dropped when it becomes
// the identity), so the heads' merge after it is a view (attention_layout.cpp). Runs before
// linear permutes and view chains.
Result<Network> attention_seq_major_out(const Network& network, std::vector<std::string>& log);

// Chains of reshape/squeeze/unsqueeze/permute become split-reshape + permute (+ a reshape that
// inserts size-1 dims) when that is shorter and leaves no merge: a merge of dims a later reshape
// splits again is a copy the folded chain does not make (view_chains.cpp; MultiheadAttention's
// head split). Runs after linear permutes, whose views it folds with the ones after them.
Result<Network> fold_view_chains(const Network& network, std::vector<std::string>& log);
// linear(V(x)), V a chain of reshapes/permutes that reorders rows and keeps each row made of x's
// last dims in order, becomes V'(linear(x)): one GEMM over x's rows instead of strided batches
// or a copy of the view (linear_permute.cpp). The chain stays for other readers.
Result<Network> move_permutes_after_linear(const Network& network, std::vector<std::string>& log);

// linear/matmul followed by a bias add along the last dim and/or relu/gelu/gelu_tanh becomes one
// linear/matmul with the bias folded into linear's bias and attr `activation` (gemm_fusion.cpp).
// Intermediates must have no other use and not be outputs.
Result<Network> fuse_gemm_epilogues(const Network& network, std::vector<std::string>& log);

// Linears reading the same tensor (constant weights and biases, the same activation, no residual,
// results that are not network outputs) become one linear over their stacked weights and a split
// of its result along the last dim (sibling_linears.cpp): BERT's query, key and value as one GEMM.
// Runs after gemm epilogue fusion.
Result<Network> merge_sibling_linears(const Network& network, std::vector<std::string>& log);

// Residual + layer norm (norm_fusion.cpp): binary add feeding layer_norm becomes layer_norm with
// residual=true (and sum_output=true when the sum is also read elsewhere).
Result<Network> fuse_residual_norm(const Network& network, std::vector<std::string>& log);

// Pointwise fusion (pointwise_fusion.cpp): maximal groups of unary/binary/where/cast/clamp ops
// over float/bool tensors, joined by intermediates nothing else reads, become one pointwise op.
// Runs after every other fusion (conv/gemm epilogues take their activations first).
Result<Network> fuse_pointwise(const Network& network, std::vector<std::string>& log);

// Conv epilogues (conv_fusion.cpp): conv (+ bias) -> optional residual binary add of a tensor of
// the output's shape -> optional relu becomes one conv with attr activation and the residual as
// 4th input (a zero bias is added when the conv had none). Intermediates must have no other use
// and not be outputs. Runs before layout assignment and pointwise fusion.
Result<Network> fuse_conv_epilogues(const Network& network, std::vector<std::string>& log);

// Layout assignment (layout.cpp): 2-D convs (groups 1, not transposed) in float16/bfloat16 get
// layout "nhwc" (KRSC weights permuted on the host) between explicit permutes; permute pairs
// between NHWC ops cancel, and pointwise ops and pools on NHWC data run in NHWC.
// A conv with a constant weight and fewer input channels than min_input_channels (ResNet's RGB
// stem) gets zero channels up to it: in its KRSC weight here, in its NHWC input by a pad op.
// cuDNN's first-layer kernels read 4 channels; given 3 it packs and pads the input itself in
// three extra kernels each call.
struct LayoutOptions {
  bool all_float_dtypes = false;  // float32 convs too (tests force the pass on CPU builds)
  int64_t min_input_channels = 0;  // the builder's CUDA entry: 4 (KILN_CONV_PAD_CHANNELS)
};
Result<Network> assign_layout(const Network& network, std::vector<std::string>& log,
                              const LayoutOptions& options);
// The builder's entries: assign_layout with the CUDA options (min_input_channels 4), or nothing
// (CPU).
Result<Network> assign_nhwc_layout(const Network& network, std::vector<std::string>& log);
Result<Network> skip_layout(const Network& network, std::vector<std::string>& log);

// Every output gets its own freshly written buffer: an output that is an input, a constant,
// a (possible) view, or a tensor already marked as another output is copied.
Result<Network> isolate_outputs(const Network& network, std::vector<std::string>& log);

}  // namespace kiln::builder
