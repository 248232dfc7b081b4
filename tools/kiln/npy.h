#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "kiln/status.h"

namespace kiln::cli {

// A .npy array (format 1.0/2.0, little-endian, C order).
struct NpyArray {
  std::string descr;  // "<f4", "<f2", "<f8", "<i8", "<i4", "|i1", "|u1", "|b1"
  std::vector<int64_t> shape;
  std::vector<std::byte> data;
};

Result<NpyArray> read_npy(const std::string& path);
Status write_npy(const std::string& path, const NpyArray& array);

}  // namespace kiln::cli
