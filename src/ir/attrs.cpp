#include "kiln/attrs.h"

#include <cstdio>

namespace kiln {

int64_t Attrs::getInt(const std::string& name, int64_t fallback) const {
  if (auto* v = find<int64_t>(name)) return *v;
  if (auto* b = find<bool>(name)) return *b ? 1 : 0;
  if (auto* s = find<SymExpr>(name); s && s->isConstant()) return s->constant();
  return fallback;
}

double Attrs::getDouble(const std::string& name, double fallback) const {
  if (auto* v = find<double>(name)) return *v;
  if (auto* i = find<int64_t>(name)) return static_cast<double>(*i);
  return fallback;
}

bool Attrs::getBool(const std::string& name, bool fallback) const {
  if (auto* v = find<bool>(name)) return *v;
  if (auto* i = find<int64_t>(name)) return *i != 0;
  return fallback;
}

std::string Attrs::getString(const std::string& name, const std::string& fallback) const {
  if (auto* v = find<std::string>(name)) return *v;
  return fallback;
}

std::vector<int64_t> Attrs::getInts(const std::string& name, std::vector<int64_t> fallback) const {
  if (auto* v = find<std::vector<int64_t>>(name)) return *v;
  if (auto* i = find<int64_t>(name)) return {*i};
  if (auto* s = find<Shape>(name)) {
    std::vector<int64_t> out;
    for (const SymExpr& e : *s) {
      if (!e.isConstant()) return fallback;
      out.push_back(e.constant());
    }
    return out;
  }
  return fallback;
}

SymExpr Attrs::getSym(const std::string& name, SymExpr fallback) const {
  if (auto* v = find<SymExpr>(name)) return *v;
  if (auto* i = find<int64_t>(name)) return SymExpr(*i);
  return fallback;
}

Shape Attrs::getShape(const std::string& name, Shape fallback) const {
  if (auto* v = find<Shape>(name)) return *v;
  if (auto* ints = find<std::vector<int64_t>>(name)) return shape_of(*ints);
  return fallback;
}

DType Attrs::getDType(const std::string& name, DType fallback) const {
  if (auto* v = find<DType>(name)) return *v;
  return fallback;
}

namespace {

std::string double_str(double d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", d);
  return buf;
}

template <typename T, typename F>
std::string list_str(const std::vector<T>& v, F f) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + f(v[i]);
  return s + "]";
}

}  // namespace

std::string Attrs::str(std::span<const std::string> names) const {
  std::string out;
  for (const auto& [key, value] : values_) {
    if (!out.empty()) out += ", ";
    out += key + "=";
    std::visit(
        [&](const auto& v) {
          using T = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<T, int64_t>) out += std::to_string(v);
          else if constexpr (std::is_same_v<T, double>) out += double_str(v);
          else if constexpr (std::is_same_v<T, bool>) out += v ? "true" : "false";
          else if constexpr (std::is_same_v<T, std::string>) out += v;
          else if constexpr (std::is_same_v<T, std::vector<int64_t>>)
            out += list_str(v, [](int64_t x) { return std::to_string(x); });
          else if constexpr (std::is_same_v<T, std::vector<double>>)
            out += list_str(v, double_str);
          else if constexpr (std::is_same_v<T, SymExpr>) out += v.str(names);
          else if constexpr (std::is_same_v<T, Shape>) out += shape_str(v, names);
          else if constexpr (std::is_same_v<T, DType>) out += dtype_name(v);
        },
        value);
  }
  return out;
}

bool Attrs::operator==(const Attrs& other) const {
  if (values_.size() != other.values_.size()) return false;
  for (auto a = values_.begin(), b = other.values_.begin(); a != values_.end(); ++a, ++b) {
    if (a->first != b->first || a->second.index() != b->second.index()) return false;
    bool same = std::visit(
        [&](const auto& x) {
          using T = std::decay_t<decltype(x)>;
          const T& y = std::get<T>(b->second);
          if constexpr (std::is_same_v<T, SymExpr>) return x.equals(y);
          else if constexpr (std::is_same_v<T, Shape>) return shapes_equal(x, y);
          else return x == y;
        },
        a->second);
    if (!same) return false;
  }
  return true;
}

}  // namespace kiln
