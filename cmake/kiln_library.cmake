# kiln_add_layer(NAME DIR DEPS...): a static library from every .cpp (and .cu with KILN_CUDA)
# under DIR. Globbing keeps "add a file" from touching CMake; CONFIGURE_DEPENDS re-globs.
function(kiln_add_layer name dir)
  file(GLOB_RECURSE srcs CONFIGURE_DEPENDS ${dir}/*.cpp)
  if(KILN_CUDA)
    file(GLOB_RECURSE cu_srcs CONFIGURE_DEPENDS ${dir}/*.cu)
    list(APPEND srcs ${cu_srcs})
  endif()
  add_library(${name} STATIC ${srcs})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR}/include ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(${name} PUBLIC ${ARGN})
endfunction()

# kiln_add_test(NAME DIR LIBS...): one GoogleTest executable from every .cpp under DIR.
function(kiln_add_test name dir)
  file(GLOB_RECURSE srcs CONFIGURE_DEPENDS ${dir}/*.cpp)
  if(NOT srcs)
    return()  # a layer with no tests yet
  endif()
  add_executable(${name} ${srcs})
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/tests/cpp)
  target_link_libraries(${name} PRIVATE ${ARGN} GTest::gtest GTest::gtest_main)
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60 PROPERTIES LABELS cpu)
endfunction()
