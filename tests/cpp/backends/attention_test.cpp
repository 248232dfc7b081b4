// Scaled dot-product attention against a double-precision reference written here (PyTorch
// math-backend semantics: bool mask keeps where true, float mask adds, causal keeps j <= i,
// grouped-query heads read kv head h / (H / Hkv), a fully masked row is zeros). Op suite: runs on
// every backend (backends/op_runner.h).

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <optional>
#include <utility>
#include <vector>

#include "backends/op_runner.h"

namespace kiln::test {
namespace {

using Shape64 = std::vector<int64_t>;

KILN_OP_SUITE(Attention);

struct AttnCase {
  Shape64 q = {}, k = {}, v = {};  // [..., L, E], [..., S, E], [..., S, Ev]
  Shape64 mask = {};               // empty: no mask
  DType mask_dtype = DType::kBool;
  bool causal = false;
  std::optional<double> scale = {};
};

// Index into a tensor of `shape` (batch dims right-aligned to `batch`) for batch index `b` and
// the matrix element (i, j): size-1 dims broadcast, smaller head counts repeat-interleave.
int64_t source(const Shape64& shape, const Shape64& b, int64_t i, int64_t j,
               const Shape64& batch) {
  const size_t r = shape.size(), lead = batch.size() - (r - 2);
  int64_t l = 0;
  for (size_t d = 0; d + 2 < r; ++d) {
    const int64_t n = shape[d], full = batch[lead + d];
    l = l * n + (n == 1 ? 0 : b[lead + d] / (full / n));
  }
  l = l * shape[r - 2] + (shape[r - 2] == 1 ? 0 : i);
  return l * shape[r - 1] + (shape[r - 1] == 1 ? 0 : j);
}

Shape64 batch_of(const AttnCase& c) {
  Shape64 batch;
  for (const Shape64* s : {&c.q, &c.k, &c.v}) {
    Shape64 b(s->begin(), s->end() - 2);
    if (b.size() > batch.size()) batch.insert(batch.begin(), b.size() - batch.size(), 1);
    b.insert(b.begin(), batch.size() - b.size(), 1);
    for (size_t d = 0; d < b.size(); ++d) batch[d] = std::max(batch[d], b[d]);
  }
  return batch;
}

Shape64 out_shape(const AttnCase& c) {
  Shape64 o = batch_of(c);
  o.push_back(c.q[c.q.size() - 2]);
  o.push_back(c.v.back());
  return o;
}

std::vector<double> ref_attention(const AttnCase& c, const std::vector<double>& q,
                                  const std::vector<double>& k, const std::vector<double>& v,
                                  const std::vector<double>& m) {
  const Shape64 batch = batch_of(c);
  const int64_t L = c.q[c.q.size() - 2], E = c.q.back(), S = c.k[c.k.size() - 2],
                Ev = c.v.back();
  const double scale = c.scale ? *c.scale : 1.0 / std::sqrt(static_cast<double>(E));
  const double ninf = -std::numeric_limits<double>::infinity();
  std::vector<double> out;
  for (int64_t bi = 0; bi < numel(batch); ++bi) {
    const Shape64 b = unravel(bi, batch);
    for (int64_t i = 0; i < L; ++i) {
      std::vector<double> s(static_cast<size_t>(S));
      double mx = ninf;
      for (int64_t j = 0; j < S; ++j) {
        double dot = 0;
        for (int64_t e = 0; e < E; ++e)
          dot += q[source(c.q, b, i, e, batch)] * k[source(c.k, b, j, e, batch)];
        s[j] = dot * scale;
        if (!c.mask.empty()) {
          const double mv = m[source(c.mask, b, i, j, batch)];
          if (c.mask_dtype == DType::kBool) {
            if (mv == 0) s[j] = ninf;
          } else {
            s[j] += mv;
          }
        }
        if (c.causal && j > i) s[j] = ninf;
        mx = std::max(mx, s[j]);
      }
      double sum = 0;
      for (double& x : s) sum += (x = std::exp(x - mx));
      if (mx == -std::numeric_limits<double>::infinity()) {  // all masked: zeros, like torch
        for (double& x : s) x = 0;
        sum = 1;
      }
      for (int64_t e = 0; e < Ev; ++e) {
        double acc = 0;
        for (int64_t j = 0; j < S; ++j) acc += s[j] / sum * v[source(c.v, b, j, e, batch)];
        out.push_back(acc);
      }
    }
  }
  return out;
}

// `ref` ([..., H, L, Ev] row-major, as ref_attention gives it) reordered as [..., L, H, Ev].
std::vector<double> seq_major_order(const std::vector<double>& ref, const Shape64& out) {
  const size_t r = out.size();
  const int64_t H = out[r - 3], L = out[r - 2], Ev = out[r - 1];
  const int64_t outer = numel(out) / (H * L * Ev);
  std::vector<double> t(ref.size());
  for (int64_t b = 0; b < outer; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < L; ++i)
        for (int64_t e = 0; e < Ev; ++e)
          t[((b * L + i) * H + h) * Ev + e] = ref[((b * H + h) * L + i) * Ev + e];
  return t;
}

// A case's operands (rounded to `dtype`, q/k/v in `layout`) and the reference output
// ([..., H, L, Ev] row-major).
struct AttnOperands {
  TestTensor q, k, v, mask;
  std::vector<double> ref;
  std::vector<const TestTensor*> inputs() const {
    std::vector<const TestTensor*> in = {&q, &k, &v};
    if (mask.buffer) in.push_back(&mask);
    return in;
  }
};

AttnOperands attention_operands(const AttnCase& c, DType dtype, Layout layout, uint32_t seed) {
  std::vector<double> qv = round_all(dtype, random_values(numel(c.q), seed));
  std::vector<double> kv = round_all(dtype, random_values(numel(c.k), seed + 1));
  std::vector<double> vv = round_all(dtype, random_values(numel(c.v), seed + 2));
  std::vector<double> mv;
  if (!c.mask.empty()) {
    mv = c.mask_dtype == DType::kBool ? random_ints(numel(c.mask), seed + 3, 0, 1)
                                      : round_all(c.mask_dtype, random_values(numel(c.mask), 9));
  }
  AttnOperands o;
  o.ref = ref_attention(c, qv, kv, vv, mv);
  o.q = make_tensor(dtype, c.q, qv, layout);
  o.k = make_tensor(dtype, c.k, kv, layout);
  o.v = make_tensor(dtype, c.v, vv, layout);
  if (!c.mask.empty()) o.mask = make_tensor(c.mask_dtype, c.mask, mv);
  return o;
}

// With seq_major_out the output is [..., L, H, Ev]: the reference transposed. Every tactic the
// backend offers (CUDA: tensor cores, CUDA cores, cuDNN) runs the case.
void check_seq_major(const AttnCase& c, DType dtype, Layout layout = Layout::kContiguous,
                     uint32_t seed = 43) {
  SCOPED_TRACE(str("seq_major_out ", dtype_name(dtype), " ", layout_name(layout), " causal ",
                   c.causal, c.mask.empty() ? "" : " mask"));
  const AttnOperands ops = attention_operands(c, dtype, layout, seed);
  const std::vector<const TestTensor*> inputs = ops.inputs();
  const Shape64 logical = out_shape(c);
  const std::vector<double> ref = seq_major_order(ops.ref, logical);
  Shape64 shape = logical;
  std::swap(shape[shape.size() - 3], shape[shape.size() - 2]);
  Attrs attrs;
  attrs.set("causal", c.causal);
  attrs.set("seq_major_out", true);
  if (c.scale) attrs.set("scale", *c.scale);
  TestTensor probe = make_output(dtype, shape);
  auto cands = op_runner().tactics(OpKind::kAttention, attrs, inputs, {&probe});
  ASSERT_TRUE(cands.ok()) << cands.status().toString();
  ASSERT_FALSE(cands->empty());
  for (const TacticChoice& t : *cands) {
    SCOPED_TRACE(t.label);
    TestTensor out = make_output(dtype, shape);
    RunOptions o;
    o.tactic = t.tactic.c_str();
    o.tactic_data = t.data;
    Status s = run_kernel(OpKind::kAttention, attrs, inputs, {&out}, o);
    ASSERT_TRUE(s.ok()) << s.toString();
    EXPECT_TRUE(expect_close(out.view, ref, magnitude_tolerance(dtype, ref)));
  }
}

void check_attention(const AttnCase& c, DType dtype, Layout layout = Layout::kContiguous,
                     uint32_t seed = 41) {
  SCOPED_TRACE(str(dtype_name(dtype), " ", layout_name(layout), " causal ", c.causal,
                   c.mask.empty() ? "" : " mask"));
  const AttnOperands ops = attention_operands(c, dtype, layout, seed);
  TestTensor out = make_output(dtype, out_shape(c));
  Attrs attrs;
  attrs.set("causal", c.causal);
  if (c.scale) attrs.set("scale", *c.scale);
  Status s = run_kernel(OpKind::kAttention, attrs, ops.inputs(), {&out});
  ASSERT_TRUE(s.ok()) << s.toString();
  EXPECT_TRUE(expect_close(out.view, ops.ref, magnitude_tolerance(dtype, ops.ref)));
}

TEST_P(Attention, MatchesReferenceWithoutMask) {
  for (DType dt : kFloatDTypes) {
    check_attention({{2, 3, 5, 8}, {2, 3, 7, 8}, {2, 3, 7, 6}}, dt);
    check_attention({{4, 1, 3}, {4, 9, 3}, {4, 9, 5}}, dt);  // rank 3, L = 1
    check_attention({{6, 4}, {6, 4}, {6, 4}}, dt);            // rank 2
  }
}

TEST_P(Attention, AppliesScaleAttribute) {
  for (DType dt : kFloatDTypes)
    check_attention({{2, 5, 4}, {2, 6, 4}, {2, 6, 3}, {}, DType::kBool, false, 0.7}, dt);
}

TEST_P(Attention, BoolMaskKeepsWhereTrue) {
  for (DType dt : kFloatDTypes) {
    check_attention({{2, 3, 5, 8}, {2, 3, 7, 8}, {2, 3, 7, 6}, {5, 7}}, dt);
    check_attention({{2, 3, 5, 8}, {2, 3, 7, 8}, {2, 3, 7, 6}, {2, 1, 5, 7}}, dt);
    check_attention({{2, 3, 5, 8}, {2, 3, 7, 8}, {2, 3, 7, 6}, {2, 1, 1, 7}}, dt);
  }
}

TEST_P(Attention, FloatMaskIsAdded) {
  for (DType dt : kFloatDTypes) {
    check_attention({{2, 3, 5, 8}, {2, 3, 7, 8}, {2, 3, 7, 6}, {1, 3, 1, 7}, dt}, dt);
    check_attention({{2, 3, 5, 8}, {2, 3, 7, 8}, {2, 3, 7, 6}, {2, 3, 5, 7}, DType::kFloat32}, dt);
  }
}

TEST_P(Attention, CausalIsTopLeftAligned) {
  for (DType dt : kFloatDTypes) {
    check_attention({{2, 2, 5, 4}, {2, 2, 7, 4}, {2, 2, 7, 3}, {}, DType::kBool, true}, dt);
    check_attention({{2, 2, 7, 4}, {2, 2, 5, 4}, {2, 2, 5, 3}, {}, DType::kBool, true}, dt);
    check_attention({{1, 2, 6, 4}, {1, 2, 6, 4}, {1, 2, 6, 4}, {6, 6}, DType::kFloat32, true}, dt);
  }
}

TEST_P(Attention, FullyMaskedRowIsZeros) {
  // Row 1 of the mask is all false: torch's math backend (_safe_softmax) gives zeros there.
  AttnCase c{{1, 3, 4}, {1, 2, 4}, {1, 2, 2}, {3, 2}};
  TestTensor q = make_tensor(DType::kFloat32, c.q, random_values(12, 1));
  TestTensor k = make_tensor(DType::kFloat32, c.k, random_values(8, 2));
  TestTensor v = make_tensor(DType::kFloat32, c.v, {1, 2, 3, 4});
  TestTensor m = make_tensor(DType::kBool, c.mask, {1, 0, 0, 0, 0, 1});
  TestTensor out = make_output(DType::kFloat32, {1, 3, 2});
  ASSERT_TRUE(run_kernel(OpKind::kAttention, {}, {&q, &k, &v, &m}, {&out}).ok());
  EXPECT_TRUE(expect_close(out.view, {1, 2, 0, 0, 3, 4}));
}

TEST_P(Attention, GroupedQueryHeadsExpandKeysAndValues) {
  for (DType dt : kFloatDTypes) {
    check_attention({{2, 4, 5, 8}, {2, 2, 7, 8}, {2, 2, 7, 6}}, dt);        // H % Hkv == 0
    check_attention({{2, 4, 5, 8}, {2, 1, 7, 8}, {2, 1, 7, 6}}, dt);        // one kv head
    check_attention({{2, 6, 3, 4}, {1, 3, 5, 4}, {1, 3, 5, 4}, {3, 5}}, dt);  // + batch bcast
  }
}

TEST_P(Attention, ReadsExpandedKeysWithStrideZero) {
  const Shape64 qs = {2, 4, 5, 8}, ks = {2, 4, 7, 8}, small = {2, 1, 7, 8};
  AttnCase c{qs, small, small};
  std::vector<double> qv = random_values(numel(qs), 1), kv = random_values(numel(small), 2),
                      vv = random_values(numel(small), 3);
  std::vector<double> ref = ref_attention(c, qv, kv, vv, {});
  TestTensor q = make_tensor(DType::kFloat32, qs, qv);
  TestTensor k = make_expanded(DType::kFloat32, ks, small, kv);
  TestTensor v = make_expanded(DType::kFloat32, ks, small, vv);
  TestTensor out = make_output(DType::kFloat32, {2, 4, 5, 8});
  ASSERT_TRUE(run_kernel(OpKind::kAttention, {}, {&q, &k, &v}, {&out}).ok());
  EXPECT_TRUE(expect_close(out.view, ref, magnitude_tolerance(DType::kFloat32, ref)));
}

TEST_P(Attention, AcceptsPermutedAndSlicedInputs) {
  for (DType dt : kFloatDTypes)
    for (Layout l : kAllLayouts) {
      check_attention({{2, 3, 5, 8}, {2, 3, 7, 8}, {2, 3, 7, 6}, {5, 7}}, dt, l);
      check_attention({{2, 4, 5, 8}, {2, 2, 7, 8}, {2, 2, 7, 6}, {}, DType::kBool, true}, dt, l);
    }
}

TEST_P(Attention, SeqMajorOutIsTheTransposedResult) {
  for (DType dt : {DType::kFloat32, DType::kFloat16}) {
    check_seq_major({{2, 3, 5, 8}, {2, 3, 7, 8}, {2, 3, 7, 6}}, dt);
    check_seq_major({{2, 3, 5, 8}, {2, 3, 7, 8}, {2, 3, 7, 6}, {2, 1, 5, 7}}, dt);
    check_seq_major({{2, 3, 5, 8}, {2, 3, 7, 8}, {2, 3, 7, 6}, {1, 3, 1, 7}, dt}, dt);
    check_seq_major({{2, 2, 7, 4}, {2, 2, 5, 4}, {2, 2, 5, 3}, {}, DType::kBool, true}, dt);
    check_seq_major({{2, 4, 5, 8}, {2, 2, 7, 8}, {2, 2, 7, 6}}, dt);  // grouped-query heads
    check_seq_major({{3, 5, 4}, {3, 9, 4}, {3, 9, 5}}, dt);  // rank 3: [H, L, Ev] -> [L, H, Ev]
    check_seq_major({{2, 3, 1, 8}, {2, 3, 7, 8}, {2, 3, 7, 8}}, dt);                   // one query
    check_seq_major({{2, 3, 2, 5, 8}, {2, 3, 2, 7, 8}, {2, 3, 2, 7, 8}, {5, 7}}, dt);  // rank 5
    for (Layout l : kAllLayouts)
      check_seq_major({{2, 3, 5, 8}, {2, 3, 7, 8}, {2, 3, 7, 6}, {5, 7}}, dt, l);
  }
}

// BERT/GPT-2 sizes, where the CUDA backend's tensor-core kernel and cuDNN serve fp16 (row stride
// H * D = 256 elements, 16-byte aligned).
TEST_P(Attention, SeqMajorOutAtModelShapes) {
  const Shape64 s = {2, 4, 128, 64};
  for (DType dt : {DType::kFloat32, DType::kFloat16}) {
    check_seq_major({s, s, s}, dt);
    check_seq_major({s, s, s, {}, DType::kBool, true}, dt);
    check_seq_major({s, s, s, {2, 1, 1, 128}, dt}, dt);              // BERT's padding mask
    check_seq_major({s, s, s, {2, 1, 128, 128}, DType::kBool}, dt);  // GPT-2's bool mask
  }
  // Odd sizes: ragged tiles, head dims no fast kernel takes.
  check_seq_major({{1, 3, 77, 24}, {1, 3, 130, 24}, {1, 3, 130, 40}, {77, 130}}, DType::kFloat16);
  check_seq_major({{2, 5, 33, 64}, {2, 5, 40, 64}, {2, 5, 40, 64}, {}, DType::kBool, true},
                  DType::kFloat16);
}

TEST_P(Attention, SeqMajorOutNeedsAHeadsDim) {
  TestTensor q = make_tensor(DType::kFloat32, {3, 4}, random_values(12, 1));
  TestTensor out = make_output(DType::kFloat32, {3, 4});
  Attrs attrs;
  attrs.set("seq_major_out", true);
  RunOptions o;
  o.op_name = "attn";
  Status s = run_kernel(OpKind::kAttention, attrs, {&q, &q, &q}, {&out}, o);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("attn"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("seq_major_out"), std::string::npos) << s.message();
}

TEST_P(Attention, RejectsIntegerInputs) {
  TestTensor q = make_tensor(DType::kInt32, {2, 2}, {1, 2, 3, 4});
  TestTensor out = make_output(DType::kInt32, {2, 2});
  Status s = run_kernel(OpKind::kAttention, {}, {&q, &q, &q}, {&out});
  EXPECT_EQ(s.code(), StatusCode::kUnsupported);
  EXPECT_NE(s.message().find("attention"), std::string::npos) << s.message();
}


// Sequences longer than one tile and head dims up to 512 (the CUDA kernel's tiling limits).
TEST_P(Attention, LongSequencesSpanSeveralTilesAndBlocks) {
  for (DType dt : kFloatDTypes) {
    check_attention({{1, 2, 77, 64}, {1, 2, 130, 64}, {1, 2, 130, 64}}, dt);
    check_attention({{1, 2, 100, 32}, {1, 2, 100, 32}, {1, 2, 100, 48}, {}, DType::kBool, true},
                    dt);
    check_attention({{2, 70, 16}, {2, 45, 16}, {2, 45, 16}, {70, 45}, DType::kFloat16, true}, dt);
  }
}

TEST_P(Attention, LargeHeadDimsUseFewerRowsPerBlock) {
  for (DType dt : kFloatDTypes) {
    check_attention({{1, 2, 40, 256}, {1, 2, 50, 256}, {1, 2, 50, 256}}, dt);
    check_attention({{1, 1, 9, 512}, {1, 1, 33, 512}, {1, 1, 33, 512}, {}, DType::kBool, true}, dt);
  }
}

}  // namespace
}  // namespace kiln::test
