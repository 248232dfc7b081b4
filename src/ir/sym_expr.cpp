#include "kiln/sym_expr.h"

#include <algorithm>
#include <array>
#include <limits>

namespace kiln {

// lhs/rhs hold null nodes for constants and symbols (a SymExpr member cannot be default-built
// inside a node without recursing forever).
struct SymExpr::Node {
  Kind kind;
  int64_t value = 0;  // the constant, or the symbol id
  SymExpr lhs{std::shared_ptr<const Node>()};
  SymExpr rhs{std::shared_ptr<const Node>()};

  // Nested in SymExpr, so it may use the private node constructor.
  static SymExpr wrap(std::shared_ptr<const Node> n) { return SymExpr(std::move(n)); }
};

namespace {

using Kind = SymExpr::Kind;
constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
constexpr int64_t kMax = std::numeric_limits<int64_t>::max();

bool is_binary(Kind k) { return k != Kind::kConst && k != Kind::kSymbol; }

// Python semantics; the caller excludes b == 0 and kMin / -1.
int64_t py_floordiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  if (a % b != 0 && ((a < 0) != (b < 0))) --q;
  return q;
}
int64_t py_mod(int64_t a, int64_t b) {
  int64_t r = a % b;
  if (r != 0 && ((r < 0) != (b < 0))) r += b;
  return r;
}

// Applies a binary kind to two constants; false when undefined or overflowing (then the
// expression is kept unfolded and evaluation reports the problem).
bool apply(Kind kind, int64_t a, int64_t b, int64_t& out) {
  switch (kind) {
    case Kind::kAdd: return !__builtin_add_overflow(a, b, &out);
    case Kind::kSub: return !__builtin_sub_overflow(a, b, &out);
    case Kind::kMul: return !__builtin_mul_overflow(a, b, &out);
    case Kind::kFloorDiv:
      if (b == 0 || (a == kMin && b == -1)) return false;
      out = py_floordiv(a, b);
      return true;
    case Kind::kMod:
      if (b == 0) return false;
      out = (b == -1) ? 0 : py_mod(a, b);
      return true;
    case Kind::kMax: out = std::max(a, b); return true;
    case Kind::kMin: out = std::min(a, b); return true;
    default: return false;
  }
}

const char* op_token(Kind k) {
  switch (k) {
    case Kind::kAdd: return " + ";
    case Kind::kSub: return " - ";
    case Kind::kMul: return "*";
    case Kind::kFloorDiv: return "//";
    case Kind::kMod: return "%";
    case Kind::kMax: return "max";
    case Kind::kMin: return "min";
    default: return "?";
  }
}

int precedence(Kind k) {
  switch (k) {
    case Kind::kAdd:
    case Kind::kSub: return 1;
    case Kind::kMul:
    case Kind::kFloorDiv:
    case Kind::kMod: return 2;
    default: return 3;
  }
}

int64_t saturate(__int128 v) {
  if (v > kMax) return kMax;
  if (v < kMin) return kMin;
  return static_cast<int64_t>(v);
}

}  // namespace

SymExpr::SymExpr(int64_t value) {
  // Small constants are shared: shapes are full of them.
  static const std::array<std::shared_ptr<const Node>, 18> kSmall = [] {
    std::array<std::shared_ptr<const Node>, 18> a;
    for (int i = 0; i < 18; ++i) {
      auto n = std::make_shared<Node>();
      n->kind = Kind::kConst;
      n->value = i - 1;
      a[static_cast<size_t>(i)] = std::move(n);
    }
    return a;
  }();
  if (value >= -1 && value <= 16) {
    node_ = kSmall[static_cast<size_t>(value + 1)];
    return;
  }
  auto n = std::make_shared<Node>();
  n->kind = Kind::kConst;
  n->value = value;
  node_ = std::move(n);
}

SymExpr SymExpr::symbol(int32_t id) {
  auto n = std::make_shared<Node>();
  n->kind = Kind::kSymbol;
  n->value = id;
  return Node::wrap(std::move(n));
}

SymExpr::Kind SymExpr::kind() const { return node_->kind; }
int64_t SymExpr::constant() const { return node_->value; }
int32_t SymExpr::symbolId() const { return static_cast<int32_t>(node_->value); }
const SymExpr& SymExpr::lhs() const { return node_->lhs; }
const SymExpr& SymExpr::rhs() const { return node_->rhs; }

namespace {

SymExpr raw(Kind kind, const SymExpr& a, const SymExpr& b);

// Views an expression as term + k (term absent for a pure constant).
struct Affine {
  const SymExpr* term = nullptr;
  int64_t k = 0;
};
Affine split_add(const SymExpr& e) {
  if (e.isConstant()) return {nullptr, e.constant()};
  if (e.kind() == Kind::kAdd && e.rhs().isConstant()) return {&e.lhs(), e.rhs().constant()};
  if (e.kind() == Kind::kSub && e.rhs().isConstant() && e.rhs().constant() != kMin)
    return {&e.lhs(), -e.rhs().constant()};
  return {&e, 0};
}
// Views an expression as term * c.
Affine split_mul(const SymExpr& e) {
  if (e.isConstant()) return {nullptr, e.constant()};
  if (e.kind() == Kind::kMul && e.rhs().isConstant()) return {&e.lhs(), e.rhs().constant()};
  return {&e, 1};
}

SymExpr plus_const(const SymExpr* term, int64_t k) {
  if (!term) return SymExpr(k);
  if (k == 0) return *term;
  if (k > 0 || k == kMin) return raw(Kind::kAdd, *term, SymExpr(k));
  return raw(Kind::kSub, *term, SymExpr(-k));
}

SymExpr fold_add_sub(Kind kind, const SymExpr& a, const SymExpr& b) {
  Affine x = split_add(a), y = split_add(b);
  int64_t k;
  if (kind == Kind::kAdd ? __builtin_add_overflow(x.k, y.k, &k)
                         : __builtin_sub_overflow(x.k, y.k, &k)) {
    return raw(kind, a, b);
  }
  if (!y.term) return plus_const(x.term, k);
  if (!x.term) {
    if (kind == Kind::kAdd) return plus_const(y.term, k);
    return raw(Kind::kSub, SymExpr(k), *y.term);  // k - y
  }
  if (kind == Kind::kSub && x.term->equals(*y.term)) return SymExpr(k);
  SymExpr term = raw(kind, *x.term, *y.term);
  return plus_const(&term, k);
}

SymExpr fold_mul(const SymExpr& a, const SymExpr& b) {
  Affine x = split_mul(a), y = split_mul(b);
  int64_t c;
  if (__builtin_mul_overflow(x.k, y.k, &c)) return raw(Kind::kMul, a, b);
  if (c == 0) return SymExpr(0);
  const SymExpr* term = nullptr;
  SymExpr both;
  if (x.term && y.term) {
    both = raw(Kind::kMul, *x.term, *y.term);
    term = &both;
  } else {
    term = x.term ? x.term : y.term;
  }
  if (!term) return SymExpr(c);
  if (c == 1) return *term;
  return raw(Kind::kMul, *term, SymExpr(c));
}

// Splits a product into its non-constant factors and its constant coefficient.
bool collect_factors(const SymExpr& e, std::vector<SymExpr>& factors, int64_t& coeff) {
  if (e.isConstant()) return !__builtin_mul_overflow(coeff, e.constant(), &coeff);
  if (e.kind() == Kind::kMul) {
    return collect_factors(e.lhs(), factors, coeff) && collect_factors(e.rhs(), factors, coeff);
  }
  factors.push_back(e);
  return true;
}

// (x*y*c1)//(y*c2) -> x*(c1/c2) when every factor of the divisor appears in the dividend and
// c2 divides c1: the division is exact, so floor changes nothing.
bool cancel_factors(const SymExpr& a, const SymExpr& b, SymExpr& out) {
  std::vector<SymExpr> fa, fb;
  int64_t ca = 1, cb = 1;
  if (!collect_factors(a, fa, ca) || !collect_factors(b, fb, cb)) return false;
  if (fb.empty() || cb == 0 || ca % cb != 0) return false;
  for (const SymExpr& f : fb) {
    auto it = std::find_if(fa.begin(), fa.end(), [&](const SymExpr& g) { return g.equals(f); });
    if (it == fa.end()) return false;
    fa.erase(it);
  }
  out = SymExpr(1);
  for (const SymExpr& f : fa) out = fold_mul(out, f);
  out = fold_mul(out, SymExpr(ca / cb));
  return true;
}

SymExpr fold_floordiv(const SymExpr& a, const SymExpr& b) {
  SymExpr cancelled;
  if (cancel_factors(a, b, cancelled)) return cancelled;
  if (!b.isConstant()) return raw(Kind::kFloorDiv, a, b);
  int64_t d = b.constant();
  if (d == 1) return a;
  if (d > 0) {
    Affine x = split_mul(a);
    // (t*c)//d: exact when one divides the other (c, d > 0).
    if (x.term && x.term != &a && x.k > 0) {
      if (x.k % d == 0) return fold_mul(*x.term, SymExpr(x.k / d));
      if (d % x.k == 0) return fold_floordiv(*x.term, SymExpr(d / x.k));
    }
    // (t//c)//d == t//(c*d) for c, d > 0.
    if (a.kind() == Kind::kFloorDiv && a.rhs().isConstant() && a.rhs().constant() > 0) {
      int64_t cd;
      if (!__builtin_mul_overflow(a.rhs().constant(), d, &cd))
        return raw(Kind::kFloorDiv, a.lhs(), SymExpr(cd));
    }
  }
  return raw(Kind::kFloorDiv, a, b);
}

SymExpr fold_mod(const SymExpr& a, const SymExpr& b) {
  if (!b.isConstant()) return raw(Kind::kMod, a, b);
  int64_t d = b.constant();
  if (d == 1 || d == -1) return SymExpr(0);
  if (d != 0) {
    Affine x = split_mul(a);
    if (x.term && x.term != &a && x.k % d == 0) return SymExpr(0);
  }
  return raw(Kind::kMod, a, b);
}

SymExpr fold_minmax(Kind kind, const SymExpr& a, const SymExpr& b) {
  if (a.equals(b)) return a;
  // Constants go right, and nested constants merge: max(max(x, 2), 3) -> max(x, 3).
  if (a.isConstant()) return fold_minmax(kind, b, a);
  if (b.isConstant() && a.kind() == kind && a.rhs().isConstant()) {
    int64_t c;
    apply(kind, a.rhs().constant(), b.constant(), c);
    return raw(kind, a.lhs(), SymExpr(c));
  }
  return raw(kind, a, b);
}

}  // namespace

SymExpr SymExpr::make(Kind kind, const SymExpr& lhs, const SymExpr& rhs) {
  if (lhs.isConstant() && rhs.isConstant()) {
    int64_t v;
    if (apply(kind, lhs.constant(), rhs.constant(), v)) return SymExpr(v);
    return raw(kind, lhs, rhs);
  }
  switch (kind) {
    case Kind::kAdd:
    case Kind::kSub: return fold_add_sub(kind, lhs, rhs);
    case Kind::kMul: return fold_mul(lhs, rhs);
    case Kind::kFloorDiv: return fold_floordiv(lhs, rhs);
    case Kind::kMod: return fold_mod(lhs, rhs);
    case Kind::kMax:
    case Kind::kMin: return fold_minmax(kind, lhs, rhs);
    default: return raw(kind, lhs, rhs);
  }
}

namespace {

SymExpr raw(Kind kind, const SymExpr& a, const SymExpr& b) {
  auto n = std::make_shared<SymExpr::Node>();
  n->kind = kind;
  n->lhs = a;
  n->rhs = b;
  return SymExpr::Node::wrap(std::move(n));
}

}  // namespace

Result<int64_t> SymExpr::evaluate(std::span<const int64_t> bindings) const {
  switch (kind()) {
    case Kind::kConst: return constant();
    case Kind::kSymbol: {
      int32_t id = symbolId();
      if (id < 0 || static_cast<size_t>(id) >= bindings.size()) {
        return invalid_argument("symbol s", id, " is not bound (", bindings.size(),
                                " symbol values given)");
      }
      return bindings[static_cast<size_t>(id)];
    }
    default: break;
  }
  KILN_ASSIGN_OR_RETURN(int64_t a, lhs().evaluate(bindings));
  KILN_ASSIGN_OR_RETURN(int64_t b, rhs().evaluate(bindings));
  int64_t out;
  if ((kind() == Kind::kFloorDiv || kind() == Kind::kMod) && b == 0) {
    return invalid_argument("division by zero evaluating ", str(), " (", rhs().str(), " is 0)");
  }
  if (!apply(kind(), a, b, out)) {
    return out_of_range("integer overflow evaluating ", str(), " (", a, op_token(kind()), b, ")");
  }
  return out;
}

Result<std::pair<int64_t, int64_t>> SymExpr::bounds(std::span<const int64_t> lo,
                                                    std::span<const int64_t> hi) const {
  using Range = std::pair<int64_t, int64_t>;
  switch (kind()) {
    case Kind::kConst: return Range{constant(), constant()};
    case Kind::kSymbol: {
      size_t id = static_cast<size_t>(symbolId());
      if (symbolId() < 0 || id >= lo.size() || id >= hi.size()) {
        return invalid_argument("symbol s", symbolId(), " has no range (", lo.size(),
                                " ranges given)");
      }
      return Range{lo[id], hi[id]};
    }
    default: break;
  }
  KILN_ASSIGN_OR_RETURN(Range a, lhs().bounds(lo, hi));
  KILN_ASSIGN_OR_RETURN(Range b, rhs().bounds(lo, hi));
  using I = __int128;
  switch (kind()) {
    case Kind::kAdd: return Range{saturate(I(a.first) + b.first), saturate(I(a.second) + b.second)};
    case Kind::kSub: return Range{saturate(I(a.first) - b.second), saturate(I(a.second) - b.first)};
    case Kind::kMul: {
      I c[4] = {I(a.first) * b.first, I(a.first) * b.second, I(a.second) * b.first,
                I(a.second) * b.second};
      return Range{saturate(*std::min_element(c, c + 4)), saturate(*std::max_element(c, c + 4))};
    }
    case Kind::kMax:
      return Range{std::max(a.first, b.first), std::max(a.second, b.second)};
    case Kind::kMin:
      return Range{std::min(a.first, b.first), std::min(a.second, b.second)};
    case Kind::kFloorDiv: {
      // Over a divisor range of one sign, a/b is monotone in each argument, so the extremes sit
      // at the corners; a range that spans zero is split around it.
      I best_lo = std::numeric_limits<I>::max(), best_hi = std::numeric_limits<I>::min();
      auto corners = [&](int64_t b0, int64_t b1) {
        for (int64_t x : {a.first, a.second}) {
          for (int64_t y : {b0, b1}) {
            I q = (x == kMin && y == -1) ? -I(kMin) : I(py_floordiv(x, y));
            best_lo = std::min(best_lo, q);
            best_hi = std::max(best_hi, q);
          }
        }
      };
      if (b.second >= 1) corners(std::max<int64_t>(b.first, 1), b.second);
      if (b.first <= -1) corners(b.first, std::min<int64_t>(b.second, -1));
      if (best_lo > best_hi) {
        return invalid_argument("division by zero in ", str(), " (", rhs().str(), " is always 0)");
      }
      return Range{saturate(best_lo), saturate(best_hi)};
    }
    case Kind::kMod: {
      if (b.first == b.second && b.first != 0) {
        int64_t d = b.first;
        // Within one period the remainder is monotone: exact.
        if (py_floordiv(a.first, d) == py_floordiv(a.second, d) && d != -1)
          return Range{py_mod(a.first, d), py_mod(a.second, d)};
        return d > 0 ? Range{0, d - 1} : Range{d + 1, 0};
      }
      if (b.first > 0) {
        int64_t top = b.second - 1;
        if (a.first >= 0) return Range{0, std::min(a.second, top)};
        return Range{0, top};
      }
      if (b.second < 0) return Range{saturate(I(b.first) + 1), 0};
      if (b.first == 0 && b.second == 0) {
        return invalid_argument("division by zero in ", str(), " (", rhs().str(), " is always 0)");
      }
      return Range{b.first < 0 ? saturate(I(b.first) + 1) : 0, b.second > 0 ? b.second - 1 : 0};
    }
    default: return internal_error("bad SymExpr kind");
  }
}

void SymExpr::collectSymbols(std::vector<int32_t>& ids) const {
  if (isSymbol()) {
    if (std::find(ids.begin(), ids.end(), symbolId()) == ids.end()) ids.push_back(symbolId());
    return;
  }
  if (!is_binary(kind())) return;
  lhs().collectSymbols(ids);
  rhs().collectSymbols(ids);
}

std::string SymExpr::str(std::span<const std::string> names) const {
  switch (kind()) {
    case Kind::kConst: return std::to_string(constant());
    case Kind::kSymbol: {
      int32_t id = symbolId();
      if (id >= 0 && static_cast<size_t>(id) < names.size() && !names[static_cast<size_t>(id)].empty())
        return names[static_cast<size_t>(id)];
      return "s" + std::to_string(id);
    }
    case Kind::kMax:
    case Kind::kMin:
      return std::string(op_token(kind())) + "(" + lhs().str(names) + ", " + rhs().str(names) + ")";
    default: break;
  }
  int p = precedence(kind());
  std::string l = lhs().str(names), r = rhs().str(names);
  if (precedence(lhs().kind()) < p) l = "(" + l + ")";
  // The right side keeps parentheses at equal precedence unless regrouping is harmless:
  // a + (b - c) == a + b - c and a*(b*c) == a*b*c; a - (b + c) and a*(b//c) are not.
  int rp = precedence(rhs().kind());
  bool assoc = (kind() == Kind::kAdd && p == rp) ||
               (kind() == Kind::kMul && rhs().kind() == Kind::kMul);
  bool negative_const = rhs().isConstant() && rhs().constant() < 0;
  if (rp < p || (rp == p && !assoc) || negative_const) r = "(" + r + ")";
  return l + op_token(kind()) + r;
}

bool SymExpr::equals(const SymExpr& other) const {
  if (node_ == other.node_) return true;
  if (kind() != other.kind()) return false;
  if (!is_binary(kind())) return node_->value == other.node_->value;
  return lhs().equals(other.lhs()) && rhs().equals(other.rhs());
}

SymExpr floordiv(const SymExpr& a, const SymExpr& b) { return SymExpr::make(Kind::kFloorDiv, a, b); }
SymExpr mod(const SymExpr& a, const SymExpr& b) { return SymExpr::make(Kind::kMod, a, b); }
SymExpr sym_max(const SymExpr& a, const SymExpr& b) { return SymExpr::make(Kind::kMax, a, b); }
SymExpr sym_min(const SymExpr& a, const SymExpr& b) { return SymExpr::make(Kind::kMin, a, b); }

std::string shape_str(const Shape& shape, std::span<const std::string> names) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += shape[i].str(names);
  }
  return s + "]";
}

bool shapes_equal(const Shape& a, const Shape& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!a[i].equals(b[i])) return false;
  }
  return true;
}

SymExpr shape_numel(const Shape& shape) {
  SymExpr n(1);
  for (const SymExpr& d : shape) n = n * d;
  return n;
}

Result<std::vector<int64_t>> constant_dims(const Shape& shape, const std::string& what) {
  std::vector<int64_t> dims;
  dims.reserve(shape.size());
  for (size_t i = 0; i < shape.size(); ++i) {
    if (!shape[i].isConstant()) {
      return invalid_argument(what, " has a symbolic dim ", shape[i].str(), " at position ", i,
                              " of ", shape_str(shape), "; a constant is needed here");
    }
    dims.push_back(shape[i].constant());
  }
  return dims;
}

Shape shape_of(std::span<const int64_t> dims) { return Shape(dims.begin(), dims.end()); }

}  // namespace kiln
