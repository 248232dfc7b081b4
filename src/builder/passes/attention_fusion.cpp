// Attention fusion: the unfused scaled dot-product attention that exported models spell out
// (HF "eager" attention: matmul(q, k^T), a scale, an additive mask, softmax, matmul with v)
// becomes one attention op, which the backends run without materializing the score matrix.
//
//   s = matmul(q, kt)                kt = permute(k) swapping the last two dims (or any
//   s = s * c | c * s | s / c        tensor, then k = that permute of it); c a one-element
//   s = s + m | m + s                constant; m any tensor that does not widen s
//   s = cast(s, wider float)         optional, with the cast back below (softmax in float32)
//   p = softmax(s, dim = -1)
//   p = cast(p, dtype of s)
//   o = matmul(p, v)            ->   o = attention(q, k, v, m?; scale = c or 1/c or 1)
//
// Every intermediate must have no other use (and be no network output), q, k and v must have
// the scores' rank with batch dims equal to the scores' or 1 (so the attention op's batch
// broadcasting is matmul's), and the mask must not broadcast the scores to a larger shape.

#include <cmath>
#include <cstring>
#include <optional>

#include "builder/passes/passes.h"
#include "builder/rewrite.h"
#include "ir/half.h"

namespace kiln::builder {
namespace {

struct Match {
  size_t final_op = 0;           // the matmul with v
  std::vector<size_t> absorbed;  // chain ops that disappear (the final op excluded)
  Tensor q, kt, k, v, mask;      // k is kt when k_needs_permute
  bool k_needs_permute = false;
  double scale = 1.0;
};

class Matcher {
 public:
  explicit Matcher(const Network& net) : net_(net), uses_(use_counts(net)) {}

  std::optional<Match> match(size_t final_index) const {
    const Op& fin = net_.ops()[final_index];
    if (!is_plain_matmul(fin)) return std::nullopt;
    Match m;
    m.final_op = final_index;
    m.v = fin.inputs[1];
    const DType dtype = info(m.v).dtype;

    // Back from p: cast?, softmax, cast?.
    Tensor t = fin.inputs[0];
    const Op* op = single_use_producer(t);
    if (!op) return std::nullopt;
    bool cast_after = false;
    if (op->kind == OpKind::kCast) {
      cast_after = true;
      m.absorbed.push_back(index_of(*op));
      t = op->inputs[0];
      if (!is_floating(info(t).dtype) || !(op = single_use_producer(t))) return std::nullopt;
    }
    if (op->kind != OpKind::kSoftmax) return std::nullopt;
    const int64_t rank = static_cast<int64_t>(info(t).rank());
    const int64_t dim = op->attrs.getInt("dim", 0);
    if (rank < 2 || (dim != rank - 1 && dim != -1)) return std::nullopt;
    m.absorbed.push_back(index_of(*op));
    t = op->inputs[0];
    if (!(op = single_use_producer(t))) return std::nullopt;
    if (op->kind == OpKind::kCast) {
      if (!cast_after || !is_floating(info(t).dtype)) return std::nullopt;
      m.absorbed.push_back(index_of(*op));
      t = op->inputs[0];
      if (!(op = single_use_producer(t))) return std::nullopt;
    } else if (cast_after) {
      return std::nullopt;
    }
    // t is now the (masked, scaled) scores in the operands' dtype.
    if (info(t).dtype != dtype) return std::nullopt;
    const Shape& scores = info(t).shape;

    // t (of shape `scores`) is made by op: an add of the mask to either operand, or not.
    bool found = false;
    if (is_binary(*op, "add")) {
      for (int side = 0; side < 2 && !found; ++side) {
        const Tensor other = op->inputs[1 - side];
        if (op->inputs[side] == other || info(other).rank() > scores.size() ||
            !shapes_equal(info(op->inputs[side]).shape, scores))
          continue;
        Match trial = m;
        if (!match_scaled_scores(op->inputs[side], scores, rank, trial)) continue;
        m = std::move(trial);
        m.mask = other;
        m.absorbed.push_back(index_of(*op));
        found = true;
      }
    } else {
      found = match_scaled_scores(t, scores, rank, m);
    }
    if (!found) return std::nullopt;

    // Batch dims: q, k, v equal to the scores' or 1; the output is [batch..., L, Ev].
    if (info(m.q).dtype != dtype || info(m.kt).dtype != dtype) return std::nullopt;
    for (Tensor x : {m.q, m.kt, m.v})
      if (!batch_fits(info(x).shape, scores)) return std::nullopt;
    const Shape& out = info(fin.outputs[0]).shape;
    if (out.size() != scores.size() || !out[out.size() - 2].equals(scores[scores.size() - 2]))
      return std::nullopt;
    for (size_t d = 0; d + 2 < scores.size(); ++d)
      if (!out[d].equals(scores[d])) return std::nullopt;
    return m;
  }

 private:
  // t = [s * c | c * s | s / c] with s = matmul(q, kt) (each used only here): fills q, k, scale.
  bool match_scaled_scores(Tensor t, const Shape& scores, int64_t rank, Match& m) const {
    const Op* op = single_use_producer(t);
    if (!op) return false;
    if (is_binary(*op, "mul") || is_binary(*op, "div")) {
      const bool div = is_binary(*op, "div");
      int side = -1;
      std::optional<double> c;
      for (int s = div ? 0 : 1; s >= 0 && !c; --s) {  // s: the side holding the scores
        c = scalar_constant(op->inputs[1 - s]);
        if (c) side = s;
      }
      if (!c || !std::isfinite(*c) || *c == 0.0 ||
          !shapes_equal(info(op->inputs[side]).shape, scores))
        return false;
      m.scale = div ? 1.0 / *c : *c;
      m.absorbed.push_back(index_of(*op));
      t = op->inputs[side];
      if (!(op = single_use_producer(t))) return false;
    }
    if (!is_plain_matmul(*op)) return false;
    m.absorbed.push_back(index_of(*op));
    m.q = op->inputs[0];
    m.kt = op->inputs[1];
    m.k = m.kt;
    m.k_needs_permute = true;
    if (const Op* perm = producer(m.kt); perm && perm->kind == OpKind::kPermute &&
                                         swaps_last_two(perm->attrs.getInts("perm", {}), rank)) {
      m.k = perm->inputs[0];
      m.k_needs_permute = false;
    }
    return true;
  }

  const TensorInfo& info(Tensor t) const { return net_.tensor(t); }
  size_t index_of(const Op& op) const { return static_cast<size_t>(&op - net_.ops().data()); }

  const Op* producer(Tensor t) const {
    const TensorInfo& i = info(t);
    if (i.producer < 0) return nullptr;
    return &net_.ops()[static_cast<size_t>(i.producer)];
  }
  // The producer of an intermediate that nothing else reads (and that is no network output).
  const Op* single_use_producer(Tensor t) const {
    if (uses_[static_cast<size_t>(t.id)] != 1) return nullptr;
    const Op* op = producer(t);
    return op && op->outputs.size() == 1 ? op : nullptr;
  }

  // A matmul without an epilogue (gemm fusion, which runs later, may add an activation).
  static bool is_plain_matmul(const Op& op) {
    return op.kind == OpKind::kMatmul && op.inputs.size() == 2 &&
           op.attrs.getString("activation", "none") == "none";
  }
  static bool is_binary(const Op& op, const char* fn) {
    return op.kind == OpKind::kBinary && op.inputs.size() == 2 &&
           op.attrs.getString("fn", "") == fn;
  }
  static bool swaps_last_two(const std::vector<int64_t>& perm, int64_t rank) {
    if (static_cast<int64_t>(perm.size()) != rank) return false;
    for (int64_t d = 0; d < rank; ++d) {
      const int64_t want = d == rank - 1 ? rank - 2 : d == rank - 2 ? rank - 1 : d;
      if ((perm[d] % rank + rank) % rank != want) return false;
    }
    return true;
  }

  static bool batch_fits(const Shape& x, const Shape& scores) {
    if (x.size() != scores.size()) return false;
    for (size_t d = 0; d + 2 < x.size(); ++d) {
      const bool one = x[d].isConstant() && x[d].constant() == 1;
      if (!one && !x[d].equals(scores[d])) return false;
    }
    return true;
  }

  // The value of a one-element float constant.
  std::optional<double> scalar_constant(Tensor t) const {
    const TensorInfo& i = info(t);
    if (!i.isConstant()) return std::nullopt;
    for (const SymExpr& d : i.shape)
      if (!d.isConstant() || d.constant() != 1) return std::nullopt;
    const std::vector<std::byte>& b = *i.constant;
    if (b.size() != dtype_size(i.dtype)) return std::nullopt;
    switch (i.dtype) {
      case DType::kFloat32: {
        float f;
        std::memcpy(&f, b.data(), sizeof f);
        return f;
      }
      case DType::kFloat16:
      case DType::kBFloat16: {
        uint16_t h;
        std::memcpy(&h, b.data(), sizeof h);
        return i.dtype == DType::kFloat16 ? half_to_float(h) : bf16_to_float(h);
      }
      default:
        return std::nullopt;
    }
  }

  const Network& net_;
  std::vector<int> uses_;
};

}  // namespace

Result<Network> fuse_attention(const Network& network, std::vector<std::string>& log) {
  const std::vector<Op>& ops = network.ops();
  Matcher matcher(network);
  std::vector<std::optional<Match>> at(ops.size());  // the match that ends at op i
  std::vector<bool> absorbed(ops.size(), false);
  int fused = 0;
  for (size_t i = 0; i < ops.size(); ++i) {
    std::optional<Match> m = matcher.match(i);
    if (!m) continue;
    // Chains share no intermediates (each has one use), but one chain's final matmul can be
    // another's first (attention output used as scores): fuse only the first of the two.
    bool clash = false;
    for (size_t a : m->absorbed) clash = clash || absorbed[a] || at[a].has_value();
    if (clash) continue;
    for (size_t a : m->absorbed) absorbed[a] = true;
    at[i] = std::move(m);
    ++fused;
  }

  Rewriter rw(network);
  for (size_t i = 0; i < ops.size(); ++i) {
    const Op& op = ops[i];
    if (absorbed[i]) continue;
    if (!at[i]) {
      KILN_RETURN_IF_ERROR(rw.keep(op));
      continue;
    }
    const Match& m = *at[i];
    KILN_ASSIGN_OR_RETURN(Tensor q, rw.map(m.q));
    KILN_ASSIGN_OR_RETURN(Tensor k, rw.map(m.k));
    KILN_ASSIGN_OR_RETURN(Tensor v, rw.map(m.v));
    if (m.k_needs_permute) {
      const int64_t rank = static_cast<int64_t>(network.tensor(m.k).rank());
      std::vector<int64_t> perm(static_cast<size_t>(rank));
      for (int64_t d = 0; d < rank; ++d) perm[static_cast<size_t>(d)] = d;
      std::swap(perm[static_cast<size_t>(rank - 2)], perm[static_cast<size_t>(rank - 1)]);
      KILN_ASSIGN_OR_RETURN(
          k, rw.target().add(OpKind::kPermute, {k}, {{"perm", perm}}, op.name + ".key"));
    }
    std::vector<Tensor> inputs = {q, k, v};
    if (m.mask.valid()) {
      KILN_ASSIGN_OR_RETURN(Tensor mask, rw.map(m.mask));
      inputs.push_back(mask);
    }
    KILN_ASSIGN_OR_RETURN(
        Tensor out, rw.target().add(OpKind::kAttention, std::move(inputs), {{"scale", m.scale}},
                                    op.name + ".attention"));
    const TensorInfo& want = network.tensor(op.outputs[0]);
    const TensorInfo& got = rw.target().tensor(out);
    if (got.dtype != want.dtype || !shapes_equal(got.shape, want.shape))
      return internal_error("attention fusion at '", op.name, "': fused output ",
                            shape_str(got.shape), " differs from ", shape_str(want.shape));
    rw.target().renameTensor(out, want.name);
    rw.setMapping(op.outputs[0], out);
  }
  log.push_back(
      str("attention fusion: fused ", fused, " attention pattern", fused == 1 ? "" : "s"));
  return rw.finish();
}

}  // namespace kiln::builder
