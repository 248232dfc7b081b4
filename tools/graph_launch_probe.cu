// GPU machine diagnostic: the host time of cudaGraphLaunch by the graph's shape.
//
// CUDA 12.6 made the launch of a "straight-line" graph (kernel nodes in one chain) cost about the
// same whatever its length; Kiln's engines measured 45-70 ns per node (session 27). This probe
// captures graphs of N kernels in the shapes Kiln's captures take (a chain; the chain with an
// external event record at its end; with a side branch of prefetch launches forked from the chain
// and joined at its end; with a memcpy or memset node; with launch attributes; with kernels that
// take many parameter bytes; with prefetch launches in the chain itself, their outgoing edges
// full or programmatic from the launch-completion port) and times cudaGraphLaunch on the host, as
// a serving loop calls it:
// per round, the GPU idle, one launch, then 20 back to back; the figure is the median over
// rounds of the back-to-back launches' mean. It also prints each graph's device time on an idle
// GPU.
//
//   nvcc -O2 -std=c++20 -arch=sm_90 tools/graph_launch_probe.cu -o /tmp/graph_launch_probe
//   /tmp/graph_launch_probe [spin_ns]   (spin_ns: each kernel's device time, default 2000)
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "probe_check.h"


__device__ void spin(long long ns) {
  const long long start = clock64();
  while (clock64() - start < ns * 2) {  // ~2 GHz
  }
}
// kAdd makes each instantiation its own kernel function (shape "4 functions").
template <int kAdd>
__global__ void spin_kernel(long long ns, int* p) {
  spin(ns);
  if (p && threadIdx.x == 0 && blockIdx.x == 0) *p += kAdd;
}
struct Big {
  long long ns;
  int* p;
  char pad[480];
};
__global__ void kbig(Big b) {
  spin(b.ns);
  if (b.p && threadIdx.x == 0 && blockIdx.x == 0) *b.p += b.pad[7];
}
__global__ void prefetch(const char* p, int bytes) {
  if (threadIdx.x == 0 && blockIdx.x == 0 && bytes > 0) asm volatile("prefetch.global.L2 [%0];" ::"l"(p));
}

struct Shape {
  std::string name;
  bool distinct = false;     // four kernel functions in turn, not one
  bool big_params = false;   // 496 parameter bytes
  bool event_end = false;    // cudaEventRecordExternal at the end
  int branch = 0;            // prefetch launches on a side branch (forked along the chain)
  bool memcpy_mid = false;   // a 4-byte device copy in the middle
  bool memset_mid = false;   // a memset node in the middle
  bool cluster = false;      // cudaLaunchKernelEx with a 1x1x1 cluster attribute
  bool pdl = false;          // programmatic stream serialization on every kernel
  bool upload = false;       // cudaGraphUpload after instantiation
  int inline_prefetch = 0;   // prefetch launches in the chain itself
  bool early = false;        // ... each followed by a programmatic launch-completion edge
  bool event_call = false;   // cudaEventRecord after each launch (not in the graph)
};

long long g_spin = 2000;
int* g_dev = nullptr;
char* g_buf = nullptr;

void launch_kernel(const Shape& s, int i, cudaStream_t st) {
  if (s.big_params) {
    Big b{};
    b.ns = g_spin;
    b.p = g_dev;
    kbig<<<1, 32, 0, st>>>(b);
    return;
  }
  void (*fns[4])(long long, int*) = {spin_kernel<1>, spin_kernel<2>, spin_kernel<3>, spin_kernel<4>};
  auto fn = fns[s.distinct ? i % 4 : 0];
  if (s.cluster || s.pdl) {
    cudaLaunchConfig_t cfg{};
    cfg.gridDim = dim3(1);
    cfg.blockDim = dim3(32);
    cfg.stream = st;
    cudaLaunchAttribute attrs[2];
    int n = 0;
    if (s.cluster) {
      attrs[n].id = cudaLaunchAttributeClusterDimension;
      attrs[n].val.clusterDim.x = 1;
      attrs[n].val.clusterDim.y = 1;
      attrs[n].val.clusterDim.z = 1;
      ++n;
    }
    if (s.pdl) {
      attrs[n].id = cudaLaunchAttributeProgrammaticStreamSerialization;
      attrs[n].val.programmaticStreamSerializationAllowed = 1;
      ++n;
    }
    cfg.attrs = attrs;
    cfg.numAttrs = n;
    CK(cudaLaunchKernelEx(&cfg, fn, g_spin, g_dev));
    return;
  }
  fn<<<1, 32, 0, st>>>(g_spin, g_dev);
}

// Each prefetch node's outgoing edges to kernel nodes become programmatic edges from its
// launch-completion port: the next kernel may start once the prefetch's blocks have begun.
void make_early(cudaGraph_t g) {
  size_t count = 0;
  CK(cudaGraphGetNodes(g, nullptr, &count));
  std::vector<cudaGraphNode_t> nodes(count);
  CK(cudaGraphGetNodes(g, nodes.data(), &count));
  for (cudaGraphNode_t node : nodes) {
    cudaGraphNodeType type{};
    CK(cudaGraphNodeGetType(node, &type));
    if (type != cudaGraphNodeTypeKernel) continue;
    cudaKernelNodeParams kp{};
    CK(cudaGraphKernelNodeGetParams(node, &kp));
    if (kp.func != reinterpret_cast<void*>(&prefetch)) continue;
    size_t nd = 0;
    CK(cudaGraphNodeGetDependentNodes(node, nullptr, nullptr, &nd));
    std::vector<cudaGraphNode_t> deps(nd);
    std::vector<cudaGraphEdgeData> data(nd);
    CK(cudaGraphNodeGetDependentNodes(node, deps.data(), data.data(), &nd));
    for (size_t d = 0; d < nd; ++d) {
      CK(cudaGraphRemoveDependencies(g, &node, &deps[d], &data[d], 1));
      cudaGraphEdgeData e{};
      e.from_port = cudaGraphKernelNodePortLaunchCompletion;
      e.type = cudaGraphDependencyTypeProgrammatic;
      CK(cudaGraphAddDependencies(g, &node, &deps[d], &e, 1));
    }
  }
}

cudaGraphExec_t capture(const Shape& s, int n, cudaStream_t st, cudaStream_t side, cudaEvent_t done,
                        size_t* nodes) {
  cudaEvent_t fork, join;
  CK(cudaEventCreateWithFlags(&fork, cudaEventDisableTiming));
  CK(cudaEventCreateWithFlags(&join, cudaEventDisableTiming));
  CK(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
  int forked = 0;
  const int every = s.branch ? std::max(1, n / s.branch) : 0;
  for (int i = 0; i < n; ++i) {
    if (s.branch && i % every == 0 && forked < s.branch) {
      CK(cudaEventRecord(fork, st));
      CK(cudaStreamWaitEvent(side, fork, 0));
      prefetch<<<1, 32, 0, side>>>(g_buf, 128);
      ++forked;
    }
    if (s.inline_prefetch && i % std::max(1, n / s.inline_prefetch) == 0 && forked < s.inline_prefetch) {
      prefetch<<<1, 32, 0, st>>>(g_buf, 128);
      ++forked;
    }
    if (i == n / 2 && s.memcpy_mid) CK(cudaMemcpyAsync(g_buf + 64, g_buf, 4, cudaMemcpyDeviceToDevice, st));
    if (i == n / 2 && s.memset_mid) CK(cudaMemsetAsync(g_buf + 128, 0, 256, st));
    launch_kernel(s, i, st);
  }
  if (forked && s.branch) {
    CK(cudaEventRecord(join, side));
    CK(cudaStreamWaitEvent(st, join, 0));
  }
  if (s.event_end) CK(cudaEventRecordWithFlags(done, st, cudaEventRecordExternal));
  cudaGraph_t g;
  CK(cudaStreamEndCapture(st, &g));
  if (s.early) make_early(g);
  CK(cudaGraphGetNodes(g, nullptr, nodes));
  cudaGraphExec_t exec;
  CK(cudaGraphInstantiate(&exec, g, 0));
  if (s.upload) CK(cudaGraphUpload(exec, st));
  CK(cudaGraphDestroy(g));
  CK(cudaEventDestroy(fork));
  CK(cudaEventDestroy(join));
  return exec;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

int main(int argc, char** argv) {
  if (argc > 1) g_spin = std::atoll(argv[1]);
  CK(cudaSetDevice(0));
  CK(cudaMalloc(&g_dev, 4));
  CK(cudaMalloc(&g_buf, 1 << 20));
  cudaStream_t st, side;
  CK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
  CK(cudaStreamCreateWithFlags(&side, cudaStreamNonBlocking));
  cudaEvent_t done;
  CK(cudaEventCreateWithFlags(&done, cudaEventDisableTiming));
  int driver = 0, runtime = 0;
  cudaDriverGetVersion(&driver);
  cudaRuntimeGetVersion(&runtime);
  std::printf("driver %d runtime %d, kernel spin %lld ns\n", driver, runtime, g_spin);

  std::vector<Shape> shapes;
  auto add = [&](std::string name, std::function<void(Shape&)> f) {
    Shape s;
    s.name = std::move(name);
    f(s);
    shapes.push_back(s);
  };
  add("chain", [](Shape&) {});
  add("chain, 4 functions", [](Shape& s) { s.distinct = true; });
  add("chain, 496 B params", [](Shape& s) { s.big_params = true; });
  add("chain + event record", [](Shape& s) { s.event_end = true; });
  add("chain + 24-launch branch", [](Shape& s) { s.branch = 24; });
  add("chain + branch + event", [](Shape& s) { s.branch = 24, s.event_end = true; });
  add("chain + memcpy", [](Shape& s) { s.memcpy_mid = true; });
  add("chain + memset", [](Shape& s) { s.memset_mid = true; });
  add("chain, cluster attr", [](Shape& s) { s.cluster = true; });
  add("chain, PDL attr", [](Shape& s) { s.pdl = true; });
  add("chain, uploaded", [](Shape& s) { s.upload = true; });
  add("chain + event call", [](Shape& s) { s.event_call = true; });
  add("chain + 24 inline prefetch", [](Shape& s) { s.inline_prefetch = 24; });
  add("chain + 24 inline, early", [](Shape& s) { s.inline_prefetch = 24, s.early = true; });
  add("chain + 24 early + event", [](Shape& s) { s.inline_prefetch = 24, s.early = true, s.event_end = true; });

  const int kRounds = 15, kCalls = 20;
  std::printf("%-28s %5s %6s %10s %10s %10s %10s\n", "shape", "N", "nodes", "steady_us", "min_round", "first_us",
              "device_us");
  cudaEvent_t t_start, t_end;
  CK(cudaEventCreate(&t_start));
  CK(cudaEventCreate(&t_end));
  for (int n : {16, 64, 128}) {
    for (const Shape& s : shapes) {
      size_t nodes = 0;
      cudaGraphExec_t exec = capture(s, n, st, side, done, &nodes);
      auto launch = [&] {
        CK(cudaGraphLaunch(exec, st));
        if (s.event_call) CK(cudaEventRecord(done, st));
      };
      for (int w = 0; w < 3; ++w) launch();
      CK(cudaStreamSynchronize(st));
      // Device time of one graph on an idle GPU.
      std::vector<double> device;
      for (int r = 0; r < 9; ++r) {
        CK(cudaEventRecord(t_start, st));
        CK(cudaGraphLaunch(exec, st));
        CK(cudaEventRecord(t_end, st));
        CK(cudaEventSynchronize(t_end));
        float ms = 0;
        CK(cudaEventElapsedTime(&ms, t_start, t_end));
        device.push_back(ms * 1e3);
      }
      std::vector<double> steady, first;
      for (int r = 0; r < kRounds; ++r) {
        CK(cudaStreamSynchronize(st));
        std::this_thread::sleep_for(std::chrono::microseconds(200));
        auto t0 = std::chrono::steady_clock::now();
        launch();
        auto t1 = std::chrono::steady_clock::now();
        for (int c = 0; c < kCalls; ++c) launch();
        auto t2 = std::chrono::steady_clock::now();
        first.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
        steady.push_back(std::chrono::duration<double, std::micro>(t2 - t1).count() / kCalls);
      }
      CK(cudaStreamSynchronize(st));
      std::printf("%-28s %5d %6zu %10.2f %10.2f %10.2f %10.1f\n", s.name.c_str(), n, nodes, median(steady),
                  *std::min_element(steady.begin(), steady.end()), median(first), median(device));
      CK(cudaGraphExecDestroy(exec));
    }
  }
  return 0;
}
