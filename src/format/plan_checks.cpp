// Semantic checks on a decoded plan and the target check. Everything a runtime would trust to
// index memory with is range-checked here, with the field named.

#include <set>

#include "format/plan_decoder.h"

namespace kiln::format {
namespace {

Status corrupt(const std::string& message) { return Status(StatusCode::kCorruptFile, message); }

// "index 57 of 12" checks: true when 0 <= i < n.
bool in_range(int64_t i, size_t n) { return i >= 0 && static_cast<uint64_t>(i) < n; }

std::string tensor_field(const EnginePlan& plan, size_t i) {
  return str("tensors[", i, "] '", plan.tensors[i].name, "'");
}

Status check_dtype(DType dtype, const std::string& field) {
  if (static_cast<int>(dtype) >= kNumDTypes) {
    return corrupt(
        str(field, ": dtype ", static_cast<int>(dtype), " out of range (0..", kNumDTypes - 1, ")"));
  }
  return Status::Ok();
}

Status check_bindings(const EnginePlan& plan, const std::vector<Binding>& bindings,
                      const char* list) {
  std::set<std::string> names;
  for (size_t i = 0; i < bindings.size(); ++i) {
    const Binding& b = bindings[i];
    const std::string field = str(list, "[", i, "] '", b.name, "'");
    if (!in_range(b.tensor, plan.tensors.size())) {
      return corrupt(str(field, ": tensor ", b.tensor, " out of range (the engine has ",
                         plan.tensors.size(), " tensors)"));
    }
    if (!names.insert(b.name).second) return corrupt(str(field, ": name used twice"));
  }
  return Status::Ok();
}

Status check_tensor_role(const EnginePlan& plan, size_t i) {
  const PlanTensor& t = plan.tensors[i];
  const std::string field = tensor_field(plan, i);
  auto index_error = [&](const char* what, int64_t value, size_t n, const char* of) {
    return corrupt(
        str(field, ".", what, ": ", value, " out of range (the engine has ", n, " ", of, ")"));
  };
  switch (t.role) {
    case TensorRole::kActivation: {
      int64_t end = 0;
      if (t.arena_offset < 0 || t.max_bytes < 0 ||
          __builtin_add_overflow(t.arena_offset, t.max_bytes, &end) || end > plan.arena_bytes) {
        return corrupt(str(field, ": arena bytes [", t.arena_offset, ", +", t.max_bytes,
                           ") outside the arena of ", plan.arena_bytes, " bytes"));
      }
      return Status::Ok();
    }
    case TensorRole::kInput:
      if (!in_range(t.binding, plan.inputs.size())) {
        return index_error("binding", t.binding, plan.inputs.size(), "inputs");
      }
      return Status::Ok();
    case TensorRole::kOutput:
      if (!in_range(t.binding, plan.outputs.size())) {
        return index_error("binding", t.binding, plan.outputs.size(), "outputs");
      }
      return Status::Ok();
    case TensorRole::kConstant:
      if (!in_range(t.constant, plan.constants.size())) {
        return index_error("constant", t.constant, plan.constants.size(), "constants");
      }
      return Status::Ok();
    case TensorRole::kView:
      if (!in_range(t.view_of, plan.tensors.size()) || static_cast<size_t>(t.view_of) == i) {
        return index_error("view_of", t.view_of, plan.tensors.size(), "tensors");
      }
      return Status::Ok();
  }
  return corrupt(str(field, ".role: ", static_cast<int>(t.role), " out of range (0..",
                     static_cast<int>(TensorRole::kView), ")"));
}

// A chain of views must end at a tensor with storage; a cycle would send the runtime round
// forever. Each tensor is walked once (0 = unseen, 1 = on the current chain, 2 = done).
Status check_view_chains(const EnginePlan& plan) {
  std::vector<uint8_t> state(plan.tensors.size(), 0);
  for (size_t start = 0; start < plan.tensors.size(); ++start) {
    std::vector<size_t> chain;
    size_t i = start;
    while (state[i] == 0 && plan.tensors[i].role == TensorRole::kView) {
      state[i] = 1;
      chain.push_back(i);
      i = static_cast<size_t>(plan.tensors[i].view_of);
    }
    if (state[i] == 1) return corrupt(str(tensor_field(plan, i), ".view_of: views form a cycle"));
    for (size_t c : chain) state[c] = 2;
    state[i] = 2;
  }
  return Status::Ok();
}

Status check_tensors(const EnginePlan& plan) {
  for (size_t i = 0; i < plan.tensors.size(); ++i) {
    const PlanTensor& t = plan.tensors[i];
    KILN_RETURN_IF_ERROR(check_dtype(t.dtype, tensor_field(plan, i)));
    KILN_RETURN_IF_ERROR(check_tensor_role(plan, i));
    for (size_t d = 0; d < t.shape.size(); ++d) {
      if (t.shape[d].isConstant() && t.shape[d].constant() < 0) {
        return corrupt(
            str(tensor_field(plan, i), ".shape[", d, "]: negative dim ", t.shape[d].constant()));
      }
    }
  }
  return check_view_chains(plan);
}

Status check_steps(const EnginePlan& plan) {
  for (size_t i = 0; i < plan.steps.size(); ++i) {
    const PlanStep& s = plan.steps[i];
    const std::string field = str("steps[", i, "] '", s.name, "'");
    if (s.kind >= OpKind::kNumOps) {
      return corrupt(str(field, ".kind: op kind ", static_cast<int>(s.kind),
                         " out of range (the engine format knows ",
                         static_cast<int>(OpKind::kNumOps), ")"));
    }
    for (const auto* list : {&s.inputs, &s.outputs}) {
      const char* name = list == &s.inputs ? "inputs" : "outputs";
      for (size_t k = 0; k < list->size(); ++k) {
        if (!in_range((*list)[k], plan.tensors.size())) {
          return corrupt(str(field, ".", name, "[", k, "]: tensor ", (*list)[k],
                             " out of range (the engine has ", plan.tensors.size(), " tensors)"));
        }
      }
    }
  }
  return Status::Ok();
}

Status check_constants(const EnginePlan& plan) {
  for (size_t i = 0; i < plan.constants.size(); ++i) {
    const Constant& c = plan.constants[i];
    const std::string field = str("constants[", i, "] '", c.name, "'");
    KILN_RETURN_IF_ERROR(check_dtype(c.dtype, field));
    uint64_t expected = dtype_size(c.dtype);
    for (size_t d = 0; d < c.dims.size(); ++d) {
      if (c.dims[d] < 0) return corrupt(str(field, ".dims[", d, "]: negative dim ", c.dims[d]));
      if (__builtin_mul_overflow(expected, static_cast<uint64_t>(c.dims[d]), &expected)) {
        return corrupt(str(field, ".dims: element count overflows"));
      }
    }
    if (expected != c.bytes.size()) {
      return corrupt(str(field, ".size: ", c.bytes.size(), " bytes, but ", dtype_name(c.dtype),
                         " with these dims needs ", expected));
    }
  }
  return Status::Ok();
}

Status check_symbols(const EnginePlan& plan) {
  for (size_t i = 0; i < plan.symbols.size(); ++i) {
    const SymbolInfo& s = plan.symbols[i];
    if (s.min < 0 || s.min > s.opt || s.opt > s.max) {
      return corrupt(str("symbols[", i, "] '", s.name, "': range min ", s.min, " opt ", s.opt,
                         " max ", s.max, " is not 0 <= min <= opt <= max"));
    }
  }
  return Status::Ok();
}

std::string target_str(const Target& t) {
  if (t.kind == DeviceKind::kCpu) return "cpu";
  return str("cuda sm_", t.sm_major, t.sm_minor);
}

}  // namespace

Status validate_plan(const EnginePlan& plan) {
  if (plan.target.kind != DeviceKind::kCpu && plan.target.kind != DeviceKind::kCuda) {
    return corrupt(
        str("target.kind: device kind ", static_cast<int>(plan.target.kind), " out of range"));
  }
  if (plan.arena_bytes < 0) return corrupt(str("arena_bytes: negative (", plan.arena_bytes, ")"));
  KILN_RETURN_IF_ERROR(check_symbols(plan));
  KILN_RETURN_IF_ERROR(check_bindings(plan, plan.inputs, "inputs"));
  KILN_RETURN_IF_ERROR(check_bindings(plan, plan.outputs, "outputs"));
  KILN_RETURN_IF_ERROR(check_constants(plan));
  KILN_RETURN_IF_ERROR(check_tensors(plan));
  return check_steps(plan);
}

Status check_target(const Target& built, const Target& device) {
  bool ok = built.kind == device.kind;
  if (ok && built.kind == DeviceKind::kCuda) {
    // A hardware-compatible engine runs on its own SM and the later minors of its major
    // (a CUBIN for sm_80 runs on sm_86, not the reverse).
    ok = built.sm_major == device.sm_major &&
         (built.hardware_compatible ? device.sm_minor >= built.sm_minor
                                    : device.sm_minor == built.sm_minor);
  }
  if (ok) return Status::Ok();
  std::string built_str = target_str(built);
  if (built.kind == DeviceKind::kCuda && built.hardware_compatible) {
    built_str += str(" (hardware compatible: sm_", built.sm_major, built.sm_minor, " and later sm_",
                     built.sm_major, "x)");
  }
  return Status(StatusCode::kWrongTarget,
                str("engine built for ", built_str, ", this device is ", target_str(device)));
}

}  // namespace kiln::format
