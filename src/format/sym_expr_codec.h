#pragma once

#include <cstdint>
#include <map>
#include <tuple>
#include <vector>

#include "format/engine_generated.h"
#include "kiln/status.h"
#include "kiln/sym_expr.h"

namespace kiln::format {

// Limits on one expression, checked by the writer and the reader alike. Depth bounds the
// recursion of everything that walks a SymExpr; the tree size (shared subtrees counted each
// time they occur) bounds the work of walks that do not memoize, which a malicious file could
// otherwise blow up exponentially with a small pool of shared nodes.
inline constexpr int kMaxSymDepth = 256;
inline constexpr int64_t kMaxSymTreeSize = int64_t{1} << 16;

// Builds the file's SymExpr node pool. Equal subtrees share one node; children always come
// before their parent.
class SymPoolWriter {
 public:
  // Index of `expr`'s root node, adding what is missing.
  Result<int32_t> add(const SymExpr& expr) { return add(expr, 1); }
  Result<std::vector<int32_t>> add(const Shape& shape);
  const std::vector<fb::SymNode>& nodes() const { return nodes_; }

 private:
  Result<int32_t> add(const SymExpr& expr, int depth);
  int32_t intern(const fb::SymNode& node, int64_t tree_size);

  std::vector<fb::SymNode> nodes_;
  std::vector<int64_t> tree_size_;
  std::map<std::tuple<uint8_t, int64_t, int32_t, int32_t, int32_t>, int32_t> index_;
};

// Decodes and checks a pool read from a file: kinds in range, symbol ids below
// `num_symbols`, children before parents (so no cycle), depth and tree size within the limits.
Result<std::vector<SymExpr>> decode_sym_pool(const flatbuffers::Vector<const fb::SymNode*>* pool,
                                             size_t num_symbols);

// pool[index], or kCorruptFile naming `field` when index is out of range.
Result<SymExpr> sym_at(const std::vector<SymExpr>& pool, int64_t index, const std::string& field);

}  // namespace kiln::format
