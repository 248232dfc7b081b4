#pragma once

#include <string>
#include <vector>

#include "kiln/network.h"

namespace kiln::builder {

// Each pass returns a new network (see rewrite.h) and appends one line to `log` saying what it
// did. Order (DESIGN.md 3): dead code, constant folding, BN folding, simplification, outputs.

// Drops ops whose outputs reach no network output.
Result<Network> eliminate_dead_code(const Network& network, std::vector<std::string>& log);

// Evaluates on the CPU every op whose inputs are all constants (and whose output shape is
// constant), replacing it by a constant. Skips ops that would grow the engine: an output larger
// than max(1 MiB, its constant inputs) stays an op (a broadcast of a scalar, say).
Result<Network> fold_constants(const Network& network, std::vector<std::string>& log);

// conv (constant weight/bias, not transposed) followed only by batch_norm with constant
// statistics becomes one conv with scaled weights and a new bias.
Result<Network> fold_batch_norm(const Network& network, std::vector<std::string>& log);

// Removes no-ops: casts to the same dtype, reshapes/expands to the same shape, identity
// permutes, whole-tensor slices, copies that feed no output.
Result<Network> simplify(const Network& network, std::vector<std::string>& log);

// Every output gets its own freshly written buffer: an output that is an input, a constant,
// a (possible) view, or a tensor already marked as another output is copied.
Result<Network> isolate_outputs(const Network& network, std::vector<std::string>& log);

}  // namespace kiln::builder
