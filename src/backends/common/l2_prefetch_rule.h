#pragma once

// When a CUDA graph gets its L2 weight-prefetch branch (the runtime's plan:
// runtime/l2_prefetch.h), as a rule both the runtime and the builder apply: the runtime when it
// captures a graph, the builder to time a prefetching engine's GEMMs with their weights in L2
// (builder/cuda_tactics.cpp), as that engine will run them.

#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <string>

#include "kiln/network.h"
#include "kiln/status.h"

namespace kiln {

// The ops whose constant operands are weights a GEMM streams (a linear's weight and bias, a
// convolution's filter): the ones the branch prefetches for.
inline bool streams_weights(OpKind kind) {
  return kind == OpKind::kLinear || kind == OpKind::kMatmul || kind == OpKind::kConv;
}

struct L2PrefetchOptions {
  enum class Mode { kAuto, kOff, kOn } mode = Mode::kAuto;
  // The device's L2 (auto: weights that fit in half of it stay cached); 0 where prefetching is
  // not decided automatically (before sm_90, whose bulk prefetch it uses).
  size_t l2_bytes = 0;
  int steps_per_node = 2;  // weighted steps whose weights one launch prefetches
  // Auto: on when the weighted steps read at least this many weight bytes per activation byte.
  // H100, Kiln alone at batch 1, with against without (session 24, device runs 3-5): GPT-2 (4.0)
  // 0.456-0.460 against 0.461-0.468 ms; BERT (3.6) 0.553 against 0.588; ViT-B/16 (2.8) 0.538
  // against 0.516, a loss; the probe's 4096 tokens (0.13) lost too.
  double min_weight_ratio = 3.2;
};

// KILN_L2_PREFETCH: "0" off, "1" on, unset or anything else: auto. KILN_L2_PREFETCH_STEPS=n:
// weighted steps per launch (A/B timing).
inline L2PrefetchOptions l2_prefetch_options_from_environment(size_t l2_bytes) {
  L2PrefetchOptions o;
  o.l2_bytes = l2_bytes;
  if (const char* v = std::getenv("KILN_L2_PREFETCH"); v && v[0] && !v[1]) {
    if (v[0] == '0') o.mode = L2PrefetchOptions::Mode::kOff;
    if (v[0] == '1') o.mode = L2PrefetchOptions::Mode::kOn;
  }
  if (const char* v = std::getenv("KILN_L2_PREFETCH_STEPS"))
    o.steps_per_node = std::max(1, std::atoi(v));
  return o;
}

// "170 MB of weights, 42.5 MB of activations in 48 steps": what the decision was made on.
inline std::string l2_prefetch_figures(size_t weight_bytes, size_t activation_bytes, size_t steps) {
  return str(static_cast<double>(weight_bytes) / 1e6, " MB of weights, ",
             static_cast<double>(activation_bytes) / 1e6, " MB of activations in ", steps,
             " steps");
}

// Empty when `steps` weighted steps reading `weight_bytes` of weights and `activation_bytes` of
// other operands and outputs get the branch; otherwise why not ("off: ...").
inline std::string l2_prefetch_off_reason(size_t weight_bytes, size_t activation_bytes,
                                          size_t steps, const L2PrefetchOptions& options) {
  const std::string figures = l2_prefetch_figures(weight_bytes, activation_bytes, steps);
  using Mode = L2PrefetchOptions::Mode;
  if (options.mode == Mode::kOff) return "off (KILN_L2_PREFETCH=0)";
  if (steps < 2) return str("off: ", figures, " (nothing ahead to prefetch)");
  if (options.mode == Mode::kOn) return {};
  if (options.l2_bytes == 0) return "off: automatic only on sm_90 and later";
  if (weight_bytes * 2 <= options.l2_bytes)
    return str("off: ", figures, "; the weights fit in half of L2 (",
               static_cast<double>(options.l2_bytes) / 1e6, " MB)");
  const double ratio = static_cast<double>(weight_bytes) /
                       static_cast<double>(std::max<size_t>(activation_bytes, 1));
  if (ratio < options.min_weight_ratio)
    return str("off: ", figures, "; activations dominate (", ratio, " weight bytes per byte, ",
               options.min_weight_ratio, " wanted)");
  return {};
}

}  // namespace kiln
