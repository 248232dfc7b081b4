#include "builder/passes/passes.h"
#include "builder/rewrite.h"

namespace kiln::builder {

Result<Network> eliminate_dead_code(const Network& network, std::vector<std::string>& log) {
  const auto& ops = network.ops();
  std::vector<bool> live_tensor(network.tensors().size(), false);
  for (const Network::Output& out : network.outputs()) live_tensor[out.tensor.id] = true;
  std::vector<bool> live_op(ops.size(), false);
  for (size_t i = ops.size(); i-- > 0;) {
    for (Tensor t : ops[i].outputs) live_op[i] = live_op[i] || live_tensor[t.id];
    if (!live_op[i]) continue;
    for (Tensor t : ops[i].inputs) live_tensor[t.id] = true;
  }
  Rewriter rw(network);
  int removed = 0;
  for (size_t i = 0; i < ops.size(); ++i) {
    if (!live_op[i]) {
      ++removed;
      continue;
    }
    KILN_RETURN_IF_ERROR(rw.keep(ops[i]));
  }
  log.push_back(str("dead code: removed ", removed, " ops"));
  return rw.finish();
}

}  // namespace kiln::builder
