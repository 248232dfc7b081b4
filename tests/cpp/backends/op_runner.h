#pragma once

// One op suite for every backend. A test source written against this header is compiled into
// the CPU test target (instantiated with the CPU backend) and into the gpu-labelled CUDA test
// target (instantiated with the CUDA backend): the same cases, the same double-precision
// references, the same per-dtype tolerances (tolerance / magnitude_tolerance in test_util.h).
//
//   KILN_OP_SUITE(Pool);
//   TEST_P(Pool, MaxPoolMatchesReference) {
//     TestTensor x = make_tensor(DType::kFloat16, {1, 1, 4}, {1, 2, 3, 4});
//     TestTensor y = make_output(DType::kFloat16, {1, 1, 2});
//     ASSERT_OK(run_kernel(OpKind::kPool, attrs, {&x}, {&y}));
//     EXPECT_TRUE(expect_close(y.view, {2, 4}));
//   }
//
// Inputs are host TestTensors (data, dtype, shape, strides); the runner of the current backend
// runs the first registered kernel of the op (or a named tactic) on them and writes the results
// back into the host output tensors. Each test target defines suite_backends() and
// runner_for() once: tests/cpp/backends/op_runner_cpu.cpp, tests/cpp/cuda/op_runner_cuda.cpp.

#include <gtest/gtest.h>

#include <cstdint>
#include <ostream>
#include <span>
#include <string>
#include <vector>

#include "backends/test_util.h"

namespace kiln::test {

enum class Backend { kCpu, kCuda };

inline const char* backend_name(Backend b) { return b == Backend::kCpu ? "cpu" : "cuda"; }
// gtest prints the parameter by name (ADL).
inline void PrintTo(Backend b, std::ostream* os) { *os << backend_name(b); }

// What a run may carry besides the op: symbol bindings, KernelArgs::op_name, a tactic by name
// and its tactic data (CUDA tactics from tactic_candidates).
struct RunOptions {
  std::vector<int64_t> bindings = {};
  const char* op_name = nullptr;
  const char* tactic = nullptr;
  std::span<const uint8_t> tactic_data = {};
};

// A kernel implementation a backend offers for one op: its tactic name and data.
struct TacticChoice {
  std::string tactic;
  std::vector<uint8_t> data;
  std::string label;
};

class OpRunner {
 public:
  virtual ~OpRunner() = default;
  virtual Backend backend() const = 0;
  // False when the backend cannot run here (no CUDA device): its tests skip.
  virtual bool available() const = 0;
  // Runs the op after the kernel's `supports`; returns supports', run's or (CUDA) the device
  // error word's Status. Outputs are written back into the host tensors in every case.
  virtual Status run(OpKind kind, const Attrs& attrs, std::vector<const TestTensor*> inputs,
                     std::vector<TestTensor*> outputs, const RunOptions& options) = 0;
  // Every tactic the backend would try for this op on these tensors.
  virtual Result<std::vector<TacticChoice>> tactics(OpKind kind, const Attrs& attrs,
                                                    std::vector<const TestTensor*> inputs,
                                                    std::vector<TestTensor*> outputs) = 0;
};

// Defined once per test target.
std::vector<Backend> suite_backends();
OpRunner& runner_for(Backend backend);

namespace detail {
inline OpRunner*& current_runner() {
  static OpRunner* r = nullptr;
  return r;
}
}  // namespace detail

// The runner of the test now running (set by OpSuite::SetUp).
inline OpRunner& op_runner() {
  OpRunner* r = detail::current_runner();
  EXPECT_NE(r, nullptr) << "op_runner() outside an OpSuite test";
  return r ? *r : runner_for(suite_backends().front());
}
inline Backend current_backend() { return op_runner().backend(); }

inline Status run_kernel(OpKind kind, const Attrs& attrs, std::vector<const TestTensor*> inputs,
                         std::vector<TestTensor*> outputs, const RunOptions& options = {}) {
  return op_runner().run(kind, attrs, std::move(inputs), std::move(outputs), options);
}

#ifndef ASSERT_OK
#define ASSERT_OK(expr)                              \
  do {                                               \
    ::kiln::Status kiln_s_ = (expr);                 \
    ASSERT_TRUE(kiln_s_.ok()) << kiln_s_.toString(); \
  } while (0)
#endif

// The fixture of every op-suite test: the parameter is the backend.
class OpSuite : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    OpRunner& r = runner_for(GetParam());
    if (!r.available()) GTEST_SKIP() << "no " << backend_name(GetParam()) << " device";
    detail::current_runner() = &r;
  }
  void TearDown() override { detail::current_runner() = nullptr; }
};

inline std::string backend_param_name(const ::testing::TestParamInfo<Backend>& info) {
  return backend_name(info.param);
}

}  // namespace kiln::test

// Declares op-suite fixture `Suite` and instantiates it over this target's backends: test names
// read Op/Suite.Case/cpu and Op/Suite.Case/cuda.
#define KILN_OP_SUITE(Suite)                                                       \
  class Suite : public ::kiln::test::OpSuite {};                                   \
  INSTANTIATE_TEST_SUITE_P(Op, Suite,                                              \
                           ::testing::ValuesIn(::kiln::test::suite_backends()),    \
                           ::kiln::test::backend_param_name)
