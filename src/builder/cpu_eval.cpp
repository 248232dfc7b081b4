#include "builder/cpu_eval.h"

#include <cstring>

#include "backends/common/tensor_view.h"
#include "backends/cpu/cpu_kernels.h"
#include "ir/half.h"

namespace kiln::builder {
namespace {

TensorView contiguous_view(void* data, DType dtype, const std::vector<int64_t>& dims) {
  TensorView v;
  v.data = data;
  v.dtype = dtype;
  v.rank = static_cast<int>(dims.size());
  for (int i = 0; i < v.rank; ++i) v.shape[i] = dims[static_cast<size_t>(i)];
  set_contiguous_strides(v);
  return v;
}

}  // namespace

Result<std::vector<ConstantBytes>> evaluate_constant_op(const Op& op,
                                                        std::span<const TensorInfo* const> input_infos,
                                                        std::span<const TensorInfo* const> output_infos) {
  std::vector<DType> dtypes;
  std::vector<TensorView> inputs;
  for (const TensorInfo* in : input_infos) {
    const TensorInfo& info = *in;
    if (!info.isConstant()) return internal_error("constant folding: '", info.name, "' is not constant");
    KILN_ASSIGN_OR_RETURN(std::vector<int64_t> dims, constant_dims(info.shape, info.name));
    if (dims.size() > static_cast<size_t>(kMaxRank))
      return unsupported("'", info.name, "' has rank ", dims.size(), " > ", kMaxRank);
    inputs.push_back(contiguous_view(const_cast<std::byte*>(info.constant->data()), info.dtype, dims));
    dtypes.push_back(info.dtype);
  }
  std::vector<std::shared_ptr<std::vector<std::byte>>> buffers;
  std::vector<TensorView> outputs;
  for (const TensorInfo* out : output_infos) {
    const TensorInfo& info = *out;
    KILN_ASSIGN_OR_RETURN(std::vector<int64_t> dims, constant_dims(info.shape, info.name));
    int64_t numel = 1;
    for (int64_t d : dims) numel *= d;
    auto buf = std::make_shared<std::vector<std::byte>>(static_cast<size_t>(numel) * dtype_size(info.dtype));
    outputs.push_back(contiguous_view(buf->data(), info.dtype, dims));
    buffers.push_back(std::move(buf));
  }
  const cpu::CpuKernel* kernel = nullptr;
  for (const cpu::CpuKernel& k : cpu::kernels_for(op.kind)) {
    if (!k.supports || k.supports(op, dtypes).ok()) {
      kernel = &k;
      break;
    }
  }
  if (!kernel) return unsupported("no CPU kernel for ", op_kind_name(op.kind), " '", op.name, "'");
  KernelArgs args{op.name.c_str(), op.attrs, inputs, outputs, {}, nullptr};
  KILN_RETURN_IF_ERROR(kernel->run(args));
  return std::vector<ConstantBytes>(buffers.begin(), buffers.end());
}

std::vector<double> constant_to_doubles(const TensorInfo& tensor) {
  const std::byte* p = tensor.constant->data();
  size_t n = tensor.constant->size() / dtype_size(tensor.dtype);
  std::vector<double> out(n);
  for (size_t i = 0; i < n; ++i) {
    switch (tensor.dtype) {
      case DType::kFloat32: { float v; std::memcpy(&v, p + 4 * i, 4); out[i] = v; break; }
      case DType::kFloat16: { uint16_t v; std::memcpy(&v, p + 2 * i, 2); out[i] = half_to_float(v); break; }
      case DType::kBFloat16: { uint16_t v; std::memcpy(&v, p + 2 * i, 2); out[i] = bf16_to_float(v); break; }
      case DType::kInt64: { int64_t v; std::memcpy(&v, p + 8 * i, 8); out[i] = static_cast<double>(v); break; }
      case DType::kInt32: { int32_t v; std::memcpy(&v, p + 4 * i, 4); out[i] = v; break; }
      case DType::kInt8: out[i] = static_cast<int8_t>(p[i]); break;
      case DType::kUInt8: out[i] = static_cast<uint8_t>(p[i]); break;
      case DType::kBool: out[i] = p[i] != std::byte{0}; break;
    }
  }
  return out;
}

ConstantBytes doubles_to_constant(const std::vector<double>& values, DType dtype) {
  auto buf = std::make_shared<std::vector<std::byte>>(values.size() * dtype_size(dtype));
  std::byte* p = buf->data();
  for (size_t i = 0; i < values.size(); ++i) {
    double d = values[i];
    switch (dtype) {
      case DType::kFloat32: { float v = static_cast<float>(d); std::memcpy(p + 4 * i, &v, 4); break; }
      case DType::kFloat16: { uint16_t v = float_to_half(static_cast<float>(d)); std::memcpy(p + 2 * i, &v, 2); break; }
      case DType::kBFloat16: { uint16_t v = float_to_bf16(static_cast<float>(d)); std::memcpy(p + 2 * i, &v, 2); break; }
      case DType::kInt64: { int64_t v = static_cast<int64_t>(d); std::memcpy(p + 8 * i, &v, 8); break; }
      case DType::kInt32: { int32_t v = static_cast<int32_t>(d); std::memcpy(p + 4 * i, &v, 4); break; }
      case DType::kInt8: p[i] = static_cast<std::byte>(static_cast<int8_t>(d)); break;
      case DType::kUInt8: p[i] = static_cast<std::byte>(static_cast<uint8_t>(d)); break;
      case DType::kBool: p[i] = static_cast<std::byte>(d != 0.0); break;
    }
  }
  return buf;
}

}  // namespace kiln::builder
