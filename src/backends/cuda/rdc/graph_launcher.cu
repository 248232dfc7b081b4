#include "backends/cuda/rdc/graph_launcher.h"

#include <cuda_runtime.h>

namespace kiln {
namespace {

__global__ void tail_launch_kernel(cudaGraphExec_t target) {
  // A failed launch would skip the whole engine and leave stale outputs: make it a loud error
  // (the stream reports a launch failure) rather than a silent one. It does not happen for a
  // graph that was uploaded and has no other launch pending.
  if (cudaGraphLaunch(target, cudaStreamGraphTailLaunch) != cudaSuccess) __trap();
}

}  // namespace

cudaError_t make_tail_launcher(cudaGraphExec_t target, cudaGraphExec_t* launcher) {
  *launcher = nullptr;
  cudaGraph_t graph = nullptr;
  if (cudaError_t err = cudaGraphCreate(&graph, 0); err != cudaSuccess) return err;
  void* args[] = {&target};
  cudaKernelNodeParams params{};
  params.func = reinterpret_cast<void*>(tail_launch_kernel);
  params.gridDim = dim3(1);
  params.blockDim = dim3(1);
  params.kernelParams = args;
  cudaGraphNode_t node = nullptr;
  cudaError_t err = cudaGraphAddKernelNode(&node, graph, nullptr, 0, &params);
  if (err == cudaSuccess) err = cudaGraphInstantiate(launcher, graph, 0);
  cudaGraphDestroy(graph);
  if (err != cudaSuccess) *launcher = nullptr;
  return err;
}

}  // namespace kiln
