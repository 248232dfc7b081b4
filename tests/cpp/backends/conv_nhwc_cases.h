#pragma once

// Cases shared by the CPU and CUDA kernel tests of the fused conv epilogue (activation,
// residual) and layout "nhwc" for conv and pool: the tensors in the op's physical layout and a
// double-precision reference computed here with direct loops (NCHW), never with Kiln code.

#include <string>
#include <vector>

#include "backends/test_util.h"

namespace kiln::test {

using Dims = std::vector<int64_t>;

// [N, C, H, W] row-major values -> the same tensor stored [N, H, W, C] (also OIHW -> OHWI).
inline std::vector<double> nchw_to_nhwc_values(const std::vector<double>& v, const Dims& d) {
  std::vector<double> out(v.size());
  for (int64_t n = 0; n < d[0]; ++n)
    for (int64_t c = 0; c < d[1]; ++c)
      for (int64_t h = 0; h < d[2]; ++h)
        for (int64_t w = 0; w < d[3]; ++w)
          out[static_cast<size_t>(((n * d[2] + h) * d[3] + w) * d[1] + c)] =
              v[static_cast<size_t>(((n * d[1] + c) * d[2] + h) * d[3] + w)];
  return out;
}
inline Dims nhwc_dims(const Dims& d) { return {d[0], d[2], d[3], d[1]}; }

struct Conv2dCase {
  Dims x;  // [N, C, H, W]
  int64_t out_channels = 1, k = 3, stride = 1, pad = 1, dil = 1, groups = 1;
  bool relu = false, residual = false, nhwc = false, bias = true;

  Dims weight() const { return {out_channels, x[1] / groups, k, k}; }
  Dims output() const {
    const int64_t span = dil * (k - 1);
    return {x[0], out_channels, (x[2] + 2 * pad - span - 1) / stride + 1,
            (x[3] + 2 * pad - span - 1) / stride + 1};
  }
  Attrs attrs() const {
    Attrs a;
    a.set("stride", Dims{stride, stride}).set("padding", Dims{pad, pad});
    a.set("dilation", Dims{dil, dil}).set("groups", groups);
    a.set("activation", std::string(relu ? "relu" : "none"));
    if (nhwc) a.set("layout", std::string("nhwc"));
    return a;
  }
  std::string label() const {
    return str("x ", x[0], "x", x[1], "x", x[2], "x", x[3], " O ", out_channels, " k ", k, " s ",
               stride, relu ? " relu" : "", residual ? " residual" : "", bias ? "" : " no-bias",
               nhwc ? " nhwc" : " nchw");
  }
};

// act(conv(x, w) + b + z) in double, all NCHW.
inline std::vector<double> ref_conv2d(const Conv2dCase& c, const std::vector<double>& x,
                                      const std::vector<double>& w, const std::vector<double>& b,
                                      const std::vector<double>& z) {
  const Dims os = c.output();
  const int64_t N = c.x[0], C = c.x[1], H = c.x[2], W = c.x[3], O = c.out_channels;
  const int64_t Cg = C / c.groups, Og = O / c.groups, OH = os[2], OW = os[3];
  std::vector<double> y(static_cast<size_t>(numel(os)));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < O; ++o)
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          double acc = b.empty() ? 0.0 : b[static_cast<size_t>(o)];
          const int64_t g = o / Og;
          for (int64_t ci = 0; ci < Cg; ++ci)
            for (int64_t kh = 0; kh < c.k; ++kh)
              for (int64_t kw = 0; kw < c.k; ++kw) {
                const int64_t ih = oh * c.stride - c.pad + kh * c.dil;
                const int64_t iw = ow * c.stride - c.pad + kw * c.dil;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                acc += x[static_cast<size_t>(((n * C + g * Cg + ci) * H + ih) * W + iw)] *
                       w[static_cast<size_t>(((o * Cg + ci) * c.k + kh) * c.k + kw)];
              }
          const size_t i = static_cast<size_t>(((n * O + o) * OH + oh) * OW + ow);
          if (!z.empty()) acc += z[i];
          y[i] = c.relu ? std::max(acc, 0.0) : acc;
        }
  return y;
}

// The inputs of one conv case (physical layout), its output and reference (physical order).
struct Conv2dTensors {
  TestTensor x, w, b, z, y;  // b and z may be empty (no buffer)
  std::vector<double> ref;
  std::vector<const TestTensor*> inputs() const {
    std::vector<const TestTensor*> in = {&x, &w};
    if (b.buffer) in.push_back(&b);
    if (z.buffer) in.push_back(&z);
    return in;
  }
};

inline Conv2dTensors make_conv2d(const Conv2dCase& c, DType dtype, Layout x_layout, uint32_t seed) {
  const Dims ws = c.weight(), os = c.output();
  std::vector<double> xv = round_all(dtype, random_values(numel(c.x), seed));
  std::vector<double> wv = round_all(dtype, random_values(numel(ws), seed + 1, -0.5, 0.5));
  std::vector<double> bv;
  if (c.bias) bv = round_all(dtype, random_values(c.out_channels, seed + 2));
  std::vector<double> zv;
  if (c.residual) zv = round_all(dtype, random_values(numel(os), seed + 3));
  Conv2dTensors t;
  t.ref = ref_conv2d(c, xv, wv, bv, zv);
  auto phys = [&](const std::vector<double>& v, const Dims& d) {
    return c.nhwc ? nchw_to_nhwc_values(v, d) : v;
  };
  auto pdims = [&](const Dims& d) { return c.nhwc ? nhwc_dims(d) : d; };
  t.x = make_tensor(dtype, pdims(c.x), phys(xv, c.x), x_layout);
  t.w = make_tensor(dtype, pdims(ws), phys(wv, ws));
  if (c.bias) t.b = make_tensor(dtype, {c.out_channels}, bv);
  if (c.residual) t.z = make_tensor(dtype, pdims(os), phys(zv, os), x_layout);
  t.y = make_output(dtype, pdims(os));
  t.ref = phys(t.ref, os);
  return t;
}

// The values of contiguous `t` in a contiguous view that starts one element into its buffer:
// misaligned for any vector access wider than one element (kernels' scalar fallbacks).
inline TestTensor shifted_by_one(const TestTensor& t) {
  TestTensor s = detail::alloc(t.dtype(), t.shape, numel(t.shape) + 1);
  set_contiguous_strides(s.view);
  s.view.data = s.buffer->data() + dtype_size(t.dtype());
  write_values(s.view, read_values(t.view));
  return s;
}

// Pooling: kind "max", "avg" (count_include_pad) or "adaptive" (output_size = out).
struct Pool2dCase {
  Dims x;
  std::string kind = "max";
  int64_t k = 3, stride = 2, pad = 1, out = 1;
  bool nhwc = true;

  Dims output() const {
    if (kind == "adaptive") return {x[0], x[1], out, out};
    return {x[0], x[1], (x[2] + 2 * pad - k) / stride + 1, (x[3] + 2 * pad - k) / stride + 1};
  }
  OpKind op() const { return kind == "adaptive" ? OpKind::kAdaptiveAvgPool : OpKind::kPool; }
  Attrs attrs() const {
    Attrs a;
    if (kind == "adaptive") {
      a.set("output_size", Dims{out, out});
    } else {
      a.set("kind", kind).set("kernel", Dims{k, k}).set("stride", Dims{stride, stride});
      a.set("padding", Dims{pad, pad});
    }
    if (nhwc) a.set("layout", std::string("nhwc"));
    return a;
  }
};

inline std::vector<double> ref_pool2d(const Pool2dCase& c, const std::vector<double>& x) {
  const Dims os = c.output();
  const int64_t H = c.x[2], W = c.x[3];
  std::vector<double> y(static_cast<size_t>(numel(os)));
  for (int64_t p = 0; p < os[0] * os[1]; ++p)
    for (int64_t oh = 0; oh < os[2]; ++oh)
      for (int64_t ow = 0; ow < os[3]; ++ow) {
        int64_t h0, h1, w0, w1, divisor;
        if (c.kind == "adaptive") {
          h0 = oh * H / os[2], h1 = ((oh + 1) * H + os[2] - 1) / os[2];
          w0 = ow * W / os[3], w1 = ((ow + 1) * W + os[3] - 1) / os[3];
          divisor = (h1 - h0) * (w1 - w0);
        } else {
          h0 = oh * c.stride - c.pad, w0 = ow * c.stride - c.pad;
          h1 = h0 + c.k, w1 = w0 + c.k;
          divisor = (std::min(h1, H + c.pad) - h0) * (std::min(w1, W + c.pad) - w0);
        }
        double acc = c.kind == "max" ? -1e300 : 0.0;
        for (int64_t h = std::max<int64_t>(h0, 0); h < std::min(h1, H); ++h)
          for (int64_t w = std::max<int64_t>(w0, 0); w < std::min(w1, W); ++w) {
            const double v = x[static_cast<size_t>((p * H + h) * W + w)];
            acc = c.kind == "max" ? std::max(acc, v) : acc + v;
          }
        y[static_cast<size_t>((p * os[2] + oh) * os[3] + ow)] =
            c.kind == "max" ? acc : acc / static_cast<double>(divisor);
      }
  return y;
}

struct Pool2dTensors {
  TestTensor x, y;
  std::vector<double> ref;
};

inline Pool2dTensors make_pool2d(const Pool2dCase& c, DType dtype, Layout x_layout, uint32_t seed) {
  std::vector<double> xv = round_all(dtype, random_values(numel(c.x), seed));
  const Dims os = c.output();
  Pool2dTensors t;
  t.ref = ref_pool2d(c, xv);
  if (c.nhwc) {
    t.x = make_tensor(dtype, nhwc_dims(c.x), nchw_to_nhwc_values(xv, c.x), x_layout);
    t.y = make_output(dtype, nhwc_dims(os));
    t.ref = nchw_to_nhwc_values(t.ref, os);
  } else {
    t.x = make_tensor(dtype, c.x, xv, x_layout);
    t.y = make_output(dtype, os);
  }
  return t;
}

}  // namespace kiln::test
