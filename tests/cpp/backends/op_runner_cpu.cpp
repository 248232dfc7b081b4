// The CPU test target's op-suite backend: the registered CPU kernels, run on the host tensors.

#include "backends/op_runner.h"

namespace kiln::test {
namespace {

std::vector<TensorView> views(const std::vector<const TestTensor*>& ts) {
  std::vector<TensorView> v;
  for (const TestTensor* t : ts) v.push_back(t->view);
  return v;
}
std::vector<TensorView> views(const std::vector<TestTensor*>& ts) {
  std::vector<TensorView> v;
  for (TestTensor* t : ts) v.push_back(t->view);
  return v;
}

class CpuOpRunner final : public OpRunner {
 public:
  Backend backend() const override { return Backend::kCpu; }
  bool available() const override { return true; }
  Status run(OpKind kind, const Attrs& attrs, std::vector<const TestTensor*> inputs,
             std::vector<TestTensor*> outputs, const RunOptions& options) override {
    return run_op(kind, attrs, views(inputs), views(outputs), options.bindings, options.tactic,
                  options.op_name);
  }
  Result<std::vector<TacticChoice>> tactics(OpKind kind, const Attrs& attrs,
                                            std::vector<const TestTensor*> inputs,
                                            std::vector<TestTensor*>) override {
    Op op;
    op.kind = kind;
    op.name = "test";
    op.attrs = attrs;
    std::vector<DType> dtypes;
    for (const TestTensor* t : inputs) dtypes.push_back(t->view.dtype);
    std::vector<TacticChoice> out;
    for (const cpu::CpuKernel& k : cpu::kernels_for(kind))
      if (!k.supports || k.supports(op, dtypes).ok()) out.push_back({k.tactic, {}, k.tactic});
    return out;
  }
};

}  // namespace

std::vector<Backend> suite_backends() { return {Backend::kCpu}; }

OpRunner& runner_for(Backend backend) {
  static CpuOpRunner cpu;
  EXPECT_EQ(backend, Backend::kCpu) << "the CPU test target runs the CPU backend only";
  return cpu;
}

}  // namespace kiln::test
