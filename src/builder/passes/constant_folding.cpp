#include <algorithm>

#include "builder/cpu_eval.h"
#include "builder/passes/passes.h"
#include "builder/rewrite.h"

namespace kiln::builder {
namespace {

constexpr int64_t kFoldGrowthLimit = int64_t{1} << 20;

bool attrs_constant(const Attrs& attrs) {
  for (const auto& [name, value] : attrs.values()) {
    if (auto* e = std::get_if<SymExpr>(&value); e && !e->isConstant()) return false;
    if (auto* s = std::get_if<Shape>(&value)) {
      for (const SymExpr& d : *s)
        if (!d.isConstant()) return false;
    }
  }
  return true;
}

int64_t info_bytes(const TensorInfo& info) {
  auto dims = constant_dims(info.shape, info.name);
  if (!dims.ok()) return -1;
  int64_t n = static_cast<int64_t>(dtype_size(info.dtype));
  for (int64_t d : *dims) n *= d;
  return n;
}

}  // namespace

Result<Network> fold_constants(const Network& network, std::vector<std::string>& log) {
  Rewriter rw(network);
  int folded = 0;
  for (const Op& op : network.ops()) {
    KILN_ASSIGN_OR_RETURN(std::vector<Tensor> mapped, rw.mapAll(op.inputs));
    std::vector<const TensorInfo*> ins;
    bool foldable = attrs_constant(op.attrs);
    int64_t in_bytes = 0;
    for (Tensor t : mapped) {
      const TensorInfo& info = rw.target().tensor(t);
      foldable = foldable && info.isConstant();
      in_bytes += static_cast<int64_t>(info.isConstant() ? info.constant->size() : 0);
      ins.push_back(&info);
    }
    std::vector<const TensorInfo*> outs;
    int64_t out_bytes = 0;
    for (Tensor t : op.outputs) {
      const TensorInfo& info = network.tensor(t);
      int64_t b = info_bytes(info);
      foldable = foldable && b >= 0;
      out_bytes += b;
      outs.push_back(&info);
    }
    if (foldable && out_bytes > std::max(kFoldGrowthLimit, in_bytes)) foldable = false;
    if (!foldable) {
      KILN_RETURN_IF_ERROR(rw.keep(op));
      continue;
    }
    auto values = evaluate_constant_op(op, ins, outs);
    if (!values.ok()) {
      // No CPU kernel for this case: leave the op for the backend, which may have one.
      KILN_RETURN_IF_ERROR(rw.keep(op));
      continue;
    }
    for (size_t i = 0; i < op.outputs.size(); ++i) {
      const TensorInfo& info = *outs[i];
      KILN_ASSIGN_OR_RETURN(std::vector<int64_t> dims, constant_dims(info.shape, info.name));
      KILN_ASSIGN_OR_RETURN(Tensor c, rw.target().addConstant(info.name, info.dtype, dims, (*values)[i]));
      rw.setMapping(op.outputs[i], c);
    }
    ++folded;
  }
  log.push_back(str("constant folding: folded ", folded, " ops"));
  return rw.finish();
}

}  // namespace kiln::builder
