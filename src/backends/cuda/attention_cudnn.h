#pragma once

// Scaled dot-product attention through cuDNN's fused SDPA graph (cudnn-frontend), the kernel of
// the "cuda.attention.cudnn" tactic (attention.cu registers it). fp16/bf16 q, k, v with up to
// two batch dims ([B, H, L, E]), grouped-query heads, causal (top-left) and a mask broadcast over
// any of its dims: a float mask is cuDNN's additive bias; a bool mask is first turned into one
// (0 where kept, -inf where not) in the workspace. What cuDNN refuses (broadcast batch dims,
// unaligned rows, a graph no engine supports) runs on Kiln's own kernels instead; the refusal is
// decided from shapes and strides, so workspace() and run() agree on it.
//
// Graphs are built once per geometry and cuDNN handle and cached for the process. cuDNN's
// execution plans for a graph are built on first use, by index: the tactic data names one (the
// builder times up to four, attention_cudnn_candidates); without it, the first that builds, in
// the order of cuDNN's heuristic. The first call with a new geometry or plan pays its build
// (tens of ms), outside any CUDA graph capture because the execution context sizes the
// workspace, which builds it, before it captures.

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "backends/common/tensor_view.h"
#include "backends/cuda/cuda_kernels.h"

namespace kiln::cuda {

// cuDNN's SDPA must time at least this much faster than Kiln's own attention kernels to be
// chosen. In a CUDA graph its nodes cost what op timing does not see: cudaGraphLaunch blocks the
// host once about 28 launches of a graph holding them are queued (ViT b32, session 18; graphs
// with Kiln's kernel queued 400 without a wait), and each call adds a workspace memset node.
inline constexpr double kCudnnAttentionHandicap = 1.05;

// A "cuda.attention.cudnn" candidate for each cuDNN execution plan that serves these args (at
// most `max`, in the heuristic's order, those that build), with kCudnnAttentionHandicap; empty
// when cuDNN does not serve them.
std::vector<TacticCandidate> attention_cudnn_candidates(CudaBackendState& state,
                                                        const KernelArgs& args, int max);

// Workspace bytes cuDNN's plan needs for these args; 0 when cuDNN does not serve them.
size_t attention_cudnn_workspace(const KernelArgs& args);

// Runs the args through cuDNN; `served` false (and nothing launched) when cuDNN does not serve
// them, and the caller runs another kernel.
Status run_attention_cudnn(const KernelArgs& args, bool& served);

// Writes the bool mask (4-D `strides` over `dims`, in elements) as a contiguous additive mask of
// `dtype` (fp16/bf16) into `out`: 0 where true, -inf where false. (attention.cu)
Status launch_bool_mask_to_bias(const KernelArgs& args, const void* mask, const int64_t* dims,
                                const int64_t* strides, DType dtype, void* out);

// How many calls cuDNN served in this process (tests check which path a case took).
int64_t attention_cudnn_run_count();

}  // namespace kiln::cuda
