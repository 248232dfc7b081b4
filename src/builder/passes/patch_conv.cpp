// Patch convolutions as GEMMs: a 2-D conv whose kernel equals its stride (no padding, no
// dilation, one group) reads every input pixel exactly once, in non-overlapping patches. That is
// a matrix product after a reshape, which is how ViT embeds its 16x16 patches:
//
//   x [N, C, H, W] -> [N, C, H/kh, kh, W/kw, kw] -> permute [N, H/kh, W/kw, C, kh, kw]
//     -> [N*(H/kh)*(W/kw), C*kh*kw] (one copy) -> linear with w viewed as [O, C*kh*kw] (+ bias)
//     -> [N, H/kh, W/kw, O] -> permute (a view) [N, O, H/kh, W/kw]
//
// cuDNN runs such convs as a general implicit GEMM with its layout changes around it (ViT-B/16 at
// batch 32: 230 us in the conv and 57 us in NHWC transposes, where the GEMM is about 15 us).
// Convs with an activation or a fused residual are left alone (this pass runs before conv
// epilogue fusion, so it sees plain conv + bias), as are spatial dims that are not constant
// multiples of the kernel (the conv would drop the remainder).

#include "builder/passes/passes.h"
#include "builder/rewrite.h"

namespace kiln::builder {
namespace {

bool all_equal(const std::vector<int64_t>& v, int64_t x) {
  for (int64_t e : v)
    if (e != x) return false;
  return true;
}

// The kernel dims (kh, kw) when `op` is a patch conv, else nothing.
std::optional<std::pair<int64_t, int64_t>> patch_kernel(const Network& net, const Op& op) {
  if (op.kind != OpKind::kConv || op.inputs.size() > 3) return std::nullopt;
  if (op.attrs.getString("activation", "none") != "none" || op.attrs.getString("layout", "nchw") != "nchw" ||
      op.attrs.getBool("transposed", false) || op.attrs.getInt("groups", 1) != 1)
    return std::nullopt;
  const Shape& x = net.tensor(op.inputs[0]).shape;
  const Shape& w = net.tensor(op.inputs[1]).shape;
  if (x.size() != 4 || w.size() != 4) return std::nullopt;
  for (size_t d = 1; d < 4; ++d)
    if (!x[d].isConstant() || !w[d].isConstant()) return std::nullopt;
  if (!w[0].isConstant()) return std::nullopt;
  const int64_t kh = w[2].constant(), kw = w[3].constant();
  const std::vector<int64_t> stride = op.attrs.getInts("stride", {1});
  const std::vector<int64_t> padding = op.attrs.getInts("padding", {0});
  const std::vector<int64_t> dilation = op.attrs.getInts("dilation", {1});
  const bool stride_is_kernel = (stride.size() == 2 && stride[0] == kh && stride[1] == kw) ||
                                (stride.size() == 1 && stride[0] == kh && kh == kw);
  if (!stride_is_kernel || !all_equal(padding, 0) || !all_equal(dilation, 1)) return std::nullopt;
  if (kh * kw == 1) return std::nullopt;  // a 1x1 conv: no patches to gather (and cuDNN's is a GEMM)
  if (x[2].constant() % kh != 0 || x[3].constant() % kw != 0) return std::nullopt;
  return std::make_pair(kh, kw);
}

}  // namespace

Result<Network> patch_conv_to_gemm(const Network& network, std::vector<std::string>& log) {
  Rewriter rw(network);
  int64_t rewritten = 0;
  for (const Op& op : network.ops()) {
    auto kernel = patch_kernel(network, op);
    if (!kernel) {
      KILN_RETURN_IF_ERROR(rw.keep(op));
      continue;
    }
    const auto [kh, kw] = *kernel;
    const Shape& xs = network.tensor(op.inputs[0]).shape;
    const Shape& ws = network.tensor(op.inputs[1]).shape;
    const SymExpr n = xs[0];
    const int64_t c = xs[1].constant(), hp = xs[2].constant() / kh, wp = xs[3].constant() / kw;
    const int64_t o = ws[0].constant(), k = c * kh * kw;
    Network& t = rw.target();
    const std::string& name = op.name;
    KILN_ASSIGN_OR_RETURN(Tensor x, rw.map(op.inputs[0]));
    KILN_ASSIGN_OR_RETURN(Tensor split, t.add(OpKind::kReshape, {x}, {{"shape", Shape{n, c, hp, kh, wp, kw}}},
                                              name + ".patch_split"));
    KILN_ASSIGN_OR_RETURN(Tensor patches, t.add(OpKind::kPermute, {split},
                                                {{"perm", std::vector<int64_t>{0, 2, 4, 1, 3, 5}}},
                                                name + ".patch_gather"));
    KILN_ASSIGN_OR_RETURN(Tensor rows, t.add(OpKind::kReshape, {patches}, {{"shape", Shape{n * hp * wp, k}}},
                                             name + ".patch_rows"));
    // A constant weight is stored at its GEMM shape (same bytes), so later passes see a constant.
    const TensorInfo& wi = network.tensor(op.inputs[1]);
    Tensor w2;
    if (wi.isConstant()) {
      KILN_ASSIGN_OR_RETURN(w2, t.addConstant(wi.name + ".gemm", wi.dtype, std::vector<int64_t>{o, k}, wi.constant));
    } else {
      KILN_ASSIGN_OR_RETURN(Tensor w, rw.map(op.inputs[1]));
      KILN_ASSIGN_OR_RETURN(w2, t.add(OpKind::kReshape, {w}, {{"shape", Shape{o, k}}}, name + ".patch_weight"));
    }
    std::vector<Tensor> linear_inputs{rows, w2};
    if (op.inputs.size() == 3) {
      KILN_ASSIGN_OR_RETURN(Tensor b, rw.map(op.inputs[2]));
      linear_inputs.push_back(b);
    }
    KILN_ASSIGN_OR_RETURN(Tensor y, t.add(OpKind::kLinear, std::move(linear_inputs), {}, name + ".patch_gemm"));
    KILN_ASSIGN_OR_RETURN(Tensor y4, t.add(OpKind::kReshape, {y}, {{"shape", Shape{n, hp, wp, o}}},
                                           name + ".patch_grid"));
    KILN_ASSIGN_OR_RETURN(Tensor out, t.add(OpKind::kPermute, {y4}, {{"perm", std::vector<int64_t>{0, 3, 1, 2}}},
                                            name + ".patch_nchw"));
    t.renameTensor(out, network.tensor(op.outputs[0]).name);
    rw.setMapping(op.outputs[0], out);
    ++rewritten;
  }
  log.push_back(str("patch convolutions: ", rewritten, " conv", rewritten == 1 ? "" : "s",
                    " with kernel = stride rewritten as GEMMs"));
  return rw.finish();
}

}  // namespace kiln::builder
