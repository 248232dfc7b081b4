# Third-party dependencies, all from the distribution (apt) so a fresh machine needs no network
# beyond its package manager: OpenBLAS for CPU GEMM, FlatBuffers for the engine file, GoogleTest.
find_package(Threads REQUIRED)

set(BLA_VENDOR OpenBLAS)
find_package(BLAS REQUIRED)
find_path(KILN_CBLAS_INCLUDE_DIR cblas.h PATH_SUFFIXES openblas openblas-pthread)
if(NOT KILN_CBLAS_INCLUDE_DIR)
  message(FATAL_ERROR "cblas.h not found: install libopenblas-dev")
endif()

find_package(FlatBuffers CONFIG QUIET)
find_program(FLATC_EXECUTABLE flatc REQUIRED)
find_path(KILN_FLATBUFFERS_INCLUDE_DIR flatbuffers/flatbuffers.h REQUIRED)

if(KILN_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()

# CUTLASS (header-only, optional): Kiln's Hopper GEMMs with fused epilogues (sm90a/). From
# KILN_CUTLASS_DIR (the directory holding cutlass/ and cute/), else from the nvidia-cutlass
# PyPI wheel (tools/setup.sh installs it when nvcc is present). Without it those tactics are not
# built and cuBLASLt serves every linear.
if(KILN_CUDA AND NOT KILN_CUTLASS_DIR)
  find_package(Python COMPONENTS Interpreter QUIET)
  if(Python_EXECUTABLE)
    execute_process(
      COMMAND ${Python_EXECUTABLE} -c
              "import cutlass_library, os; print(os.path.join(os.path.dirname(cutlass_library.__file__), 'source', 'include'))"
      OUTPUT_VARIABLE kiln_cutlass_guess OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  endif()
  find_path(KILN_CUTLASS_DIR cutlass/cutlass.h HINTS ${kiln_cutlass_guess} $ENV{CUTLASS_DIR}/include
            NO_DEFAULT_PATH)
endif()
if(KILN_CUDA AND KILN_CUTLASS_DIR AND EXISTS ${KILN_CUTLASS_DIR}/cute/tensor.hpp)
  set(KILN_HAVE_CUTLASS ON)
  message(STATUS "CUTLASS: ${KILN_CUTLASS_DIR}")
elseif(KILN_CUDA)
  set(KILN_HAVE_CUTLASS OFF)
  message(STATUS "CUTLASS: not found (pip install nvidia-cutlass, or set KILN_CUTLASS_DIR): "
                 "the fused Hopper GEMM tactics are not built")
endif()
