// CPU convolution, 1d/2d/3d, plain and transposed. Every case runs as 3-D (missing leading
// spatial dims have size 1). Plain conv: vol2col + sgemm per batch and group; depthwise conv:
// a direct loop (no im2col blow-up for a 1-channel reduction). Transposed conv: sgemm into
// columns, then col2vol scatter-add. Accumulation is float32 for every dtype. The fused
// epilogue (bias, residual, activation) and layout "nhwc" (see nhwc.h) are applied on the float
// result.

#include <algorithm>
#include <string>
#include <vector>

#include "backends/cpu/cpu_kernels.h"
#include "backends/cpu/cpu_util.h"
#include "backends/cpu/nhwc.h"

namespace kiln::cpu {

void register_pool_kernels(std::vector<CpuKernel>& out);  // pool.cpp

namespace {

struct ConvGeom {
  int64_t N = 0, C = 0, O = 0, groups = 1;
  // Spatial dims as 3-D: depth, height, width.
  int64_t in[3] = {1, 1, 1}, out[3] = {1, 1, 1}, k[3] = {1, 1, 1};
  int64_t stride[3] = {1, 1, 1}, pad[3] = {0, 0, 0}, dil[3] = {1, 1, 1};
  int64_t in_vol() const { return in[0] * in[1] * in[2]; }
  int64_t out_vol() const { return out[0] * out[1] * out[2]; }
  int64_t k_vol() const { return k[0] * k[1] * k[2]; }
};

// Reads an ints attribute of length `sp` into the last `sp` entries of dst (default when absent).
Status read_spatial(const KernelArgs& args, const char* name, int sp, int64_t* dst) {
  std::vector<int64_t> v = args.attrs.getInts(name, {});
  if (v.empty()) return Status::Ok();
  if (static_cast<int>(v.size()) != sp) {
    return kernel_error(args, name, " has ", v.size(), " values, expected ", sp);
  }
  std::copy(v.begin(), v.end(), dst + 3 - sp);
  return Status::Ok();
}

// x contiguous float32: the tensor itself when it already is, else a copy in `storage`.
const float* contiguous_float(const TensorView& v, std::vector<float>& storage) {
  if (v.dtype == DType::kFloat32 && v.isContiguous()) return v.as<const float>();
  load_as_float(v, storage);
  return storage.data();
}

// y[i] += b over n floats (a loop of its own, so that GCC vectorizes it).
void add_scalar(float* __restrict y, int64_t n, float b) {
  for (int64_t i = 0; i < n; ++i) y[i] += b;
}

// Columns of one image and group: col[(c*kvol + kidx), out_pos] = x[c, in_pos] (0 in padding).
void vol2col(const float* x, int64_t channels, const ConvGeom& g, float* col) {
  const int64_t ovol = g.out_vol();
  for (int64_t c = 0; c < channels; ++c) {
    const float* xc = x + c * g.in_vol();
    for (int64_t kd = 0; kd < g.k[0]; ++kd)
      for (int64_t kh = 0; kh < g.k[1]; ++kh)
        for (int64_t kw = 0; kw < g.k[2]; ++kw) {
          float* row = col + (((c * g.k[0] + kd) * g.k[1] + kh) * g.k[2] + kw) * ovol;
          for (int64_t od = 0; od < g.out[0]; ++od) {
            const int64_t id = od * g.stride[0] - g.pad[0] + kd * g.dil[0];
            for (int64_t oh = 0; oh < g.out[1]; ++oh) {
              const int64_t ih = oh * g.stride[1] - g.pad[1] + kh * g.dil[1];
              float* dst = row + (od * g.out[1] + oh) * g.out[2];
              if (id < 0 || id >= g.in[0] || ih < 0 || ih >= g.in[1]) {
                std::fill(dst, dst + g.out[2], 0.0f);
                continue;
              }
              const float* src = xc + (id * g.in[1] + ih) * g.in[2];
              // Output columns ow read input column iw = ow * s + off; [lo, hi) are those
              // inside the row, zeros (padding) on either side. No test per element, so the
              // copy vectorizes (a plain copy at stride 1).
              const int64_t s = g.stride[2], off = kw * g.dil[2] - g.pad[2], n = g.out[2];
              int64_t lo = off >= 0 ? 0 : (-off + s - 1) / s;
              int64_t hi = g.in[2] - off <= 0 ? 0 : (g.in[2] - off + s - 1) / s;
              lo = std::min(lo, n);
              hi = std::min(std::max(hi, lo), n);
              std::fill(dst, dst + lo, 0.0f);
              if (s == 1) {
                std::copy(src + lo + off, src + hi + off, dst + lo);
              } else {
                for (int64_t ow = lo; ow < hi; ++ow) dst[ow] = src[ow * s + off];
              }
              std::fill(dst + hi, dst + n, 0.0f);
            }
          }
        }
  }
}

// The inverse scatter: out[o, out_pos] += col[(o*kvol + kidx), in_pos] (transposed conv), where
// "in" is the transposed conv's input grid and "out" its (larger) output grid.
void col2vol(const float* col, int64_t channels, const ConvGeom& g, float* out) {
  const int64_t ivol = g.in_vol();
  for (int64_t c = 0; c < channels; ++c) {
    float* oc = out + c * g.out_vol();
    for (int64_t kd = 0; kd < g.k[0]; ++kd)
      for (int64_t kh = 0; kh < g.k[1]; ++kh)
        for (int64_t kw = 0; kw < g.k[2]; ++kw) {
          const float* row = col + (((c * g.k[0] + kd) * g.k[1] + kh) * g.k[2] + kw) * ivol;
          for (int64_t id = 0; id < g.in[0]; ++id) {
            const int64_t od = id * g.stride[0] - g.pad[0] + kd * g.dil[0];
            if (od < 0 || od >= g.out[0]) continue;
            for (int64_t ih = 0; ih < g.in[1]; ++ih) {
              const int64_t oh = ih * g.stride[1] - g.pad[1] + kh * g.dil[1];
              if (oh < 0 || oh >= g.out[1]) continue;
              const float* src = row + (id * g.in[1] + ih) * g.in[2];
              float* dst = oc + (od * g.out[1] + oh) * g.out[2];
              for (int64_t iw = 0; iw < g.in[2]; ++iw) {
                const int64_t ow = iw * g.stride[2] - g.pad[2] + kw * g.dil[2];
                if (ow >= 0 && ow < g.out[2]) dst[ow] += src[iw];
              }
            }
          }
        }
  }
}

// Depthwise (groups == C): each output channel reads one input channel.
void depthwise(const float* x, const float* w, const float* bias, const ConvGeom& g, float* y) {
  const int64_t per_group = g.O / g.groups;
  for (int64_t n = 0; n < g.N; ++n)
    for (int64_t o = 0; o < g.O; ++o) {
      const float* xc = x + (n * g.C + o / per_group) * g.in_vol();
      const float* wo = w + o * g.k_vol();
      float* yo = y + (n * g.O + o) * g.out_vol();
      const float b = bias ? bias[o] : 0.0f;
      for (int64_t od = 0; od < g.out[0]; ++od)
        for (int64_t oh = 0; oh < g.out[1]; ++oh)
          for (int64_t ow = 0; ow < g.out[2]; ++ow) {
            float acc = 0.0f;
            for (int64_t kd = 0; kd < g.k[0]; ++kd) {
              const int64_t id = od * g.stride[0] - g.pad[0] + kd * g.dil[0];
              if (id < 0 || id >= g.in[0]) continue;
              for (int64_t kh = 0; kh < g.k[1]; ++kh) {
                const int64_t ih = oh * g.stride[1] - g.pad[1] + kh * g.dil[1];
                if (ih < 0 || ih >= g.in[1]) continue;
                const float* xrow = xc + (id * g.in[1] + ih) * g.in[2];
                const float* wrow = wo + (kd * g.k[1] + kh) * g.k[2];
                for (int64_t kw = 0; kw < g.k[2]; ++kw) {
                  const int64_t iw = ow * g.stride[2] - g.pad[2] + kw * g.dil[2];
                  if (iw >= 0 && iw < g.in[2]) acc += xrow[iw] * wrow[kw];
                }
              }
            }
            yo[(od * g.out[1] + oh) * g.out[2] + ow] = acc + b;
          }
    }
}

// y = act(y + z) over the output in its physical order (z: the residual, any strides).
Status apply_epilogue(const KernelArgs& args, float* y, int64_t n) {
  const std::string act = args.attrs.getString("activation", "none");
  if (act != "none" && act != "relu") return kernel_unsupported(args, "activation '", act, "'");
  if (args.inputs.size() > 3) {
    const TensorView& z = args.inputs[3];
    if (z.numel() != n) {
      return kernel_error(args, "residual has ", z.numel(), " elements, expected ", n);
    }
    thread_local std::vector<float> zf;  // kept scratch (cpu_util.h)
    const float* __restrict zp = contiguous_float(z, zf);
    float* __restrict yp = y;
    for (int64_t i = 0; i < n; ++i) yp[i] += zp[i];
  }
  if (act == "relu") {
    // Negatives and zeros (-0 too) become +0; a NaN stays NaN. One select per element, so the
    // loop vectorizes (the branchy form ran scalar: 15% of a CPU ResNet-50 call with the bias
    // and residual loops, which __restrict lets vectorize too).
    float* __restrict yp = y;
    for (int64_t i = 0; i < n; ++i) yp[i] = yp[i] <= 0.0f ? 0.0f : yp[i];
  }
  return Status::Ok();
}

Status run_conv(const KernelArgs& args) {
  KILN_ASSIGN_OR_RETURN(const bool nhwc, read_nhwc(args));
  // The geometry below reads NCHW dims; with nhwc these are views of the [N,H,W,C] tensors.
  const TensorView x = nhwc ? nchw_view(args.inputs[0]) : args.inputs[0];
  const TensorView w = nhwc ? nchw_view(args.inputs[1]) : args.inputs[1];
  const TensorView& y_out = args.outputs[0];
  const TensorView y = nhwc ? nchw_view(y_out) : y_out;
  const bool transposed = args.attrs.getBool("transposed", false);
  if (x.rank < 3 || x.rank > 5 || w.rank != x.rank || y.rank != x.rank) {
    return kernel_error(args, "expected x, weight and output of rank 3, 4 or 5 (got ", x.rank,
                        ", ", w.rank, ", ", y.rank, ")");
  }
  if (nhwc && transposed) return kernel_unsupported(args, "layout nhwc for a transposed conv");
  if (args.inputs.size() > 3 && args.inputs[3].dtype != y.dtype) {
    return kernel_error(args, "residual is ", dtype_name(args.inputs[3].dtype), ", output ",
                        dtype_name(y.dtype));
  }
  const int sp = x.rank - 2;
  ConvGeom g;
  g.N = x.shape[0];
  g.C = x.shape[1];
  g.O = y.shape[1];
  g.groups = args.attrs.getInt("groups", 1);
  for (int i = 0; i < sp; ++i) {
    g.in[3 - sp + i] = x.shape[2 + i];
    g.out[3 - sp + i] = y.shape[2 + i];
    g.k[3 - sp + i] = w.shape[2 + i];
  }
  KILN_RETURN_IF_ERROR(read_spatial(args, "stride", sp, g.stride));
  KILN_RETURN_IF_ERROR(read_spatial(args, "padding", sp, g.pad));
  KILN_RETURN_IF_ERROR(read_spatial(args, "dilation", sp, g.dil));
  int64_t out_pad[3] = {0, 0, 0};
  if (transposed) KILN_RETURN_IF_ERROR(read_spatial(args, "output_padding", sp, out_pad));
  if (g.groups < 1 || g.C % g.groups != 0 || g.O % g.groups != 0) {
    return kernel_error(args, "groups = ", g.groups, " does not divide ", g.C,
                        " input and ", g.O, " output channels");
  }
  const int64_t Cg = g.C / g.groups, Og = g.O / g.groups;
  const bool w_ok = transposed ? (w.shape[0] == g.C && w.shape[1] == Og)
                               : (w.shape[0] == g.O && w.shape[1] == Cg);
  if (!w_ok || y.shape[0] != g.N) {
    return kernel_error(args, "weight [", w.shape[0], ", ", w.shape[1], ", ...] does not fit ",
                        g.C, " input and ", g.O, " output channels in ", g.groups, " groups");
  }
  for (int i = 3 - sp; i < 3; ++i) {
    const int64_t span = g.dil[i] * (g.k[i] - 1);
    const int64_t expect = transposed
                               ? (g.in[i] - 1) * g.stride[i] - 2 * g.pad[i] + span + out_pad[i] + 1
                               : (g.in[i] + 2 * g.pad[i] - span - 1) / g.stride[i] + 1;
    if (g.stride[i] < 1 || g.dil[i] < 1 || expect != g.out[i]) {
      return kernel_error(args, "output spatial dim ", i - (3 - sp), " is ", g.out[i],
                          ", expected ", expect);
    }
  }
  if (y.numel() == 0) return Status::Ok();

  // Scratch kept per thread between calls (cpu_util.h: kept scratch).
  thread_local std::vector<float> x_store, w_store, b_store, y_store, col;
  const float* xf = contiguous_float(x, x_store);
  const float* wf = contiguous_float(w, w_store);
  const float* bias = nullptr;
  if (args.inputs.size() > 2) {
    if (args.inputs[2].numel() != g.O) {
      return kernel_error(args, "bias has ", args.inputs[2].numel(), " elements, expected ", g.O);
    }
    load_as_float(args.inputs[2], b_store);
    bias = b_store.data();
  }
  // yf: the NCHW float result; the output itself when it is float32 NCHW.
  float* yf = y.dtype == DType::kFloat32 && !nhwc ? y_out.as<float>() : nullptr;
  if (!yf) {
    y_store.resize(static_cast<size_t>(y.numel()));
    yf = y_store.data();
  }
  const int64_t ivol = g.in_vol(), ovol = g.out_vol(), kvol = g.k_vol();

  if (!transposed && g.groups == g.C && g.C > 1) {
    depthwise(xf, wf, bias, g, yf);
  } else if (!transposed) {
    const bool pointwise = kvol == 1 && g.stride[0] == 1 && g.stride[1] == 1 &&
                           g.stride[2] == 1 && g.pad[0] == 0 && g.pad[1] == 0 && g.pad[2] == 0;
    if (!pointwise) col.resize(static_cast<size_t>(Cg * kvol * ovol));
    for (int64_t n = 0; n < g.N; ++n)
      for (int64_t gi = 0; gi < g.groups; ++gi) {
        const float* xg = xf + (n * g.C + gi * Cg) * ivol;
        if (!pointwise) vol2col(xg, Cg, g, col.data());
        // y_g[Og, ovol] = w_g[Og, Cg*kvol] x col[Cg*kvol, ovol]
        sgemm_strided(Og, ovol, Cg * kvol, 1.0f, wf + gi * Og * Cg * kvol, Cg * kvol, 1,
                      pointwise ? xg : col.data(), ovol, 1, 0.0f,
                      yf + (n * g.O + gi * Og) * ovol, ovol);
      }
    if (bias)
      for (int64_t n = 0; n < g.N; ++n)
        for (int64_t o = 0; o < g.O; ++o) add_scalar(yf + (n * g.O + o) * ovol, ovol, bias[o]);
  } else {
    // Transposed: col[Og*kvol, ivol] = w_g^T x x_g, w_g being the [Cg, Og*kvol] rows of group gi.
    col.resize(static_cast<size_t>(Og * kvol * ivol));
    for (int64_t n = 0; n < g.N; ++n)
      for (int64_t o = 0; o < g.O; ++o)
        std::fill_n(yf + (n * g.O + o) * ovol, ovol, bias ? bias[o] : 0.0f);
    for (int64_t n = 0; n < g.N; ++n)
      for (int64_t gi = 0; gi < g.groups; ++gi) {
        sgemm_strided(Og * kvol, ivol, Cg, 1.0f, wf + gi * Cg * Og * kvol, 1, Og * kvol,
                      xf + (n * g.C + gi * Cg) * ivol, ivol, 1, 0.0f, col.data(), ivol);
        col2vol(col.data(), Og, g, yf + (n * g.O + gi * Og) * ovol);
      }
  }
  // out: the result in the output's physical order.
  float* out = yf;
  thread_local std::vector<float> phys;  // kept scratch (cpu_util.h)
  if (nhwc) {
    out = y.dtype == DType::kFloat32 ? y_out.as<float>() : nullptr;
    if (!out) {
      phys.resize(static_cast<size_t>(y.numel()));
      out = phys.data();
    }
    nchw_to_nhwc(yf, g.N, g.O, g.out[1], g.out[2], out);
  }
  KILN_RETURN_IF_ERROR(apply_epilogue(args, out, y.numel()));
  if (y.dtype != DType::kFloat32) store_from_float(out, y_out);
  return Status::Ok();
}

Status supports_conv(const Op& op, std::span<const DType> dtypes) {
  const std::string act = op.attrs.getString("activation", "none");
  if (act != "none" && act != "relu")
    return unsupported("conv '", op.name, "': activation '", act, "' is not supported");
  for (DType d : dtypes) {
    if (d != DType::kFloat32 && d != DType::kFloat16 && d != DType::kBFloat16) {
      return unsupported("conv '", op.name, "': ", dtype_name(d),
                         " is not supported (float32, float16, bfloat16 only)");
    }
  }
  return Status::Ok();
}

}  // namespace

void register_conv_kernels(std::vector<CpuKernel>& out) {
  out.push_back({OpKind::kConv, "cpu.conv.openblas_im2col", supports_conv, run_conv});
  register_pool_kernels(out);
}

}  // namespace kiln::cpu
