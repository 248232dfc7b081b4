// Attention kernel lab (not built by CMake; needs a GPU): times attention_mma.cu's two
// tensor-core kernels, the streaming one and the short-sequence one, on the reference models'
// shapes in the models' layout (q, k, v slices of a packed [B, L, 3, H, E] qkv; the output
// [B, L, H, E]), graph-timed, and checks both against a float reference kernel. It compiles the
// kernels' source directly, so a change to them is timed in seconds, without the CMake build:
//   nvcc -DKILN_HAS_CUDA=1 -Iinclude -Isrc -O3 -DNDEBUG -lineinfo -arch=sm_90 \
//     --expt-relaxed-constexpr -std=c++20 tools/attention_lab.cu -o /tmp/attention_lab
//   /tmp/attention_lab ["vit b32"]   (one case by name; ncu -k regex:attention_short ... works)
#include "backends/cuda/attention_mma.cu"
#include <cstdio>
#include <cstring>
#include <vector>
#include <random>

using namespace kiln;
using namespace kiln::cuda;

__global__ void ref_kernel(const half* qkv, float* out, int B, int H, int L, int E, bool causal, float scale) {
  int t = blockIdx.x * blockDim.x + threadIdx.x;
  if (t >= B * H * L) return;
  int i = t % L, h = (t / L) % H, b = t / (L * H);
  const int rs = 3 * H * E;
  const half* q = qkv + (int64_t)b * L * rs + h * E;
  const half* k = q + H * E;
  const half* v = q + 2 * H * E;
  float m = -1e30f;
  int jend = causal ? i + 1 : L;
  for (int j = 0; j < jend; ++j) {
    float s = 0; for (int e = 0; e < E; ++e) s += __half2float(q[i * rs + e]) * __half2float(k[j * rs + e]);
    m = fmaxf(m, s * scale);
  }
  float acc[128]; for (int e = 0; e < E; ++e) acc[e] = 0;
  float sum = 0;
  for (int j = 0; j < jend; ++j) {
    float s = 0; for (int e = 0; e < E; ++e) s += __half2float(q[i * rs + e]) * __half2float(k[j * rs + e]);
    float pr = expf(s * scale - m); sum += pr;
    for (int e = 0; e < E; ++e) acc[e] += pr * __half2float(v[j * rs + e]);
  }
  float* o = out + (((int64_t)b * L + i) * H + h) * E;
  for (int e = 0; e < E; ++e) o[e] = acc[e] / sum;
}

int main(int argc, char** argv) {
  const char* only = argc > 1 ? argv[1] : nullptr;
  struct Z { const char* name; int B, H, L, E; bool causal; };
  cudaStream_t stream; cudaStreamCreate(&stream);
  for (Z z : {Z{"vit b32", 32, 12, 197, 64, false}, Z{"gpt2 b32", 32, 12, 128, 64, true},
              Z{"bert b32", 32, 12, 128, 64, false}, Z{"vit b1", 1, 12, 197, 64, false},
              Z{"gpt2 b1", 1, 12, 128, 64, true}, Z{"bert b1", 1, 12, 128, 64, false}}) {
    if (only && strcmp(only, z.name) != 0) continue;
    const int64_t n_qkv = (int64_t)z.B * z.L * 3 * z.H * z.E, n_o = (int64_t)z.B * z.L * z.H * z.E;
    std::vector<half> h(n_qkv);
    std::mt19937 rng(1); std::normal_distribution<float> nd(0, 1);
    for (auto& x : h) x = __float2half(nd(rng));
    half *qkv, *o; float* ref;
    cudaMalloc(&qkv, n_qkv * 2); cudaMalloc(&o, n_o * 2); cudaMalloc(&ref, n_o * 4);
    cudaMemcpy(qkv, h.data(), n_qkv * 2, cudaMemcpyHostToDevice);
    AttnParams p{};
    p.q = qkv; p.k = qkv + z.H * z.E; p.v = qkv + 2 * z.H * z.E; p.out = o;
    p.causal = z.causal; p.scale = 1.0f / sqrtf((float)z.E);
    p.L = p.S = z.L; p.E = p.Ev = z.E; p.nb = 2;
    p.batch_shape[0] = z.B; p.batch_shape[1] = z.H;
    for (BatchMap* m : {&p.qm, &p.km, &p.vm, &p.om}) { m->div[0] = m->div[1] = 1; }
    p.qm.stride[0] = p.km.stride[0] = p.vm.stride[0] = (int64_t)z.L * 3 * z.H * z.E;
    p.qm.stride[1] = p.km.stride[1] = p.vm.stride[1] = z.E;
    p.om.stride[0] = (int64_t)z.L * z.H * z.E; p.om.stride[1] = z.E;
    p.q_rs = p.k_rs = p.v_rs = 3 * z.H * z.E; p.o_rs = z.H * z.E;
    p.q_cs = p.k_cs = p.v_cs = p.o_cs = 1;
    const int64_t batches = (int64_t)z.B * z.H;
    ref_kernel<<<(batches * z.L + 127) / 128, 128, 0, stream>>>(qkv, ref, z.B, z.H, z.L, z.E, z.causal, p.scale);
    KernelArgs args{"attention", {}, {}, {}, {}};
    args.stream = stream;
    std::vector<float> want(n_o); cudaMemcpy(want.data(), ref, n_o * 4, cudaMemcpyDeviceToHost);
    for (int variant = 0; variant < 2; ++variant) {
      auto go = [&] {
        Status s = variant == 0 ? launch<half, 64>(args, p, batches) : launch_short<half, 64>(args, p, batches);
        if (!s.ok()) { printf("launch failed\n"); exit(1); }
      };
      cudaMemset(o, 0xff, n_o * 2);
      go(); cudaStreamSynchronize(stream);
      std::vector<half> got(n_o); cudaMemcpy(got.data(), o, n_o * 2, cudaMemcpyDeviceToHost);
      double worst = 0;
      for (int64_t i = 0; i < n_o; ++i) worst = fmax(worst, fabs((double)__half2float(got[i]) - want[i]));
      if (!(worst < 1e9)) worst = INFINITY;
      cudaEvent_t a, b; cudaEventCreate(&a); cudaEventCreate(&b);
      for (int i = 0; i < 5; ++i) go();
      const int iters = 50;
      cudaGraph_t g; cudaGraphExec_t ge;
      cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal);
      for (int i = 0; i < iters; ++i) go();
      cudaStreamEndCapture(stream, &g);
      cudaGraphInstantiate(&ge, g, 0);
      cudaGraphLaunch(ge, stream);
      cudaEventRecord(a, stream);
      cudaGraphLaunch(ge, stream);
      cudaEventRecord(b, stream); cudaEventSynchronize(b);
      cudaGraphExecDestroy(ge); cudaGraphDestroy(g);
      float ms; cudaEventElapsedTime(&ms, a, b);
      printf("[lab] %-9s %-6s %8.2f us  max err %.2e  %s\n", z.name, variant ? "short" : "stream",
             ms * 1000 / iters, worst, cudaGetErrorString(cudaGetLastError()));
    }
    cudaFree(qkv); cudaFree(o); cudaFree(ref);
  }
}
