// One tile configuration of linear_gelu_cutlass.cuh: 128x128x64 cluster 2x1 pingpong.

#include "backends/cuda/sm90a/linear_gelu_cutlass.cuh"

namespace kiln::cuda::sm90a {
namespace {
template <class E>
using Cfg = detail::Config<E, cute::Shape<cute::_128, cute::_128, cute::_64>,
                               cute::Shape<cute::_2, cute::_1, cute::_1>,
                               cutlass::gemm::KernelTmaWarpSpecializedPingpong, cutlass::epilogue::TmaWarpSpecialized>;
}  // namespace

ConfigOps pingpong_128x128_ops() { return detail::ops<Cfg>("128x128x64 cluster 2x1 pingpong"); }

}  // namespace kiln::cuda::sm90a
