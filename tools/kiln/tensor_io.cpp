#include <cstring>
#include <random>

#include "cli.h"
#include "ir/half.h"

namespace kiln::cli {
namespace {

Result<DType> npy_dtype(const std::string& descr) {
  static const std::map<std::string, DType> kTable = {
      {"<f4", DType::kFloat32}, {"<f2", DType::kFloat16}, {"<i8", DType::kInt64}, {"<i4", DType::kInt32},
      {"|i1", DType::kInt8},    {"|u1", DType::kUInt8},   {"|b1", DType::kBool}};
  auto it = kTable.find(descr);
  if (it == kTable.end()) return unsupported("npy dtype '", descr, "'");
  return it->second;
}

double load(const std::byte* p, DType d) {
  switch (d) {
    case DType::kFloat32: { float v; std::memcpy(&v, p, 4); return v; }
    case DType::kFloat16: { uint16_t v; std::memcpy(&v, p, 2); return half_to_float(v); }
    case DType::kBFloat16: { uint16_t v; std::memcpy(&v, p, 2); return bf16_to_float(v); }
    case DType::kInt64: { int64_t v; std::memcpy(&v, p, 8); return static_cast<double>(v); }
    case DType::kInt32: { int32_t v; std::memcpy(&v, p, 4); return v; }
    case DType::kInt8: return static_cast<int8_t>(*p);
    case DType::kUInt8: return static_cast<uint8_t>(*p);
    case DType::kBool: return *p != std::byte{0};
  }
  return 0;
}

void store(std::byte* p, DType d, double x) {
  switch (d) {
    case DType::kFloat32: { float v = static_cast<float>(x); std::memcpy(p, &v, 4); break; }
    case DType::kFloat16: { uint16_t v = float_to_half(static_cast<float>(x)); std::memcpy(p, &v, 2); break; }
    case DType::kBFloat16: { uint16_t v = float_to_bf16(static_cast<float>(x)); std::memcpy(p, &v, 2); break; }
    case DType::kInt64: { int64_t v = static_cast<int64_t>(x); std::memcpy(p, &v, 8); break; }
    case DType::kInt32: { int32_t v = static_cast<int32_t>(x); std::memcpy(p, &v, 4); break; }
    case DType::kInt8: *p = static_cast<std::byte>(static_cast<int8_t>(x)); break;
    case DType::kUInt8: *p = static_cast<std::byte>(static_cast<uint8_t>(x)); break;
    case DType::kBool: *p = static_cast<std::byte>(x != 0.0); break;
  }
}

HostTensor convert(DType from, const std::vector<int64_t>& dims, const std::byte* src, DType to) {
  HostTensor t{to, dims, {}};
  size_t n = 1;
  for (int64_t d : dims) n *= static_cast<size_t>(d);
  t.data.resize(n * dtype_size(to));
  for (size_t i = 0; i < n; ++i) store(t.data.data() + i * dtype_size(to), to, load(src + i * dtype_size(from), from));
  return t;
}

}  // namespace

std::vector<std::string> Args::all(const std::string& k) const {
  std::vector<std::string> out;
  for (auto [it, end] = options.equal_range(k); it != end; ++it) out.push_back(it->second);
  return out;
}

Result<std::vector<int64_t>> parse_dims(const std::string& text) {
  std::vector<int64_t> dims;
  size_t pos = 0;
  while (pos <= text.size() && !text.empty()) {
    size_t end = text.find_first_of("x,", pos);
    std::string part = text.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
    if (part.empty() || part.find_first_not_of("0123456789") != std::string::npos)
      return invalid_argument("bad shape '", text, "' (expected dims like 1x3x224x224)");
    dims.push_back(std::stoll(part));
    if (end == std::string::npos) break;
    pos = end + 1;
  }
  return dims;
}

Result<std::map<std::string, std::string>> parse_named(const std::vector<std::string>& items,
                                                       const std::string& option) {
  std::map<std::string, std::string> out;
  for (const std::string& item : items) {
    auto eq = item.find('=');
    if (eq == std::string::npos || eq == 0)
      return invalid_argument("--", option, " expects NAME=VALUE, got '", item, "'");
    out[item.substr(0, eq)] = item.substr(eq + 1);
  }
  return out;
}

Result<HostTensor> from_npy(const NpyArray& array, const BindingInfo& binding) {
  DType from;
  if (array.descr == "<f8") {
    from = DType::kFloat32;  // narrowed below through doubles
    HostTensor t{binding.dtype, array.shape, {}};
    size_t n = array.data.size() / 8;
    t.data.resize(n * dtype_size(binding.dtype));
    for (size_t i = 0; i < n; ++i) {
      double v;
      std::memcpy(&v, array.data.data() + 8 * i, 8);
      store(t.data.data() + i * dtype_size(binding.dtype), binding.dtype, v);
    }
    if (!is_floating(binding.dtype)) return invalid_argument("input '", binding.name, "' is ", dtype_name(binding.dtype), ", the .npy file holds float64");
    return t;
  }
  auto parsed = npy_dtype(array.descr);
  if (!parsed.ok()) return parsed.status().withContext("input '" + binding.name + "'");
  from = *parsed;
  if (is_floating(from) != is_floating(binding.dtype))
    return invalid_argument("input '", binding.name, "' is ", dtype_name(binding.dtype), ", the .npy file holds ",
                            dtype_name(from));
  return convert(from, array.shape, array.data.data(), binding.dtype);
}

NpyArray to_npy(const HostTensor& t) {
  NpyArray a;
  a.shape = t.dims;
  DType out = t.dtype == DType::kBFloat16 ? DType::kFloat32 : t.dtype;
  static const char* kDescr[] = {"<f4", "<f2", "<f4", "<i8", "<i4", "|i1", "|u1", "|b1"};
  a.descr = kDescr[static_cast<int>(t.dtype)];
  HostTensor converted = out == t.dtype ? t : convert(t.dtype, t.dims, t.data.data(), out);
  a.data = std::move(converted.data);
  return a;
}

HostTensor random_tensor(const BindingInfo& binding, const std::vector<int64_t>& dims, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> real(-1.0, 1.0);
  std::uniform_int_distribution<int> small(0, 7);
  HostTensor t{binding.dtype, dims, {}};
  size_t n = 1;
  for (int64_t d : dims) n *= static_cast<size_t>(d);
  t.data.resize(n * dtype_size(binding.dtype));
  for (size_t i = 0; i < n; ++i) {
    double v = is_floating(binding.dtype) ? real(rng) : (binding.dtype == DType::kBool ? small(rng) % 2 : small(rng));
    store(t.data.data() + i * dtype_size(binding.dtype), binding.dtype, v);
  }
  return t;
}

Result<std::vector<std::vector<int64_t>>> input_dims(const Engine& engine, const Args& args,
                                                     const std::map<std::string, NpyArray>& npys) {
  KILN_ASSIGN_OR_RETURN(auto shapes, parse_named(args.all("shape"), "shape"));
  std::vector<int64_t> opt;
  for (const SymbolInfo& s : engine.symbols()) opt.push_back(s.opt);
  std::vector<std::vector<int64_t>> out;
  for (const BindingInfo& b : engine.bindings()) {
    if (!b.is_input) continue;
    if (auto it = shapes.find(b.name); it != shapes.end()) {
      KILN_ASSIGN_OR_RETURN(auto dims, parse_dims(it->second));
      out.push_back(dims);
    } else if (auto n = npys.find(b.name); n != npys.end()) {
      out.push_back(n->second.shape);
    } else {
      std::vector<int64_t> dims;
      for (const SymExpr& e : b.shape) {
        KILN_ASSIGN_OR_RETURN(int64_t v, e.evaluate(opt));
        dims.push_back(v);
      }
      out.push_back(dims);
    }
  }
  for (const auto& [name, value] : shapes) {
    bool known = false;
    for (const BindingInfo& b : engine.bindings()) known = known || (b.is_input && b.name == name);
    if (!known) return not_found("--shape names '", name, "', which is not an input of engine '", engine.name(), "'");
  }
  return out;
}

int fail(const Status& status) {
  std::fprintf(stderr, "kiln: %s\n", status.toString().c_str());
  return 1;
}

}  // namespace kiln::cli
