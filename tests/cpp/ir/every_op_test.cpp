// One network that uses every op kind, with symbolic dims and negative dims/indices: it must
// verify, and re-running inference on the normalized attributes must change nothing (passes
// rebuild networks by re-adding ops with their stored attributes).
#include <set>

#include "ir/ir_test_util.h"
#include "ir/op_def.h"

namespace kiln {
namespace {

using testing::IrTest;
using testing::v;

class EveryOp : public IrTest {
 protected:
  void build() {
    Tensor x = f32("x", {batch, 8, seq, seq});
    Tensor ids = in("ids", DType::kInt64, {batch, seq});
    Tensor w = f32("w", {8, 8, 3, 3});
    Tensor c8 = f32("c8", {8});
    Tensor table = f32("table", {100, 16});
    Tensor conv = ok(OpKind::kConv, {x, w, c8}, {{"padding", int64_t{1}}});
    Tensor bn = ok(OpKind::kBatchNorm, {conv, c8, c8, c8, c8});
    Tensor gn = ok(OpKind::kGroupNorm, {bn, c8, c8}, {{"groups", int64_t{4}}});
    Tensor act = ok(OpKind::kUnary, {gn}, {{"fn", std::string("leaky_relu")}});
    Tensor pool = ok(OpKind::kPool, {act}, {{"kind", std::string("max")}, {"kernel", v({3, 3})},
                                            {"stride", v({2, 2})}, {"padding", v({1, 1})},
                                            {"ceil_mode", true}});
    Tensor ap = ok(OpKind::kAdaptiveAvgPool, {pool}, {{"output_size", v({4, 4})}});
    Tensor flat = ok(OpKind::kReshape, {ap}, {{"shape", Shape{batch, -1}}});
    Tensor emb = ok(OpKind::kEmbedding, {table, ids});
    Tensor ln = ok(OpKind::kLayerNorm, {emb}, {{"normalized_ndim", int64_t{1}}});
    Tensor rms = ok(OpKind::kRmsNorm, {ln}, {{"normalized_ndim", int64_t{1}}});
    Tensor att = ok(OpKind::kAttention, {rms, rms, rms}, {{"causal", true}});
    Tensor lw = f32("lw", {16, 16});
    Tensor c16 = f32("c16", {16});
    Tensor lin2 = ok(OpKind::kLinear, {att, lw, c16});
    Tensor mm = ok(OpKind::kMatmul, {lin2, ok(OpKind::kPermute, {lin2}, {{"perm", v({0, -1, 1})}})});
    Tensor sm = ok(OpKind::kSoftmax, {mm}, {{"dim", int64_t{-1}}});
    Tensor lsm = ok(OpKind::kLogSoftmax, {sm}, {{"dim", int64_t{-2}}});
    Tensor red = ok(OpKind::kReduce, {lsm}, {{"fn", std::string("mean")}, {"dims", v({-1})}});
    Tensor sl = ok(OpKind::kSlice, {red}, {{"dim", int64_t{-1}}, {"start", int64_t{1}},
                                          {"end", int64_t{-1}}, {"step", int64_t{2}}});
    Tensor sl2 = ok(OpKind::kSlice, {red}, {{"dim", int64_t{1}}, {"start", int64_t{-3}}});
    Tensor sel = ok(OpKind::kSelect, {red}, {{"dim", int64_t{-1}}, {"index", int64_t{-1}}});
    Tensor cat = ok(OpKind::kConcat, {sl, sl2}, {{"dim", int64_t{-1}}});
    Tensor un = ok(OpKind::kUnsqueeze, {sel}, {{"dim", int64_t{-1}}});
    Tensor ex = ok(OpKind::kExpand, {un}, {{"shape", Shape{-1, 5}}});
    Tensor sq = ok(OpKind::kSqueeze, {ok(OpKind::kUnsqueeze, {ex}, {{"dim", int64_t{0}}})});
    auto parts = net.addOp(OpKind::kSplit, {sq}, {{"dim", int64_t{-1}}, {"sizes", v({2, 3})}});
    ASSERT_TRUE(parts.ok()) << parts.status().toString();
    Tensor pad = ok(OpKind::kPad, {(*parts)[1]}, {{"pads", v({1, 1})}, {"mode", std::string("reflect")}});
    Tensor fl = ok(OpKind::kFlip, {pad}, {{"dims", v({-1})}});
    Tensor ar = ok(OpKind::kArange, {}, {{"end", seq}, {"dtype", DType::kFloat32}});
    Tensor fill = ok(OpKind::kFill, {}, {{"shape", Shape{seq}}, {"value", 2.0}});
    Tensor sum = ok(OpKind::kBinary, {ar, fill}, {{"fn", std::string("add")}});
    Tensor gt = ok(OpKind::kBinary, {sum, fill}, {{"fn", std::string("gt")}});
    Tensor wh = ok(OpKind::kWhere, {gt, sum, fill});
    Tensor cl = ok(OpKind::kClamp, {wh}, {{"max", int64_t{3}}});
    Tensor cast = ok(OpKind::kCast, {cl}, {{"dtype", DType::kInt64}});
    Tensor idx = ok(OpKind::kIndexSelect, {flat, ok(OpKind::kSlice, {cast}, {{"dim", int64_t{0}}, {"end", int64_t{1}}})},
                    {{"dim", int64_t{-1}}});
    Tensor g = ok(OpKind::kGather, {flat, ok(OpKind::kCast, {ok(OpKind::kFill, {}, {{"shape", Shape{batch, 1}}})}, {{"dtype", DType::kInt32}})},
                  {{"dim", int64_t{-1}}});
    Tensor cp = ok(OpKind::kCopy, {fl});
    Tensor cs = ok(OpKind::kCumsum, {ids}, {{"dim", int64_t{-1}}});
    Tensor pw = ok(OpKind::kPointwise, {ar, fill},
                   {{"code", std::string("binary.add unary.relu")}, {"operands", v({0, 1, -1, 2, -1, -1})},
                    {"params", std::vector<double>{0, 0, 0, 0}}, {"outputs", v({3})}});
    for (Tensor t : {idx, g, cp, cat, pw, cs}) ASSERT_TRUE(net.markOutput(t, info(t).name).ok());
  }
};

TEST_F(EveryOp, UsesEveryKindAndVerifies) {
  build();
  std::set<OpKind> kinds;
  for (const Op& op : net.ops()) kinds.insert(op.kind);
  EXPECT_EQ(kinds.size(), static_cast<size_t>(OpKind::kNumOps));
  Status s = net.verify();
  EXPECT_TRUE(s.ok()) << s.toString() << "\n" << net.toString();
}

TEST_F(EveryOp, NormalizationIsAFixedPoint) {
  build();
  for (const Op& op : net.ops()) {
    std::vector<const TensorInfo*> inputs;
    for (Tensor t : op.inputs) inputs.push_back(&net.tensor(t));
    Attrs again = op.attrs;
    std::vector<InferContext::Out> outs;
    Status s = infer_op(op, inputs, again, net.symbols(), outs);
    ASSERT_TRUE(s.ok()) << s.toString();
    EXPECT_TRUE(again == op.attrs) << op.name << ": " << op.attrs.str() << " became "
                                   << again.str();
    ASSERT_EQ(outs.size(), op.outputs.size());
    for (size_t i = 0; i < outs.size(); ++i) {
      EXPECT_TRUE(shapes_equal(outs[i].shape, net.tensor(op.outputs[i]).shape)) << op.name;
    }
  }
}

TEST_F(EveryOp, ReAddingOpsWithStoredAttributesRebuildsTheSameNetwork) {
  build();
  Network copy("copy");
  for (const SymbolInfo& s : net.symbols()) ASSERT_TRUE(copy.addSymbol(s.name, s.min, s.opt, s.max).ok());
  std::vector<Tensor> map(net.tensors().size());
  for (size_t i = 0; i < net.tensors().size(); ++i) {
    const TensorInfo& t = net.tensors()[i];
    if (t.is_input) map[i] = copy.addInput(t.name, t.dtype, t.shape).value();
  }
  for (const Op& op : net.ops()) {
    std::vector<Tensor> ins;
    for (Tensor t : op.inputs) ins.push_back(map[static_cast<size_t>(t.id)]);
    auto outs = copy.addOp(op.kind, ins, op.attrs, op.name);
    ASSERT_TRUE(outs.ok()) << outs.status().toString();
    for (size_t i = 0; i < outs->size(); ++i) {
      map[static_cast<size_t>(op.outputs[i].id)] = (*outs)[i];
      EXPECT_TRUE(shapes_equal(copy.tensor((*outs)[i]).shape, net.tensor(op.outputs[i]).shape));
    }
    EXPECT_TRUE(copy.ops().back().attrs == op.attrs) << op.name;
  }
}

}  // namespace
}  // namespace kiln
