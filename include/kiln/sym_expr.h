#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "kiln/export.h"
#include "kiln/status.h"

namespace kiln {

// A symbolic dimension: a constant, an input symbol (s0, s1, ... by id), or + - * floordiv mod
// max min of those. Immutable and cheap to copy (shared nodes). Building an expression folds
// constants and simplifies the trivial cases (x+0, x*1, x*0, c op c), so a fully constant shape
// is always made of constant nodes.
//
// floordiv and mod follow Python: floordiv rounds toward negative infinity and mod takes the
// sign of the divisor. Dividing by zero is an error at evaluation.
class KILN_API SymExpr {
 public:
  // The values are part of the engine file format: append only.
  enum class Kind : uint8_t { kConst = 0, kSymbol, kAdd, kSub, kMul, kFloorDiv, kMod, kMax, kMin };

  SymExpr() : SymExpr(int64_t{0}) {}
  SymExpr(int64_t value);  // NOLINT(google-explicit-constructor): dims read naturally as ints
  SymExpr(int value) : SymExpr(static_cast<int64_t>(value)) {}  // NOLINT
  static SymExpr symbol(int32_t id);
  // Builds kind(lhs, rhs) with folding; kind must be binary.
  static SymExpr make(Kind kind, const SymExpr& lhs, const SymExpr& rhs);

  Kind kind() const;
  bool isConstant() const { return kind() == Kind::kConst; }
  bool isSymbol() const { return kind() == Kind::kSymbol; }
  int64_t constant() const;  // valid when isConstant()
  int32_t symbolId() const;  // valid when isSymbol()
  const SymExpr& lhs() const;  // valid for binary kinds
  const SymExpr& rhs() const;

  // Value under the given symbol values (indexed by symbol id).
  Result<int64_t> evaluate(std::span<const int64_t> bindings) const;
  // Smallest and largest value when each symbol i ranges over [lo[i], hi[i]] (interval
  // arithmetic; exact for the monotone expressions shapes are made of).
  Result<std::pair<int64_t, int64_t>> bounds(std::span<const int64_t> lo,
                                             std::span<const int64_t> hi) const;
  // Every symbol id this expression mentions, appended to `ids`.
  void collectSymbols(std::vector<int32_t>& ids) const;

  // "s0*3 + 1"; symbols print as names[id] when names are given, else "s<id>".
  std::string str(std::span<const std::string> names = {}) const;
  // Structural equality (after the folding done at construction).
  bool equals(const SymExpr& other) const;

  friend SymExpr operator+(const SymExpr& a, const SymExpr& b) { return make(Kind::kAdd, a, b); }
  friend SymExpr operator-(const SymExpr& a, const SymExpr& b) { return make(Kind::kSub, a, b); }
  friend SymExpr operator*(const SymExpr& a, const SymExpr& b) { return make(Kind::kMul, a, b); }

  struct Node;

 private:
  explicit SymExpr(std::shared_ptr<const Node> node) : node_(std::move(node)) {}
  std::shared_ptr<const Node> node_;
};

KILN_API SymExpr floordiv(const SymExpr& a, const SymExpr& b);
KILN_API SymExpr mod(const SymExpr& a, const SymExpr& b);
KILN_API SymExpr sym_max(const SymExpr& a, const SymExpr& b);
KILN_API SymExpr sym_min(const SymExpr& a, const SymExpr& b);

using Shape = std::vector<SymExpr>;

KILN_API std::string shape_str(const Shape& shape, std::span<const std::string> names = {});
KILN_API bool shapes_equal(const Shape& a, const Shape& b);
KILN_API SymExpr shape_numel(const Shape& shape);
// Concrete dims, or an error naming `what` if some dim is not constant.
KILN_API Result<std::vector<int64_t>> constant_dims(const Shape& shape, const std::string& what);
KILN_API Shape shape_of(std::span<const int64_t> dims);

// An input symbol: one dynamic dimension shared by every input dim that uses it. min/opt/max
// are its range; an optimization profile may narrow it.
struct SymbolInfo {
  std::string name;
  int64_t min = 1;
  int64_t opt = 1;
  int64_t max = 1;
};

}  // namespace kiln
