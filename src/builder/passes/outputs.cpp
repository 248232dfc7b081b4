#include <set>

#include "builder/passes/passes.h"
#include "builder/rewrite.h"
#include "ir/op_def.h"

namespace kiln::builder {

Result<Network> isolate_outputs(const Network& network, std::vector<std::string>& log) {
  Rewriter rw(network);
  for (const Op& op : network.ops()) KILN_RETURN_IF_ERROR(rw.keep(op));
  Network& out = rw.target();
  // Outputs are marked here rather than by finish(), so that each can get its copy.
  std::set<int32_t> claimed;
  int copies = 0;
  for (const Network::Output& o : network.outputs()) {
    const TensorInfo& info = network.tensor(o.tensor);
    bool is_view = info.producer >= 0 &&
                   op_def(network.ops()[static_cast<size_t>(info.producer)].kind).view != nullptr;
    bool needs_copy = info.is_input || info.isConstant() || is_view || claimed.count(o.tensor.id);
    claimed.insert(o.tensor.id);
    KILN_ASSIGN_OR_RETURN(Tensor t, rw.map(o.tensor));
    if (needs_copy) {
      KILN_ASSIGN_OR_RETURN(t, out.add(OpKind::kCopy, {t}, {}, o.name + ".copy"));
      ++copies;
    }
    KILN_RETURN_IF_ERROR(out.markOutput(t, o.name));
  }
  log.push_back(str("outputs: inserted ", copies, " copies so every output has its own buffer"));
  return std::move(out);
}

}  // namespace kiln::builder
