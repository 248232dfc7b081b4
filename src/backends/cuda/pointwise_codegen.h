#pragma once

// Code generation for fused pointwise ops: CUDA C++ source from a pointwise program
// (ir/pointwise_program.h), compiled to a CUBIN with NVRTC at build time and stored in the step's
// tactic data. No CUDA header here: the builder and runtime include it freely.

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "ir/pointwise_program.h"

namespace kiln::cuda {

// Kernel launch limits the generated code and the launcher agree on.
inline constexpr int kPwThreads = 256;
inline constexpr int kPwVector = 4;  // elements per thread in the vectorized entry

// Per-input addressing modes (chosen per launch from the actual strides).
enum PwMode : int32_t {
  kPwStrided = 0,  // general: offset from the output index through shape/strides
  kPwContiguous = 1,  // same shape as the output, contiguous: offset = i
  kPwScalar = 2,   // one element broadcast everywhere: offset = 0
  kPwRow = 3,      // contiguous over the trailing dims, broadcast over the leading: i % row
};

// The kernel argument block; mirrored by `struct KilnPwArgs` in the generated source (same
// layout: only 8-byte and 4-byte fields, 8-byte fields first).
struct PwArgs {
  const void* in[kMaxPointwiseInputs];
  void* out[kMaxPointwiseOutputs];
  int64_t n;      // output elements
  int64_t shape[8];
  int64_t strides[kMaxPointwiseInputs][8];  // element strides over the output dims (0: broadcast)
  int64_t row[kMaxPointwiseInputs];         // kPwRow period
  int32_t mode[kMaxPointwiseInputs];
  int32_t rank;
  int32_t pad;
};

// Names of the two entry points of a generated kernel.
std::string pointwise_entry_generic(const std::string& kernel_name);
std::string pointwise_entry_vector(const std::string& kernel_name);

// The source of one pointwise op's kernel (both entries). `op_name` goes into a comment.
std::string generate_pointwise_source(const PointwiseProgram& program,
                                      const std::string& kernel_name, const std::string& op_name);

// NVRTC: compiles `source` to a CUBIN for sm_<major><minor>. The error names `op_name` and
// carries NVRTC's log.
Result<std::vector<uint8_t>> compile_to_cubin(const std::string& source, const std::string& op_name,
                                              int sm_major, int sm_minor);

// Tactic data of a generated kernel: "KPW1", kernel name, source, CUBIN (each u32-length-prefixed).
struct GeneratedPointwise {
  std::string kernel_name;
  std::string source;
  std::vector<uint8_t> cubin;
};
std::vector<uint8_t> encode_generated(const GeneratedPointwise& g);
Result<GeneratedPointwise> decode_generated(std::span<const uint8_t> data);

}  // namespace kiln::cuda
