#pragma once

// Runs a network op by op on the CPU kernels (each op's first registered kernel) with concrete
// symbol values: the unfused reference that fusion passes are compared with. Buffers are raw
// bytes of each tensor's dtype, contiguous.

#include <cmath>
#include <cstring>
#include <map>
#include <vector>

#include "backends/cpu/cpu_kernels.h"
#include "ir/half.h"
#include "kiln/network.h"

namespace kiln_test {

struct Buffer {
  kiln::DType dtype = kiln::DType::kFloat32;
  std::vector<int64_t> dims;
  std::vector<std::byte> bytes;
};

inline float buffer_at(const Buffer& b, size_t i) {
  switch (b.dtype) {
    case kiln::DType::kFloat32: {
      float f;
      std::memcpy(&f, b.bytes.data() + 4 * i, 4);
      return f;
    }
    case kiln::DType::kFloat16:
    case kiln::DType::kBFloat16: {
      uint16_t h;
      std::memcpy(&h, b.bytes.data() + 2 * i, 2);
      return b.dtype == kiln::DType::kFloat16 ? kiln::half_to_float(h) : kiln::bf16_to_float(h);
    }
    case kiln::DType::kBool:
      return b.bytes[i] != std::byte{0} ? 1.0f : 0.0f;
    default:
      return NAN;
  }
}

// A buffer of `dtype` from floats (rounded to nearest even for fp16/bf16; bool is != 0).
inline Buffer make_buffer(kiln::DType dtype, std::vector<int64_t> dims, const std::vector<float>& v) {
  Buffer b{dtype, std::move(dims), std::vector<std::byte>(v.size() * kiln::dtype_size(dtype))};
  for (size_t i = 0; i < v.size(); ++i) {
    if (dtype == kiln::DType::kFloat32) {
      std::memcpy(b.bytes.data() + 4 * i, &v[i], 4);
    } else if (dtype == kiln::DType::kFloat16 || dtype == kiln::DType::kBFloat16) {
      uint16_t h = dtype == kiln::DType::kFloat16 ? kiln::float_to_half(v[i]) : kiln::float_to_bf16(v[i]);
      std::memcpy(b.bytes.data() + 2 * i, &h, 2);
    } else {
      b.bytes[i] = v[i] != 0.0f ? std::byte{1} : std::byte{0};
    }
  }
  return b;
}

inline size_t buffer_numel(const Buffer& b) { return b.bytes.size() / kiln::dtype_size(b.dtype); }

// Evaluates every op; returns the network outputs in order.
inline kiln::Result<std::vector<Buffer>> evaluate_network(const kiln::Network& net,
                                                          const std::vector<Buffer>& inputs,
                                                          const std::vector<int64_t>& symbols) {
  using namespace kiln;
  std::map<int32_t, Buffer> values;
  if (inputs.size() != net.inputs().size()) return invalid_argument("wrong number of inputs");
  for (size_t i = 0; i < inputs.size(); ++i) values[net.inputs()[i].id] = inputs[i];
  auto view_of = [](Buffer& b) {
    TensorView v;
    v.data = b.bytes.data();
    v.dtype = b.dtype;
    v.rank = static_cast<int>(b.dims.size());
    for (int d = 0; d < v.rank; ++d) v.shape[d] = b.dims[static_cast<size_t>(d)];
    set_contiguous_strides(v);
    return v;
  };
  for (size_t t = 0; t < net.tensors().size(); ++t) {
    const TensorInfo& info = net.tensors()[t];
    if (!info.isConstant()) continue;
    Buffer b{info.dtype, {}, *info.constant};
    for (const SymExpr& d : info.shape) b.dims.push_back(*d.evaluate(symbols));
    values[static_cast<int32_t>(t)] = std::move(b);
  }
  for (const Op& op : net.ops()) {
    auto kernels = cpu::kernels_for(op.kind);
    if (kernels.empty()) return unsupported("no CPU kernel for ", op_kind_name(op.kind));
    std::vector<TensorView> ins, outs;
    for (Tensor t : op.inputs) ins.push_back(view_of(values.at(t.id)));
    for (Tensor t : op.outputs) {
      const TensorInfo& info = net.tensor(t);
      Buffer b{info.dtype, {}, {}};
      int64_t n = 1;
      for (const SymExpr& d : info.shape) {
        KILN_ASSIGN_OR_RETURN(int64_t v, d.evaluate(symbols));
        b.dims.push_back(v);
        n *= v;
      }
      b.bytes.resize(static_cast<size_t>(n) * dtype_size(info.dtype));
      values[t.id] = std::move(b);
      outs.push_back(view_of(values.at(t.id)));
    }
    KernelArgs args{op.name.c_str(), op.attrs, ins, outs, symbols};
    KILN_RETURN_IF_ERROR(kernels[0].run(args));
  }
  std::vector<Buffer> result;
  for (const Network::Output& o : net.outputs()) result.push_back(values.at(o.tensor.id));
  return result;
}

}  // namespace kiln_test
