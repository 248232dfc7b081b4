// launch_l2_touch (tactic timing's read-back of activations into L2): any address and length,
// aligned or not, reads without writing and without an error.

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "backends/cuda/l2_touch.h"
#include "cuda/cuda_test_util.h"

namespace kiln::test {
namespace {

TEST(CudaL2Touch, ReadsAnyRangeAndWritesNothing) {
  KILN_REQUIRE_CUDA();
  constexpr size_t kBytes = (size_t{1} << 20) + 37;
  std::vector<uint8_t> host(kBytes);
  for (size_t i = 0; i < kBytes; ++i) host[i] = static_cast<uint8_t>(i * 131 + 7);
  uint8_t* d = nullptr;
  ASSERT_EQ(cudaMalloc(&d, kBytes), cudaSuccess);
  ASSERT_EQ(cudaMemcpy(d, host.data(), kBytes, cudaMemcpyHostToDevice), cudaSuccess);
  cudaStream_t s = nullptr;
  ASSERT_EQ(cudaStreamCreate(&s), cudaSuccess);
  // (offset, bytes): empty, shorter than a vector, unaligned head and tail, whole vectors only.
  const std::pair<size_t, size_t> ranges[] = {{0, 0},    {3, 5},       {5, 40},
                                              {1, 4096}, {0, kBytes},  {7, kBytes - 7},
                                              {16, 160}, {15, 17}};
  for (const auto& [offset, bytes] : ranges)
    EXPECT_EQ(cuda::launch_l2_touch(d + offset, bytes, s), cudaSuccess) << offset << " " << bytes;
  EXPECT_EQ(cuda::launch_l2_touch(nullptr, 64, s), cudaSuccess);
  ASSERT_EQ(cudaStreamSynchronize(s), cudaSuccess);
  std::vector<uint8_t> back(kBytes);
  ASSERT_EQ(cudaMemcpy(back.data(), d, kBytes, cudaMemcpyDeviceToHost), cudaSuccess);
  EXPECT_EQ(back, host);
  cudaStreamDestroy(s);
  cudaFree(d);
}

// launch_l2_prefetch: more ranges than one launch takes, unaligned, empty and null ones, issue
// without an error and change nothing.
TEST(CudaL2Prefetch, AnyRangesWithoutErrorOrWrites) {
  KILN_REQUIRE_CUDA();
  constexpr size_t kBytes = (size_t{4} << 20) + 37;
  std::vector<uint8_t> host(kBytes);
  for (size_t i = 0; i < kBytes; ++i) host[i] = static_cast<uint8_t>(i * 29 + 3);
  uint8_t* d = nullptr;
  ASSERT_EQ(cudaMalloc(&d, kBytes), cudaSuccess);
  ASSERT_EQ(cudaMemcpy(d, host.data(), kBytes, cudaMemcpyHostToDevice), cudaSuccess);
  cudaStream_t s = nullptr;
  ASSERT_EQ(cudaStreamCreate(&s), cudaSuccess);
  std::vector<const void*> starts;
  std::vector<size_t> bytes;
  const std::pair<size_t, size_t> ranges[] = {
      {0, 0},    {3, 5},   {5, 40},        {1, 4096},   {0, kBytes},      {7, kBytes - 7},
      {16, 160}, {15, 17}, {100, 1 << 20}, {33, 16385}, {kBytes - 16, 16}};
  for (const auto& [offset, n] : ranges) {
    starts.push_back(d + offset);
    bytes.push_back(n);
  }
  starts.push_back(nullptr);
  bytes.push_back(64);
  EXPECT_EQ(
      cuda::launch_l2_prefetch(starts.data(), bytes.data(), static_cast<int>(starts.size()), s),
      cudaSuccess);
  EXPECT_EQ(cuda::launch_l2_prefetch(starts.data(), bytes.data(), 0, s), cudaSuccess);
  ASSERT_EQ(cudaStreamSynchronize(s), cudaSuccess);
  std::vector<uint8_t> back(kBytes);
  ASSERT_EQ(cudaMemcpy(back.data(), d, kBytes, cudaMemcpyDeviceToHost), cudaSuccess);
  EXPECT_EQ(back, host);
  cudaStreamDestroy(s);
  cudaFree(d);
}

}  // namespace
}  // namespace kiln::test
