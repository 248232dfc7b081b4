// One tile configuration of linear_gelu_cutlass.cuh: 128x256x64 cluster 2x1 cooperative.

#include "backends/cuda/sm90a/linear_gelu_cutlass.cuh"

namespace kiln::cuda::sm90a {
namespace {
template <class E>
using Cfg = detail::Config<E, cute::Shape<cute::_128, cute::_256, cute::_64>,
                               cute::Shape<cute::_2, cute::_1, cute::_1>,
                               cutlass::gemm::KernelTmaWarpSpecializedCooperative, cutlass::epilogue::TmaWarpSpecializedCooperative>;
}  // namespace

ConfigOps cooperative_128x256_ops() { return detail::ops<Cfg>("128x256x64 cluster 2x1 cooperative"); }

}  // namespace kiln::cuda::sm90a
