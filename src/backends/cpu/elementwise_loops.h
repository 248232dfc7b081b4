#pragma once

// Loops shared by the elementwise kernel files (elementwise.cpp, binary.cpp): a unary and a
// broadcasting binary map over any storage types, and wrapping integer arithmetic. Internal to
// src/backends/cpu.

#include <array>
#include <type_traits>
#include <vector>

#include "backends/cpu/cpu_kernels.h"
#include "backends/cpu/cpu_util.h"

namespace kiln::cpu {

template <typename TI, typename TO, typename F>
void map_unary(const TensorView& in, const TensorView& out, F op) {
  const TI* x = in.as<const TI>();
  TO* y = out.as<TO>();
  const int64_t n = out.numel();
  if (in.isContiguous()) {
    for (int64_t i = 0; i < n; ++i) y[i] = store<TO>(op(load(x[i])));
  } else {
    int64_t i = 0;
    for_each_offset(in, [&](int64_t o) { y[i++] = store<TO>(op(load(x[o]))); });
  }
}

template <typename TA, typename TO, typename F>
void map_binary(const TensorView& a, const TensorView& b, const TensorView& out, F op) {
  const TA* pa = a.as<const TA>();
  const TA* pb = b.as<const TA>();
  TO* y = out.as<TO>();
  const int64_t n = out.numel();
  const bool a_full = a.isContiguous() && same_shape(a, out);
  const bool b_full = b.isContiguous() && same_shape(b, out);
  if (a_full && b_full) {
    for (int64_t i = 0; i < n; ++i) y[i] = store<TO>(op(load(pa[i]), load(pb[i])));
  } else if (a_full && b.numel() == 1) {
    const auto s = load(pb[0]);
    for (int64_t i = 0; i < n; ++i) y[i] = store<TO>(op(load(pa[i]), s));
  } else if (b_full && a.numel() == 1) {
    const auto s = load(pa[0]);
    for (int64_t i = 0; i < n; ++i) y[i] = store<TO>(op(s, load(pb[i])));
  } else {
    TensorView ba, bb;
    broadcast_view(a, out, ba);
    broadcast_view(b, out, bb);
    int64_t i = 0;
    for_each_offset<2>(out.shape, out.rank, {ba.strides, bb.strides},
                       [&](const std::array<int64_t, 2>& o) {
                         y[i++] = store<TO>(op(load(pa[o[0]]), load(pb[o[1]])));
                       });
  }
}

// Wrapping integer arithmetic (PyTorch wraps on overflow; signed overflow is UB in C++).
template <typename T>
T wrap_add(T a, T b) {
  using U = std::make_unsigned_t<T>;
  return static_cast<T>(static_cast<U>(static_cast<U>(a) + static_cast<U>(b)));
}
template <typename T>
T wrap_sub(T a, T b) {
  using U = std::make_unsigned_t<T>;
  return static_cast<T>(static_cast<U>(static_cast<U>(a) - static_cast<U>(b)));
}
template <typename T>
T wrap_mul(T a, T b) {
  using U = std::conditional_t<(sizeof(T) < sizeof(unsigned)), unsigned, std::make_unsigned_t<T>>;
  return static_cast<T>(static_cast<U>(static_cast<U>(a) * static_cast<U>(b)));
}

inline bool broadcasts_to(const TensorView& in, const TensorView& out) {
  TensorView tmp;
  return broadcast_view(in, out, tmp);
}

// The binary kernel (binary.cpp), registered by register_elementwise_kernels.
void register_binary_kernels(std::vector<CpuKernel>& out);

}  // namespace kiln::cpu
