# kiln_add_layer(NAME DIR DEPS...): a static library from every .cpp (and .cu with KILN_CUDA)
# under DIR. Globbing keeps "add a file" from touching CMake; CONFIGURE_DEPENDS re-globs.
function(kiln_add_layer name dir)
  file(GLOB_RECURSE srcs CONFIGURE_DEPENDS ${dir}/*.cpp)
  if(KILN_CUDA)
    file(GLOB_RECURSE cu_srcs CONFIGURE_DEPENDS ${dir}/*.cu)
    # Files under rdc/ need relocatable device code, files under sm90a/ the sm_90a target: their
    # own targets (src/CMakeLists.txt).
    list(FILTER cu_srcs EXCLUDE REGEX "/(rdc|sm90a)/[^/]*$")
    list(APPEND srcs ${cu_srcs})
  else()
    # Files named cuda_*.cpp hold the CUDA paths of the builder and runtime.
    list(FILTER srcs EXCLUDE REGEX "/cuda_[^/]*\\.cpp$")
  endif()
  add_library(${name} STATIC ${srcs})
  if(KILN_CUDA)
    target_compile_definitions(${name} PUBLIC KILN_HAS_CUDA=1)
  endif()
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR}/include ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(${name} PUBLIC ${ARGN})
endfunction()

# kiln_add_test(NAME DIR [LABEL label] LIBS...): one GoogleTest executable from every .cpp under
# DIR. Its tests carry the CTest label LABEL (default cpu; GPU suites pass LABEL gpu).
function(kiln_add_test name dir)
  cmake_parse_arguments(PARSE_ARGV 2 arg "" "LABEL" "")
  if(NOT arg_LABEL)
    set(arg_LABEL cpu)
  endif()
  file(GLOB_RECURSE srcs CONFIGURE_DEPENDS ${dir}/*.cpp)
  if(NOT srcs)
    return()  # a layer with no tests yet
  endif()
  add_executable(${name} ${srcs})
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/tests/cpp)
  target_link_libraries(${name} PRIVATE ${arg_UNPARSED_ARGUMENTS} GTest::gtest GTest::gtest_main)
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60 PROPERTIES LABELS ${arg_LABEL})
endfunction()
