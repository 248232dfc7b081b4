#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "kiln/export.h"
#include "kiln/network.h"
#include "kiln/status.h"

namespace kiln {

// A serialized engine.
using HostMemory = std::vector<std::byte>;

// min/opt/max per input symbol, by name. Symbols a profile does not name keep the range they
// were declared with.
struct OptimizationProfile {
  struct Range {
    std::string symbol;
    int64_t min = 1;
    int64_t opt = 1;
    int64_t max = 1;
  };
  std::vector<Range> ranges;
};

struct BuildProgress {
  std::string stage;  // "constant folding", "tactics", "memory planning", ...
  int64_t done = 0;
  int64_t total = 0;
};

struct BuilderConfig {
  std::string device = "cpu";  // "cpu" or "cuda:N"
  std::vector<OptimizationProfile> profiles;  // at most one for now
  // 0: the first working kernel. 1: time the first 8 candidates of each kernel (a library's
  // heuristic lists its best first), and the few a backend marks to be timed always (cuBLASLt's
  // tile variants of large GEMMs). 2 and up: time every candidate, with up to 32 algorithms
  // from each library (cuBLASLt, cuDNN): slower builds.
  int optimization_level = 1;
  size_t workspace_limit = size_t{1} << 30;
  std::string timing_cache_path;  // empty: no cache file
  bool cuda_graphs = true;
  std::function<void(const BuildProgress&)> progress;  // called per stage step; may be empty
};

// What the builder did, for logs and `kiln inspect`.
struct BuildReport {
  std::vector<std::string> pass_log;  // "constant folding: folded 12 ops", ...
  int64_t tactic_timings = 0;     // candidates timed on the device in this build
  int64_t timing_cache_hits = 0;  // candidate timings taken from the timing cache instead
};

class KILN_API Builder {
 public:
  // Verifies the network, runs the passes, picks a tactic per op, plans memory and serializes.
  // Errors name the op or tensor at fault.
  static Result<HostMemory> build(const Network& network, const BuilderConfig& config,
                                  BuildReport* report = nullptr);
};

}  // namespace kiln
