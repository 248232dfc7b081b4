// Scaled dot-product attention as one fused kernel (flash-attention style: K/V tiles in shared
// memory, an online softmax, the score matrix never reaches device memory). PyTorch math-backend
// semantics, as the CPU backend: a bool mask keeps where true, a float mask is added, causal
// keeps j <= i (top-left aligned), batch dims broadcast (grouped-query heads read kv head
// h / (H / Hkv)), and a row whose keys are all masked is zeros (torch's _safe_softmax).
//
// A block owns R consecutive query rows of one batch entry (8 warps, R/8 rows per warp). For
// each tile of 32 keys, lane j of a warp scores key j against the warp's row, the warp updates
// the row's running max and sum, and the lanes split the value dims to accumulate P V. float32
// throughout; correctness first (CUDA cores, no tensor cores).
//
// The registered tactic "cuda.attention.flash_mma" runs the tensor-core kernel
// (attention_mma.cu) where it applies (fp16/bf16, head dims 64 and 128, rows contiguous and
// 16-byte aligned) and this kernel otherwise; "cuda.attention.flash_simt" always runs this one;
// "cuda.attention.cudnn" runs cuDNN's SDPA graph (attention_cudnn.cpp) where cuDNN serves the
// args and falls back as flash_mma does otherwise. All three write the output through its
// [..., H, L, Ev] view (attention_output_view), strided when the op has seq_major_out.

#include <algorithm>
#include <cmath>

#include "backends/common/attention_layout.h"
#include "backends/cuda/attention_common.cuh"
#include "backends/cuda/attention_cudnn.h"

namespace kiln::cuda {
namespace {

constexpr int kWarps = 8;
constexpr int kKeys = 32;  // keys per tile = lanes

template <typename T>
__global__ void __launch_bounds__(kWarps * 32)
    attention_kernel(const AttnParams p, int64_t batches) {
  extern __shared__ float smem[];
  const int R = kWarps * p.rows_per_warp;
  const int64_t E = p.E, Ev = p.Ev, L = p.L, S = p.S;
  float* ks = smem;                  // [kKeys][E + 1] (padded: lanes read distinct banks)
  float* vs = ks + kKeys * (E + 1);  // [kKeys][Ev]
  float* qs = vs + kKeys * Ev;       // [R][E], pre-scaled
  float* os = qs + R * E;            // [R][Ev] running output
  float* ms = os + R * Ev;           // [R] running max
  float* ls = ms + R;                // [R] running sum
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t tiles = (L + R - 1) / R;
  const T* q = static_cast<const T*>(p.q);
  const T* k = static_cast<const T*>(p.k);
  const T* v = static_cast<const T*>(p.v);
  T* out = static_cast<T*>(p.out);

  for (int64_t work = blockIdx.x; work < batches * tiles; work += gridDim.x) {
    const int64_t b = work / tiles, i0 = (work - b * tiles) * R;
    const EntryOffsets eo = entry_offsets(p, b);
    const T* qb = q + eo.q;
    const T* kb = k + eo.k;
    const T* vb = v + eo.v;
    T* ob = out + eo.out;
    const int64_t mask_base = eo.mask;

    __syncthreads();  // the previous work item is done with the shared buffers
    for (int64_t t = threadIdx.x; t < R * E; t += blockDim.x) {
      const int64_t r = t / E, e = t - r * E, i = i0 + r;
      qs[t] = i < L ? to_float(qb[i * p.q_rs + e * p.q_cs]) * p.scale : 0.0f;
    }
    for (int64_t t = threadIdx.x; t < R * Ev; t += blockDim.x) os[t] = 0.0f;
    for (int t = threadIdx.x; t < R; t += blockDim.x) {
      ms[t] = -INFINITY;
      ls[t] = 0.0f;
    }
    // Causal: keys past the block's last row are masked for every row of the block.
    const int64_t key_end = p.causal ? min(S, i0 + R) : S;
    for (int64_t j0 = 0; j0 < key_end; j0 += kKeys) {
      __syncthreads();  // the previous tile is consumed
      for (int64_t t = threadIdx.x; t < kKeys * E; t += blockDim.x) {
        const int64_t jj = t / E, e = t - jj * E, j = j0 + jj;
        ks[jj * (E + 1) + e] = j < S ? to_float(kb[j * p.k_rs + e * p.k_cs]) : 0.0f;
      }
      for (int64_t t = threadIdx.x; t < kKeys * Ev; t += blockDim.x) {
        const int64_t jj = t / Ev, e = t - jj * Ev, j = j0 + jj;
        vs[t] = j < S ? to_float(vb[j * p.v_rs + e * p.v_cs]) : 0.0f;
      }
      __syncthreads();
      const int64_t j = j0 + lane;
      for (int rr = 0; rr < p.rows_per_warp; ++rr) {
        const int r = warp * p.rows_per_warp + rr;
        const int64_t i = i0 + r;
        if (i >= L) break;  // warp-uniform
        float s = 0.0f;
        const float* qr = qs + r * E;
        const float* kr = ks + lane * (E + 1);
        for (int64_t e = 0; e < E; ++e) s = fmaf(qr[e], kr[e], s);
        bool keep = j < S && !(p.causal && j > i);
        if (keep && p.has_mask) {
          const int64_t mo = mask_base + i * p.m_rs + j * p.m_cs;
          if (p.mask_dtype == DType::kBool) {
            keep = static_cast<const bool*>(p.mask)[mo];
          } else {
            s += load_float_dyn(p.mask, p.mask_dtype, mo);
          }
        }
        if (!keep) s = -INFINITY;
        const float m_old = ms[r];
        const float m_new =
            fmaxf(m_old, warp_reduce(s, [](float a, float b) { return fmaxf(a, b); }));
        float pj = 0.0f, alpha = 1.0f;
        if (m_new != -INFINITY) {
          pj = expf(s - m_new);         // s = -inf gives 0
          alpha = expf(m_old - m_new);  // m_old = -inf gives 0
        }
        const float tile_sum = warp_reduce(pj, SumOp{});
        float* orow = os + r * Ev;
        // Every lane runs every round (the shuffles need the whole warp); lanes past Ev idle.
        for (int64_t e0 = 0; e0 < Ev; e0 += 32) {
          const int64_t e = e0 + lane;
          const bool active = e < Ev;
          float acc = active ? orow[e] * alpha : 0.0f;
#pragma unroll 8
          for (int jj = 0; jj < kKeys; ++jj) {
            const float p_jj = __shfl_sync(0xffffffffu, pj, jj);
            if (active) acc = fmaf(p_jj, vs[jj * Ev + e], acc);
          }
          if (active) orow[e] = acc;
        }
        __syncwarp();
        if (lane == 0) {
          ms[r] = m_new;
          ls[r] = ls[r] * alpha + tile_sum;
        }
        __syncwarp();
      }
    }
    __syncthreads();
    for (int64_t t = threadIdx.x; t < R * Ev; t += blockDim.x) {
      const int64_t r = t / Ev, e = t - r * Ev, i = i0 + r;
      if (i >= L) continue;
      // l == 0: every key masked; zeros, as torch's math backend (_safe_softmax).
      ob[i * p.o_rs + e * p.o_cs] = from_float<T>(ls[r] > 0.0f ? os[t] / ls[r] : 0.0f);
    }
  }
}

// How operand `v` (batch dims right-aligned) maps onto the output's batch dims.
bool map_batch(const TensorView& v, const TensorView& out, BatchMap& m) {
  const int nb = out.rank - 2, vb = v.rank - 2;
  for (int d = 0; d < kMaxRank; ++d) {
    m.div[d] = 1;
    m.stride[d] = 0;
  }
  if (vb > nb) return false;
  for (int d = 0; d < nb; ++d) {
    const int vd = d - (nb - vb);
    if (vd < 0 || v.shape[vd] == 1) continue;
    const int64_t o = out.shape[d], i = v.shape[vd];
    if (i == 0 || o % i != 0) return false;
    m.div[d] = o / i;
    m.stride[d] = v.strides[vd];
  }
  return true;
}

size_t smem_bytes(int64_t E, int64_t Ev, int R) {
  return sizeof(float) * static_cast<size_t>(kKeys * (E + 1) + kKeys * Ev + R * E + R * Ev + 2 * R);
}

// Validates the operands and fills `p` (everything but rows_per_warp) and `batches`; `empty`
// when the output has no elements (nothing to launch).
Status prepare_attention(const KernelArgs& args, AttnParams& p, int64_t& batches, bool& empty) {
  const TensorView& q = args.inputs[0];
  const TensorView& k = args.inputs[1];
  const TensorView& v = args.inputs[2];
  KILN_ASSIGN_OR_RETURN(const TensorView out, attention_output_view(args));
  const bool has_mask = args.inputs.size() > 3;
  if (q.rank < 2 || k.rank < 2 || v.rank < 2 || out.rank < 2)
    return kernel_error(args, "q, k, v need rank >= 2");
  if (q.dtype != k.dtype || q.dtype != v.dtype || q.dtype != out.dtype)
    return kernel_unsupported(args, "q, k, v and the output must share one dtype");
  const int r = out.rank, nb = r - 2;
  const int64_t L = q.shape[q.rank - 2], E = q.shape[q.rank - 1];
  const int64_t S = k.shape[k.rank - 2], Ev = v.shape[v.rank - 1];
  if (k.shape[k.rank - 1] != E || v.shape[v.rank - 2] != S || out.shape[r - 2] != L ||
      out.shape[r - 1] != Ev)
    return kernel_error(args, "shapes do not match: q [..., ", L, ", ", E, "], k [..., ",
                        k.shape[k.rank - 2], ", ", k.shape[k.rank - 1], "], v [..., ",
                        v.shape[v.rank - 2], ", ", Ev, "]");
  empty = out.numel() == 0;
  if (empty) return Status::Ok();

  p = AttnParams{};
  p.q = q.data;
  p.k = k.data;
  p.v = v.data;
  p.out = out.data;
  p.L = L;
  p.S = S;
  p.E = E;
  p.Ev = Ev;
  p.nb = nb;
  for (int d = 0; d < nb; ++d) p.batch_shape[d] = out.shape[d];
  bool ok = map_batch(q, out, p.qm) && map_batch(k, out, p.km) && map_batch(v, out, p.vm);
  p.q_rs = q.strides[q.rank - 2];
  p.q_cs = q.strides[q.rank - 1];
  p.k_rs = k.strides[k.rank - 2];
  p.k_cs = k.strides[k.rank - 1];
  p.v_rs = v.strides[v.rank - 2];
  p.v_cs = v.strides[v.rank - 1];
  map_batch(out, out, p.om);  // the output's own batch strides
  p.o_rs = out.strides[r - 2];
  p.o_cs = out.strides[r - 1];
  if (has_mask) {
    const TensorView& mask = args.inputs[3];
    if (mask.dtype != DType::kBool && !is_floating(mask.dtype))
      return kernel_unsupported(args, "mask must be bool or float, got ", dtype_name(mask.dtype));
    p.has_mask = true;
    p.mask = mask.data;
    p.mask_dtype = mask.dtype;
    const int64_t ml = mask.rank >= 2 ? mask.shape[mask.rank - 2] : 1;
    const int64_t ms = mask.rank >= 1 ? mask.shape[mask.rank - 1] : 1;
    ok = ok && (ml == L || ml == 1) && (ms == S || ms == 1);
    if (mask.rank >= 2) {
      ok = ok && map_batch(mask, out, p.mm);
      p.m_rs = ml == 1 ? 0 : mask.strides[mask.rank - 2];
    } else {
      TensorView none;
      none.rank = 2;
      map_batch(none, out, p.mm);
    }
    p.m_cs = (mask.rank >= 1 && ms != 1) ? mask.strides[mask.rank - 1] : 0;
  }
  if (!ok) return kernel_error(args, "batch dims of q, k, v and mask do not broadcast");
  p.scale =
      static_cast<float>(args.attrs.getDouble("scale", 1.0 / std::sqrt(static_cast<double>(E))));
  p.causal = args.attrs.getBool("causal", false);
  batches = 1;
  for (int d = 0; d < nb; ++d) batches *= out.shape[d];
  return Status::Ok();
}

Status launch_attention_simt(const KernelArgs& args, AttnParams p, int64_t batches) {
  const int64_t E = p.E, Ev = p.Ev, L = p.L;
  // Rows per block: as many as the shared memory allows (32, 16 or 8).
  int device = 0, optin = 48 * 1024;
  KILN_CUDA_CHECK(args, cudaGetDevice(&device), "cudaGetDevice");
  KILN_CUDA_CHECK(args,
                  cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device),
                  "cudaDeviceGetAttribute");
  int rpw = 4;
  while (rpw > 1 && smem_bytes(E, Ev, kWarps * rpw) > static_cast<size_t>(optin)) rpw /= 2;
  const size_t bytes = smem_bytes(E, Ev, kWarps * rpw);
  if (bytes > static_cast<size_t>(optin))
    return kernel_unsupported(args, "head dims E = ", E, ", Ev = ", Ev,
                              " need more shared memory than the device has");
  p.rows_per_warp = rpw;
  const int64_t R = kWarps * rpw;
  const int64_t work = batches * ((L + R - 1) / R);
  const unsigned blocks = static_cast<unsigned>(std::min<int64_t>(work, 1 << 20));
  cudaStream_t stream = stream_of(args);
  Status launched = dispatch_floating(
      args.inputs[0].dtype, kernel_unsupported(args, "needs float q, k, v"),
      [&](auto tag) -> Status {
        using T = typename decltype(tag)::type;
        if (bytes > 48 * 1024)
          KILN_CUDA_CHECK(
              args,
              cudaFuncSetAttribute(attention_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                   static_cast<int>(bytes)),
              "cudaFuncSetAttribute");
        attention_kernel<T><<<blocks, kWarps * 32, bytes, stream>>>(p, batches);
        return Status::Ok();
      });
  KILN_RETURN_IF_ERROR(launched);
  return check_launch(args, "attention kernel");
}

Status run_attention_simt(const KernelArgs& args) {
  AttnParams p;
  int64_t batches = 0;
  bool empty = false;
  KILN_RETURN_IF_ERROR(prepare_attention(args, p, batches, empty));
  if (empty) return Status::Ok();
  return launch_attention_simt(args, p, batches);
}

// The tensor-core kernel where it applies, this file's kernel otherwise: shapes and strides are
// known only here, at run time (a build-time choice would see only the profile's opt shapes
// with contiguous strides).
Status run_attention_auto(const KernelArgs& args) {
  AttnParams p;
  int64_t batches = 0;
  bool empty = false;
  KILN_RETURN_IF_ERROR(prepare_attention(args, p, batches, empty));
  if (empty) return Status::Ok();
  const DType dtype = args.inputs[0].dtype;
  if (attention_mma_refusal(args, p, dtype) == nullptr)
    return launch_attention_mma(args, p, dtype, batches);
  return launch_attention_simt(args, p, batches);
}

template <typename T>
__global__ void bool_mask_to_bias_kernel(const bool* m, int64_t d1, int64_t d2, int64_t d3,
                                         int64_t s0, int64_t s1, int64_t s2, int64_t s3, int64_t n,
                                         T* out) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t r = i;
    const int64_t c3 = r % d3;
    r /= d3;
    const int64_t c2 = r % d2;
    r /= d2;
    const int64_t c1 = r % d1, c0 = r / d1;
    const bool keep = m[c0 * s0 + c1 * s1 + c2 * s2 + c3 * s3];
    out[i] = from_float<T>(keep ? 0.0f : -INFINITY);
  }
}

}  // namespace

Status launch_bool_mask_to_bias(const KernelArgs& args, const void* mask, const int64_t* dims,
                                const int64_t* strides, DType dtype, void* out) {
  const int64_t n = dims[0] * dims[1] * dims[2] * dims[3];
  if (n == 0) return Status::Ok();
  const unsigned blocks = static_cast<unsigned>(std::min<int64_t>((n + 255) / 256, 4096));
  const bool* m = static_cast<const bool*>(mask);
  if (dtype == DType::kFloat16) {
    bool_mask_to_bias_kernel<half><<<blocks, 256, 0, stream_of(args)>>>(
        m, dims[1], dims[2], dims[3], strides[0], strides[1], strides[2], strides[3], n,
        static_cast<half*>(out));
  } else if (dtype == DType::kBFloat16) {
    bool_mask_to_bias_kernel<bf16><<<blocks, 256, 0, stream_of(args)>>>(
        m, dims[1], dims[2], dims[3], strides[0], strides[1], strides[2], strides[3], n,
        static_cast<bf16*>(out));
  } else {
    return kernel_unsupported(args, "bool mask to ", dtype_name(dtype), " bias");
  }
  return check_launch(args, "bool mask to additive mask");
}

namespace {

// cuDNN's SDPA graph where it serves the args (attention_cudnn.cpp), Kiln's kernels otherwise.
Status run_attention_cudnn_or_own(const KernelArgs& args) {
  bool served = false;
  KILN_RETURN_IF_ERROR(run_attention_cudnn(args, served));
  return served ? Status::Ok() : run_attention_auto(args);
}

Status supports_attention(const Op& op, std::span<const DType> dtypes) {
  for (size_t i = 0; i < dtypes.size(); ++i) {
    const DType d = dtypes[i];
    const bool fp = d == DType::kFloat32 || d == DType::kFloat16 || d == DType::kBFloat16;
    if (i == 3 && (fp || d == DType::kBool)) continue;  // the mask: bool or any float dtype
    if (!fp)
      return unsupported("attention '", op.name, "': ", dtype_name(d), " input ", i,
                         " is not supported (float32, float16, bfloat16 only)");
    if (i < 3 && d != dtypes[0])
      return unsupported("attention '", op.name, "': q, k, v have mixed dtypes ",
                         dtype_name(dtypes[0]), " and ", dtype_name(d));
  }
  return Status::Ok();
}

}  // namespace

void register_attention_kernels(std::vector<CudaKernel>& out) {
  out.push_back(
      {OpKind::kAttention, "cuda.attention.flash_mma", supports_attention, run_attention_auto});
  out.push_back(
      {OpKind::kAttention, "cuda.attention.flash_simt", supports_attention, run_attention_simt});
  out.push_back({OpKind::kAttention, "cuda.attention.cudnn", supports_attention,
                 run_attention_cudnn_or_own, attention_cudnn_workspace});
}

}  // namespace kiln::cuda
