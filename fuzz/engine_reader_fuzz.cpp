// libFuzzer target over read_engine. Run with tools/run_fuzzer.sh.
//
// Each input is read twice: as given, and resealed (checksum recomputed) when it is still a
// verifiable FlatBuffer, so mutations reach the semantic checks behind the checksum instead of
// stopping at "checksum mismatch".

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "format/checksum.h"
#include "format/engine_plan.h"

namespace {

using namespace kiln;
using namespace kiln::format;

// What read_engine promises about a plan it returns; a broken promise is a finding.
void check(bool ok) {
  if (!ok) __builtin_trap();
}

void use(const Result<EnginePlan>& read, std::span<const std::byte> file) {
  if (!read.ok()) {
    check(!read.status().message().empty());
    return;
  }
  const EnginePlan& plan = *read;
  const size_t n = plan.tensors.size();
  for (const PlanStep& s : plan.steps) {
    check(s.kind < OpKind::kNumOps);
    for (int32_t t : s.inputs) check(t >= 0 && static_cast<size_t>(t) < n);
    for (int32_t t : s.outputs) check(t >= 0 && static_cast<size_t>(t) < n);
  }
  for (const Binding& b : plan.inputs) check(b.tensor >= 0 && static_cast<size_t>(b.tensor) < n);
  for (const Binding& b : plan.outputs) check(b.tensor >= 0 && static_cast<size_t>(b.tensor) < n);
  for (const Constant& c : plan.constants) {
    check(c.bytes.empty() || (c.bytes.data() >= file.data() &&
                              c.bytes.data() + c.bytes.size() <= file.data() + file.size()));
    // Touch every byte so ASan sees any read past the file.
    uint8_t sum = 0;
    for (std::byte b : c.bytes) sum ^= static_cast<uint8_t>(b);
    (void)sum;
  }
  // Symbolic shapes from the file must be safe to print and evaluate at any symbol values.
  std::vector<int64_t> at_max;
  for (const SymbolInfo& s : plan.symbols) at_max.push_back(s.max);
  for (const PlanTensor& t : plan.tensors) {
    (void)shape_str(t.shape);
    for (const SymExpr& d : t.shape) (void)d.evaluate(at_max);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // read_engine wants 8-byte aligned bytes, as a file read into a vector or mapped is.
  std::vector<std::byte> bytes(size);
  if (size > 0) std::memcpy(bytes.data(), data, size);
  use(read_engine(bytes), bytes);

  ReadOptions cpu;
  cpu.check_target = true;
  if (seal_engine(bytes).ok()) {
    use(read_engine(bytes), bytes);
    use(read_engine(bytes, cpu), bytes);
  }
  return 0;
}
