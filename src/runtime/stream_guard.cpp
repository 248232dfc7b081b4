#include "kiln/runtime.h"

namespace kiln {
namespace {

// A null stream is a valid selection (the legacy default stream), so "no guard" is tracked apart.
thread_local cudaStream_t t_stream = nullptr;
thread_local bool t_active = false;

}  // namespace

CudaStreamGuard::CudaStreamGuard(cudaStream_t stream) : previous_(t_stream), previous_active_(t_active) {
  t_stream = stream;
  t_active = true;
}

CudaStreamGuard::~CudaStreamGuard() {
  t_stream = previous_;
  t_active = previous_active_;
}

cudaStream_t CudaStreamGuard::current() { return t_stream; }
bool CudaStreamGuard::active() { return t_active; }

}  // namespace kiln
