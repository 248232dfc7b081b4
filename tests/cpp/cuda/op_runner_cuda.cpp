// The CUDA test target's op-suite backend: device copies of the host tensors, the registered
// CUDA kernel (or a named tactic), the outputs copied back, then the device error word
// (CudaOpRunner in cuda_test_util.h). The shared op-suite sources under tests/cpp/backends are
// compiled into this target too (tests/cpp/CMakeLists.txt).

#include "cuda/cuda_test_util.h"

#include "backends/op_runner.h"

namespace kiln::test {
namespace {

class CudaSuiteRunner final : public OpRunner {
 public:
  Backend backend() const override { return Backend::kCuda; }
  bool available() const override { return cuda_available(); }
  Status run(OpKind kind, const Attrs& attrs, std::vector<const TestTensor*> inputs,
             std::vector<TestTensor*> outputs, const RunOptions& options) override {
    return gpu().run(kind, attrs, std::move(inputs), std::move(outputs), options.bindings,
                     options.op_name, options.tactic_data, options.tactic);
  }
  Result<std::vector<TacticChoice>> tactics(OpKind kind, const Attrs& attrs,
                                            std::vector<const TestTensor*> inputs,
                                            std::vector<TestTensor*> outputs) override {
    Op op;
    op.kind = kind;
    op.name = "test";
    op.attrs = attrs;
    // Host views: the candidates depend on shapes, dtypes and strides only.
    std::vector<TensorView> ins, outs;
    for (const TestTensor* t : inputs) ins.push_back(t->view);
    for (TestTensor* t : outputs) outs.push_back(t->view);
    auto cands = cuda::tactic_candidates(gpu().state(), op, ins, outs, {}, size_t{64} << 20, 8);
    if (!cands.ok()) return cands.status();
    std::vector<TacticChoice> out;
    for (cuda::TacticCandidate& c : *cands)
      out.push_back({std::move(c.tactic), std::move(c.data), std::move(c.label)});
    return out;
  }
};

}  // namespace

std::vector<Backend> suite_backends() { return {Backend::kCuda}; }

OpRunner& runner_for(Backend backend) {
  // Never destroyed, like gpu(): library handles must not outlive the CUDA runtime at exit.
  static CudaSuiteRunner* cuda = new CudaSuiteRunner;
  EXPECT_EQ(backend, Backend::kCuda) << "the CUDA test target runs the CUDA backend only";
  return *cuda;
}

}  // namespace kiln::test
