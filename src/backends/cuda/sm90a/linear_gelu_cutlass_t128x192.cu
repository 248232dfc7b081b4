// One tile configuration of linear_gelu_cutlass.cuh: the transposed kernel (y^T = w x^T, the
// features as its M), 128 features x 192 rows x 64, cluster 1x1, cooperative. ViT-B/16 b32's fc1
// is 792 such tiles, 6 per SM (tools/cutlass_sweep, H100: 58.2 us against 60.3 for the 128x128
// ping-pong over rows x features).

#include "backends/cuda/sm90a/linear_gelu_cutlass.cuh"

namespace kiln::cuda::sm90a {
namespace {
template <class E>
using Cfg = detail::Config<E, cute::Shape<cute::_128, cute::_192, cute::_64>,
                           cute::Shape<cute::_1, cute::_1, cute::_1>,
                           cutlass::gemm::KernelTmaWarpSpecializedCooperative,
                           cutlass::epilogue::TmaWarpSpecializedCooperative, detail::GeluExp2,
                           cutlass::gemm::PersistentScheduler, /*Transposed=*/true>;
}  // namespace

ConfigOps transposed_cooperative_128x192_ops() {
  return detail::ops<Cfg>("transposed 128x192x64 (features x rows) cluster 1x1 cooperative");
}

}  // namespace kiln::cuda::sm90a
