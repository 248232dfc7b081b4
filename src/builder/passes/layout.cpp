// Layout assignment (DESIGN.md 3): 2-D half-precision convs run in NHWC, the layout of cuDNN's
// tensor-core kernels, with no transposes between consecutive convs.
//
// Representation: the IR stays honest. A conv with layout "nhwc" takes and makes [N,H,W,C]
// tensors and a KRSC weight [O,kh,kw,C]; the pass surrounds it with explicit permutes
// (to NHWC: perm [0,2,3,1]; back: [0,3,1,2]), so every other op still sees the NCHW tensors it
// saw before. One forward sweep then removes the transposes between NHWC ops:
// - permute(permute(t, p), q) is built as permute(t, p o q), and as t when that is identity;
// - a permute back to NCHW of NHWC data sinks below pointwise ops (unary, cast, clamp, and
//   binary when both operands are such permutes of equal shapes), which then run on the NHWC
//   data; so does a rank-4 max/avg pool or adaptive avg pool, which becomes layout "nhwc";
// - a constant weight is permuted on the host (no op); dead permutes are dropped.
// Permutes are views, so the ones left (at the edges of the NHWC region) cost a strided read by
// their consumer or a pack by cuDNN, never an extra kernel of their own.
// A conv with fewer input channels than LayoutOptions::min_input_channels (an RGB stem) reads
// zero channels up to it: its KRSC weight is padded here, its input by a pad op, which reads the
// network's NCHW image through the permute in the same pass.

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <optional>

#include "builder/passes/passes.h"
#include "builder/rewrite.h"

namespace kiln::builder {
namespace {

const std::vector<int64_t> kToNhwc = {0, 2, 3, 1};  // also OIHW -> OHWI (KRSC) weights
const std::vector<int64_t> kToNchw = {0, 3, 1, 2};

bool is_identity(const std::vector<int64_t>& perm) {
  for (size_t i = 0; i < perm.size(); ++i)
    if (perm[i] != static_cast<int64_t>(i)) return false;
  return true;
}

// Row-major [d0, d1, d2, d3] bytes -> [d0, d2, d3, channels], d1 <= channels: the permute to
// NHWC/KRSC, with zeros in channels d1 and up.
ConstantBytes permute_to_nhwc(const TensorInfo& t, const std::vector<int64_t>& d, int64_t channels) {
  const size_t es = dtype_size(t.dtype);
  auto out = std::make_shared<std::vector<std::byte>>(
      static_cast<size_t>(d[0] * d[2] * d[3] * channels) * es, std::byte{0});
  const std::byte* src = t.constant->data();
  for (int64_t a = 0; a < d[0]; ++a)
    for (int64_t b = 0; b < d[1]; ++b)
      for (int64_t h = 0; h < d[2]; ++h)
        for (int64_t w = 0; w < d[3]; ++w) {
          const int64_t from = ((a * d[1] + b) * d[2] + h) * d[3] + w;
          const int64_t to = ((a * d[2] + h) * d[3] + w) * channels + b;
          std::memcpy(out->data() + to * es, src + from * es, es);
        }
  return out;
}

class LayoutPass {
 public:
  LayoutPass(const Network& source, const LayoutOptions& options)
      : rw_(source), options_(options), nhwc_data_(source.tensors().size() * 2, false) {}

  Result<Network> run(std::vector<std::string>& log) {
    const Network& src = rw_.source();
    for (const Op& op : src.ops()) {
      bool done = false;
      if (op.kind == OpKind::kConv && wants_nhwc(op)) {
        KILN_RETURN_IF_ERROR(rewrite_conv(op));
        ++convs_;
        done = true;
      } else if (op.kind == OpKind::kPool || op.kind == OpKind::kAdaptiveAvgPool) {
        KILN_ASSIGN_OR_RETURN(done, sink_into_pool(op));
        pools_ += done;
      } else if (op.kind == OpKind::kUnary || op.kind == OpKind::kCast ||
                 op.kind == OpKind::kClamp || op.kind == OpKind::kBinary) {
        KILN_ASSIGN_OR_RETURN(done, sink_through_pointwise(op));
        sunk_ += done;
      }
      if (!done) KILN_RETURN_IF_ERROR(rw_.keep(op));
    }
    KILN_ASSIGN_OR_RETURN(Network out, rw_.finish());
    std::vector<std::string> dce_log;
    KILN_ASSIGN_OR_RETURN(out, eliminate_dead_code(out, dce_log));
    int permutes = 0;
    for (const Op& op : out.ops()) permutes += op.kind == OpKind::kPermute;
    log.push_back(str("layout assignment: ", convs_, " convs and ", pools_, " pools in NHWC, ",
                      sunk_, " pointwise ops moved to NHWC, ", permutes, " permutes left"));
    if (padded_)
      log.push_back(str("layout assignment: ", padded_, " convs with input channels padded to ",
                        options_.min_input_channels));
    return out;
  }

 private:
  Network& net() { return rw_.target(); }

  bool wants_nhwc(const Op& op) const {
    const Network& src = rw_.source();
    const TensorInfo& x = src.tensor(op.inputs[0]);
    if (x.rank() != 4 || src.tensor(op.inputs[1]).rank() != 4) return false;
    if (op.attrs.getBool("transposed", false) || op.attrs.getInt("groups", 1) != 1) return false;
    if (op.attrs.getString("layout", "nchw") != "nchw") return false;
    const bool half = x.dtype == DType::kFloat16 || x.dtype == DType::kBFloat16;
    return half || (options_.all_float_dtypes && x.dtype == DType::kFloat32);
  }

  void mark_nhwc(Tensor t) {
    if (static_cast<size_t>(t.id) >= nhwc_data_.size()) nhwc_data_.resize(t.id * 2 + 1, false);
    nhwc_data_[static_cast<size_t>(t.id)] = true;
  }
  bool is_nhwc(Tensor t) const {
    return static_cast<size_t>(t.id) < nhwc_data_.size() && nhwc_data_[static_cast<size_t>(t.id)];
  }

  // The NHWC tensor `t` (a target tensor) is a permute back to NCHW of, or nullopt.
  std::optional<Tensor> nhwc_source(Tensor t) {
    const TensorInfo& info = net().tensor(t);
    if (info.producer < 0) return std::nullopt;
    const Op& op = net().ops()[static_cast<size_t>(info.producer)];
    if (op.kind != OpKind::kPermute || op.attrs.getInts("perm", {}) != kToNchw) return std::nullopt;
    if (!is_nhwc(op.inputs[0])) return std::nullopt;
    return op.inputs[0];
  }

  // permute(t, perm) in the target, composed with a permute that makes t (t when identity).
  Result<Tensor> permute(Tensor t, std::vector<int64_t> perm, const std::string& name) {
    const TensorInfo& info = net().tensor(t);
    if (info.producer >= 0) {
      const Op& op = net().ops()[static_cast<size_t>(info.producer)];
      if (op.kind == OpKind::kPermute) {
        const std::vector<int64_t> inner = op.attrs.getInts("perm", {});
        if (inner.size() == perm.size()) {
          std::vector<int64_t> composed(perm.size());
          for (size_t i = 0; i < perm.size(); ++i) composed[i] = inner[static_cast<size_t>(perm[i])];
          t = op.inputs[0];
          perm = std::move(composed);
        }
      }
    }
    if (is_identity(perm)) return t;
    return net().add(OpKind::kPermute, {t}, Attrs{{"perm", perm}}, name);
  }

  // Maps the source output of `op` to permute(y_nhwc, to NCHW).
  Status map_back(const Op& op, Tensor y_nhwc) {
    const std::string& name = rw_.source().tensor(op.outputs[0]).name;
    net().renameTensor(y_nhwc, name + ".nhwc");
    mark_nhwc(y_nhwc);
    KILN_ASSIGN_OR_RETURN(Tensor y, permute(y_nhwc, kToNchw, op.name + ".to_nchw"));
    net().renameTensor(y, name);
    rw_.setMapping(op.outputs[0], y);
    return Status::Ok();
  }

  Status rewrite_conv(const Op& op) {
    const Network& src = rw_.source();
    KILN_ASSIGN_OR_RETURN(Tensor x, rw_.map(op.inputs[0]));
    KILN_ASSIGN_OR_RETURN(x, permute(x, kToNhwc, op.name + ".to_nhwc"));
    const TensorInfo& w = src.tensor(op.inputs[1]);
    Tensor wk;
    if (w.isConstant()) {
      KILN_ASSIGN_OR_RETURN(std::vector<int64_t> dims, constant_dims(w.shape, w.name));
      // Fewer channels than the minimum: zero channels up to it, in the weight here and in the
      // input by a pad op; the same sums, in the channel count cuDNN's first-layer kernels read
      // directly.
      const int64_t channels = std::max(dims[1], options_.min_input_channels);
      ConstantBytes bytes = permute_to_nhwc(w, dims, channels);
      const std::vector<int64_t> krsc = {dims[0], dims[2], dims[3], channels};
      if (channels > dims[1]) {
        KILN_ASSIGN_OR_RETURN(
            x, net().add(OpKind::kPad, {x}, Attrs{{"pads", std::vector<int64_t>{0, channels - dims[1]}}},
                         op.name + ".pad_channels"));
        ++padded_;
      }
      KILN_ASSIGN_OR_RETURN(wk, net().addConstant(w.name + ".krsc", w.dtype, krsc, bytes));
    } else {
      KILN_ASSIGN_OR_RETURN(wk, rw_.map(op.inputs[1]));
      KILN_ASSIGN_OR_RETURN(wk, permute(wk, kToNhwc, op.name + ".weight_to_krsc"));
    }
    std::vector<Tensor> inputs = {x, wk};
    if (op.inputs.size() > 2) {
      KILN_ASSIGN_OR_RETURN(Tensor b, rw_.map(op.inputs[2]));
      inputs.push_back(b);
    }
    if (op.inputs.size() > 3) {
      KILN_ASSIGN_OR_RETURN(Tensor z, rw_.map(op.inputs[3]));
      KILN_ASSIGN_OR_RETURN(z, permute(z, kToNhwc, op.name + ".residual_to_nhwc"));
      inputs.push_back(z);
    }
    Attrs attrs = op.attrs;
    attrs.set("layout", std::string("nhwc"));
    KILN_ASSIGN_OR_RETURN(Tensor y, net().add(OpKind::kConv, std::move(inputs), attrs, op.name));
    return map_back(op, y);
  }

  // A rank-4 pool whose input is NHWC data seen through a permute runs in NHWC.
  Result<bool> sink_into_pool(const Op& op) {
    if (op.attrs.getString("layout", "nchw") != "nchw") return false;
    KILN_ASSIGN_OR_RETURN(Tensor x, rw_.map(op.inputs[0]));
    if (net().tensor(x).rank() != 4) return false;
    std::optional<Tensor> nhwc = nhwc_source(x);
    if (!nhwc) return false;
    Attrs attrs = op.attrs;
    attrs.set("layout", std::string("nhwc"));
    KILN_ASSIGN_OR_RETURN(Tensor y, net().add(op.kind, {*nhwc}, attrs, op.name));
    KILN_RETURN_IF_ERROR(map_back(op, y));
    return true;
  }

  // op(permute(a), permute(b)) = permute(op(a, b)) for elementwise ops without broadcasting.
  Result<bool> sink_through_pointwise(const Op& op) {
    if (op.outputs.size() != 1) return false;
    KILN_ASSIGN_OR_RETURN(std::vector<Tensor> mapped, rw_.mapAll(op.inputs));
    std::vector<Tensor> inputs;
    const Shape& out_shape = rw_.source().tensor(op.outputs[0]).shape;
    for (Tensor t : mapped) {
      std::optional<Tensor> nhwc = nhwc_source(t);
      if (!nhwc || !shapes_equal(net().tensor(t).shape, out_shape)) return false;
      inputs.push_back(*nhwc);
    }
    KILN_ASSIGN_OR_RETURN(Tensor y, net().add(op.kind, std::move(inputs), op.attrs, op.name));
    KILN_RETURN_IF_ERROR(map_back(op, y));
    return true;
  }

  Rewriter rw_;
  LayoutOptions options_;
  std::vector<bool> nhwc_data_;  // target tensors holding NHWC data (conv/pool/pointwise outputs)
  int convs_ = 0, pools_ = 0, sunk_ = 0, padded_ = 0;
};

}  // namespace

Result<Network> assign_layout(const Network& network, std::vector<std::string>& log,
                              const LayoutOptions& options) {
  LayoutPass pass(network, options);
  return pass.run(log);
}

Result<Network> assign_nhwc_layout(const Network& network, std::vector<std::string>& log) {
  LayoutOptions options;
  options.min_input_channels = 4;
  // KILN_CONV_PAD_CHANNELS=N: pad to N instead (0: leave the padding to cuDNN).
  if (const char* v = std::getenv("KILN_CONV_PAD_CHANNELS"))
    options.min_input_channels = std::atoi(v);
  return assign_layout(network, log, options);
}

Result<Network> skip_layout(const Network& network, std::vector<std::string>& log) {
  log.push_back("layout assignment: none for this target (NHWC is for CUDA convs)");
  return network;
}

}  // namespace kiln::builder
