#pragma once

#include <cstdint>
#include <span>

#include "kiln/attrs.h"
#include "kiln/dtype.h"
#include "kiln/status.h"

namespace kiln {

inline constexpr int kMaxRank = 8;

// A concrete tensor as a kernel sees it: data pointer, dims and strides in elements. Inputs may
// be strided views (permute, slice, expand with stride 0); outputs are always contiguous.
struct TensorView {
  void* data = nullptr;
  DType dtype = DType::kFloat32;
  int rank = 0;
  int64_t shape[kMaxRank] = {};
  int64_t strides[kMaxRank] = {};

  int64_t numel() const {
    int64_t n = 1;
    for (int i = 0; i < rank; ++i) n *= shape[i];
    return n;
  }
  // Elements from the first to past the last one the view reaches (strides are never
  // negative): what a buffer holding it needs.
  int64_t extent() const {
    if (numel() == 0) return 0;
    int64_t last = 0;
    for (int i = 0; i < rank; ++i) last += (shape[i] - 1) * strides[i];
    return last + 1;
  }
  bool isContiguous() const {
    int64_t expected = 1;
    for (int i = rank - 1; i >= 0; --i) {
      if (shape[i] != 1 && strides[i] != expected) return false;
      expected *= shape[i];
    }
    return true;
  }
  template <typename T>
  T* as() const {
    return static_cast<T*>(data);
  }
};

// Row-major strides for `shape`.
inline void set_contiguous_strides(TensorView& v) {
  int64_t s = 1;
  for (int i = v.rank - 1; i >= 0; --i) {
    v.strides[i] = s;
    s *= v.shape[i];
  }
}

// Everything one kernel call gets.
struct KernelArgs {
  const char* op_name;   // for error messages
  const Attrs& attrs;    // as normalized by inference
  std::span<const TensorView> inputs;
  std::span<const TensorView> outputs;
  std::span<const int64_t> bindings;  // symbol values of this execution (for sym attributes)
  void* stream = nullptr;             // cudaStream_t on CUDA, unused on the CPU
  // Backend extras (CUDA): the tactic's recorded data (a cuBLASLt algo, a cuDNN engine), scratch
  // memory sized by the kernel's workspace function, and the backend's per-context state
  // (library handles). Unused on the CPU.
  std::span<const uint8_t> tactic_data = {};
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
  void* backend = nullptr;
  // Per-engine state the kernel's `prepare` built from tactic_data at engine load (a loaded
  // generated kernel); nullptr for kernels without one.
  const void* prepared = nullptr;
};

using KernelFn = Status (*)(const KernelArgs& args);

}  // namespace kiln
