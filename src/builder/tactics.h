#pragma once

#include <memory>
#include <string>
#include <vector>

#include "format/engine_plan.h"
#include "kiln/builder.h"
#include "kiln/network.h"

namespace kiln::builder {

struct TacticCandidate {
  std::string name;           // "cpu.conv.im2col_gemm"
  std::vector<uint8_t> data;  // opaque backend data stored in the engine
};

// A backend's offer of implementations for each op. The CPU offers one per op; the CUDA backend
// offers several (cuBLASLt algorithms, cuDNN engines, Kiln kernel variants) and times them.
class TacticProvider {
 public:
  virtual ~TacticProvider() = default;
  // Candidates for `op`, best guess first; empty with a reason when the backend cannot run it.
  virtual Result<std::vector<TacticCandidate>> candidates(const Network& network, const Op& op) = 0;
  // Median time of one candidate at the profile's opt shapes, in ms. Backends that cannot
  // time return kUnsupported and the first candidate wins.
  virtual Result<double> time(const Network& network, const Op& op, const TacticCandidate& tactic) {
    return unsupported("timing");
  }
};

std::unique_ptr<TacticProvider> make_cpu_tactic_provider();
#ifdef KILN_HAS_CUDA
// cuda_tactics.cpp: candidates from the CUDA backend, for target "cuda:N".
Result<std::unique_ptr<TacticProvider>> make_cuda_tactic_provider(int device, size_t workspace_limit);
Result<format::Target> cuda_build_target(int device);
#endif

// One tactic per op: the first candidate at optimization level 0, the fastest timed one above.
Result<std::vector<TacticCandidate>> select_tactics(const Network& network, TacticProvider& provider,
                                                    const BuilderConfig& config);

}  // namespace kiln::builder
