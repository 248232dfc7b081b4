// CPU pooling: max and average pooling (1d/2d/3d) and adaptive average pooling, with PyTorch's
// window rules. Every case runs as 3-D over N*C planes (missing leading spatial dims have size
// 1). The output shape (ceil_mode included) comes from inference; kernels only walk windows.
// layout "nhwc" reads x through an NCHW view and transposes the result (nhwc.h).

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "backends/cpu/cpu_kernels.h"
#include "backends/cpu/cpu_util.h"
#include "backends/cpu/nhwc.h"

namespace kiln::cpu {
namespace {

struct PoolGeom {
  int64_t planes = 0;
  int64_t in[3] = {1, 1, 1}, out[3] = {1, 1, 1}, k[3] = {1, 1, 1};
  int64_t stride[3] = {1, 1, 1}, pad[3] = {0, 0, 0}, dil[3] = {1, 1, 1};
  int64_t in_vol() const { return in[0] * in[1] * in[2]; }
  int64_t out_vol() const { return out[0] * out[1] * out[2]; }
};

Status read_spatial(const KernelArgs& args, const char* name, int sp, int64_t* dst) {
  std::vector<int64_t> v = args.attrs.getInts(name, {});
  if (v.empty()) return Status::Ok();
  if (static_cast<int>(v.size()) != sp) {
    return kernel_error(args, name, " has ", v.size(), " values, expected ", sp);
  }
  std::copy(v.begin(), v.end(), dst + 3 - sp);
  return Status::Ok();
}

// Shapes of x[N, C, *sp] and y[N, C, *osp] (NCHW views) into g.
Status read_planes(const KernelArgs& args, const TensorView& x, const TensorView& y,
                   PoolGeom& g) {
  if (x.rank < 3 || x.rank > 5 || y.rank != x.rank || y.shape[0] != x.shape[0] ||
      y.shape[1] != x.shape[1]) {
    return kernel_error(args, "expected x[N, C, *spatial] of rank 3, 4 or 5 and an output of the "
                              "same rank, N and C");
  }
  const int sp = x.rank - 2;
  g.planes = x.shape[0] * x.shape[1];
  for (int i = 0; i < sp; ++i) {
    g.in[3 - sp + i] = x.shape[2 + i];
    g.out[3 - sp + i] = y.shape[2 + i];
  }
  return Status::Ok();
}

const float* contiguous_float(const TensorView& v, std::vector<float>& storage) {
  if (v.dtype == DType::kFloat32 && v.isContiguous()) return v.as<const float>();
  load_as_float(v, storage);
  return storage.data();
}

// The NCHW views of x and y (the tensors themselves unless layout is nhwc).
struct PoolViews {
  bool nhwc = false;
  TensorView x, y;
};
Result<PoolViews> pool_views(const KernelArgs& args) {
  PoolViews v;
  KILN_ASSIGN_OR_RETURN(v.nhwc, read_nhwc(args));
  v.x = v.nhwc ? nchw_view(args.inputs[0]) : args.inputs[0];
  v.y = v.nhwc ? nchw_view(args.outputs[0]) : args.outputs[0];
  return v;
}

// The NCHW float result buffer: the output itself when it is float32 NCHW.
float* result_buffer(const PoolViews& v, std::vector<float>& storage) {
  if (v.y.dtype == DType::kFloat32 && !v.nhwc) return v.y.as<float>();
  storage.resize(static_cast<size_t>(v.y.numel()));
  return storage.data();
}

// Writes the NCHW float result `yf` into the output (transposed for nhwc, converted).
void store_result(const PoolViews& v, const float* yf, const TensorView& out) {
  if (v.nhwc) {
    std::vector<float> phys(static_cast<size_t>(out.numel()));
    nchw_to_nhwc(yf, v.y.shape[0], v.y.shape[1], v.y.shape[2], v.y.shape[3], phys.data());
    if (out.dtype == DType::kFloat32) {
      std::copy(phys.begin(), phys.end(), out.as<float>());
    } else {
      store_from_float(phys.data(), out);
    }
  } else if (out.dtype != DType::kFloat32) {
    store_from_float(yf, out);
  }
}

// NaN propagates as in PyTorch (a NaN in the window wins).
void max_pool(const float* x, const PoolGeom& g, float* y) {
  for (int64_t p = 0; p < g.planes; ++p) {
    const float* xp = x + p * g.in_vol();
    float* yp = y + p * g.out_vol();
    for (int64_t od = 0; od < g.out[0]; ++od)
      for (int64_t oh = 0; oh < g.out[1]; ++oh)
        for (int64_t ow = 0; ow < g.out[2]; ++ow) {
          float best = -std::numeric_limits<float>::infinity();
          for (int64_t kd = 0; kd < g.k[0]; ++kd) {
            const int64_t id = od * g.stride[0] - g.pad[0] + kd * g.dil[0];
            if (id < 0 || id >= g.in[0]) continue;
            for (int64_t kh = 0; kh < g.k[1]; ++kh) {
              const int64_t ih = oh * g.stride[1] - g.pad[1] + kh * g.dil[1];
              if (ih < 0 || ih >= g.in[1]) continue;
              const float* row = xp + (id * g.in[1] + ih) * g.in[2];
              for (int64_t kw = 0; kw < g.k[2]; ++kw) {
                const int64_t iw = ow * g.stride[2] - g.pad[2] + kw * g.dil[2];
                if (iw < 0 || iw >= g.in[2]) continue;
                const float v = row[iw];
                if (v > best || std::isnan(v)) best = v;
              }
            }
          }
          yp[(od * g.out[1] + oh) * g.out[2] + ow] = best;
        }
  }
}

// PyTorch's avg_pool3d: the window is clipped to the padded input for the count_include_pad
// divisor, then to the input for the sum (and for the divisor without count_include_pad).
void avg_pool(const float* x, const PoolGeom& g, bool count_include_pad, float* y) {
  for (int64_t p = 0; p < g.planes; ++p) {
    const float* xp = x + p * g.in_vol();
    float* yp = y + p * g.out_vol();
    for (int64_t od = 0; od < g.out[0]; ++od)
      for (int64_t oh = 0; oh < g.out[1]; ++oh)
        for (int64_t ow = 0; ow < g.out[2]; ++ow) {
          const int64_t o[3] = {od, oh, ow};
          int64_t lo[3], hi[3], padded = 1, inside = 1;
          for (int i = 0; i < 3; ++i) {
            lo[i] = o[i] * g.stride[i] - g.pad[i];
            hi[i] = std::min(lo[i] + g.k[i], g.in[i] + g.pad[i]);
            padded *= hi[i] - lo[i];
            lo[i] = std::max<int64_t>(lo[i], 0);
            hi[i] = std::min(hi[i], g.in[i]);
            inside *= std::max<int64_t>(hi[i] - lo[i], 0);
          }
          float sum = 0.0f;
          for (int64_t id = lo[0]; id < hi[0]; ++id)
            for (int64_t ih = lo[1]; ih < hi[1]; ++ih) {
              const float* row = xp + (id * g.in[1] + ih) * g.in[2];
              for (int64_t iw = lo[2]; iw < hi[2]; ++iw) sum += row[iw];
            }
          // An empty window (only possible with ceil_mode) gives 0, as in PyTorch.
          const int64_t divisor = count_include_pad ? padded : inside;
          yp[(od * g.out[1] + oh) * g.out[2] + ow] =
              inside == 0 ? 0.0f : sum / static_cast<float>(divisor);
        }
  }
}

Status run_pool(const KernelArgs& args) {
  PoolGeom g;
  KILN_ASSIGN_OR_RETURN(PoolViews v, pool_views(args));
  KILN_RETURN_IF_ERROR(read_planes(args, v.x, v.y, g));
  const int sp = args.inputs[0].rank - 2;
  const std::string kind = args.attrs.getString("kind", "");
  KILN_RETURN_IF_ERROR(read_spatial(args, "kernel", sp, g.k));
  std::copy(g.k, g.k + 3, g.stride);  // stride defaults to the kernel
  KILN_RETURN_IF_ERROR(read_spatial(args, "stride", sp, g.stride));
  KILN_RETURN_IF_ERROR(read_spatial(args, "padding", sp, g.pad));
  KILN_RETURN_IF_ERROR(read_spatial(args, "dilation", sp, g.dil));
  for (int i = 0; i < 3; ++i) {
    if (g.k[i] < 1 || g.stride[i] < 1 || g.dil[i] < 1 || g.pad[i] < 0) {
      return kernel_error(args, "kernel, stride and dilation must be >= 1, padding >= 0");
    }
  }
  const TensorView& y = args.outputs[0];
  if (y.numel() == 0) return Status::Ok();
  thread_local std::vector<float> x_store, y_store;  // kept scratch (cpu_util.h)
  const float* xf = contiguous_float(v.x, x_store);
  float* yf = result_buffer(v, y_store);
  if (kind == "max") {
    max_pool(xf, g, yf);
  } else if (kind == "avg") {
    if (g.dil[0] != 1 || g.dil[1] != 1 || g.dil[2] != 1) {
      return kernel_unsupported(args, "avg pooling has no dilation");
    }
    avg_pool(xf, g, args.attrs.getBool("count_include_pad", true), yf);
  } else {
    return kernel_unsupported(args, "unknown pool kind '", kind, "' (expected max or avg)");
  }
  store_result(v, yf, y);
  return Status::Ok();
}

// Output i of a dim averages input [floor(i*in/out), ceil((i+1)*in/out)).
Status run_adaptive_avg_pool(const KernelArgs& args) {
  PoolGeom g;
  KILN_ASSIGN_OR_RETURN(PoolViews v, pool_views(args));
  KILN_RETURN_IF_ERROR(read_planes(args, v.x, v.y, g));
  const TensorView& y = args.outputs[0];
  if (y.numel() == 0) return Status::Ok();
  thread_local std::vector<float> x_store, y_store;  // kept scratch (cpu_util.h)
  const float* xf = contiguous_float(v.x, x_store);
  float* yf = result_buffer(v, y_store);
  auto start = [&](int i, int64_t o) { return o * g.in[i] / g.out[i]; };
  auto end = [&](int i, int64_t o) { return ((o + 1) * g.in[i] + g.out[i] - 1) / g.out[i]; };
  for (int64_t p = 0; p < g.planes; ++p) {
    const float* xp = xf + p * g.in_vol();
    float* yp = yf + p * g.out_vol();
    for (int64_t od = 0; od < g.out[0]; ++od)
      for (int64_t oh = 0; oh < g.out[1]; ++oh)
        for (int64_t ow = 0; ow < g.out[2]; ++ow) {
          const int64_t d0 = start(0, od), d1 = end(0, od), h0 = start(1, oh), h1 = end(1, oh);
          const int64_t w0 = start(2, ow), w1 = end(2, ow);
          float sum = 0.0f;
          for (int64_t id = d0; id < d1; ++id)
            for (int64_t ih = h0; ih < h1; ++ih) {
              const float* row = xp + (id * g.in[1] + ih) * g.in[2];
              for (int64_t iw = w0; iw < w1; ++iw) sum += row[iw];
            }
          yp[(od * g.out[1] + oh) * g.out[2] + ow] =
              sum / static_cast<float>((d1 - d0) * (h1 - h0) * (w1 - w0));
        }
  }
  store_result(v, yf, y);
  return Status::Ok();
}

Status supports_pool(const Op& op, std::span<const DType> dtypes) {
  for (DType d : dtypes) {
    if (d != DType::kFloat32 && d != DType::kFloat16 && d != DType::kBFloat16) {
      return unsupported(op_kind_name(op.kind), " '", op.name, "': ", dtype_name(d),
                         " is not supported (float32, float16, bfloat16 only)");
    }
  }
  if (op.kind == OpKind::kPool) {
    const std::string kind = op.attrs.getString("kind", "");
    if (kind != "max" && kind != "avg") {
      return unsupported("pool '", op.name, "': unknown kind '", kind, "' (expected max or avg)");
    }
    for (int64_t d : op.attrs.getInts("dilation", {})) {
      if (kind == "avg" && d != 1) return unsupported("pool '", op.name, "': avg has no dilation");
    }
  }
  return Status::Ok();
}

}  // namespace

void register_pool_kernels(std::vector<CpuKernel>& out) {
  out.push_back({OpKind::kPool, "cpu.pool.direct", supports_pool, run_pool});
  out.push_back({OpKind::kAdaptiveAvgPool, "cpu.adaptive_avg_pool.direct", supports_pool,
                 run_adaptive_avg_pool});
}

}  // namespace kiln::cpu
