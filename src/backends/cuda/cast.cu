// cast: every dtype pair, strided input, the CPU backend's rules (float->int truncates toward
// zero and saturates, NaN -> 0; ->bool is x != 0; floats round to nearest even; int->int wraps).
// Also launch_convert, which other families use to stage operands in another dtype. Contiguous
// aligned casts involving a float dtype take the vectorized path (elementwise_vec.cuh).

#include "backends/cuda/device_util.cuh"
#include "backends/cuda/elementwise_vec.cuh"

namespace kiln::cuda {
namespace {

template <typename U, typename T>
__device__ __forceinline__ U convert(T v) {
  if constexpr (std::is_same_v<U, T>) {
    return v;
  } else if constexpr (std::is_same_v<U, bool>) {
    return to_float(v) != 0.0f;
  } else if constexpr (kIsFloatLike<T>) {
    return from_float<U>(to_float(v));
  } else if constexpr (kIsFloatLike<U>) {
    return from_float<U>(static_cast<float>(v));
  } else {
    return static_cast<U>(v);
  }
}

template <typename T, typename U>
__global__ void cast_kernel(StridedIndex<1> ix, const T* x, U* y, int64_t n) {
  KILN_GRID_STRIDE(i, n) { y[i] = convert<U>(x[ix.offset(i)]); }
}

template <typename T, typename U>
struct ConvertOp {
  __device__ __forceinline__ U operator()(T v) const { return convert<U>(v); }
};

Status run_cast(const KernelArgs& args) {
  const TensorView& in = args.inputs[0];
  const TensorView& out = args.outputs[0];
  if (!same_shape(in, out)) return kernel_error(args, "output shape differs from the input's");
  return launch_convert(args, in, out.data, out.dtype);
}

}  // namespace

Status launch_convert(const KernelArgs& args, const TensorView& src, void* dst, DType dst_dtype) {
  const int64_t n = src.numel();
  if (n == 0) return Status::Ok();
  const StridedIndex<1> ix = make_index(src);
  const bool flat = is_flat(ix);
  cudaStream_t stream = stream_of(args);
  dispatch_all(src.dtype, [&](auto in_tag) {
    using T = typename decltype(in_tag)::type;
    dispatch_all(dst_dtype, [&](auto out_tag) {
      using U = typename decltype(out_tag)::type;
      const T* x = src.as<const T>();
      U* y = static_cast<U*>(dst);
      if constexpr (kIsFloatLike<T> || kIsFloatLike<U>) {  // the hot pairs; fewer instantiations
        constexpr int V = kVecWidth<T, U>;
        if (flat && aligned_to(x, V * sizeof(T)) && aligned_to(y, V * sizeof(U))) {
          map_vec_kernel<T, U><<<vec_grid(n / V), kBlock, 0, stream>>>(x, y, n, ConvertOp<T, U>{});
          return;
        }
      }
      cast_kernel<T, U><<<grid_for(n), kBlock, 0, stream>>>(ix, x, y, n);
    });
  });
  return check_launch(args, "cast kernel");
}

void register_cast_kernels(std::vector<CudaKernel>& out) {
  out.push_back({OpKind::kCast, "cuda.cast", nullptr, run_cast});
}

}  // namespace kiln::cuda
