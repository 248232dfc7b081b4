// One tile configuration of linear_gelu_cutlass.cuh: 256x128x64 cluster 1x2 cooperative.

#include "backends/cuda/sm90a/linear_gelu_cutlass.cuh"

namespace kiln::cuda::sm90a {
namespace {
template <class E>
using Cfg = detail::Config<E, cute::Shape<cute::_256, cute::_128, cute::_64>,
                               cute::Shape<cute::_1, cute::_2, cute::_1>,
                               cutlass::gemm::KernelTmaWarpSpecializedCooperative, cutlass::epilogue::TmaWarpSpecializedCooperative>;
}  // namespace

ConfigOps cooperative_256x128_ops() { return detail::ops<Cfg>("256x128x64 cluster 1x2 cooperative"); }

}  // namespace kiln::cuda::sm90a
