// CPU scaled dot-product attention with PyTorch's math-backend semantics: per batch-head,
// scores = scale * Q K^T (sgemm), + float mask or -inf where a bool mask is false or causal
// (top-left aligned: keep j <= i) hides a key, float32 softmax, then P V (sgemm).
// A row whose keys are all masked yields zeros, as torch's math backend does since it softmaxes
// with _safe_softmax (torch 2.5 and later; NaN before). With seq_major_out the results go
// through the output's strided [..., H, L, Ev] view (backends/common/attention_layout.h).

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "backends/common/attention_layout.h"
#include "backends/cpu/cpu_kernels.h"
#include "backends/cpu/cpu_util.h"

namespace kiln::cpu {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// How one operand's batch dims map onto the output's: operand offset of output batch index idx
// is sum_d (idx[d] / div[d]) * stride[d]. div is 1 for equal dims, and out/in for grouped-query
// heads (k/v with fewer heads than q: head h reads kv head h / (H / Hkv)); size-1 or missing
// dims get stride 0.
struct BatchMap {
  int64_t stride[kMaxRank] = {};
  int64_t div[kMaxRank] = {};
  int64_t offset(const int64_t* idx, int nb) const {
    int64_t o = 0;
    for (int d = 0; d < nb; ++d) o += (idx[d] / div[d]) * stride[d];
    return o;
  }
};

bool map_batch(const TensorView& v, const TensorView& out, BatchMap& m) {
  const int nb = out.rank - 2, vb = v.rank - 2;
  if (vb > nb) return false;
  for (int d = 0; d < nb; ++d) {
    m.div[d] = 1;
    const int vd = d - (nb - vb);
    if (vd < 0 || v.shape[vd] == 1) continue;
    const int64_t o = out.shape[d], i = v.shape[vd];
    if (o % i != 0) return false;
    m.div[d] = o / i;
    m.stride[d] = v.strides[vd];
  }
  return true;
}

// Applies the mask rows of one batch-head to scores[L, S]: T is bool or a float storage type.
template <typename T>
void apply_mask(const T* m, int64_t rs, int64_t cs, int64_t L, int64_t S, float* scores) {
  for (int64_t i = 0; i < L; ++i) {
    float* row = scores + i * S;
    const T* mrow = m + i * rs;
    for (int64_t j = 0; j < S; ++j) {
      if constexpr (std::is_same_v<T, bool>) {
        if (!mrow[j * cs]) row[j] = kNegInf;
      } else {
        row[j] += to_float(mrow[j * cs]);
      }
    }
  }
}

void softmax_rows(float* scores, int64_t L, int64_t S) {
  for (int64_t i = 0; i < L; ++i) {
    float* row = scores + i * S;
    float mx = kNegInf;
    for (int64_t j = 0; j < S; ++j) mx = std::max(mx, row[j]);
    if (mx == kNegInf) {  // every key masked: zeros, like torch's _safe_softmax
      std::fill(row, row + S, 0.0f);
      continue;
    }
    float sum = 0.0f;
    for (int64_t j = 0; j < S; ++j) {
      row[j] = std::exp(row[j] - mx);
      sum += row[j];
    }
    const float inv = 1.0f / sum;
    for (int64_t j = 0; j < S; ++j) row[j] *= inv;
  }
}

Status run_attention(const KernelArgs& args) {
  const TensorView& q = args.inputs[0];
  const TensorView& k = args.inputs[1];
  const TensorView& v = args.inputs[2];
  KILN_ASSIGN_OR_RETURN(const TensorView out, attention_output_view(args));
  const bool has_mask = args.inputs.size() > 3;
  if (q.rank < 2 || k.rank < 2 || v.rank < 2 || out.rank < 2) {
    return kernel_error(args, "q, k, v need rank >= 2");
  }
  const int r = out.rank, nb = r - 2;
  const int64_t L = q.shape[q.rank - 2], E = q.shape[q.rank - 1];
  const int64_t S = k.shape[k.rank - 2], Ev = v.shape[v.rank - 1];
  if (k.shape[k.rank - 1] != E || v.shape[v.rank - 2] != S || out.shape[r - 2] != L ||
      out.shape[r - 1] != Ev) {
    return kernel_error(args, "shapes do not match: q [..., ", L, ", ", E, "], k [..., ",
                        k.shape[k.rank - 2], ", ", k.shape[k.rank - 1], "], v [..., ",
                        v.shape[v.rank - 2], ", ", Ev, "]");
  }
  if (out.numel() == 0) return Status::Ok();

  thread_local std::vector<float> q_store, k_store, v_store, o_store;  // kept scratch (cpu_util.h)
  const TensorView fq = float_view(q, q_store), fk = float_view(k, k_store);
  const TensorView fv = float_view(v, v_store);
  BatchMap mq, mk, mv, mm;
  bool ok = map_batch(fq, out, mq) && map_batch(fk, out, mk) && map_batch(fv, out, mv);
  int64_t m_rs = 0, m_cs = 0;
  if (has_mask) {
    const TensorView& mask = args.inputs[3];
    // The mask's last two dims broadcast to [L, S]; missing ones count as size 1.
    const int64_t ml = mask.rank >= 2 ? mask.shape[mask.rank - 2] : 1;
    const int64_t ms = mask.rank >= 1 ? mask.shape[mask.rank - 1] : 1;
    ok = ok && (ml == L || ml == 1) && (ms == S || ms == 1);
    if (ok && mask.rank >= 2) {
      ok = map_batch(mask, out, mm);
      m_rs = ml == 1 ? 0 : mask.strides[mask.rank - 2];
    }
    m_cs = (mask.rank >= 1 && ms != 1) ? mask.strides[mask.rank - 1] : 0;
  }
  if (!ok) return kernel_error(args, "batch dims of q, k, v and mask do not broadcast");

  const float scale = static_cast<float>(
      args.attrs.getDouble("scale", 1.0 / std::sqrt(static_cast<double>(E))));
  const bool causal = args.attrs.getBool("causal", false);
  // float32 rows are written in place (row stride o_rs: H * Ev when sequence-major); other
  // dtypes go through a contiguous float copy, stored at the end.
  const bool direct = out.dtype == DType::kFloat32 && (Ev == 1 || out.strides[r - 1] == 1);
  TensorView ov = out;  // where the rows go: the output, or the float copy
  if (!direct) {
    o_store.resize(static_cast<size_t>(out.numel()));
    ov.data = o_store.data();
    set_contiguous_strides(ov);
  }
  float* o = static_cast<float*>(ov.data);
  const int64_t o_rs = L == 1 ? Ev : ov.strides[r - 2];  // one row: any stride, BLAS wants >= Ev
  BatchMap mo;
  map_batch(ov, ov, mo);  // the output's own batch strides
  thread_local std::vector<float> scores;  // kept scratch; every row is written before it is read
  scores.resize(static_cast<size_t>(L * S));
  const float* pq = fq.as<const float>();
  const float* pk = fk.as<const float>();
  const float* pv = fv.as<const float>();
  const int64_t q_rs = fq.strides[fq.rank - 2], q_cs = fq.strides[fq.rank - 1];
  const int64_t k_rs = fk.strides[fk.rank - 2], k_cs = fk.strides[fk.rank - 1];
  const int64_t v_rs = fv.strides[fv.rank - 2], v_cs = fv.strides[fv.rank - 1];

  int64_t batches = 1;
  for (int d = 0; d < nb; ++d) batches *= out.shape[d];
  int64_t idx[kMaxRank] = {};
  for (int64_t b = 0; b < batches; ++b) {
    // scores[L, S] = scale * Q[L, E] x K^T[E, S] (K^T is K's strides swapped).
    sgemm_strided(L, S, E, scale, pq + mq.offset(idx, nb), q_rs, q_cs, pk + mk.offset(idx, nb),
                  k_cs, k_rs, 0.0f, scores.data(), S);
    if (has_mask) {
      const TensorView& mask = args.inputs[3];
      const int64_t off = mm.offset(idx, nb);
      if (mask.dtype == DType::kBool) {
        apply_mask(mask.as<const bool>() + off, m_rs, m_cs, L, S, scores.data());
      } else {
        dispatch_floating(mask.dtype, 0, [&](auto tag) {
          using T = typename decltype(tag)::type;
          apply_mask(mask.as<const T>() + off, m_rs, m_cs, L, S, scores.data());
          return 0;
        });
      }
    }
    if (causal)
      for (int64_t i = 0; i < L; ++i)
        for (int64_t j = i + 1; j < S; ++j) scores[i * S + j] = kNegInf;
    softmax_rows(scores.data(), L, S);
    // out[L, Ev] = P[L, S] x V[S, Ev]
    sgemm_strided(L, Ev, S, 1.0f, scores.data(), S, 1, pv + mv.offset(idx, nb), v_rs, v_cs, 0.0f,
                  o + mo.offset(idx, nb), o_rs);
    for (int d = nb - 1; d >= 0; --d) {  // odometer over the batch dims
      if (++idx[d] < out.shape[d]) break;
      idx[d] = 0;
    }
  }
  if (!direct) store_from_float(o, out);
  return Status::Ok();
}

Status supports_attention(const Op& op, std::span<const DType> dtypes) {
  for (size_t i = 0; i < dtypes.size(); ++i) {
    const DType d = dtypes[i];
    const bool fp = d == DType::kFloat32 || d == DType::kFloat16 || d == DType::kBFloat16;
    if (i == 3 && (fp || d == DType::kBool)) continue;  // the mask: bool or any float dtype
    if (!fp) {
      return unsupported("attention '", op.name, "': ", dtype_name(d), " input ", i,
                         " is not supported (float32, float16, bfloat16 only)");
    }
    if (i < 3 && d != dtypes[0]) {
      return unsupported("attention '", op.name, "': q, k, v have mixed dtypes ",
                         dtype_name(dtypes[0]), " and ", dtype_name(d));
    }
  }
  return Status::Ok();
}

}  // namespace

void register_attention_kernels(std::vector<CpuKernel>& out) {
  out.push_back({OpKind::kAttention, "cpu.attention.openblas", supports_attention,
                 run_attention});
}

}  // namespace kiln::cpu
