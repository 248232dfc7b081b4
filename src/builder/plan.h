#pragma once

#include <vector>

#include "builder/memory_plan.h"
#include "builder/tactics.h"
#include "format/engine_plan.h"
#include "kiln/network.h"

namespace kiln::builder {

// Turns an optimized network and its tactics into the plan the engine file stores: tensor roles
// (binding, constant, arena activation, view), view decisions, in-place reuse, lifetimes, and
// arena offsets. Plan tensor i is network tensor i; plan step i is network op i.
Result<format::EnginePlan> assemble_plan(const Network& network,
                                         const std::vector<TacticCandidate>& tactics,
                                         MemoryPlan* memory_plan = nullptr);

}  // namespace kiln::builder
