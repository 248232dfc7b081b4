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
