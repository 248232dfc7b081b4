// View functions: the output layout of a view op from its input's layout, in elements. They
// read the attributes as inference normalized them; false means "cannot alias, run a kernel".
#include <algorithm>

#include "ir/ops/infer_util.h"

namespace kiln {
namespace {

bool eval_shape(const Shape& shape, std::span<const int64_t> bindings, std::vector<int64_t>& out) {
  out.clear();
  for (const SymExpr& e : shape) {
    auto v = e.evaluate(bindings);
    if (!v.ok() || *v < 0) return false;
    out.push_back(*v);
  }
  return true;
}

bool eval_sym(const Attrs& attrs, const char* name, std::span<const int64_t> bindings,
              int64_t& out) {
  auto v = attrs.getSym(name, SymExpr(0)).evaluate(bindings);
  if (!v.ok()) return false;
  out = *v;
  return true;
}

bool dim_ok(int64_t dim, size_t rank) { return dim >= 0 && static_cast<size_t>(dim) < rank; }

}  // namespace

// The strides of `in` reshaped to `shape` without a copy, or false (PyTorch's computeStride):
// the input's dims fall into chunks that are contiguous among themselves, and each chunk must be
// made of whole output dims. Splitting a dim, inserting or dropping size-1 dims and merging dims
// that are adjacent in memory always succeed.
bool reshape_strides(const ViewLayout& in, std::span<const int64_t> shape, std::vector<int64_t>& strides) {
  int64_t numel = 1;
  for (int64_t d : in.shape) numel *= d;
  strides.assign(shape.size(), 0);
  if (numel == 0 || in.shape.empty()) {  // no element to address: any strides do
    int64_t s = 1;
    for (size_t i = shape.size(); i-- > 0;) {
      strides[i] = s;
      s *= std::max<int64_t>(shape[i], 1);
    }
    return true;
  }
  int64_t view_d = static_cast<int64_t>(shape.size()) - 1;
  int64_t chunk_base_stride = in.strides.back(), tensor_numel = 1, view_numel = 1;
  for (int64_t tensor_d = static_cast<int64_t>(in.shape.size()) - 1; tensor_d >= 0; --tensor_d) {
    const auto t = static_cast<size_t>(tensor_d);
    tensor_numel *= in.shape[t];
    // The end of a chunk: the first dim, or a dim before it that does not continue it in memory.
    if (tensor_d == 0 ||
        (in.shape[t - 1] != 1 && in.strides[t - 1] != tensor_numel * chunk_base_stride)) {
      while (view_d >= 0 && (view_numel < tensor_numel || shape[static_cast<size_t>(view_d)] == 1)) {
        strides[static_cast<size_t>(view_d)] = view_numel * chunk_base_stride;
        view_numel *= shape[static_cast<size_t>(view_d)];
        --view_d;
      }
      if (view_numel != tensor_numel) return false;
      if (tensor_d > 0) {
        chunk_base_stride = in.strides[t - 1];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  return view_d == -1;
}

bool reshape_view(const ViewLayout& in, const Attrs& attrs, std::span<const int64_t> bindings,
                  int, ViewLayout& out) {
  int64_t numel = 1;
  for (int64_t d : in.shape) numel *= d;
  ViewLayout v;
  if (!eval_shape(attrs.getShape("shape", {}), bindings, v.shape)) return false;
  int64_t out_numel = 1;
  for (int64_t d : v.shape) out_numel *= d;
  if (out_numel != numel || !reshape_strides(in, v.shape, v.strides)) return false;
  v.offset = in.offset;
  out = std::move(v);
  return true;
}

bool permute_view(const ViewLayout& in, const Attrs& attrs, std::span<const int64_t>, int,
                  ViewLayout& out) {
  std::vector<int64_t> perm = attrs.getInts("perm", {});
  if (perm.size() != in.shape.size()) return false;
  ViewLayout v;
  v.offset = in.offset;
  for (int64_t p : perm) {
    if (!dim_ok(p, in.shape.size())) return false;
    v.shape.push_back(in.shape[static_cast<size_t>(p)]);
    v.strides.push_back(in.strides[static_cast<size_t>(p)]);
  }
  out = std::move(v);
  return true;
}

bool expand_view(const ViewLayout& in, const Attrs& attrs, std::span<const int64_t> bindings, int,
                 ViewLayout& out) {
  ViewLayout v;
  if (!eval_shape(attrs.getShape("shape", {}), bindings, v.shape)) return false;
  if (v.shape.size() < in.shape.size()) return false;
  size_t lead = v.shape.size() - in.shape.size();
  v.strides.assign(v.shape.size(), 0);  // new leading dims and broadcast dims repeat: stride 0
  for (size_t i = lead; i < v.shape.size(); ++i) {
    int64_t n = in.shape[i - lead];
    if (n == v.shape[i]) {
      v.strides[i] = in.strides[i - lead];
    } else if (n != 1) {
      return false;
    }
  }
  v.offset = in.offset;
  out = std::move(v);
  return true;
}

bool slice_view(const ViewLayout& in, const Attrs& attrs, std::span<const int64_t> bindings, int,
                ViewLayout& out) {
  int64_t dim = attrs.getInt("dim", -1), step = attrs.getInt("step", 1), start, end;
  if (!dim_ok(dim, in.shape.size()) || step <= 0) return false;
  if (!eval_sym(attrs, "start", bindings, start) || !eval_sym(attrs, "end", bindings, end)) {
    return false;
  }
  size_t d = static_cast<size_t>(dim);
  start = std::clamp<int64_t>(start, 0, in.shape[d]);
  end = std::clamp<int64_t>(end, 0, in.shape[d]);
  ViewLayout v = in;
  v.shape[d] = std::max<int64_t>(0, (end - start + step - 1) / step);
  v.strides[d] = in.strides[d] * step;
  v.offset = in.offset + start * in.strides[d];
  out = std::move(v);
  return true;
}

bool select_view(const ViewLayout& in, const Attrs& attrs, std::span<const int64_t> bindings, int,
                 ViewLayout& out) {
  int64_t dim = attrs.getInt("dim", -1), index;
  if (!dim_ok(dim, in.shape.size()) || !eval_sym(attrs, "index", bindings, index)) return false;
  size_t d = static_cast<size_t>(dim);
  if (index < 0 || index >= in.shape[d]) return false;
  ViewLayout v = in;
  v.offset = in.offset + index * in.strides[d];
  v.shape.erase(v.shape.begin() + dim);
  v.strides.erase(v.strides.begin() + dim);
  out = std::move(v);
  return true;
}

bool split_view(const ViewLayout& in, const Attrs& attrs, std::span<const int64_t>, int out_index,
                ViewLayout& out) {
  int64_t dim = attrs.getInt("dim", -1);
  std::vector<int64_t> sizes = attrs.getInts("sizes", {});
  if (!dim_ok(dim, in.shape.size()) || out_index < 0 ||
      static_cast<size_t>(out_index) >= sizes.size()) {
    return false;
  }
  size_t d = static_cast<size_t>(dim);
  int64_t begin = 0;
  for (int i = 0; i < out_index; ++i) begin += sizes[static_cast<size_t>(i)];
  int64_t size = sizes[static_cast<size_t>(out_index)];
  if (begin + size > in.shape[d]) return false;
  ViewLayout v = in;
  v.shape[d] = size;
  v.offset = in.offset + begin * in.strides[d];
  out = std::move(v);
  return true;
}

bool squeeze_view(const ViewLayout& in, const Attrs& attrs, std::span<const int64_t>, int,
                  ViewLayout& out) {
  std::vector<int64_t> dims = attrs.getInts("dims", {});
  std::sort(dims.begin(), dims.end());
  ViewLayout v = in;
  for (size_t i = dims.size(); i-- > 0;) {
    int64_t dim = dims[i];
    if (!dim_ok(dim, in.shape.size()) || in.shape[static_cast<size_t>(dim)] != 1) return false;
    v.shape.erase(v.shape.begin() + dim);
    v.strides.erase(v.strides.begin() + dim);
  }
  out = std::move(v);
  return true;
}

bool unsqueeze_view(const ViewLayout& in, const Attrs& attrs, std::span<const int64_t>, int,
                    ViewLayout& out) {
  int64_t dim = attrs.getInt("dim", -1);
  if (dim < 0 || static_cast<size_t>(dim) > in.shape.size()) return false;
  size_t d = static_cast<size_t>(dim);
  // Any stride fits a size-1 dim; pick the one a contiguous tensor would have.
  int64_t stride = d < in.shape.size() ? in.strides[d] * in.shape[d] : 1;
  ViewLayout v = in;
  v.shape.insert(v.shape.begin() + dim, 1);
  v.strides.insert(v.strides.begin() + dim, stride);
  out = std::move(v);
  return true;
}

}  // namespace kiln
