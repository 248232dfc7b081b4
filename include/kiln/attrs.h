#pragma once

#include <map>
#include <string>
#include <variant>
#include <vector>

#include "kiln/dtype.h"
#include "kiln/export.h"
#include "kiln/sym_expr.h"

namespace kiln {

// An op attribute. The variant order is part of the engine file format: append only.
using AttrValue = std::variant<int64_t,               // 0
                               double,                // 1
                               bool,                  // 2
                               std::string,           // 3
                               std::vector<int64_t>,  // 4
                               std::vector<double>,   // 5
                               SymExpr,               // 6
                               Shape,                 // 7 (a list of SymExpr)
                               DType>;                // 8

// Named attributes of one op. Generic so that the printer, the verifier and the engine file
// handle every op the same way; each op's definition says which names it takes.
class KILN_API Attrs {
 public:
  Attrs() = default;
  Attrs(std::initializer_list<std::pair<const std::string, AttrValue>> init) : values_(init) {}

  Attrs& set(const std::string& name, AttrValue value) {
    values_[name] = std::move(value);
    return *this;
  }
  bool has(const std::string& name) const { return values_.count(name) != 0; }
  void erase(const std::string& name) { values_.erase(name); }
  const std::map<std::string, AttrValue>& values() const { return values_; }

  // nullptr when absent or of another type.
  template <typename T>
  const T* find(const std::string& name) const {
    auto it = values_.find(name);
    return it == values_.end() ? nullptr : std::get_if<T>(&it->second);
  }
  // Typed getters with a default when absent. An int attribute reads as a double too, and an
  // int64 as a constant SymExpr, so callers need not care how a frontend spelled a number.
  int64_t getInt(const std::string& name, int64_t fallback) const;
  double getDouble(const std::string& name, double fallback) const;
  bool getBool(const std::string& name, bool fallback) const;
  std::string getString(const std::string& name, const std::string& fallback) const;
  std::vector<int64_t> getInts(const std::string& name, std::vector<int64_t> fallback) const;
  SymExpr getSym(const std::string& name, SymExpr fallback) const;
  Shape getShape(const std::string& name, Shape fallback) const;
  DType getDType(const std::string& name, DType fallback) const;

  std::string str(std::span<const std::string> symbol_names = {}) const;  // "dim=1, keepdim=true"
  bool operator==(const Attrs& other) const;

 private:
  std::map<std::string, AttrValue> values_;
};

}  // namespace kiln
