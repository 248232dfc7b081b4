#include "builder/tactics.h"

#include "backends/cpu/cpu_kernels.h"

namespace kiln::builder {
namespace {

class CpuTacticProvider final : public TacticProvider {
 public:
  Result<std::vector<TacticCandidate>> candidates(const Network& network, const Op& op) override {
    std::vector<DType> dtypes;
    for (Tensor t : op.inputs) dtypes.push_back(network.tensor(t).dtype);
    std::vector<TacticCandidate> out;
    std::string reasons;
    for (const cpu::CpuKernel& k : cpu::kernels_for(op.kind)) {
      Status s = k.supports ? k.supports(op, dtypes) : Status::Ok();
      if (s.ok()) {
        out.push_back({k.tactic, {}});
      } else {
        reasons += (reasons.empty() ? "" : "; ") + s.message();
      }
    }
    if (out.empty()) {
      return unsupported(op_kind_name(op.kind), " '", op.name, "': no CPU kernel supports it",
                         reasons.empty() ? std::string() : " (" + reasons + ")");
    }
    return out;
  }
};

}  // namespace

std::unique_ptr<TacticProvider> make_cpu_tactic_provider() {
  return std::make_unique<CpuTacticProvider>();
}

Result<std::vector<TacticCandidate>> select_tactics(const Network& network, TacticProvider& provider,
                                                    const BuilderConfig& config) {
  std::vector<TacticCandidate> chosen;
  const auto& ops = network.ops();
  for (size_t i = 0; i < ops.size(); ++i) {
    KILN_ASSIGN_OR_RETURN(std::vector<TacticCandidate> cands, provider.candidates(network, ops[i]));
    size_t best = 0;
    if (config.optimization_level > 0 && cands.size() > 1) {
      double best_ms = -1;
      for (size_t c = 0; c < cands.size(); ++c) {
        auto ms = provider.time(network, ops[i], cands[c]);
        if (ms.ok() && (best_ms < 0 || *ms < best_ms)) {
          best_ms = *ms;
          best = c;
        }
      }
    }
    chosen.push_back(std::move(cands[best]));
    if (config.progress) config.progress({"tactics", static_cast<int64_t>(i + 1), static_cast<int64_t>(ops.size())});
  }
  return chosen;
}

}  // namespace kiln::builder
