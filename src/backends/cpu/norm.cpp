// Normalizations: batch_norm (inference), layer_norm, group_norm, rms_norm. Inputs are staged
// into a contiguous float32 buffer, normalized in place (statistics in double) and stored to the
// output's dtype, so strided inputs and fp16/bf16 need no special paths.

#include <algorithm>
#include <cmath>
#include <vector>

#include "backends/cpu/cpu_kernels.h"
#include "backends/cpu/cpu_util.h"

namespace kiln::cpu {
namespace {

Status supports_norm(const Op& op, std::span<const DType> dtypes) {
  for (DType d : dtypes)
    if (!is_floating(d))
      return unsupported(op_kind_name(op.kind), ": needs float inputs, got ", dtype_name(d));
  return Status::Ok();
}

// Optional parameter `i` as floats, checked to hold `n` elements; empty when absent.
Result<std::vector<float>> load_param(const KernelArgs& args, size_t i, int64_t n,
                                      const char* what) {
  std::vector<float> v;
  if (i >= args.inputs.size() || args.inputs[i].data == nullptr) return v;
  if (args.inputs[i].numel() != n)
    return kernel_error(args, what, " has ", args.inputs[i].numel(), " elements, expected ", n);
  load_as_float(args.inputs[i], v);
  return v;
}

Status check_out(const KernelArgs& args) {
  if (!same_shape(args.inputs[0], args.outputs[0]))
    return kernel_error(args, "output shape differs from the input's");
  if (!is_floating(args.inputs[0].dtype) || !is_floating(args.outputs[0].dtype))
    return kernel_unsupported(args, "needs a float dtype, got ", dtype_name(args.inputs[0].dtype));
  return Status::Ok();
}

// Mean and biased variance of n floats (two passes, in double).
void moments(const float* x, int64_t n, double& mean, double& var) {
  double s = 0.0;
  for (int64_t i = 0; i < n; ++i) s += x[i];
  mean = n ? s / static_cast<double>(n) : 0.0;
  double m2 = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    double d = x[i] - mean;
    m2 += d * d;
  }
  var = n ? m2 / static_cast<double>(n) : 0.0;
}

Status run_batch_norm(const KernelArgs& args) {
  KILN_RETURN_IF_ERROR(check_out(args));
  const TensorView& x = args.inputs[0];
  if (x.rank < 2) return kernel_error(args, "input needs at least 2 dims, got ", x.rank);
  if (args.inputs.size() < 3) return kernel_error(args, "needs mean and var inputs");
  const int64_t n = x.shape[0], c = x.shape[1], inner = x.numel() / std::max<int64_t>(n * c, 1);
  KILN_ASSIGN_OR_RETURN(std::vector<float> mean, load_param(args, 1, c, "mean"));
  KILN_ASSIGN_OR_RETURN(std::vector<float> var, load_param(args, 2, c, "var"));
  KILN_ASSIGN_OR_RETURN(std::vector<float> w, load_param(args, 3, c, "weight"));
  KILN_ASSIGN_OR_RETURN(std::vector<float> b, load_param(args, 4, c, "bias"));
  const double eps = args.attrs.getDouble("eps", 1e-5);
  // y = x * scale[c] + shift[c]
  std::vector<float> scale(static_cast<size_t>(c)), shift(static_cast<size_t>(c));
  for (int64_t ch = 0; ch < c; ++ch) {
    double s = 1.0 / std::sqrt(static_cast<double>(var[ch]) + eps);
    if (!w.empty()) s *= w[ch];
    scale[ch] = static_cast<float>(s);
    shift[ch] = static_cast<float>((b.empty() ? 0.0 : b[ch]) - mean[ch] * s);
  }
  thread_local std::vector<float> buf;  // kept scratch (cpu_util.h)
  load_as_float(x, buf);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t ch = 0; ch < c; ++ch) {
      float* p = buf.data() + (i * c + ch) * inner;
      const float s = scale[ch], t = shift[ch];
      for (int64_t j = 0; j < inner; ++j) p[j] = p[j] * s + t;
    }
  store_from_float(buf.data(), args.outputs[0]);
  return Status::Ok();
}

// layer_norm and rms_norm: normalize over the trailing `normalized_ndim` dims.
template <bool kRms>
Status run_trailing_norm(const KernelArgs& args) {
  KILN_RETURN_IF_ERROR(check_out(args));
  const TensorView& x = args.inputs[0];
  const int64_t k = args.attrs.getInt("normalized_ndim", 1);
  if (k < 0 || k > x.rank)
    return kernel_error(args, "normalized_ndim ", k, " out of range for rank ", x.rank);
  int64_t inner = 1;
  for (int i = x.rank - static_cast<int>(k); i < x.rank; ++i) inner *= x.shape[i];
  const int64_t outer = inner ? x.numel() / inner : 0;
  // layer_norm residual=true: the last input is added first (see op_list.inc).
  const bool residual = !kRms && args.attrs.getBool("residual", false);
  const size_t num_params = args.inputs.size() - (residual ? 2 : 1);
  std::vector<float> w, b;
  if (num_params >= 1) {
    KILN_ASSIGN_OR_RETURN(w, load_param(args, 1, inner, "weight"));
  }
  if constexpr (!kRms) {
    if (num_params >= 2) {
      KILN_ASSIGN_OR_RETURN(b, load_param(args, 2, inner, "bias"));
    }
  }
  const double eps = args.attrs.getDouble("eps", 1e-5);
  thread_local std::vector<float> buf;  // kept scratch (cpu_util.h)
  load_as_float(x, buf);
  if (residual) {
    const TensorView& res = args.inputs.back();
    if (!same_shape(res, x) || res.dtype != x.dtype)
      return kernel_error(args, "residual shape or dtype differs from the input's");
    thread_local std::vector<float> r;
    load_as_float(res, r);
    for (size_t i = 0; i < buf.size(); ++i) buf[i] += r[i];
    // Round the sum to x's dtype where the unfused add stored it, and return it if asked.
    const bool sum_out = args.outputs.size() > 1;
    TensorView sum_view = sum_out ? args.outputs[1] : x;
    thread_local std::vector<std::byte> rounded;
    if (!sum_out) {
      rounded.resize(buf.size() * dtype_size(x.dtype));
      sum_view.data = rounded.data();
      set_contiguous_strides(sum_view);
    }
    if (!same_shape(sum_view, x) || sum_view.dtype != x.dtype)
      return kernel_error(args, "sum output shape or dtype differs from the input's");
    store_from_float(buf.data(), sum_view);
    load_as_float(sum_view, buf);
  }
  for (int64_t o = 0; o < outer; ++o) {
    float* p = buf.data() + o * inner;
    double mean = 0.0, var = 0.0;
    if constexpr (kRms) {
      for (int64_t j = 0; j < inner; ++j) var += static_cast<double>(p[j]) * p[j];
      var /= static_cast<double>(inner);
    } else {
      moments(p, inner, mean, var);
    }
    const double r = 1.0 / std::sqrt(var + eps);
    for (int64_t j = 0; j < inner; ++j) {
      double y = (p[j] - mean) * r;
      if (!w.empty()) y *= w[j];
      if (!b.empty()) y += b[j];
      p[j] = static_cast<float>(y);
    }
  }
  store_from_float(buf.data(), args.outputs[0]);
  return Status::Ok();
}

Status run_group_norm(const KernelArgs& args) {
  KILN_RETURN_IF_ERROR(check_out(args));
  const TensorView& x = args.inputs[0];
  if (x.rank < 2) return kernel_error(args, "input needs at least 2 dims, got ", x.rank);
  const int64_t n = x.shape[0], c = x.shape[1];
  const int64_t groups = args.attrs.getInt("groups", 1);
  if (groups <= 0 || c % groups != 0)
    return kernel_error(args, "groups ", groups, " does not divide ", c, " channels");
  const int64_t inner = x.numel() / std::max<int64_t>(n * c, 1);
  const int64_t cpg = c / groups, group_size = cpg * inner;
  KILN_ASSIGN_OR_RETURN(std::vector<float> w, load_param(args, 1, c, "weight"));
  KILN_ASSIGN_OR_RETURN(std::vector<float> b, load_param(args, 2, c, "bias"));
  const double eps = args.attrs.getDouble("eps", 1e-5);
  thread_local std::vector<float> buf;  // kept scratch (cpu_util.h)
  load_as_float(x, buf);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t g = 0; g < groups; ++g) {
      float* p = buf.data() + (i * c + g * cpg) * inner;
      double mean, var;
      moments(p, group_size, mean, var);
      const double r = 1.0 / std::sqrt(var + eps);
      for (int64_t cc = 0; cc < cpg; ++cc) {
        const int64_t ch = g * cpg + cc;
        const double s = w.empty() ? r : r * w[ch];
        const double t = (b.empty() ? 0.0 : b[ch]) - mean * s;
        float* q = p + cc * inner;
        for (int64_t j = 0; j < inner; ++j) q[j] = static_cast<float>(q[j] * s + t);
      }
    }
  store_from_float(buf.data(), args.outputs[0]);
  return Status::Ok();
}

}  // namespace

void register_norm_kernels(std::vector<CpuKernel>& out) {
  out.push_back(
      {OpKind::kBatchNorm, "cpu.batch_norm", supports_norm, checked_kernel<run_batch_norm, 3, 5>});
  out.push_back({OpKind::kLayerNorm, "cpu.layer_norm", supports_norm,
                 checked_kernel<run_trailing_norm<false>, 1, 4, -1>});
  out.push_back(
      {OpKind::kGroupNorm, "cpu.group_norm", supports_norm, checked_kernel<run_group_norm, 1, 3>});
  out.push_back({OpKind::kRmsNorm, "cpu.rms_norm", supports_norm,
                 checked_kernel<run_trailing_norm<true>, 1, 2>});
}

}  // namespace kiln::cpu
