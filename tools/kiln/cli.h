#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <vector>

#include "kiln/runtime.h"
#include "npy.h"

namespace kiln::cli {

// Parsed command line: positional arguments and --flag[=value] options (repeatable).
struct Args {
  std::vector<std::string> positional;
  std::multimap<std::string, std::string> options;
  bool has(const std::string& k) const { return options.count(k) != 0; }
  std::string get(const std::string& k, const std::string& fallback = "") const {
    auto it = options.find(k);
    return it == options.end() ? fallback : it->second;
  }
  std::vector<std::string> all(const std::string& k) const;
};

struct HostTensor {
  DType dtype = DType::kFloat32;
  std::vector<int64_t> dims;
  std::vector<std::byte> data;
};

// "1x3x224x224" -> {1, 3, 224, 224}
Result<std::vector<int64_t>> parse_dims(const std::string& text);
// NAME=VALUE pairs from repeated options.
Result<std::map<std::string, std::string>> parse_named(const std::vector<std::string>& items,
                                                       const std::string& option);

// Converts a .npy array to the binding's dtype (floats convert among themselves; ints among
// themselves); the message names the binding when it can't.
Result<HostTensor> from_npy(const NpyArray& array, const BindingInfo& binding);
NpyArray to_npy(const HostTensor& tensor);  // bfloat16 is written as float32
HostTensor random_tensor(const BindingInfo& binding, const std::vector<int64_t>& dims, uint64_t seed);

// Dims of every input: from --shape NAME=AxB, else from .npy inputs, else the profile's opt.
Result<std::vector<std::vector<int64_t>>> input_dims(const Engine& engine, const Args& args,
                                                     const std::map<std::string, NpyArray>& npys);

int cmd_inspect(const Args& args);
int cmd_run(const Args& args);
int cmd_bench(const Args& args);

// Prints "kiln: <message>" to stderr and returns 1.
int fail(const Status& status);

}  // namespace kiln::cli
