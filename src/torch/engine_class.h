#pragma once

#include <ATen/core/Tensor.h>
#include <torch/custom_class.h>

#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <tuple>
#include <vector>

#include "engine_device.h"
#include "kiln/runtime.h"

namespace kiln::torch_ext {

// Version of the pickle list below; bump when its fields or their encoding change.
inline constexpr const char* kAbiVersion = "1";

// torch.classes.kiln.Engine: a runtime Engine with the names the compiled graph uses for its
// inputs and outputs, and one execution context. Pickles as the list of strings
//   [abi_version, name, device_info, serialized_engine (base64), input_names (JSON list),
//    output_names (JSON list), metadata (JSON)]
// (DESIGN.md 6); the constructor takes the same list.
class EngineHolder : public torch::CustomClassHolder {
 public:
  enum Field : size_t {
    kAbiField = 0,
    kNameField,
    kDeviceInfoField,
    kSerializedField,
    kInputNamesField,
    kOutputNamesField,
    kMetadataField,
    kNumFields
  };

  // Checks the ABI version first, then deserializes the engine onto the device device_info
  // selects. Input/output names give the positional order of execute_engine's tensors; an
  // empty list means the engine's own order.
  explicit EngineHolder(std::vector<std::string> state);
  // A fresh build's engine (kiln._C.make_engine): the same fields as the pickle list, with the
  // engine's bytes as they are and the names as lists, so a build skips the base64 round trip
  // and the copies of the engine the pickle list would take (several copies of a large
  // engine, each of hundreds of MB, cost seconds in page faults alone).
  EngineHolder(std::string name, const std::string& device_info,
               std::span<const std::byte> serialized, const std::vector<std::string>& input_names,
               const std::vector<std::string>& output_names, std::string metadata);

  std::vector<std::string> pickle() const;
  const std::string& name() const { return name_; }
  const std::vector<std::string>& inputNames() const { return input_names_; }
  const std::vector<std::string>& outputNames() const { return output_names_; }
  // How many tensors execute() returns.
  size_t numOutputs() const { return outputs_.size(); }
  const std::string& metadata() const { return metadata_; }
  const std::string& deviceInfo() const { return device_.info; }
  std::string device() const { return device_.device.str(); }
  // The serialized engine, base64 (see base64.h for why not raw bytes).
  std::string serializedBase64() const;
  // Bindings with structured symbolic shapes, symbols, device and metadata; the format is in
  // the docstring of python/kiln/_ops.py, whose fake kernel reads it.
  const std::string& infoJson() const { return info_json_; }

  // kiln::execute_engine (execute_engine.cpp).
  std::vector<at::Tensor> execute(at::TensorList inputs);
  // Pre-allocated outputs (DESIGN.md 6, seed 002): with `enabled`, output i is reused call after
  // call when owned[i] (it never reaches the user) and its shape is unchanged; the others are
  // fresh tensors each call, allocated right after the previous enqueue.
  void setPreAllocatedOutputs(bool enabled, const std::vector<bool>& owned);
  bool preAllocatedOutputs() const { return preallocate_; }
  // What the execution context did so far: enqueues, CUDA graph replays, captures, staged
  // copies and plain launches (all 0 before the first call), and why graphs went off ("").
  std::vector<std::tuple<std::string, int64_t>> runtimeStats();
  std::string cudaGraphFailure();
  // The context's L2 weight-prefetch decision for its last graph (ExecutionContext::l2Prefetch).
  std::string l2Prefetch();

 private:
  std::vector<const BindingInfo*> orderBindings(const std::vector<std::string>& names,
                                                bool inputs, const char* what);
  std::string makeInfoJson() const;
  // What both constructors do once the fields are parsed: loads the engine onto the device
  // `device_info` selects and orders its bindings by the given names.
  void load(const std::string& device_info, std::span<const std::byte> serialized,
            const std::vector<std::string>& input_names,
            const std::vector<std::string>& output_names);

  std::string name_;
  std::string metadata_;
  std::vector<std::string> input_names_;
  std::vector<std::string> output_names_;
  EngineDevice device_;
  std::shared_ptr<Engine> engine_;
  std::vector<const BindingInfo*> inputs_;   // in execute_engine's input order
  std::vector<const BindingInfo*> outputs_;  // in execute_engine's output order
  std::string info_json_;

  std::mutex mutex_;  // one execution at a time on context_
  std::unique_ptr<ExecutionContext> context_;
  int64_t calls_ = 0;  // enqueues made through execute
  int64_t execute_host_ns_ = 0;  // host time inside execute, from its locking to its return
  bool preallocate_ = false;
  std::vector<bool> owned_;          // per output, with preallocate_
  std::vector<at::Tensor> kept_;     // per output: the reused buffer, or next call's tensor
  void* kept_stream_ = nullptr;      // the stream kept_ was made for (nullptr on the CPU)
  std::vector<int64_t> shape_scratch_;  // execute's output shapes, one at a time
};

}  // namespace kiln::torch_ext
