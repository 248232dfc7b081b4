#include "format/sym_expr_codec.h"

#include <algorithm>

namespace kiln::format {
namespace {

using Kind = SymExpr::Kind;

bool is_binary(uint8_t kind) {
  return kind >= static_cast<uint8_t>(Kind::kAdd) && kind <= static_cast<uint8_t>(Kind::kMin);
}

Status corrupt(const std::string& message) { return Status(StatusCode::kCorruptFile, message); }

}  // namespace

int32_t SymPoolWriter::intern(const fb::SymNode& node, int64_t tree_size) {
  auto key = std::make_tuple(node.kind(), node.value(), node.symbol(), node.lhs(), node.rhs());
  auto [it, inserted] = index_.emplace(key, static_cast<int32_t>(nodes_.size()));
  if (inserted) {
    nodes_.push_back(node);
    tree_size_.push_back(tree_size);
  }
  return it->second;
}

Result<int32_t> SymPoolWriter::add(const SymExpr& expr, int depth) {
  if (depth > kMaxSymDepth) {
    return invalid_argument("symbolic expression nests deeper than ", kMaxSymDepth,
                            " levels; an engine file cannot hold it");
  }
  const auto kind = static_cast<uint8_t>(expr.kind());
  switch (expr.kind()) {
    case Kind::kConst:
      return intern(fb::SymNode(expr.constant(), 0, 0, 0, kind), 1);
    case Kind::kSymbol:
      return intern(fb::SymNode(0, expr.symbolId(), 0, 0, kind), 1);
    default:
      break;
  }
  KILN_ASSIGN_OR_RETURN(int32_t lhs, add(expr.lhs(), depth + 1));
  KILN_ASSIGN_OR_RETURN(int32_t rhs, add(expr.rhs(), depth + 1));
  int64_t size = 1 + tree_size_[static_cast<size_t>(lhs)] + tree_size_[static_cast<size_t>(rhs)];
  if (size > kMaxSymTreeSize) {
    return invalid_argument("symbolic expression has more than ", kMaxSymTreeSize,
                            " nodes; an engine file cannot hold it");
  }
  return intern(fb::SymNode(0, 0, lhs, rhs, kind), size);
}

Result<std::vector<int32_t>> SymPoolWriter::add(const Shape& shape) {
  std::vector<int32_t> out;
  out.reserve(shape.size());
  for (const SymExpr& dim : shape) {
    KILN_ASSIGN_OR_RETURN(int32_t index, add(dim));
    out.push_back(index);
  }
  return out;
}

Result<std::vector<SymExpr>> decode_sym_pool(const flatbuffers::Vector<const fb::SymNode*>* pool,
                                             size_t num_symbols) {
  std::vector<SymExpr> out;
  if (pool == nullptr) return out;
  // The verifier checks the vector's length prefix for alignment, not its 8-byte elements.
  if (reinterpret_cast<uintptr_t>(pool->Data()) % alignof(fb::SymNode) != 0) {
    return corrupt("sym_nodes: misaligned in the file");
  }
  const size_t n = pool->size();
  out.reserve(n);
  std::vector<int> depth(n);
  std::vector<int64_t> tree_size(n);
  for (size_t i = 0; i < n; ++i) {
    const fb::SymNode* node = pool->Get(static_cast<flatbuffers::uoffset_t>(i));
    const std::string field = str("sym_nodes[", i, "]");
    const uint8_t kind = node->kind();
    if (kind == static_cast<uint8_t>(Kind::kConst)) {
      out.emplace_back(node->value());
      depth[i] = 1;
      tree_size[i] = 1;
      continue;
    }
    if (kind == static_cast<uint8_t>(Kind::kSymbol)) {
      if (node->symbol() < 0 || static_cast<size_t>(node->symbol()) >= num_symbols) {
        return corrupt(str(field, ": symbol ", node->symbol(), " out of range (the engine has ",
                           num_symbols, " symbols)"));
      }
      out.push_back(SymExpr::symbol(node->symbol()));
      depth[i] = 1;
      tree_size[i] = 1;
      continue;
    }
    if (!is_binary(kind)) {
      return corrupt(str(field, ": SymExpr kind ", int{kind}, " out of range (0..",
                         static_cast<int>(Kind::kMin), ")"));
    }
    // Children first: this is what rules out a node pointing at itself or at an ancestor.
    for (int32_t child : {node->lhs(), node->rhs()}) {
      if (child < 0 || static_cast<size_t>(child) >= i) {
        return corrupt(str(field, ": operand ", child, " must name an earlier node (0..",
                           static_cast<int64_t>(i) - 1, ")"));
      }
    }
    const auto l = static_cast<size_t>(node->lhs()), r = static_cast<size_t>(node->rhs());
    depth[i] = 1 + std::max(depth[l], depth[r]);
    tree_size[i] = 1 + tree_size[l] + tree_size[r];
    if (depth[i] > kMaxSymDepth) {
      return corrupt(str(field, ": SymExpr nests deeper than ", kMaxSymDepth, " levels"));
    }
    if (tree_size[i] > kMaxSymTreeSize) {
      return corrupt(str(field, ": SymExpr has more than ", kMaxSymTreeSize, " nodes"));
    }
    out.push_back(SymExpr::make(static_cast<Kind>(kind), out[l], out[r]));
  }
  return out;
}

Result<SymExpr> sym_at(const std::vector<SymExpr>& pool, int64_t index, const std::string& field) {
  if (index < 0 || static_cast<uint64_t>(index) >= pool.size()) {
    return corrupt(str(field, ": SymExpr node ", index, " out of range (the engine has ",
                       pool.size(), " nodes)"));
  }
  return pool[static_cast<size_t>(index)];
}

}  // namespace kiln::format
