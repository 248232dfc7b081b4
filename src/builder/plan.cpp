#include "builder/plan.h"

#include <algorithm>

#include "ir/op_def.h"

namespace kiln::builder {
namespace {

using format::PlanTensor;
using format::TensorRole;

// Elementwise ops whose output may take over the buffer of an input that dies there: each
// output element is written after reading the same element of that input.
bool may_run_in_place(OpKind kind) {
  return kind == OpKind::kUnary || kind == OpKind::kBinary || kind == OpKind::kClamp ||
         kind == OpKind::kCast || kind == OpKind::kWhere || kind == OpKind::kPointwise;
}

// Whether a view op's output is laid out contiguously whenever its input is: then a reshape of
// it can alias too.
bool is_one(const SymExpr& e) { return e.isConstant() && e.constant() == 1; }

// Whether reshaping `in` to `out` only splits dims (a symbolic dim kept whole, a constant one
// split into constant factors) and inserts or drops size-1 dims: then it is a view of any strided
// input, for every shape of the profile (reshape_view always finds strides).
bool splits_only(const Shape& in, const Shape& out) {
  size_t j = 0;
  auto skip_ones = [&] {
    while (j < out.size() && is_one(out[j])) ++j;
  };
  for (const SymExpr& d : in) {
    if (is_one(d)) continue;
    skip_ones();
    if (j == out.size()) return false;
    if (out[j].equals(d)) {
      ++j;
      continue;
    }
    if (!d.isConstant() || d.constant() <= 0) return false;
    int64_t product = 1;
    while (j < out.size() && out[j].isConstant() && out[j].constant() > 0 && product < d.constant())
      product *= out[j++].constant();
    if (product != d.constant()) return false;
  }
  skip_ones();
  return j == out.size();
}

bool view_keeps_contiguity(const Op& op) {
  switch (op.kind) {
    case OpKind::kReshape:
    case OpKind::kSqueeze:
    case OpKind::kUnsqueeze:
      return true;
    case OpKind::kSlice:
      return op.attrs.getInt("dim", -1) == 0 && op.attrs.getInt("step", 1) == 1;
    case OpKind::kSelect:
    case OpKind::kSplit:
      return op.attrs.getInt("dim", -1) == 0;
    default:
      return false;
  }
}

}  // namespace

Result<format::EnginePlan> assemble_plan(const Network& network,
                                         const std::vector<TacticCandidate>& tactics,
                                         MemoryPlan* memory_plan_out) {
  const auto& tensors = network.tensors();
  const auto& ops = network.ops();
  if (tactics.size() != ops.size()) return internal_error("plan: ", tactics.size(), " tactics for ", ops.size(), " ops");
  format::EnginePlan plan;
  plan.name = network.name();
  plan.symbols = network.symbols();
  plan.tensors.resize(tensors.size());

  for (size_t i = 0; i < tensors.size(); ++i) {
    plan.tensors[i].name = tensors[i].name;
    plan.tensors[i].dtype = tensors[i].dtype;
    plan.tensors[i].shape = tensors[i].shape;
  }
  for (size_t b = 0; b < network.inputs().size(); ++b) {
    Tensor t = network.inputs()[b];
    plan.inputs.push_back({network.tensor(t).name, t.id});
    plan.tensors[static_cast<size_t>(t.id)].role = TensorRole::kInput;
    plan.tensors[static_cast<size_t>(t.id)].binding = static_cast<int32_t>(b);
  }
  for (size_t b = 0; b < network.outputs().size(); ++b) {
    const Network::Output& o = network.outputs()[b];
    plan.outputs.push_back({o.name, o.tensor.id});
    PlanTensor& pt = plan.tensors[static_cast<size_t>(o.tensor.id)];
    if (pt.role != TensorRole::kActivation || network.tensor(o.tensor).isConstant())
      return internal_error("plan: output '", o.name, "' is not a computed tensor of its own");
    pt.role = TensorRole::kOutput;
    pt.binding = static_cast<int32_t>(b);
  }
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (!tensors[i].isConstant()) continue;
    KILN_ASSIGN_OR_RETURN(std::vector<int64_t> dims, constant_dims(tensors[i].shape, tensors[i].name));
    plan.tensors[i].role = TensorRole::kConstant;
    plan.tensors[i].constant = static_cast<int32_t>(plan.constants.size());
    plan.constants.push_back({tensors[i].name, tensors[i].dtype, dims,
                              std::span<const std::byte>(*tensors[i].constant)});
  }

  // Views, decided statically: view ops alias their input, except a reshape of something that
  // may not be contiguous and that merges dims, which runs as a copy kernel (a reshape that only
  // splits dims is a view of any layout).
  std::vector<bool> contiguous(tensors.size(), true);
  std::vector<int32_t> root(tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) root[i] = static_cast<int32_t>(i);
  plan.steps.resize(ops.size());
  for (size_t s = 0; s < ops.size(); ++s) {
    const Op& op = ops[s];
    format::PlanStep& step = plan.steps[s];
    step.kind = op.kind;
    step.name = op.name;
    step.attrs = op.attrs;
    for (Tensor t : op.inputs) step.inputs.push_back(t.id);
    for (Tensor t : op.outputs) step.outputs.push_back(t.id);
    step.tactic = tactics[s].name;
    step.tactic_data = tactics[s].data;
    bool viewable = op_def(op.kind).view != nullptr &&
                    (op.kind != OpKind::kReshape || contiguous[static_cast<size_t>(op.inputs[0].id)] ||
                     splits_only(tensors[static_cast<size_t>(op.inputs[0].id)].shape,
                                 tensors[static_cast<size_t>(op.outputs[0].id)].shape));
    for (Tensor t : op.outputs)
      if (plan.tensors[static_cast<size_t>(t.id)].role == TensorRole::kOutput) viewable = false;
    if (!viewable) continue;
    step.is_view = true;
    step.tactic = "view";
    for (Tensor t : op.outputs) {
      PlanTensor& pt = plan.tensors[static_cast<size_t>(t.id)];
      pt.role = TensorRole::kView;
      pt.view_of = op.inputs[0].id;
      root[static_cast<size_t>(t.id)] = root[static_cast<size_t>(op.inputs[0].id)];
      contiguous[static_cast<size_t>(t.id)] =
          contiguous[static_cast<size_t>(op.inputs[0].id)] && view_keeps_contiguity(op);
    }
  }

  // Lifetimes of activation storage (a view's uses keep its root alive), then in-place reuse.
  std::vector<int32_t> first(tensors.size(), -1), last(tensors.size(), -1);
  for (size_t s = 0; s < ops.size(); ++s) {
    for (Tensor t : ops[s].outputs) {
      size_t r = static_cast<size_t>(root[static_cast<size_t>(t.id)]);
      if (first[r] < 0) first[r] = static_cast<int32_t>(s);
      last[r] = std::max(last[r], static_cast<int32_t>(s));
    }
    for (Tensor t : ops[s].inputs) {
      size_t r = static_cast<size_t>(root[static_cast<size_t>(t.id)]);
      last[r] = std::max(last[r], static_cast<int32_t>(s));
    }
  }
  // storage[t]: the activation whose buffer t is written into (itself unless in place).
  std::vector<int32_t> storage(tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) storage[i] = static_cast<int32_t>(i);
  for (size_t s = 0; s < ops.size(); ++s) {
    const Op& op = ops[s];
    if (!may_run_in_place(op.kind) || plan.steps[s].is_view) continue;
    size_t out = static_cast<size_t>(op.outputs[0].id);
    if (plan.tensors[out].role != TensorRole::kActivation) continue;
    const TensorInfo& out_info = tensors[out];
    size_t first_value = op.kind == OpKind::kWhere ? 1 : 0;  // where's cond is bool, never reused
    for (size_t k = first_value; k < op.inputs.size(); ++k) {
      size_t in = static_cast<size_t>(op.inputs[k].id);
      if (plan.tensors[in].role != TensorRole::kActivation || root[in] != static_cast<int32_t>(in)) continue;
      if (last[in] != static_cast<int32_t>(s)) continue;  // still needed later
      if (!shapes_equal(tensors[in].shape, out_info.shape) ||
          dtype_size(tensors[in].dtype) != dtype_size(out_info.dtype))
        continue;
      // add(x, x) or add(x, x^T): another operand reads the same buffer (itself or a view of it),
      // and could read elements this op has already overwritten.
      bool aliased = false;
      for (size_t j = 0; j < op.inputs.size(); ++j) {
        size_t other = static_cast<size_t>(root[static_cast<size_t>(op.inputs[j].id)]);
        aliased = aliased || (j != k && storage[other] == storage[in]);
      }
      if (aliased) continue;
      storage[out] = storage[in];
      break;
    }
  }

  // One buffer request per storage, sized at the max profile.
  std::vector<int64_t> lo, hi;
  for (const SymbolInfo& sym : network.symbols()) {
    lo.push_back(sym.min);
    hi.push_back(sym.max);
  }
  std::vector<BufferRequest> requests;
  std::vector<int32_t> request_of(tensors.size(), -1);
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (plan.tensors[i].role != TensorRole::kActivation || first[i] < 0) continue;
    KILN_ASSIGN_OR_RETURN(auto numel, shape_numel(tensors[i].shape).bounds(lo, hi));
    int64_t bytes = std::max<int64_t>(numel.second, 0) * static_cast<int64_t>(dtype_size(tensors[i].dtype));
    plan.tensors[i].max_bytes = bytes;
    size_t s = static_cast<size_t>(storage[i]);
    if (request_of[s] < 0) {
      request_of[s] = static_cast<int32_t>(requests.size());
      requests.push_back({bytes, first[s], last[s]});
    }
    BufferRequest& req = requests[static_cast<size_t>(request_of[s])];
    req.bytes = std::max(req.bytes, bytes);
    req.last_step = std::max(req.last_step, last[i]);
    request_of[i] = request_of[s];
  }
  MemoryPlan mp = plan_memory(requests, static_cast<int64_t>(format::kConstantAlignment));
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (request_of[i] >= 0) plan.tensors[i].arena_offset = mp.offsets[static_cast<size_t>(request_of[i])];
  }
  plan.arena_bytes = mp.arena_bytes;
  if (memory_plan_out) *memory_plan_out = mp;
  return plan;
}

}  // namespace kiln::builder
