#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "backends/common/tensor_view.h"
#include "format/engine_plan.h"
#include "kiln/builder.h"
#include "kiln/network.h"

namespace kiln::builder {

struct TacticCandidate {
  std::string name;           // "cpu.conv.im2col_gemm"
  std::vector<uint8_t> data;  // opaque backend data stored in the engine
  std::string label;          // what the data means, for people ("tile 128x256, 4 stages"); may be empty
  // Selection compares timed ms * handicap (the timing cache keeps the ms): above 1 for a
  // candidate with a cost its timing does not see, so it must win by that factor.
  double handicap = 1.0;
  // Timed at level 1 beyond the first kLevelOneCandidates of its kernel: candidates a backend
  // adds past the library's own list, few and only where they pay (cuBLASLt's tile variants).
  bool always_timed = false;
};

// One op's tensors at the profile's opt shapes, strided as the runtime will hand them to the
// kernel (views alias their input: a permuted input arrives transposed, not copied). Data
// pointers are null; `input_offsets` are the views' element offsets into their root buffers (a
// timing buffer for input i holds input_offsets[i] + inputs[i].extent() elements).
struct OpShapes {
  std::vector<TensorView> inputs;
  std::vector<TensorView> outputs;
  std::vector<int64_t> input_offsets;
  std::vector<int64_t> bindings;  // symbol values at opt
};

// OpShapes for every op of `network` (index = op index), computed from the plan's view
// decisions (plan.cpp) and the view ops' layout functions, as the execution context does.
Result<std::vector<OpShapes>> opt_op_shapes(const Network& network);

// The inputs of `op` that tactic timing reads back into L2 after each flush, as the op before it
// in a model has just written them: the non-constant ones, in order, as (input index, bytes of
// its timing buffer from the start), each cut to what is left of `l2_bytes` (none once it is
// spent). Constants (weights) stay cold, as a model's weights stream from device memory, unless
// `weights_too` and `op` streams weights (streams_weights): an engine that prefetches its
// weights into L2 (backends/common/l2_prefetch_rule.h) finds them there. They come after the
// activations, in the budget left.
std::vector<std::pair<size_t, size_t>> warm_input_bytes(const Network& network, const Op& op,
                                                        const OpShapes& shapes, size_t l2_bytes,
                                                        bool weights_too = false);

// What the runtime's L2 prefetch rule (backends/common/l2_prefetch_rule.h) judges an engine by,
// at the opt shapes: the bytes of constants its weight-streaming ops (streams_weights) read, the
// bytes of their other operands and outputs, and how many such ops read constants.
struct WeightTraffic {
  size_t weight_bytes = 0, activation_bytes = 0, steps = 0;
};
WeightTraffic weight_traffic(const Network& network, const std::vector<OpShapes>& shapes);

// A backend's offer of implementations for each op. The CPU offers one per op; the CUDA backend
// offers several (cuBLASLt algorithms, cuDNN engines, Kiln kernel variants) and times them.
class TacticProvider {
 public:
  virtual ~TacticProvider() = default;
  // Candidates for `op`, best guess first; empty with a reason when the backend cannot run it.
  virtual Result<std::vector<TacticCandidate>> candidates(const Network& network, const Op& op,
                                                          const OpShapes& shapes) = 0;
  // Whether time() works; when it does not, the first candidate always wins.
  virtual bool can_time() const { return false; }
  // Median time of one candidate at `shapes`, in ms. An error drops the candidate.
  virtual Result<double> time(const Network& network, const Op& op, const OpShapes& shapes,
                              const TacticCandidate& tactic) {
    return unsupported("timing");
  }
  // How time() measures and with which libraries, when that changes its figures (part of the
  // timing cache's key). Asked after plan_network.
  virtual std::string timing_method() const { return {}; }
  // Called once per selection, before any candidate is timed, with every op's shapes: a provider
  // whose timing depends on the whole engine decides here (the CUDA one: whether the engine will
  // prefetch its weights into L2, so its GEMMs are timed with them there).
  virtual void plan_network(const Network& network, const std::vector<OpShapes>& shapes) {
    (void)network;
    (void)shapes;
  }
};

std::unique_ptr<TacticProvider> make_cpu_tactic_provider();

// Level 1 times the first kLevelOneCandidates candidates of each registered kernel, which is as
// many as it asks each library (cuBLASLt's heuristic, cuDNN) for, and those marked always_timed;
// levels 2 and up ask for up to 32 and time them all.
inline constexpr int kLevelOneCandidates = 8;
inline int library_candidates(int optimization_level) {
  return optimization_level >= 2 ? 32 : kLevelOneCandidates;
}

// 16 hex digits that change whenever a kernel source (src/backends) changes: timing cache keys
// carry it, so a rebuilt Kiln does not choose by timings its earlier kernels recorded.
const char* kernels_id();
#ifdef KILN_HAS_CUDA
// cuda_tactics.cpp: candidates from the CUDA backend, for target "cuda:N": up to
// `max_candidates` of each library's algorithms (cuBLASLt's heuristic, cuDNN's engines).
Result<std::unique_ptr<TacticProvider>> make_cuda_tactic_provider(int device, size_t workspace_limit,
                                                                  int max_candidates);
Result<format::Target> cuda_build_target(int device);
#endif

struct TacticSelection {
  std::vector<TacticCandidate> tactics;  // one per op
  int64_t timings = 0;     // TacticProvider::time calls made
  int64_t cache_hits = 0;  // candidate timings read from the timing cache instead
};

// One tactic per op: the first candidate at optimization level 0; above, for ops with more than
// one candidate, the fastest by time() (level 1: the first 8 candidates of each registered
// kernel; level 2+: all). Timings are read from and added to config.timing_cache_path under
// keys made of `device_key` (device name and SM) and the provider's timing method (after
// plan_network: how it times and with which libraries),
// the Kiln version and its kernels' revision (kernels_id), the op's signature (kind,
// attrs, shapes, dtypes, strides) and the candidate (name, hash of its data, and its label, so
// the cache file reads as a table of what was timed). A timing-cache problem is a line in
// `log`, never an error.
Result<TacticSelection> select_tactics(const Network& network, TacticProvider& provider,
                                       const BuilderConfig& config, const std::string& device_key,
                                       std::vector<std::string>& log);

}  // namespace kiln::builder
