#pragma once

#include <span>
#include <vector>

#include "kiln/network.h"

namespace kiln::builder {

// Runs one op of `network` on the CPU backend over constant inputs (every input must be a
// constant and every output shape constant) and returns the output bytes. Used by constant
// folding.
// `inputs` and `outputs` describe op.inputs and op.outputs (they may come from two networks:
// a pass reads inputs from the network it builds and output shapes from the one it reads).
Result<std::vector<ConstantBytes>> evaluate_constant_op(const Op& op,
                                                        std::span<const TensorInfo* const> inputs,
                                                        std::span<const TensorInfo* const> outputs);

// Constant data as doubles and back (any dtype), for passes that rewrite weights.
std::vector<double> constant_to_doubles(const TensorInfo& tensor);
ConstantBytes doubles_to_constant(const std::vector<double>& values, DType dtype);

}  // namespace kiln::builder
