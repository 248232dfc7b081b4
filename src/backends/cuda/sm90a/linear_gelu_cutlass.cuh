#pragma once

// The CUTLASS kernel template behind linear_gelu_cutlass.h, instantiated once per tile
// configuration in its own translation unit (linear_gelu_cutlass_*.cu), so the slow CUTLASS
// compiles run in parallel. Only sm90a/ files include this.

#include <cute/tensor.hpp>
#include <cutlass/cutlass.h>
#include <cutlass/epilogue/collective/collective_builder.hpp>
#include <cutlass/epilogue/fusion/operations.hpp>
#include <cutlass/epilogue/thread/activation.h>
#include <cutlass/gemm/collective/collective_builder.hpp>
#include <cutlass/gemm/device/gemm_universal_adapter.h>
#include <cutlass/gemm/kernel/gemm_universal.hpp>

#include <string>
#include <type_traits>

#include "backends/cuda/gelu_math.h"
#include "backends/cuda/sm90a/linear_gelu_cutlass.h"

namespace kiln::cuda::sm90a {

// One compiled configuration, both io dtypes: what the dispatcher calls.
struct ConfigOps {
  const char* name;
  std::string (*refusal)(const GeluGemm& p);
  size_t (*workspace)(const GeluGemm& p);
  std::string (*run)(const GeluGemm& p, void* workspace, size_t workspace_bytes,
                     cudaStream_t stream);
};

namespace detail {

using namespace cute;

// The epilogue activation: exact gelu through gelu_exp2 (backends/cuda/gelu_math.h), in float,
// in CUTLASS's functor shape (scalars, and Arrays element by element).
template <class T>
struct GeluExp2 {
  static const bool kIsHeavy = true;
  CUTLASS_HOST_DEVICE T operator()(T const& x) const { return T(gelu_exp2(float(x))); }
};
template <class T, int N>
struct GeluExp2<cutlass::Array<T, N>> {
  static const bool kIsHeavy = true;
  CUTLASS_HOST_DEVICE cutlass::Array<T, N> operator()(cutlass::Array<T, N> const& x) const {
    cutlass::Array<T, N> y;
    CUTLASS_PRAGMA_UNROLL
    for (int i = 0; i < N; ++i) y[i] = T(gelu_exp2(float(x[i])));
    return y;
  }
};

// Activation and Scheduler are parameters for tools/cutlass_sweep; Kiln's tactic compiles
// GeluExp2 with the persistent scheduler. Measured there on the H100 (ViT-B/16 b32 fc1,
// 6304x3072x768, best configuration each): the identity epilogue 49 us, GeluExp2 61, the
// erfc-formula gelu it replaced (nineteen FP ops, a reciprocal and an exp2) 71, CUTLASS's GELU
// (erff) 74-88; the epilogue's cost grows with its FP ops per element.
//
// Transposed: the kernel computes y^T = w x^T, features as its M and rows as its N (y^T
// column-major is y row-major, the bias is per row of y^T), so tile shapes divide the problem
// another way: ViT-B/16 b32's fc1 (6304 rows, 3072 features) is 792 tiles of 128 features x 192
// rows, exactly 6 per SM of 132, where 128x128 tiles over rows x features are 1200 (9.09 a SM).
template <class Element, class Tile, class Cluster, class MainloopSchedule, class EpilogueSchedule,
          template <class> class Activation = GeluExp2,
          class Scheduler = cutlass::gemm::PersistentScheduler, bool Transposed = false>
struct Config {
  using ElementAcc = float;
  static constexpr int kAlign = 16 / sizeof(Element);
  using LayoutA = cutlass::layout::RowMajor;
  using LayoutB = cutlass::layout::ColumnMajor;
  using LayoutD =
      std::conditional_t<Transposed, cutlass::layout::ColumnMajor, cutlass::layout::RowMajor>;
  using Fusion = std::conditional_t<
      Transposed,
      cutlass::epilogue::fusion::LinCombPerRowBiasEltAct<Activation, Element, float, Element, Element, float>,
      cutlass::epilogue::fusion::LinCombPerColBiasEltAct<Activation, Element, float, Element, Element, float>>;
  using Epilogue = typename cutlass::epilogue::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, Tile, Cluster,
      cutlass::epilogue::collective::EpilogueTileAuto, ElementAcc, float, void, LayoutD, kAlign,
      Element, LayoutD, kAlign, EpilogueSchedule, Fusion>::CollectiveOp;
  using Mainloop = typename cutlass::gemm::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, Element, LayoutA, kAlign, Element,
      LayoutB, kAlign, ElementAcc, Tile, Cluster,
      cutlass::gemm::collective::StageCountAutoCarveout<static_cast<int>(
          sizeof(typename Epilogue::SharedStorage))>,
      MainloopSchedule>::CollectiveOp;
  using Kernel = cutlass::gemm::kernel::GemmUniversal<Shape<int, int, int, int>, Mainloop,
                                                      Epilogue, Scheduler>;
  using Gemm = cutlass::gemm::device::GemmUniversalAdapter<Kernel>;

  static typename Gemm::Arguments arguments(const GeluGemm& p) {
    using StrideA = typename Kernel::StrideA;
    using StrideB = typename Kernel::StrideB;
    static_assert(std::is_same_v<StrideA, StrideB>, "x and w swap places in the transposed kernel");
    using StrideD = typename Kernel::StrideD;
    const int M = static_cast<int>(p.M), N = static_cast<int>(p.N), K = static_cast<int>(p.K);
    const auto* x = static_cast<const Element*>(p.x);
    const auto* w = static_cast<const Element*>(p.w);
    const StrideA sx = make_stride(p.ldx, Int<1>{}, p.ldx * p.M);  // x, w: K-major either way
    const StrideB sw = make_stride(p.ldw, Int<1>{}, p.ldw * p.N);
    StrideD sd;
    if constexpr (Transposed)
      sd = make_stride(Int<1>{}, p.N, p.N * p.M);  // y^T column-major: y row-major
    else
      sd = make_stride(p.N, Int<1>{}, p.N * p.M);
    cutlass::KernelHardwareInfo hw;
    hw.device_id = 0;  // only read when sm_count is 0, which run() never passes
    hw.sm_count = p.sm_count;
    typename Gemm::Arguments args{
        cutlass::gemm::GemmUniversalMode::kGemm,
        {Transposed ? N : M, Transposed ? M : N, K, 1},
        {Transposed ? w : x, Transposed ? sw : sx, Transposed ? x : w, Transposed ? sx : sw},
        {{}, nullptr, sd, static_cast<Element*>(p.y), sd},
        hw};
    args.epilogue.thread.alpha = 1.0f;
    args.epilogue.thread.beta = 0.0f;
    args.epilogue.thread.bias_ptr = static_cast<const Element*>(p.bias);
    return args;
  }
};

template <class C>
std::string refusal(const GeluGemm& p) {
  const cutlass::Status s = C::Gemm::can_implement(C::arguments(p));
  return s == cutlass::Status::kSuccess ? std::string() : std::string(cutlassGetStatusString(s));
}

template <class C>
size_t workspace(const GeluGemm& p) {
  return C::Gemm::get_workspace_size(C::arguments(p));
}

template <class C>
std::string run(const GeluGemm& p, void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  const typename C::Gemm::Arguments args = C::arguments(p);
  if (C::Gemm::get_workspace_size(args) > workspace_bytes) return "workspace too small";
  typename C::Gemm gemm;
  cutlass::Status s = gemm.initialize(args, workspace, stream);
  if (s != cutlass::Status::kSuccess)
    return std::string("initialize: ") + cutlassGetStatusString(s);
  s = gemm.run(stream);
  if (s != cutlass::Status::kSuccess) {
    const cudaError_t e = cudaGetLastError();
    return std::string("launch: ") + cutlassGetStatusString(s) + " (" + cudaGetErrorString(e) + ")";
  }
  return std::string();
}

// The ConfigOps of one tile configuration: fp16 or bf16 by p.bf16.
template <template <class> class Cfg>
ConfigOps ops(const char* name) {
  using H = Cfg<cutlass::half_t>;
  using B = Cfg<cutlass::bfloat16_t>;
  return {name,
          [](const GeluGemm& p) { return p.bf16 ? refusal<B>(p) : refusal<H>(p); },
          [](const GeluGemm& p) { return p.bf16 ? workspace<B>(p) : workspace<H>(p); },
          [](const GeluGemm& p, void* ws, size_t bytes, cudaStream_t s) {
            return p.bf16 ? run<B>(p, ws, bytes, s) : run<H>(p, ws, bytes, s);
          }};
}

}  // namespace detail

// Defined in linear_gelu_cutlass_<config>.cu.
ConfigOps cooperative_128x256_ops();
ConfigOps cooperative_256x128_ops();
ConfigOps pingpong_128x128_ops();
ConfigOps transposed_cooperative_128x192_ops();

}  // namespace kiln::cuda::sm90a
