// Shape kernels: materialized view ops, concat, pad, flip, arange, fill, copy. Op suite: runs on
// every backend (backends/op_runner.h).

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>

#include "backends/op_runner.h"

namespace kiln {
namespace {

using test::Layout;
using test::make_output;
using test::make_tensor;
using test::run_kernel;

KILN_OP_SUITE(Arange);
KILN_OP_SUITE(Concat);
KILN_OP_SUITE(Copy);
KILN_OP_SUITE(Fill);
KILN_OP_SUITE(Flip);
KILN_OP_SUITE(Pad);
KILN_OP_SUITE(ViewOps);

const std::vector<int64_t> kShape = {2, 3, 4};

// x[idx] for a row-major `shape`.
double at(const std::vector<double>& v, const std::vector<int64_t>& shape,
          const std::vector<int64_t>& idx) {
  return v[test::ravel(idx, shape)];
}

// Runs a view op on every layout and dtype and compares with ref(values) (row-major output).
void check_view_op(OpKind kind, const Attrs& attrs, const std::vector<int64_t>& out_shape,
                   const std::function<std::vector<double>(const std::vector<double>&)>& ref) {
  for (DType dt : {DType::kFloat32, DType::kBFloat16, DType::kInt64, DType::kInt8, DType::kBool}) {
    for (Layout layout : test::kAllLayouts) {
      SCOPED_TRACE(str(op_kind_name(kind), " ", dtype_name(dt), " ", test::layout_name(layout)));
      auto in = test::round_all(dt, test::random_ints(test::numel(kShape), 1, 0, 50));
      auto x = make_tensor(dt, kShape, in, layout);
      auto y = make_output(dt, out_shape);
      Status s = run_kernel(kind, attrs, {&x}, {&y});
      ASSERT_TRUE(s.ok()) << s.toString();
      EXPECT_TRUE(test::expect_close(y.view, ref(in), {0, 0}));
    }
  }
}

TEST_P(ViewOps, ReshapeCopiesInRowMajorOrderFromAnyLayout) {
  check_view_op(OpKind::kReshape, {{"shape", shape_of(std::vector<int64_t>{6, 4})}}, {6, 4},
                [](const std::vector<double>& v) { return v; });
}

TEST_P(ViewOps, PermuteReordersDims) {
  check_view_op(OpKind::kPermute, {{"perm", std::vector<int64_t>{2, 0, 1}}}, {4, 2, 3},
                [](const std::vector<double>& v) {
                  std::vector<double> out;
                  for (int64_t k = 0; k < 4; ++k)
                    for (int64_t i = 0; i < 2; ++i)
                      for (int64_t j = 0; j < 3; ++j) out.push_back(at(v, kShape, {i, j, k}));
                  return out;
                });
}

TEST_P(ViewOps, SliceWithStepTakesEveryOtherElement) {
  Attrs attrs{
      {"dim", int64_t{2}}, {"start", SymExpr(1)}, {"end", SymExpr(4)}, {"step", int64_t{2}}};
  check_view_op(OpKind::kSlice, attrs, {2, 3, 2}, [](const std::vector<double>& v) {
    std::vector<double> out;
    for (int64_t i = 0; i < 2; ++i)
      for (int64_t j = 0; j < 3; ++j)
        for (int64_t k : {1, 3}) out.push_back(at(v, kShape, {i, j, k}));
    return out;
  });
}

TEST_P(ViewOps, SelectDropsTheDim) {
  check_view_op(OpKind::kSelect, {{"dim", int64_t{1}}, {"index", SymExpr(2)}}, {2, 4},
                [](const std::vector<double>& v) {
                  std::vector<double> out;
                  for (int64_t i = 0; i < 2; ++i)
                    for (int64_t k = 0; k < 4; ++k) out.push_back(at(v, kShape, {i, 2, k}));
                  return out;
                });
}

TEST_P(ViewOps, SelectIndexPastTheEndIsOutOfRange) {
  auto x = make_tensor(DType::kFloat32, kShape, test::random_values(24, 1));
  auto y = make_output(DType::kFloat32, {2, 4});
  // index = s0 with s0 = 3, but dim 1 has size 3
  Status s = run_kernel(OpKind::kSelect, {{"dim", int64_t{1}}, {"index", SymExpr::symbol(0)}},
                          {&x}, {&y}, {.bindings = {3}});
  EXPECT_EQ(s.code(), StatusCode::kOutOfRange);
  EXPECT_NE(s.message().find("index 3"), std::string::npos) << s.message();
}

TEST_P(ViewOps, ExpandBroadcastsSizeOneDims) {
  check_view_op(OpKind::kExpand, {{"shape", shape_of(std::vector<int64_t>{2, 2, 3, 4})}},
                {2, 2, 3, 4}, [](const std::vector<double>& v) {
                  std::vector<double> out = v;
                  out.insert(out.end(), v.begin(), v.end());
                  return out;
                });
}

TEST_P(ViewOps, UnsqueezeInsertsASizeOneDim) {
  check_view_op(OpKind::kUnsqueeze, {{"dim", int64_t{1}}}, {2, 1, 3, 4},
                [](const std::vector<double>& v) { return v; });
}

TEST_P(ViewOps, SplitWritesOneOutputPerSize) {
  for (Layout layout : test::kAllLayouts) {
    SCOPED_TRACE(test::layout_name(layout));
    auto in = test::random_ints(24, 3, 0, 50);
    auto x = make_tensor(DType::kFloat32, kShape, in, layout);
    auto y0 = make_output(DType::kFloat32, {2, 1, 4}), y1 = make_output(DType::kFloat32, {2, 2, 4});
    Attrs attrs{{"dim", int64_t{1}}, {"sizes", std::vector<int64_t>{1, 2}}};
    Status s = run_kernel(OpKind::kSplit, attrs, {&x}, {&y0, &y1});
    ASSERT_TRUE(s.ok()) << s.toString();
    std::vector<double> r0, r1;
    for (int64_t i = 0; i < 2; ++i)
      for (int64_t j = 0; j < 3; ++j)
        for (int64_t k = 0; k < 4; ++k) (j < 1 ? r0 : r1).push_back(at(in, kShape, {i, j, k}));
    EXPECT_TRUE(test::expect_close(y0.view, r0));
    EXPECT_TRUE(test::expect_close(y1.view, r1));
  }
}

TEST_P(ViewOps, SqueezeRemovesSizeOneDims) {
  auto in = test::random_values(6, 4);
  auto x = make_tensor(DType::kFloat16, {2, 1, 3}, test::round_all(DType::kFloat16, in),
                       Layout::kSliced);
  auto y = make_output(DType::kFloat16, {2, 3});
  Status s =
      run_kernel(OpKind::kSqueeze, {{"dims", std::vector<int64_t>{1}}}, {&x}, {&y});
  ASSERT_TRUE(s.ok()) << s.toString();
  EXPECT_TRUE(test::expect_close(y.view, test::round_all(DType::kFloat16, in), {0, 0}));
}

// ---- concat, pad, flip ----------------------------------------------------------------------

TEST_P(Concat, JoinsInputsAlongEveryDim) {
  for (DType dt : {DType::kFloat32, DType::kFloat16, DType::kInt32, DType::kUInt8}) {
    for (int64_t dim : {0, 1, 2}) {
      SCOPED_TRACE(str(dtype_name(dt), " dim ", dim));
      std::vector<int64_t> sa = kShape, sb = kShape;
      sb[dim] = 1;
      std::vector<int64_t> so = kShape;
      so[dim] += 1;
      auto va = test::round_all(dt, test::random_ints(test::numel(sa), 5, 0, 90));
      auto vb = test::round_all(dt, test::random_ints(test::numel(sb), 6, 0, 90));
      auto a = make_tensor(dt, sa, va, Layout::kPermuted),
           b = make_tensor(dt, sb, vb, Layout::kSliced);
      auto y = make_output(dt, so);
      ASSERT_TRUE(run_kernel(OpKind::kConcat, {{"dim", dim}}, {&a, &b}, {&y}).ok());
      std::vector<double> ref;
      for (int64_t i = 0; i < test::numel(so); ++i) {
        auto idx = test::unravel(i, so);
        if (idx[dim] < sa[dim]) {
          ref.push_back(at(va, sa, idx));
        } else {
          idx[dim] -= sa[dim];
          ref.push_back(at(vb, sb, idx));
        }
      }
      EXPECT_TRUE(test::expect_close(y.view, ref, {0, 0}));
    }
  }
}

// Reference pad of a [2, 3, 4] tensor by pads (torch order) in a mode.
std::vector<double> pad_ref(const std::vector<double>& v, const std::vector<int64_t>& pads,
                            const std::string& mode, double value,
                            std::vector<int64_t>& out_shape) {
  const int rank = 3;
  std::vector<int64_t> before(rank, 0);
  out_shape = kShape;
  for (size_t p = 0; p < pads.size() / 2; ++p) {
    before[rank - 1 - p] = pads[2 * p];
    out_shape[rank - 1 - p] += pads[2 * p] + pads[2 * p + 1];
  }
  std::vector<double> out;
  for (int64_t i = 0; i < test::numel(out_shape); ++i) {
    auto idx = test::unravel(i, out_shape);
    bool pad = false;
    for (int d = 0; d < rank; ++d) {
      int64_t s = idx[d] - before[d], n = kShape[d];
      if (s < 0 || s >= n) {
        if (mode == "constant")
          pad = true;
        else if (mode == "replicate")
          s = std::clamp<int64_t>(s, 0, n - 1);
        else
          s = s < 0 ? -s : 2 * (n - 1) - s;
      }
      idx[d] = s;
    }
    out.push_back(pad ? value : at(v, kShape, idx));
  }
  return out;
}

TEST_P(Pad, ConstantReflectReplicateAndNegativeCrops) {
  const std::vector<std::vector<int64_t>> pad_sets = {
      {1, 2}, {2, 1, 1, 0}, {0, 1, 1, 1, 1, 0}, {-1, 2, 1, -1}};
  for (std::string mode : {"constant", "reflect", "replicate"}) {
    for (const auto& pads : pad_sets) {
      for (DType dt : {DType::kFloat32, DType::kBFloat16, DType::kInt64}) {
        SCOPED_TRACE(str(mode, " ", dtype_name(dt), " pads ", pads.size(), " first ", pads[0]));
        auto in = test::round_all(dt, test::random_ints(24, 7, 0, 90));
        auto x = make_tensor(dt, kShape, in, Layout::kPermuted);
        std::vector<int64_t> out_shape;
        auto ref = pad_ref(in, pads, mode, 3.0, out_shape);
        auto y = make_output(dt, out_shape);
        Attrs attrs{{"pads", pads}, {"mode", mode}, {"value", 3.0}};
        Status s = run_kernel(OpKind::kPad, attrs, {&x}, {&y});
        ASSERT_TRUE(s.ok()) << s.toString();
        EXPECT_TRUE(test::expect_close(y.view, ref, {0, 0}));
      }
    }
  }
}

// Rank 4, constant, after the last dim only, to rows of 8 or 16 bytes: the channel padding of an
// NHWC conv input (the CUDA backend's row kernel), from every layout, with the value; rows of
// other sizes take the general path.
TEST_P(Pad, LastDimOfRank4ToWholeRows) {
  const std::vector<int64_t> shape = {2, 3, 5, 3};
  struct Case {
    DType dtype;
    int64_t to;
  };
  for (Case c : {Case{DType::kFloat16, 4}, Case{DType::kFloat16, 8}, Case{DType::kFloat32, 4},
                 Case{DType::kInt8, 8}, Case{DType::kFloat16, 5}}) {
    for (Layout layout : test::kAllLayouts) {
      SCOPED_TRACE(str(dtype_name(c.dtype), " to ", c.to, " ", test::layout_name(layout)));
      auto in = test::round_all(c.dtype, test::random_ints(test::numel(shape), 11, -9, 90));
      auto x = make_tensor(c.dtype, shape, in, layout);
      std::vector<double> ref;
      for (int64_t row = 0; row < test::numel(shape) / 3; ++row)
        for (int64_t col = 0; col < c.to; ++col) ref.push_back(col < 3 ? in[row * 3 + col] : 7.0);
      auto y = make_output(c.dtype, {2, 3, 5, c.to});
      Attrs attrs{{"pads", std::vector<int64_t>{0, c.to - 3}}, {"value", 7.0}};
      Status s = run_kernel(OpKind::kPad, attrs, {&x}, {&y});
      ASSERT_TRUE(s.ok()) << s.toString();
      EXPECT_TRUE(test::expect_close(y.view, ref, {0, 0}));
    }
  }
}

TEST_P(Pad, ReflectPadAsLargeAsTheDimIsAnError) {
  auto x = make_tensor(DType::kFloat32, kShape, test::random_values(24, 1));
  auto y = make_output(DType::kFloat32, {2, 3, 8});
  Attrs attrs{{"pads", std::vector<int64_t>{4, 0}}, {"mode", std::string("reflect")}};
  EXPECT_FALSE(run_kernel(OpKind::kPad, attrs, {&x}, {&y}).ok());
}

TEST_P(Flip, ReversesTheGivenDims) {
  for (Layout layout : test::kAllLayouts) {
    for (const auto& dims : std::vector<std::vector<int64_t>>{{0}, {2}, {0, 1, 2}}) {
      SCOPED_TRACE(str(test::layout_name(layout), " ", dims.size()));
      auto in = test::random_ints(24, 8, 0, 90);
      auto x = make_tensor(DType::kInt32, kShape, in, layout);
      auto y = make_output(DType::kInt32, kShape);
      ASSERT_TRUE(run_kernel(OpKind::kFlip, {{"dims", dims}}, {&x}, {&y}).ok());
      std::vector<double> ref;
      for (int64_t i = 0; i < 24; ++i) {
        auto idx = test::unravel(i, kShape);
        for (int64_t d : dims) idx[d] = kShape[d] - 1 - idx[d];
        ref.push_back(at(in, kShape, idx));
      }
      EXPECT_TRUE(test::expect_close(y.view, ref, {0, 0}));
    }
  }
}

// ---- arange, fill, copy ---------------------------------------------------------------------

TEST_P(Arange, CountsFromStartByStepWithSymbolicEnd) {
  for (DType dt : {DType::kInt64, DType::kInt32, DType::kFloat32, DType::kFloat16}) {
    SCOPED_TRACE(dtype_name(dt));
    // end = s0 + 1 with s0 = 9: arange(2, 10, 3) = 2 5 8
    Attrs attrs{{"start", SymExpr(2)},
                {"end", SymExpr::symbol(0) + SymExpr(1)},
                {"step", int64_t{3}},
                {"dtype", dt}};
    auto y = make_output(dt, {3});
    ASSERT_TRUE(run_kernel(OpKind::kArange, attrs, {}, {&y}, {.bindings = {9}}).ok());
    EXPECT_TRUE(test::expect_close(y.view, {2, 5, 8}, {0, 0}));
    attrs.set("start", SymExpr(5)).set("end", SymExpr(-1)).set("step", int64_t{-2});
    ASSERT_TRUE(run_kernel(OpKind::kArange, attrs, {}, {&y}, {.bindings = {9}}).ok());
    EXPECT_TRUE(test::expect_close(y.view, {5, 3, 1}, {0, 0}));
  }
}

TEST_P(Fill, WritesTheValueInEveryDtype) {
  for (DType dt : test::kAllDTypes) {
    SCOPED_TRACE(dtype_name(dt));
    auto y = make_output(dt, {2, 3});
    ASSERT_TRUE(run_kernel(OpKind::kFill, {{"value", 1.5}, {"dtype", dt}}, {}, {&y}).ok());
    EXPECT_TRUE(
        test::expect_close(y.view, std::vector<double>(6, test::round_to(dt, 1.5)), {0, 0}));
  }
}

TEST_P(Copy, MakesExpandedInputContiguous) {
  auto x = test::make_expanded(DType::kBFloat16, {3, 2}, {3, 1}, {1, 2, 3});
  auto y = make_output(DType::kBFloat16, {3, 2});
  ASSERT_TRUE(run_kernel(OpKind::kCopy, {}, {&x}, {&y}).ok());
  EXPECT_TRUE(test::expect_close(y.view, {1, 1, 2, 2, 3, 3}, {0, 0}));
}


TEST_P(Concat, LargeSlabsOfContiguousInputs) {
  auto va = test::random_values(3 * 1000, 1), vb = test::random_values(5 * 1000, 2);
  auto a = make_tensor(DType::kFloat32, {3, 1000}, va);
  auto b = make_tensor(DType::kFloat32, {5, 1000}, vb);
  auto y = make_output(DType::kFloat32, {8, 1000});
  ASSERT_OK(run_kernel(OpKind::kConcat, {{"dim", int64_t{0}}}, {&a, &b}, {&y}));
  std::vector<double> ref = test::round_all(DType::kFloat32, va);
  auto rb = test::round_all(DType::kFloat32, vb);
  ref.insert(ref.end(), rb.begin(), rb.end());
  EXPECT_TRUE(test::expect_close(y.view, ref, {0, 0}));
}

}  // namespace
}  // namespace kiln
