// launch_l2_touch (tactic timing's read-back of activations into L2): any address and length,
// aligned or not, reads without writing and without an error.

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "backends/cuda/l2_touch.h"
#include "cuda/cuda_test_util.h"

namespace kiln::test {
namespace {

// A device buffer of `bytes` holding a byte pattern, and a stream; check() reads it back after
// the stream's work and expects the pattern unchanged.
struct PatternBuffer {
  std::vector<uint8_t> host;
  uint8_t* d = nullptr;
  cudaStream_t s = nullptr;
  PatternBuffer(size_t bytes, unsigned mul, unsigned add) : host(bytes) {
    for (size_t i = 0; i < bytes; ++i) host[i] = static_cast<uint8_t>(i * mul + add);
    EXPECT_EQ(cudaMalloc(&d, bytes), cudaSuccess);
    EXPECT_EQ(cudaMemcpy(d, host.data(), bytes, cudaMemcpyHostToDevice), cudaSuccess);
    EXPECT_EQ(cudaStreamCreate(&s), cudaSuccess);
  }
  ~PatternBuffer() {
    cudaStreamDestroy(s);
    cudaFree(d);
  }
  PatternBuffer(const PatternBuffer&) = delete;
  PatternBuffer& operator=(const PatternBuffer&) = delete;
  void check() const {
    ASSERT_EQ(cudaStreamSynchronize(s), cudaSuccess);
    std::vector<uint8_t> back(host.size());
    ASSERT_EQ(cudaMemcpy(back.data(), d, back.size(), cudaMemcpyDeviceToHost), cudaSuccess);
    EXPECT_EQ(back, host);
  }
};

TEST(CudaL2Touch, ReadsAnyRangeAndWritesNothing) {
  KILN_REQUIRE_CUDA();
  constexpr size_t kBytes = (size_t{1} << 20) + 37;
  PatternBuffer buf(kBytes, 131, 7);
  uint8_t* d = buf.d;
  cudaStream_t s = buf.s;
  // (offset, bytes): empty, shorter than a vector, unaligned head and tail, whole vectors only.
  const std::pair<size_t, size_t> ranges[] = {{0, 0},    {3, 5},       {5, 40},
                                              {1, 4096}, {0, kBytes},  {7, kBytes - 7},
                                              {16, 160}, {15, 17}};
  for (const auto& [offset, bytes] : ranges)
    EXPECT_EQ(cuda::launch_l2_touch(d + offset, bytes, s), cudaSuccess) << offset << " " << bytes;
  EXPECT_EQ(cuda::launch_l2_touch(nullptr, 64, s), cudaSuccess);
  buf.check();
}

// launch_l2_prefetch: more ranges than one launch takes, unaligned, empty and null ones, issue
// without an error and change nothing.
TEST(CudaL2Prefetch, AnyRangesWithoutErrorOrWrites) {
  KILN_REQUIRE_CUDA();
  constexpr size_t kBytes = (size_t{4} << 20) + 37;
  PatternBuffer buf(kBytes, 29, 3);
  uint8_t* d = buf.d;
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
      cuda::launch_l2_prefetch(starts.data(), bytes.data(), static_cast<int>(starts.size()), buf.s),
      cudaSuccess);
  EXPECT_EQ(cuda::launch_l2_prefetch(starts.data(), bytes.data(), 0, buf.s), cudaSuccess);
  buf.check();
}

}  // namespace
}  // namespace kiln::test
