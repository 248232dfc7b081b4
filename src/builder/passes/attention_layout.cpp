// Sequence-major attention output: an attention op read only through permutes that keep the last
// dim last gets seq_major_out (it writes [..., L, H, Ev] memory) and its readers permute that
// instead.
//
// Every transformer merges the heads after attention: HF BERT/GPT-2 with
// attn.transpose(1, 2).reshape(N, L, H * D), torchvision's ViT with
// permute(2, 0, 1, 3).reshape(L * N, E). On [N, H, L, D] memory the reshape after the permute
// merges dims laid out apart, a copy per layer. Written sequence-major, HF's permute becomes the
// identity and its reshape a view; other permutes stay views of the new layout.
//
// The old output o is o' with dims r-3 and r-2 swapped, so a reader permute(o, perm) is
// permute(o', swap o perm), composed here: no permute back for view chains to fold, so the
// result does not hang on which merges that pass can fold.

#include "builder/passes/passes.h"
#include "builder/passes/view_atoms.h"
#include "builder/rewrite.h"

namespace kiln::builder {
namespace {

// Whether `op` is a permute the sequence-major layout can serve: one that keeps the last dim last.
bool keeps_last_dim(const Op& op, size_t rank) {
  if (op.kind != OpKind::kPermute) return false;
  const std::vector<int64_t> perm = op.attrs.getInts("perm", {});
  return perm.size() == rank && perm.back() == static_cast<int64_t>(rank) - 1;
}

}  // namespace

Result<Network> attention_seq_major_out(const Network& network, std::vector<std::string>& log) {
  const auto& ops = network.ops();
  std::vector<std::vector<size_t>> readers(network.tensors().size());
  for (size_t i = 0; i < ops.size(); ++i)
    for (Tensor t : ops[i].inputs) readers[static_cast<size_t>(t.id)].push_back(i);
  const std::vector<bool> is_output = output_flags(network);

  auto eligible = [&](const Op& op) {
    if (op.kind != OpKind::kAttention || op.attrs.getBool("seq_major_out", false)) return false;
    const size_t out = static_cast<size_t>(op.outputs[0].id);
    const size_t rank = network.tensor(op.outputs[0]).shape.size();
    if (rank < 3 || is_output[out] || readers[out].empty()) return false;
    for (size_t r : readers[out])
      if (!keeps_last_dim(ops[r], rank)) return false;
    return true;
  };

  Rewriter rw(network);
  // Old attention output id -> the sequence-major output made for it.
  std::vector<Tensor> seq_major(network.tensors().size());
  int64_t rewritten = 0;
  for (const Op& op : ops) {
    if (eligible(op)) {
      KILN_ASSIGN_OR_RETURN(std::vector<Tensor> inputs, rw.mapAll(op.inputs));
      Attrs attrs = op.attrs;
      attrs.set("seq_major_out", true);
      KILN_ASSIGN_OR_RETURN(Tensor out,
                            rw.target().add(OpKind::kAttention, std::move(inputs), attrs, op.name));
      rw.target().renameTensor(out, network.tensor(op.outputs[0]).name);
      seq_major[static_cast<size_t>(op.outputs[0].id)] = out;
      ++rewritten;
      continue;
    }
    const Tensor source =
        op.kind == OpKind::kPermute ? seq_major[static_cast<size_t>(op.inputs[0].id)] : Tensor{};
    if (!source.valid()) {
      KILN_RETURN_IF_ERROR(rw.keep(op));
      continue;
    }
    // A reader of a rewritten attention: perm composed with the swap of dims r-3 and r-2.
    std::vector<int64_t> perm = op.attrs.getInts("perm", {});
    const int64_t r = static_cast<int64_t>(perm.size());
    for (int64_t& p : perm) p = p == r - 3 ? r - 2 : p == r - 2 ? r - 3 : p;
    if (is_identity_perm(perm)) {
      rw.setMapping(op.outputs[0], source);  // HF's transpose(1, 2): nothing left to do
      continue;
    }
    KILN_ASSIGN_OR_RETURN(Tensor out,
                          rw.target().add(OpKind::kPermute, {source}, {{"perm", perm}}, op.name));
    rw.target().renameTensor(out, network.tensor(op.outputs[0]).name);
    rw.setMapping(op.outputs[0], out);
  }
  log.push_back(str("attention layout: ", rewritten, " attention op", rewritten == 1 ? "" : "s",
                    " write", rewritten == 1 ? "s" : "", " sequence-major output"));
  return rw.finish();
}

}  // namespace kiln::builder
