// CUDA embedding, gather and index_select against references; an out-of-range index is
// clamped (never read out of bounds) and reported through the context's device error word.

#include <gtest/gtest.h>

#include <string>

#include "cuda/cuda_test_util.h"

namespace kiln {
namespace {

using test::gpu;
using test::Layout;
using test::make_output;
using test::make_tensor;

constexpr DType kValueDTypes[] = {DType::kFloat32, DType::kFloat16, DType::kBFloat16,
                                  DType::kInt64, DType::kInt8, DType::kBool};
constexpr DType kIndexDTypes[] = {DType::kInt64, DType::kInt32};

TEST(CudaEmbedding, LooksUpRowsForEveryIndexShapeAndDtype) {
  KILN_REQUIRE_CUDA();
  const int64_t v = 7, d = 5;
  for (DType dt : kValueDTypes) {
    for (DType it : kIndexDTypes) {
      for (Layout layout : test::kAllLayouts) {
        SCOPED_TRACE(str(dtype_name(dt), " idx ", dtype_name(it), " ", test::layout_name(layout)));
        auto wv = test::round_all(dt, test::random_values(v * d, 1, -5, 5));
        auto iv = test::random_ints(6, 2, 0, v - 1);
        auto w = make_tensor(dt, {v, d}, wv, layout);
        auto ind = make_tensor(it, {2, 3}, iv, Layout::kPermuted);
        auto y = make_output(dt, {2, 3, d});
        ASSERT_TRUE(gpu().run(OpKind::kEmbedding, {}, {&w, &ind}, {&y}).ok());
        std::vector<double> ref;
        for (double i : iv)
          for (int64_t j = 0; j < d; ++j) ref.push_back(wv[static_cast<int64_t>(i) * d + j]);
        EXPECT_TRUE(test::expect_close(y.view, ref, {0, 0}));
      }
    }
  }
}


TEST(CudaEmbedding, FloatIndicesAreUnsupported) {
  KILN_REQUIRE_CUDA();
  auto w = make_tensor(DType::kFloat32, {4, 2}, test::random_values(8, 1));
  auto ind = make_tensor(DType::kFloat32, {2}, {0, 1});
  auto y = make_output(DType::kFloat32, {2, 2});
  EXPECT_EQ(gpu().run(OpKind::kEmbedding, {}, {&w, &ind}, {&y}).code(),
            StatusCode::kUnsupported);
}

TEST(CudaGather, GathersAlongEveryDim) {
  KILN_REQUIRE_CUDA();
  const std::vector<int64_t> xs = {3, 4, 5};
  for (DType dt : kValueDTypes) {
    for (int64_t dim : {0, 1, 2}) {
      for (Layout layout : test::kAllLayouts) {
        SCOPED_TRACE(str(dtype_name(dt), " dim ", dim, " ", test::layout_name(layout)));
        std::vector<int64_t> is = {2, 3, 4};  // smaller than x in every dim
        is[dim] = 6;                          // and longer along dim (repeats)
        auto xv = test::round_all(dt, test::random_values(test::numel(xs), 3, -5, 5));
        auto iv = test::random_ints(test::numel(is), 4, 0, xs[dim] - 1);
        auto x = make_tensor(dt, xs, xv, layout);
        auto ind = make_tensor(DType::kInt32, is, iv, Layout::kSliced);
        auto y = make_output(dt, is);
        ASSERT_TRUE(
            gpu().run(OpKind::kGather, {{"dim", dim}}, {&x, &ind}, {&y}).ok());
        std::vector<double> ref;
        for (int64_t i = 0; i < test::numel(is); ++i) {
          auto idx = test::unravel(i, is);
          idx[dim] = static_cast<int64_t>(iv[i]);
          ref.push_back(xv[test::ravel(idx, xs)]);
        }
        EXPECT_TRUE(test::expect_close(y.view, ref, {0, 0}));
      }
    }
  }
}


TEST(CudaIndexSelect, SelectsAlongEveryDim) {
  KILN_REQUIRE_CUDA();
  const std::vector<int64_t> xs = {3, 4, 5};
  for (DType dt : kValueDTypes) {
    for (DType it : kIndexDTypes) {
      for (int64_t dim : {0, 1, 2}) {
        SCOPED_TRACE(str(dtype_name(dt), " ", dtype_name(it), " dim ", dim));
        auto xv = test::round_all(dt, test::random_values(test::numel(xs), 5, -5, 5));
        auto iv = test::random_ints(4, 6, 0, xs[dim] - 1);
        auto x = make_tensor(dt, xs, xv, Layout::kPermuted);
        auto ind = make_tensor(it, {4}, iv, Layout::kSliced);
        std::vector<int64_t> os = xs;
        os[dim] = 4;
        auto y = make_output(dt, os);
        ASSERT_TRUE(
            gpu().run(OpKind::kIndexSelect, {{"dim", dim}}, {&x, &ind}, {&y}).ok());
        std::vector<double> ref;
        for (int64_t i = 0; i < test::numel(os); ++i) {
          auto idx = test::unravel(i, os);
          idx[dim] = static_cast<int64_t>(iv[idx[dim]]);
          ref.push_back(xv[test::ravel(idx, xs)]);
        }
        EXPECT_TRUE(test::expect_close(y.view, ref, {0, 0}));
      }
    }
  }
}


TEST(CudaEmbedding, OutOfRangeIndicesAreClampedAndFlagged) {
  KILN_REQUIRE_CUDA();
  auto w = make_tensor(DType::kFloat32, {4, 2}, {0, 1, 10, 11, 20, 21, 30, 31});
  auto y = make_output(DType::kFloat32, {3, 2});
  auto ind = make_tensor(DType::kInt64, {3}, {1, 4, -1});
  Status s = gpu().run(OpKind::kEmbedding, {}, {&w, &ind}, {&y});
  EXPECT_EQ(s.code(), StatusCode::kOutOfRange);
  EXPECT_NE(s.message().find("out of range"), std::string::npos) << s.message();
  EXPECT_TRUE(test::expect_close(y.view, {10, 11, 30, 31, 0, 1}, {0, 0}));
}

TEST(CudaGather, OutOfRangeIndexIsClampedAndFlagged) {
  KILN_REQUIRE_CUDA();
  auto x = make_tensor(DType::kFloat32, {2, 3}, {0, 1, 2, 3, 4, 5});
  auto ind = make_tensor(DType::kInt64, {2, 1}, {0, 3});
  auto y = make_output(DType::kFloat32, {2, 1});
  EXPECT_EQ(gpu().run(OpKind::kGather, {{"dim", int64_t{1}}}, {&x, &ind}, {&y}).code(),
            StatusCode::kOutOfRange);
  EXPECT_TRUE(test::expect_close(y.view, {0, 5}, {0, 0}));
}

TEST(CudaIndexSelect, NegativeIndexIsClampedAndFlagged) {
  KILN_REQUIRE_CUDA();
  auto x = make_tensor(DType::kFloat32, {3, 2}, {0, 1, 2, 3, 4, 5});
  auto ind = make_tensor(DType::kInt32, {2}, {1, -2});
  auto y = make_output(DType::kFloat32, {2, 2});
  EXPECT_EQ(gpu().run(OpKind::kIndexSelect, {{"dim", int64_t{0}}}, {&x, &ind}, {&y}).code(),
            StatusCode::kOutOfRange);
  EXPECT_TRUE(test::expect_close(y.view, {2, 3, 0, 1}, {0, 0}));
}

}  // namespace
}  // namespace kiln
