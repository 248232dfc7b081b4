#pragma once

// Helpers shared by the op family files (private to src/ir/ops).

#include <optional>
#include <string>
#include <vector>

#include "ir/op_def.h"

namespace kiln {

// Typed attribute readers. With a fallback, an absent attribute reads as the fallback; without
// one it is an error naming the op and the attribute. A present attribute of the wrong type is
// always an error. The value read is written back normalized (so defaults become present).
Result<int64_t> attr_int(InferContext& ctx, const std::string& name,
                         std::optional<int64_t> fallback = std::nullopt);
Result<double> attr_double(InferContext& ctx, const std::string& name,
                           std::optional<double> fallback = std::nullopt);
Result<bool> attr_bool(InferContext& ctx, const std::string& name,
                       std::optional<bool> fallback = std::nullopt);
Result<std::string> attr_string(InferContext& ctx, const std::string& name,
                                std::optional<std::string> fallback = std::nullopt);
Result<std::vector<int64_t>> attr_ints(InferContext& ctx, const std::string& name,
                                       std::optional<std::vector<int64_t>> fallback = std::nullopt);
Result<SymExpr> attr_sym(InferContext& ctx, const std::string& name,
                         std::optional<SymExpr> fallback = std::nullopt);
Result<Shape> attr_shape(InferContext& ctx, const std::string& name,
                         std::optional<Shape> fallback = std::nullopt);
Result<DType> attr_dtype(InferContext& ctx, const std::string& name,
                         std::optional<DType> fallback = std::nullopt);

// Input checks; messages name the op and the input tensor.
Status expect_rank(const InferContext& ctx, size_t i, size_t min_rank, size_t max_rank);
Status expect_float(const InferContext& ctx, size_t i);
Status expect_not_bool(const InferContext& ctx, size_t i);
Status expect_index_dtype(const InferContext& ctx, size_t i);  // int32 or int64
Status expect_same_dtype(const InferContext& ctx, size_t i, size_t j);
// Two dims that must be equal: an error only when both are constant and differ.
Status expect_dims_match(const InferContext& ctx, const SymExpr& a, const SymExpr& b,
                         const std::string& what);
// Every symbol in `e` is a declared symbol of the network.
Status expect_declared_symbols(const InferContext& ctx, const SymExpr& e, const std::string& what);
// A computed output dim that must be >= `min`: an error when it is a constant below it, or
// when it is below it for every size the symbols can take.
Status expect_dim_at_least(const InferContext& ctx, const SymExpr& e, int64_t min,
                           const std::string& what);

// Broadcasts the shapes of inputs `idx`; the error names the tensors that do not broadcast.
Result<Shape> broadcast_inputs(const InferContext& ctx, const std::vector<size_t>& idx);
// Normalizes each dim, sorts them and rejects duplicates.
Result<std::vector<int64_t>> normalize_dims(const InferContext& ctx, std::vector<int64_t> dims,
                                            int64_t rank);

// Bounds of `e` under the declared symbol ranges; nullopt when they cannot be computed.
std::optional<std::pair<int64_t, int64_t>> declared_bounds(const InferContext& ctx,
                                                           const SymExpr& e);
// max(e, 0), min(e, d): skip the max/min when it provably changes nothing for any dim sizes
// (symbols >= 0), so normalized shapes stay readable.
SymExpr max0(const SymExpr& e);

std::string ints_str(const std::vector<int64_t>& v);
const char* kind_name(const InferContext& ctx);

// conv, pool, adaptive_avg_pool (src/ir/ops/conv.cpp); register_linalg_ops calls it.
void register_conv_ops(std::vector<OpDef>& table);

// View functions (src/ir/ops/views.cpp).
bool reshape_view(const ViewLayout& in, const Attrs& attrs, std::span<const int64_t> bindings,
                  int out_index, ViewLayout& out);
bool permute_view(const ViewLayout& in, const Attrs& attrs, std::span<const int64_t> bindings,
                  int out_index, ViewLayout& out);
bool expand_view(const ViewLayout& in, const Attrs& attrs, std::span<const int64_t> bindings,
                 int out_index, ViewLayout& out);
bool slice_view(const ViewLayout& in, const Attrs& attrs, std::span<const int64_t> bindings,
                int out_index, ViewLayout& out);
bool select_view(const ViewLayout& in, const Attrs& attrs, std::span<const int64_t> bindings,
                 int out_index, ViewLayout& out);
bool split_view(const ViewLayout& in, const Attrs& attrs, std::span<const int64_t> bindings,
                int out_index, ViewLayout& out);
bool squeeze_view(const ViewLayout& in, const Attrs& attrs, std::span<const int64_t> bindings,
                  int out_index, ViewLayout& out);
bool unsqueeze_view(const ViewLayout& in, const Attrs& attrs, std::span<const int64_t> bindings,
                    int out_index, ViewLayout& out);

}  // namespace kiln
