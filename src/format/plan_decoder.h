#pragma once

#include <cstddef>
#include <span>

#include "format/engine_generated.h"
#include "format/engine_plan.h"

namespace kiln::format {

// Decodes a verified (FlatBuffers verifier passed) engine table into a plan. Checks what
// decoding itself depends on: SymExpr pool and node indices, attribute types, constant spans
// inside the blob and the blob's alignment. `file` is the whole file; constants point into it.
Result<EnginePlan> decode_plan(const fb::Engine& engine, std::span<const std::byte> file);

// Semantic checks on a decoded plan: enum values in range, tensor / binding / constant
// indices in range, view chains acyclic, activations inside the arena, constant sizes
// matching dtype and dims, no negative constant dims. kCorruptFile naming the field.
Status validate_plan(const EnginePlan& plan);

// kWrongTarget unless an engine built for `built` runs on `device`.
Status check_target(const Target& built, const Target& device);

}  // namespace kiln::format
