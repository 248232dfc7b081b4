#pragma once

// Test helpers for CPU kernels: random data, tensors whose views are contiguous, permuted,
// sliced or expanded (stride 0) over a buffer, a logical row-major read of any view, references
// rounded to a dtype, per-dtype tolerances and a double-precision comparison.
//
//   TestTensor x = make_tensor(DType::kFloat16, {2, 3, 4}, random_values(24, 1),
//                              Layout::kPermuted);
//   TestTensor y = make_output(DType::kFloat16, {2, 3, 4});
//   ASSERT_TRUE(run_op(OpKind::kUnary, {{"fn", std::string("exp")}}, {x.view}, {y.view}).ok());
//   EXPECT_TRUE(expect_close(y.view, reference, tolerance(DType::kFloat16)));

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <numeric>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "backends/cpu/cpu_kernels.h"
#include "backends/cpu/cpu_util.h"
#include "kiln/network.h"

namespace kiln::test {

// ---- data -----------------------------------------------------------------------------------

// n uniform values in [lo, hi), deterministic per seed.
inline std::vector<double> random_values(int64_t n, uint32_t seed, double lo = -2.0,
                                         double hi = 2.0) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<double> v(static_cast<size_t>(n));
  for (double& x : v) x = dist(rng);
  return v;
}
// n uniform integers in [lo, hi] as doubles.
inline std::vector<double> random_ints(int64_t n, uint32_t seed, int64_t lo, int64_t hi) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int64_t> dist(lo, hi);
  std::vector<double> v(static_cast<size_t>(n));
  for (double& x : v) x = static_cast<double>(dist(rng));
  return v;
}

inline int64_t numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

// `v` rounded to what `dtype` can hold (float32/fp16/bf16 round to nearest even; ints truncate;
// bool is v != 0), as double. Use on inputs and on references of ops that round once.
inline double round_to(DType dtype, double v) {
  return cpu::dispatch_all(dtype, [&](auto tag) -> double {
    using T = typename decltype(tag)::type;
    return cpu::to_double(cpu::from_double<T>(v));
  });
}
inline std::vector<double> round_all(DType dtype, std::vector<double> v) {
  for (double& x : v) x = round_to(dtype, x);
  return v;
}

// ---- shapes ---------------------------------------------------------------------------------

// Row-major multi-index of `linear` in `shape`.
inline std::vector<int64_t> unravel(int64_t linear, const std::vector<int64_t>& shape) {
  std::vector<int64_t> idx(shape.size());
  for (int i = static_cast<int>(shape.size()) - 1; i >= 0; --i) {
    idx[i] = shape[i] ? linear % shape[i] : 0;
    linear = shape[i] ? linear / shape[i] : 0;
  }
  return idx;
}
inline int64_t ravel(const std::vector<int64_t>& idx, const std::vector<int64_t>& shape) {
  int64_t l = 0;
  for (size_t i = 0; i < shape.size(); ++i) l = l * shape[i] + idx[i];
  return l;
}
// Numpy broadcast of two shapes (the test's own, independent of the kernels').
inline std::vector<int64_t> broadcast_shape(std::vector<int64_t> a, std::vector<int64_t> b) {
  if (a.size() < b.size()) std::swap(a, b);
  b.insert(b.begin(), a.size() - b.size(), 1);
  for (size_t i = 0; i < a.size(); ++i) a[i] = a[i] == 1 ? b[i] : a[i];
  return a;
}
// Linear index into a tensor of `in_shape` of the element that broadcasts to out index `idx`.
inline int64_t broadcast_source(const std::vector<int64_t>& idx,
                                const std::vector<int64_t>& in_shape) {
  size_t lead = idx.size() - in_shape.size();
  int64_t l = 0;
  for (size_t i = 0; i < in_shape.size(); ++i)
    l = l * in_shape[i] + (in_shape[i] == 1 ? 0 : idx[lead + i]);
  return l;
}
// `values` of `in_shape` broadcast to `out_shape`, row-major.
inline std::vector<double> broadcast_values(const std::vector<double>& values,
                                            const std::vector<int64_t>& in_shape,
                                            const std::vector<int64_t>& out_shape) {
  std::vector<double> out(static_cast<size_t>(numel(out_shape)));
  for (int64_t i = 0; i < static_cast<int64_t>(out.size()); ++i)
    out[i] = values[broadcast_source(unravel(i, out_shape), in_shape)];
  return out;
}

// ---- tensors --------------------------------------------------------------------------------

// How a test tensor's view sits in its buffer.
enum class Layout {
  kContiguous,  // row-major
  kPermuted,    // stored with its dims reversed; the view's strides are transposed
  kSliced,      // every other element of a larger buffer, starting one in: gaps hold sentinels
};
inline const char* layout_name(Layout l) {
  return l == Layout::kContiguous ? "contiguous" : l == Layout::kPermuted ? "permuted" : "sliced";
}
inline constexpr Layout kAllLayouts[] = {Layout::kContiguous, Layout::kPermuted, Layout::kSliced};

// A buffer and a view into it. Movable, not copyable (the view points into the buffer).
struct TestTensor {
  std::vector<int64_t> shape;
  std::unique_ptr<std::vector<std::byte>> buffer;
  TensorView view;
  DType dtype() const { return view.dtype; }
};

namespace detail {
inline TestTensor alloc(DType dtype, const std::vector<int64_t>& shape, int64_t buffer_elems) {
  TestTensor t;
  t.shape = shape;
  t.buffer = std::make_unique<std::vector<std::byte>>(
      static_cast<size_t>(std::max<int64_t>(buffer_elems, 1)) * dtype_size(dtype));
  t.view.data = t.buffer->data();
  t.view.dtype = dtype;
  t.view.rank = static_cast<int>(shape.size());
  for (size_t i = 0; i < shape.size(); ++i) t.view.shape[i] = shape[i];
  return t;
}
// Fills every element of the buffer with a sentinel that a wrong read would expose.
inline void fill_sentinel(TestTensor& t) {
  double s = is_floating(t.dtype()) ? std::nan("") : (t.dtype() == DType::kBool ? 1.0 : 99.0);
  TensorView flat = t.view;
  int64_t n = static_cast<int64_t>(t.buffer->size() / dtype_size(t.dtype()));
  for (int64_t i = 0; i < n; ++i) cpu::store_double(flat, i, s);
}
}  // namespace detail

// Writes `values` (row-major logical order) through `v`'s strides.
inline void write_values(const TensorView& v, const std::vector<double>& values) {
  int64_t i = 0;
  cpu::for_each_offset(v, [&](int64_t o) { cpu::store_double(v, o, values[i++]); });
}

// The view's elements in row-major logical order, as double (any dtype, any strides).
inline std::vector<double> read_values(const TensorView& v) {
  std::vector<double> out;
  out.reserve(static_cast<size_t>(v.numel()));
  cpu::for_each_offset(v, [&](int64_t o) { out.push_back(cpu::load_double(v, o)); });
  return out;
}

// A tensor of `shape` holding `values` (row-major, rounded to dtype) laid out per `layout`.
inline TestTensor make_tensor(DType dtype, const std::vector<int64_t>& shape,
                              const std::vector<double>& values,
                              Layout layout = Layout::kContiguous) {
  const int rank = static_cast<int>(shape.size());
  TestTensor t;
  if (layout == Layout::kContiguous) {
    t = detail::alloc(dtype, shape, numel(shape));
    set_contiguous_strides(t.view);
  } else if (layout == Layout::kPermuted) {
    t = detail::alloc(dtype, shape, numel(shape));
    // Physical layout has the dims reversed: stride of dim i is the product of dims before it.
    int64_t s = 1;
    for (int i = 0; i < rank; ++i) {
      t.view.strides[i] = s;
      s *= shape[i];
    }
  } else {
    // Physical buffer of dims (2*d + 1); view starts at index 1 of every dim, step 2.
    std::vector<int64_t> phys(shape.size());
    for (int i = 0; i < rank; ++i) phys[i] = 2 * shape[i] + 1;
    t = detail::alloc(dtype, shape, numel(phys));
    detail::fill_sentinel(t);
    int64_t s = 1, offset = 0;
    for (int i = rank - 1; i >= 0; --i) {
      t.view.strides[i] = 2 * s;
      offset += s;
      s *= phys[i];
    }
    t.view.data = t.buffer->data() + offset * dtype_size(dtype);
  }
  write_values(t.view, values);
  return t;
}

// A view of `shape` whose data is `values` of `small_shape` broadcast with stride 0 (an expanded
// tensor, as torch.expand makes). small_shape has the same rank, each dim 1 or equal.
inline TestTensor make_expanded(DType dtype, const std::vector<int64_t>& shape,
                                const std::vector<int64_t>& small_shape,
                                const std::vector<double>& small_values) {
  TestTensor t = make_tensor(dtype, small_shape, small_values);
  t.shape = shape;
  for (size_t i = 0; i < shape.size(); ++i) {
    t.view.shape[i] = shape[i];
    if (small_shape[i] == 1 && shape[i] != 1) t.view.strides[i] = 0;
  }
  return t;
}

// A contiguous output of `shape`, pre-filled with sentinels (NaN / 99) so unwritten elements show.
inline TestTensor make_output(DType dtype, const std::vector<int64_t>& shape) {
  TestTensor t = detail::alloc(dtype, shape, numel(shape));
  set_contiguous_strides(t.view);
  detail::fill_sentinel(t);
  return t;
}

// ---- tolerances and comparison --------------------------------------------------------------

struct Tolerance {
  double atol;
  double rtol;
};
// Default per-dtype tolerances for a result computed in float32 and rounded once to dtype.
inline Tolerance tolerance(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
      return {1e-5, 1e-5};
    case DType::kFloat16:
      return {1e-3, 2e-3};
    case DType::kBFloat16:
      return {1e-2, 1.6e-2};
    default:
      return {0.0, 0.0};  // integers and bool are exact
  }
}

// Every element of `out` (any view) within atol + rtol*|ref| of `ref`; NaN matches NaN, inf
// matches the same inf. Reports the first few mismatches with their index.
inline ::testing::AssertionResult expect_close(const TensorView& out,
                                               const std::vector<double>& ref, Tolerance tol) {
  std::vector<double> got = read_values(out);
  if (got.size() != ref.size())
    return ::testing::AssertionFailure() << "size " << got.size() << " vs reference " << ref.size();
  int bad = 0;
  std::string msg;
  for (size_t i = 0; i < got.size(); ++i) {
    double g = got[i], r = ref[i];
    bool ok;
    if (std::isnan(r)) {
      ok = std::isnan(g);
    } else if (std::isinf(r)) {
      ok = g == r;
    } else {
      ok = std::abs(g - r) <= tol.atol + tol.rtol * std::abs(r);
    }
    if (!ok && bad++ < 5) msg += str(" [", i, "] got ", g, " want ", r, ";");
  }
  if (bad)
    return ::testing::AssertionFailure() << bad << " mismatches of " << got.size() << ":" << msg;
  return ::testing::AssertionSuccess();
}
inline ::testing::AssertionResult expect_close(const TensorView& out,
                                               const std::vector<double>& ref) {
  return expect_close(out, ref, tolerance(out.dtype));
}

// ---- running kernels ------------------------------------------------------------------------

inline constexpr DType kFloatDTypes[] = {DType::kFloat32, DType::kFloat16, DType::kBFloat16};
inline constexpr DType kAllDTypes[] = {DType::kFloat32, DType::kFloat16, DType::kBFloat16,
                                       DType::kInt64,   DType::kInt32,   DType::kInt8,
                                       DType::kUInt8,   DType::kBool};

// Runs the first registered CPU kernel of `kind` (or the one named `tactic`) after asking its
// `supports`; returns either's Status. `op_name` becomes KernelArgs::op_name.
inline Status run_op(OpKind kind, const Attrs& attrs, std::vector<TensorView> inputs,
                     std::vector<TensorView> outputs, std::vector<int64_t> bindings = {},
                     const char* tactic = nullptr, const char* op_name = nullptr) {
  const cpu::CpuKernel* k = nullptr;
  if (tactic) {
    k = cpu::find_kernel(kind, tactic);
  } else {
    auto ks = cpu::kernels_for(kind);
    if (!ks.empty()) k = &ks[0];
  }
  if (!k) return not_found("no CPU kernel for ", op_kind_name(kind));
  Op op;
  op.kind = kind;
  op.name = "test";
  op.attrs = attrs;
  std::vector<DType> dtypes;
  for (const TensorView& v : inputs) dtypes.push_back(v.dtype);
  if (k->supports) {
    Status s = k->supports(op, dtypes);
    if (!s.ok()) return s;
  }
  KernelArgs args{op_name ? op_name : op_kind_name(kind), attrs, inputs, outputs, bindings};
  return k->run(args);
}

}  // namespace kiln::test

// ---- magnitude-relative tolerances (appended for matmul/conv/attention tests) ---------------

namespace kiln::test {

// Tolerance for a result accumulated in float32 and rounded once to `dtype`, scaled by the
// largest |ref|: a sum of many products can cancel to a small element whose absolute error
// still follows the operands' magnitude. atol = eps * max(1, max|ref|), rtol = eps.
inline Tolerance magnitude_tolerance(DType dtype, const std::vector<double>& ref) {
  double mag = 1.0;
  for (double r : ref)
    if (std::isfinite(r)) mag = std::max(mag, std::abs(r));
  const double eps = dtype == DType::kFloat32 ? 3e-5 : dtype == DType::kFloat16 ? 2e-3 : 1.6e-2;
  return {eps * mag, eps};
}

}  // namespace kiln::test
