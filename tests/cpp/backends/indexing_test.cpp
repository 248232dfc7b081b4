// Embedding, gather and index_select against references, and their index errors: every backend
// reports an out-of-range index as kOutOfRange; the CPU stops and names the op and the index,
// the CUDA kernels clamp it (never reading out of bounds) and flag the device error word.
// Op suite: runs on every backend (backends/op_runner.h).

#include <gtest/gtest.h>

#include <string>

#include "backends/op_runner.h"

namespace kiln {
namespace {

using test::Layout;
using test::make_output;
using test::make_tensor;
using test::run_kernel;
using test::Backend;
using test::current_backend;

KILN_OP_SUITE(Embedding);
KILN_OP_SUITE(Gather);
KILN_OP_SUITE(IndexSelect);

constexpr DType kValueDTypes[] = {DType::kFloat32, DType::kFloat16, DType::kBFloat16,
                                  DType::kInt64,   DType::kInt8,    DType::kBool};
constexpr DType kIndexDTypes[] = {DType::kInt64, DType::kInt32};

TEST_P(Embedding, LooksUpRowsForEveryIndexShapeAndDtype) {
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
        ASSERT_TRUE(run_kernel(OpKind::kEmbedding, {}, {&w, &ind}, {&y}).ok());
        std::vector<double> ref;
        for (double i : iv)
          for (int64_t j = 0; j < d; ++j) ref.push_back(wv[static_cast<int64_t>(i) * d + j]);
        EXPECT_TRUE(test::expect_close(y.view, ref, {0, 0}));
      }
    }
  }
}

// Rows that are whole 16-byte vectors (the CUDA backend moves them a warp per row): every dtype
// size, int32/int64 indices, repeated indices, and an out-of-range index (an error; the CUDA
// backend clamps it to the last row).
TEST_P(Embedding, WideRowsOfWholeVectors) {
  const int64_t v = 9, d = 48;
  for (DType dt : {DType::kFloat32, DType::kFloat16, DType::kBFloat16, DType::kInt8}) {
    for (DType it : kIndexDTypes) {
      SCOPED_TRACE(str(dtype_name(dt), " idx ", dtype_name(it)));
      auto wv = test::round_all(dt, test::random_values(v * d, 3, -5, 5));
      const std::vector<double> iv = {8, 0, 3, 3, 7, 1, 0, 5, 2, 6, 4, 8};
      auto w = make_tensor(dt, {v, d}, wv);
      auto ind = make_tensor(it, {3, 4}, iv);
      auto y = make_output(dt, {3, 4, d});
      ASSERT_TRUE(run_kernel(OpKind::kEmbedding, {}, {&w, &ind}, {&y}).ok());
      std::vector<double> ref;
      for (double i : iv)
        for (int64_t j = 0; j < d; ++j) ref.push_back(wv[static_cast<int64_t>(i) * d + j]);
      EXPECT_TRUE(test::expect_close(y.view, ref, {0, 0}));

      auto bad = make_tensor(it, {2}, {2, 9});
      auto yb = make_output(dt, {2, d});
      EXPECT_EQ(run_kernel(OpKind::kEmbedding, {}, {&w, &bad}, {&yb}).code(), StatusCode::kOutOfRange);
      if (current_backend() != Backend::kCpu) {
        std::vector<double> clamped(wv.begin() + 2 * d, wv.begin() + 3 * d);
        clamped.insert(clamped.end(), wv.begin() + 8 * d, wv.end());
        EXPECT_TRUE(test::expect_close(yb.view, clamped, {0, 0}));
      }
    }
  }
}

TEST_P(Embedding, OutOfRangeAndNegativeIndicesAreOutOfRangeErrors) {
  auto w = make_tensor(DType::kFloat32, {4, 2}, {0, 1, 10, 11, 20, 21, 30, 31});
  for (double bad : {4.0, -1.0}) {
    SCOPED_TRACE(bad);
    auto ind = make_tensor(DType::kInt64, {2}, {1, bad});
    auto y = make_output(DType::kFloat32, {2, 2});
    Status s = run_kernel(OpKind::kEmbedding, {}, {&w, &ind}, {&y}, {.op_name = "embedding 'tok'"});
    EXPECT_EQ(s.code(), StatusCode::kOutOfRange);
    if (current_backend() == Backend::kCpu) {
      EXPECT_NE(s.message().find("tok"), std::string::npos) << s.message();
      EXPECT_NE(s.message().find(str(static_cast<int64_t>(bad))), std::string::npos)
          << s.message();
    } else {
      EXPECT_NE(s.message().find("out of range"), std::string::npos) << s.message();
      const std::vector<double> clamped = bad > 0 ? std::vector<double>{30, 31}
                                                  : std::vector<double>{0, 1};
      EXPECT_TRUE(test::expect_close(y.view, {10, 11, clamped[0], clamped[1]}, {0, 0}));
    }
  }
}

TEST_P(Embedding, FloatIndicesAreUnsupported) {
  auto w = make_tensor(DType::kFloat32, {4, 2}, test::random_values(8, 1));
  auto ind = make_tensor(DType::kFloat32, {2}, {0, 1});
  auto y = make_output(DType::kFloat32, {2, 2});
  EXPECT_EQ(run_kernel(OpKind::kEmbedding, {}, {&w, &ind}, {&y}).code(),
            StatusCode::kUnsupported);
}

TEST_P(Gather, GathersAlongEveryDim) {
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
            run_kernel(OpKind::kGather, {{"dim", dim}}, {&x, &ind}, {&y}).ok());
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

TEST_P(Gather, OutOfRangeIndexIsAnError) {
  auto x = make_tensor(DType::kFloat32, {2, 3}, {0, 1, 2, 3, 4, 5});
  auto ind = make_tensor(DType::kInt64, {2, 1}, {0, 3});
  auto y = make_output(DType::kFloat32, {2, 1});
  Status s = run_kernel(OpKind::kGather, {{"dim", int64_t{1}}}, {&x, &ind}, {&y});
  EXPECT_EQ(s.code(), StatusCode::kOutOfRange);
  if (current_backend() == Backend::kCpu)
    EXPECT_NE(s.message().find("gather"), std::string::npos) << s.message();
  else
    EXPECT_TRUE(test::expect_close(y.view, {0, 5}, {0, 0}));  // index 3 clamped to 2
}

TEST_P(IndexSelect, SelectsAlongEveryDim) {
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
            run_kernel(OpKind::kIndexSelect, {{"dim", dim}}, {&x, &ind}, {&y}).ok());
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

TEST_P(IndexSelect, NegativeIndexIsAnErrorNamingIt) {
  auto x = make_tensor(DType::kFloat32, {3, 2}, {0, 1, 2, 3, 4, 5});
  auto ind = make_tensor(DType::kInt32, {2}, {1, -2});
  auto y = make_output(DType::kFloat32, {2, 2});
  Status s = run_kernel(OpKind::kIndexSelect, {{"dim", int64_t{0}}}, {&x, &ind}, {&y});
  EXPECT_EQ(s.code(), StatusCode::kOutOfRange);
  if (current_backend() == Backend::kCpu)
    EXPECT_NE(s.message().find("-2"), std::string::npos) << s.message();
  else
    EXPECT_TRUE(test::expect_close(y.view, {2, 3, 0, 1}, {0, 0}));  // index -2 clamped to 0
}

}  // namespace
}  // namespace kiln
