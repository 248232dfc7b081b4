// kiln::enter_compute_stream / kiln::exit_compute_stream (DESIGN.md 6, seed 000): a compiled
// graph calls enter once at its start and exit once at its end. On the default stream, enter
// moves the work to a compute stream that first waits on the default stream, and exit makes the
// default stream wait on the compute stream and switches back; on any other stream both do
// nothing. The engines and the PyTorch segments between them then share one stream, so a graph
// with graph breaks orders its work on the device and never synchronizes the host.
//
// The ops take the graph's input / output tensors only so that they have a device to dispatch
// on and a place in the graph: enter before everything, exit after every output is made.
#include <torch/library.h>

#ifdef KILN_HAS_CUDA
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDAStream.h>

#include <vector>
#endif

namespace kiln::torch_ext {

namespace {

#ifdef KILN_HAS_CUDA

// What enter did, for the matching exit on this thread (graphs nest when a compiled module
// calls another).
struct Entered {
  bool switched = false;
  c10::cuda::CUDAStream caller;
};
thread_local std::vector<Entered> entered;

std::optional<c10::DeviceIndex> cuda_device_of(at::TensorList tensors) {
  for (const at::Tensor& t : tensors)
    if (t.defined() && t.is_cuda()) return t.device().index();
  return std::nullopt;
}

// One compute stream per device, from torch's pool, kept for the process (torch's pool
// streams are never destroyed either).
c10::cuda::CUDAStream compute_stream(c10::DeviceIndex device) {
  static std::mutex mutex;
  static std::vector<std::optional<c10::cuda::CUDAStream>> streams;
  std::lock_guard<std::mutex> lock(mutex);
  if (streams.size() <= static_cast<size_t>(device)) streams.resize(device + 1);
  auto& s = streams[device];
  if (!s) s = c10::cuda::getStreamFromPool(/*isHighPriority=*/false, device);
  return *s;
}

void enter_cuda(at::TensorList inputs) {
  auto device = cuda_device_of(inputs);
  if (!device) {
    entered.push_back({false, c10::cuda::getCurrentCUDAStream()});
    return;
  }
  c10::cuda::CUDAStream caller = c10::cuda::getCurrentCUDAStream(*device);
  if (caller != c10::cuda::getDefaultCUDAStream(*device)) {
    entered.push_back({false, caller});
    return;
  }
  c10::cuda::CUDAStream compute = compute_stream(*device);
  at::cuda::CUDAEvent ready;  // device-side ordering only: no host wait anywhere here
  ready.record(caller);
  ready.block(compute);
  c10::cuda::setCurrentCUDAStream(compute);
  entered.push_back({true, caller});
}

void exit_cuda(at::TensorList /*outputs*/, at::TensorList /*inputs*/) {
  TORCH_CHECK(!entered.empty(), "kiln::exit_compute_stream without enter_compute_stream on this thread");
  Entered e = entered.back();
  entered.pop_back();
  if (!e.switched) return;
  c10::cuda::CUDAStream compute = c10::cuda::getCurrentCUDAStream(e.caller.device_index());
  at::cuda::CUDAEvent done;
  done.record(compute);
  done.block(e.caller);
  c10::cuda::setCurrentCUDAStream(e.caller);
}

#endif  // KILN_HAS_CUDA

void noop_enter(at::TensorList) {}
void noop_exit(at::TensorList, at::TensorList) {}

}  // namespace

}  // namespace kiln::torch_ext

TORCH_LIBRARY_FRAGMENT(kiln, m) {
  m.def("enter_compute_stream(Tensor[] inputs) -> ()");
  // `inputs` repeats the tensors enter saw, so exit dispatches to the same device as enter even
  // when the graph's outputs live elsewhere (or there are none).
  m.def("exit_compute_stream(Tensor[] outputs, Tensor[] inputs) -> ()");
}

// CPU (and tracing) graphs carry the ops too; they do nothing there.
TORCH_LIBRARY_IMPL(kiln, CPU, m) {
  m.impl("enter_compute_stream", &kiln::torch_ext::noop_enter);
  m.impl("exit_compute_stream", &kiln::torch_ext::noop_exit);
}
TORCH_LIBRARY_IMPL(kiln, Meta, m) {
  m.impl("enter_compute_stream", &kiln::torch_ext::noop_enter);
  m.impl("exit_compute_stream", &kiln::torch_ext::noop_exit);
}

#ifdef KILN_HAS_CUDA
TORCH_LIBRARY_IMPL(kiln, CUDA, m) {
  m.impl("enter_compute_stream", &kiln::torch_ext::enter_cuda);
  m.impl("exit_compute_stream", &kiln::torch_ext::exit_cuda);
}
#endif
