#include <cstring>

#include "ir/ir_test_util.h"
#include "ir/op_def.h"

namespace kiln {
namespace {

using testing::IrTest;
using testing::v;

TEST(OpKinds, NamesRoundTrip) {
  EXPECT_STREQ(op_kind_name(OpKind::kConv), "conv");
  EXPECT_STREQ(op_kind_name(OpKind::kLogSoftmax), "log_softmax");
  for (int k = 0; k < static_cast<int>(OpKind::kNumOps); ++k) {
    auto kind = static_cast<OpKind>(k);
    auto parsed = parse_op_kind(op_kind_name(kind));
    ASSERT_TRUE(parsed.ok()) << op_kind_name(kind);
    EXPECT_EQ(*parsed, kind);
  }
  auto bad = parse_op_kind("convolution");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("convolution"), std::string::npos);
}

TEST(OpTable, EveryOpKindHasADefinition) {
  for (int k = 0; k < static_cast<int>(OpKind::kNumOps); ++k) {
    auto kind = static_cast<OpKind>(k);
    const OpDef& def = op_def(kind);
    EXPECT_EQ(def.kind, kind) << op_kind_name(kind);
    EXPECT_NE(def.infer, nullptr) << op_kind_name(kind);
    EXPECT_TRUE(def.max_inputs < 0 || def.max_inputs >= def.min_inputs) << op_kind_name(kind);
  }
}

TEST(OpTable, ViewOpsHaveViewFunctions) {
  for (OpKind k : {OpKind::kReshape, OpKind::kPermute, OpKind::kExpand, OpKind::kSlice,
                   OpKind::kSelect, OpKind::kSplit, OpKind::kSqueeze, OpKind::kUnsqueeze}) {
    EXPECT_NE(op_def(k).view, nullptr) << op_kind_name(k);
  }
  EXPECT_EQ(op_def(OpKind::kCopy).view, nullptr);
  EXPECT_EQ(op_def(OpKind::kConcat).view, nullptr);
}

// reshape_view: PyTorch's computeStride over strided inputs.
bool reshape_strides_of(const ViewLayout& in, std::vector<int64_t> shape, std::vector<int64_t>& strides) {
  Shape sym;
  for (int64_t d : shape) sym.push_back(SymExpr(d));
  Attrs attrs;
  attrs.set("shape", sym);
  ViewLayout out;
  if (!op_def(OpKind::kReshape).view(in, attrs, {}, 0, out)) return false;
  EXPECT_EQ(out.shape, shape);
  EXPECT_EQ(out.offset, in.offset);
  strides = out.strides;
  return true;
}

TEST(OpTable, ReshapeViewSplitsStridedDimsAndRefusesMergingAcrossGaps) {
  std::vector<int64_t> st;
  // A [4, 6] transpose of a contiguous [6, 4]: splitting its strided dim is a view.
  ASSERT_TRUE(reshape_strides_of({{4, 6}, {1, 4}, 0}, {4, 2, 3}, st));
  EXPECT_EQ(st, (std::vector<int64_t>{1, 12, 4}));
  // ... merging its two dims is not.
  EXPECT_FALSE(reshape_strides_of({{4, 6}, {1, 4}, 0}, {24}, st));
  // One third of a fused projection [2, 5, 2304] (rows 2304 apart), split into 12 heads of 64.
  ASSERT_TRUE(reshape_strides_of({{2, 5, 768}, {5 * 2304, 2304, 1}, 768}, {2, 5, 12, 64}, st));
  EXPECT_EQ(st, (std::vector<int64_t>{5 * 2304, 2304, 64, 1}));
  // Merging dims that are adjacent in memory, inserting size-1 dims.
  ASSERT_TRUE(reshape_strides_of({{3, 4, 5}, {40, 5, 1}, 0}, {3, 1, 20}, st));
  EXPECT_EQ(st[0], 40);
  EXPECT_EQ(st[2], 1);
  EXPECT_FALSE(reshape_strides_of({{3, 4, 5}, {40, 5, 1}, 0}, {12, 5}, st));  // 3 and 4 have a gap
  // Contiguous input: contiguous strides, as before.
  ASSERT_TRUE(reshape_strides_of({{2, 3, 4}, {12, 4, 1}, 0}, {6, 4}, st));
  EXPECT_EQ(st, (std::vector<int64_t>{4, 1}));
}

TEST_F(IrTest, SymbolRangeMustBeOrdered) {
  EXPECT_FALSE(net.addSymbol("bad", 4, 2, 8).ok());
  EXPECT_FALSE(net.addSymbol("neg", -1, 2, 8).ok());
  EXPECT_FALSE(net.addSymbol("batch", 1, 2, 8).ok());  // taken
  EXPECT_TRUE(net.setSymbolRange(0, 2, 4, 16).ok());
  EXPECT_EQ(net.symbols()[0].min, 2);
  EXPECT_EQ(net.symbols()[0].max, 16);
  Status s = net.setSymbolRange(0, 5, 4, 16);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("batch"), std::string::npos);
  EXPECT_FALSE(net.setSymbolRange(7, 1, 1, 1).ok());
}

TEST_F(IrTest, InputNamesAreUnique) {
  f32("x", {batch, 3});
  auto dup = net.addInput("x", DType::kFloat32, {4});
  ASSERT_FALSE(dup.ok());
  EXPECT_NE(dup.status().message().find("'x'"), std::string::npos);
}

TEST_F(IrTest, InputDimsMustBeNonNegativeOrDeclaredSymbols) {
  auto neg = net.addInput("img", DType::kFloat32, {batch, -3});
  ASSERT_FALSE(neg.ok());
  EXPECT_NE(neg.status().message().find("'img'"), std::string::npos);
  auto undeclared = net.addInput("tok", DType::kInt64, {SymExpr::symbol(5)});
  ASSERT_FALSE(undeclared.ok());
  EXPECT_NE(undeclared.status().message().find("'tok'"), std::string::npos);
  EXPECT_NE(undeclared.status().message().find("s5"), std::string::npos);
  EXPECT_TRUE(net.addInput("derived", DType::kFloat32, {batch * 2, seq + 1}).ok());
}

TEST_F(IrTest, ConstantSizeIsChecked) {
  std::vector<float> w(6, 1.0f);
  std::vector<int64_t> dims = {2, 3};
  auto bytes = std::as_bytes(std::span<const float>(w));
  auto good = net.addConstant("w", DType::kFloat32, dims, bytes);
  ASSERT_TRUE(good.ok());
  EXPECT_TRUE(info(*good).isConstant());
  EXPECT_EQ(info(*good).constant->size(), 24u);
  EXPECT_EQ(std::memcmp(info(*good).constant->data(), w.data(), 24), 0);
  std::vector<int64_t> wrong = {2, 4};
  auto bad = net.addConstant("w2", DType::kFloat32, wrong, bytes);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("'w2'"), std::string::npos);
  EXPECT_NE(bad.status().message().find("32"), std::string::npos);  // bytes needed
}

TEST_F(IrTest, OpNamesDefaultToKindAndIndexAndStayUnique) {
  Tensor x = f32("x", {batch, 4});
  Tensor a = ok(OpKind::kUnary, {x}, {{"fn", std::string("relu")}});
  EXPECT_EQ(info(a).name, "unary_0");
  Tensor b = ok(OpKind::kUnary, {a}, {{"fn", std::string("exp")}}, "act");
  Tensor c = ok(OpKind::kUnary, {b}, {{"fn", std::string("exp")}}, "act");
  EXPECT_EQ(info(b).name, "act");
  EXPECT_NE(info(c).name, "act");
  EXPECT_EQ(net.ops()[2].name, info(c).name);
  Tensor d = ok(OpKind::kUnary, {c}, {{"fn", std::string("exp")}}, "x");  // clashes with input
  EXPECT_NE(info(d).name, "x");
}

TEST_F(IrTest, MultiOutputOpsNameTheirOutputsWithIndices) {
  Tensor x = f32("x", {batch, 10});
  auto outs = net.addOp(OpKind::kSplit, {x}, {{"dim", int64_t{1}}, {"sizes", v({3, 7})}}, "parts");
  ASSERT_TRUE(outs.ok()) << outs.status().toString();
  ASSERT_EQ(outs->size(), 2u);
  EXPECT_EQ(info((*outs)[0]).name, "parts:0");
  EXPECT_EQ(info((*outs)[1]).name, "parts:1");
  EXPECT_EQ(info((*outs)[1]).output_index, 1);
  EXPECT_EQ(info((*outs)[1]).producer, 0);
  size_t ops = net.ops().size(), tensors = net.tensors().size();
  auto single = net.add(OpKind::kSplit, {x}, {{"dim", int64_t{1}}, {"sizes", v({3, 7})}});
  EXPECT_FALSE(single.ok());
  EXPECT_EQ(net.ops().size(), ops);  // rolled back
  EXPECT_EQ(net.tensors().size(), tensors);
}

TEST_F(IrTest, ArityIsCheckedAndNamesTheOp) {
  Tensor x = f32("x", {4});
  fails(OpKind::kBinary, {x}, {{"fn", std::string("add")}}, {"binary 'bad'", "2 inputs, got 1"});
  fails(OpKind::kArange, {x}, {{"end", int64_t{3}}}, {"arange 'bad'", "got 1"});
}

TEST_F(IrTest, InvalidInputHandleIsRejected) {
  fails(OpKind::kUnary, {Tensor{42}}, {{"fn", std::string("relu")}}, {"unary 'bad'", "42"});
  fails(OpKind::kUnary, {Tensor{}}, {{"fn", std::string("relu")}}, {"unary 'bad'"});
}

TEST_F(IrTest, FailedOpLeavesNetworkUnchanged) {
  Tensor x = f32("x", {4});
  size_t tensors = net.tensors().size();
  fails(OpKind::kUnary, {x}, {{"fn", std::string("nope")}}, {"nope"});
  EXPECT_EQ(net.tensors().size(), tensors);
  EXPECT_TRUE(net.ops().empty());
}

TEST_F(IrTest, OutputsAndFindTensor) {
  Tensor x = f32("x", {batch, 4});
  Tensor y = ok(OpKind::kUnary, {x}, {{"fn", std::string("relu")}}, "relu1");
  ASSERT_TRUE(net.markOutput(y, "out").ok());
  ASSERT_TRUE(net.markOutput(y, "out_again").ok());  // one tensor, two names
  Status dup = net.markOutput(x, "out");
  ASSERT_FALSE(dup.ok());
  EXPECT_NE(dup.message().find("'out'"), std::string::npos);
  EXPECT_FALSE(net.markOutput(Tensor{99}, "ghost").ok());
  EXPECT_EQ(net.outputs().size(), 2u);
  auto found = net.findTensor("relu1");
  ASSERT_TRUE(found.ok());
  EXPECT_EQ(*found, y);
  auto missing = net.findTensor("nothing");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  net.renameTensor(y, "activations");
  EXPECT_TRUE(net.findTensor("activations").ok());
  EXPECT_FALSE(net.findTensor("relu1").ok());
}

// A small CNN block: conv -> batch_norm -> relu -> pool -> reshape -> linear.
class SmallNet : public IrTest {
 protected:
  void build() {
    x = f32("x", {batch, 3, 32, 32});
    std::vector<float> wdata(8 * 3 * 3 * 3, 0.5f), cdata(8, 1.0f);
    std::vector<int64_t> wdims = {8, 3, 3, 3}, cdims = {8};
    auto wb = std::as_bytes(std::span<const float>(wdata));
    auto cb = std::as_bytes(std::span<const float>(cdata));
    Tensor w = *net.addConstant("conv1.weight", DType::kFloat32, wdims, wb);
    Tensor mean = *net.addConstant("bn.mean", DType::kFloat32, cdims, cb);
    Tensor var = *net.addConstant("bn.var", DType::kFloat32, cdims, cb);
    Tensor c = ok(OpKind::kConv, {x, w}, {{"stride", v({1, 1})}, {"padding", v({1, 1})}}, "conv1");
    Tensor bn = ok(OpKind::kBatchNorm, {c, mean, var}, {}, "bn1");
    Tensor r = ok(OpKind::kUnary, {bn}, {{"fn", std::string("relu")}}, "relu1");
    Tensor p = ok(OpKind::kPool, {r}, {{"kind", std::string("max")}, {"kernel", v({2, 2})}}, "pool1");
    Tensor flat = ok(OpKind::kReshape, {p}, {{"shape", Shape{batch, -1}}}, "flatten");
    std::vector<float> fw(10 * 8 * 16 * 16, 0.1f);
    std::vector<int64_t> fdims = {10, 8 * 16 * 16};
    Tensor lw = *net.addConstant("fc.weight", DType::kFloat32, fdims,
                                 std::as_bytes(std::span<const float>(fw)));
    out = ok(OpKind::kLinear, {flat, lw}, {}, "fc");
    ASSERT_TRUE(net.markOutput(out, "logits").ok());
  }
  Tensor x, out;
};

TEST_F(SmallNet, WellFormedNetworkVerifies) {
  build();
  Status s = net.verify();
  EXPECT_TRUE(s.ok()) << s.toString();
  EXPECT_EQ(dims(out, 5), v({5, 10}));
}

TEST_F(SmallNet, PrinterListsSymbolsInputsOpsAndOutputs) {
  build();
  std::string text = net.toString();
  auto has = [&](const std::string& line) {
    EXPECT_NE(text.find(line), std::string::npos) << "missing: " << line << "\n" << text;
  };
  has("network 'test' {");
  has("  symbol batch in [1, 64] opt 8\n");
  has("  input %x:float32[batch, 3, 32, 32]\n");
  has("  constant %conv1.weight:float32[8, 3, 3, 3]\n");
  has("  %4:float32[batch, 8, 32, 32] = conv(%x, %conv1.weight) {dilation=[1, 1], groups=1, "
      "output_padding=[0, 0], padding=[1, 1], stride=[1, 1], transposed=false} 'conv1'\n");
  has("  %5:float32[batch, 8, 32, 32] = batch_norm(%4, %bn.mean, %bn.var) {eps=1e-05} 'bn1'\n");
  has("= unary(%5) {alpha=1, fn=relu} 'relu1'\n");
  has("[batch, 8, 16, 16] = pool(%6) {");
  has("  output 'logits' = %");
}

}  // namespace
}  // namespace kiln
