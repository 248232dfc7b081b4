// The CPU kernel registry: lookups by kind and tactic, and kernels refusing malformed calls.

#include <gtest/gtest.h>

#include <thread>

#include "backends/test_util.h"

namespace kiln {
namespace {

TEST(CpuRegistry, EveryOpOfPartAFamiliesHasAKernel) {
  for (OpKind kind :
       {OpKind::kUnary,     OpKind::kBinary,    OpKind::kWhere,       OpKind::kCast,
        OpKind::kClamp,     OpKind::kReduce,    OpKind::kSoftmax,     OpKind::kLogSoftmax,
        OpKind::kBatchNorm, OpKind::kLayerNorm, OpKind::kGroupNorm,   OpKind::kRmsNorm,
        OpKind::kEmbedding, OpKind::kGather,    OpKind::kIndexSelect, OpKind::kReshape,
        OpKind::kPermute,   OpKind::kExpand,    OpKind::kSlice,       OpKind::kSelect,
        OpKind::kConcat,    OpKind::kSplit,     OpKind::kSqueeze,     OpKind::kUnsqueeze,
        OpKind::kPad,       OpKind::kFlip,      OpKind::kArange,      OpKind::kFill,
        OpKind::kCopy,      OpKind::kCumsum}) {
    auto kernels = cpu::kernels_for(kind);
    ASSERT_FALSE(kernels.empty()) << op_kind_name(kind);
    EXPECT_EQ(kernels[0].kind, kind);
    EXPECT_EQ(cpu::find_kernel(kind, kernels[0].tactic), &kernels[0]) << op_kind_name(kind);
  }
}

TEST(CpuRegistry, UnknownTacticOrKindFindsNothing) {
  EXPECT_EQ(cpu::find_kernel(OpKind::kUnary, "cpu.no_such_tactic"), nullptr);
  EXPECT_TRUE(cpu::kernels_for(OpKind::kNumOps).empty());
}

TEST(CpuRegistry, ConcurrentFirstLookupsSeeOneTable) {
  std::vector<const cpu::CpuKernel*> seen(8);
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i)
    threads.emplace_back([&, i] { seen[i] = cpu::kernels_for(OpKind::kReduce).data(); });
  for (auto& t : threads) t.join();
  for (auto* p : seen) EXPECT_EQ(p, seen[0]);
}

TEST(CpuRegistry, WrongArgumentCountIsAnErrorNotACrash) {
  auto x = test::make_tensor(DType::kFloat32, {2}, {1, 2});
  auto y = test::make_output(DType::kFloat32, {2});
  const cpu::CpuKernel* k = cpu::find_kernel(OpKind::kBinary, "cpu.binary");
  ASSERT_NE(k, nullptr);
  Attrs attrs{{"fn", std::string("add")}};
  std::vector<TensorView> ins = {x.view}, outs = {y.view};
  KernelArgs args{"binary 'b'", attrs, ins, outs, {}};
  Status s = k->run(args);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("binary 'b'"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace kiln
