#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "kiln/attrs.h"
#include "kiln/dtype.h"
#include "kiln/network.h"
#include "kiln/status.h"
#include "kiln/sym_expr.h"

namespace kiln::format {

// Bump on any incompatible change to engine.fbs or to the meaning of a field.
inline constexpr uint32_t kFormatVersion = 1;
// Constants are 256-byte aligned inside the file, so a file loaded at a 256-aligned address
// can use its weights in place.
inline constexpr size_t kConstantAlignment = 256;

enum class DeviceKind : uint8_t { kCpu = 0, kCuda = 1 };

struct Target {
  DeviceKind kind = DeviceKind::kCpu;
  int32_t sm_major = 0;  // CUDA only
  int32_t sm_minor = 0;
  std::string device_name;  // "NVIDIA H100 80GB HBM3", or the CPU model
  std::string platform;     // "linux-x86_64"
  bool hardware_compatible = false;  // may run on other SMs of the same major
};

enum class TensorRole : uint8_t {
  kActivation = 0,  // lives in the arena at arena_offset
  kInput = 1,       // caller's memory; binding index in `binding`
  kOutput = 2,      // caller's memory; binding index in `binding`
  kConstant = 3,    // engine constants; index in `constant`
  kView = 4,        // aliases the storage of `view_of`; its layout comes from its step
};

struct PlanTensor {
  std::string name;
  DType dtype = DType::kFloat32;
  Shape shape;
  TensorRole role = TensorRole::kActivation;
  int32_t binding = -1;   // kInput / kOutput
  int32_t constant = -1;  // kConstant
  int32_t view_of = -1;   // kView
  int64_t arena_offset = 0;  // kActivation: byte offset, kConstantAlignment-aligned
  int64_t max_bytes = 0;     // kActivation: size at the profile's max shapes
};

struct PlanStep {
  OpKind kind = OpKind::kNumOps;
  std::string name;
  Attrs attrs;
  std::vector<int32_t> inputs;   // indices into EnginePlan::tensors
  std::vector<int32_t> outputs;
  bool is_view = false;          // computes a layout only, launches nothing
  std::string tactic;            // backend kernel name, e.g. "cpu.conv.im2col_gemm"
  std::vector<uint8_t> tactic_data;  // opaque backend data (a cuBLASLt algo, a cuDNN engine id)
};

struct Binding {
  std::string name;
  int32_t tensor = -1;  // index into EnginePlan::tensors (dtype and symbolic shape live there)
};

struct Constant {
  std::string name;
  DType dtype = DType::kFloat32;
  std::vector<int64_t> dims;
  // Row-major bytes. After read_engine they point into the file's buffer (zero copy), so the
  // buffer must outlive the plan; before write_engine they point wherever the builder keeps them.
  std::span<const std::byte> bytes;
};

struct GeneratedKernel {
  std::string name;
  std::string source;         // CUDA C++ as generated (kiln inspect --kernels prints it)
  std::vector<uint8_t> cubin;
};

struct EnginePlan {
  uint32_t format_version = kFormatVersion;
  std::string name;
  std::string kiln_version;
  std::string build_options;  // JSON text of the BuilderConfig that made it
  Target target;
  std::vector<SymbolInfo> symbols;  // the profile's ranges (min/opt/max)
  std::vector<Binding> inputs;
  std::vector<Binding> outputs;
  std::vector<PlanTensor> tensors;
  std::vector<PlanStep> steps;
  std::vector<Constant> constants;
  int64_t arena_bytes = 0;  // activation memory needed at the max profile
  std::vector<GeneratedKernel> kernels;
};

// Serializes a plan into a FlatBuffers engine file (identifier "KILN", checksum filled in).
Result<std::vector<std::byte>> write_engine(const EnginePlan& plan);

struct ReadOptions {
  // When set, the file must target this device kind (and, for CUDA, this SM), else the read
  // fails with StatusCode::kWrongTarget naming both.
  bool check_target = false;
  Target expected;
};

// Verifies and decodes an engine file. Errors, each with its own code and a message saying
// which check failed: kTruncated (shorter than its header or the size it records),
// kCorruptFile (bad identifier, FlatBuffers verification, checksum, or a field out of range,
// e.g. a step naming tensor 57 of 12), kVersionMismatch (names both versions), kWrongTarget.
// Never crashes or reads out of bounds on any input: a fuzz target runs it under ASan.
// Constant bytes point into `bytes`.
Result<EnginePlan> read_engine(std::span<const std::byte> bytes, const ReadOptions& options = {});

}  // namespace kiln::format
