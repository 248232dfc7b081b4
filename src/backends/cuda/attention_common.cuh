#pragma once

// Shared by the two CUDA attention kernels (attention.cu: CUDA cores, any shape and dtype;
// attention_mma.cu: tensor cores, fp16/bf16 with head dims 64 and 128): the operand geometry
// both read, and the tensor-core kernel's entry points. .cu files only.

#include <cstdint>

#include "backends/cuda/attention_mma.h"
#include "backends/cuda/device_util.cuh"

namespace kiln::cuda {

// Operand offset of a batch entry: sum_d (idx[d] / div[d]) * stride[d]. div > 1 where the
// operand has fewer heads than the output (grouped-query attention).
struct BatchMap {
  int64_t div[kMaxRank];
  int64_t stride[kMaxRank];
};

struct AttnParams {
  const void* q;
  const void* k;
  const void* v;
  const void* mask;
  void* out;
  DType mask_dtype;
  bool has_mask;
  bool causal;
  float scale;
  int rows_per_warp;  // CUDA-core kernel only
  int64_t L, S, E, Ev;
  int nb;
  int64_t batch_shape[kMaxRank];
  BatchMap qm, km, vm, mm;
  BatchMap om;  // the output's batch strides (div 1): its [..., H, L, Ev] view may be strided
  // Row and column strides (elements) of the matrices; the mask's are 0 where it broadcasts.
  // The output's row stride is Ev when contiguous, H * Ev when sequence-major (seq_major_out).
  int64_t q_rs, q_cs, k_rs, k_cs, v_rs, v_cs, m_rs, m_cs, o_rs, o_cs;
};

// The element offsets of batch entry `b` (row-major over p.batch_shape) in each operand. One
// pass over the batch dims, no index array (which would live in local memory).
struct EntryOffsets {
  int64_t q = 0, k = 0, v = 0, mask = 0, out = 0;
};
__device__ __forceinline__ EntryOffsets entry_offsets(const AttnParams& p, int64_t b) {
  EntryOffsets o;
  int64_t rest = b;
  for (int d = p.nb - 1; d >= 0; --d) {
    const int64_t i = rest % p.batch_shape[d];
    rest /= p.batch_shape[d];
    o.q += (i / p.qm.div[d]) * p.qm.stride[d];
    o.k += (i / p.km.div[d]) * p.km.stride[d];
    o.v += (i / p.vm.div[d]) * p.vm.stride[d];
    if (p.has_mask) o.mask += (i / p.mm.div[d]) * p.mm.stride[d];
    o.out += i * p.om.stride[d];
  }
  return o;
}

// Null when the tensor-core kernel serves `p` (operands of dtype `dtype`) on the current
// device; otherwise why not (the caller falls back to the CUDA-core kernel).
const char* attention_mma_refusal(const KernelArgs& args, const AttnParams& p, DType dtype);
// Launches the tensor-core kernel; call only when attention_mma_refusal returned null.
Status launch_attention_mma(const KernelArgs& args, const AttnParams& p, DType dtype,
                            int64_t batches);

}  // namespace kiln::cuda
