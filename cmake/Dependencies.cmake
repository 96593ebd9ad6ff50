# Dependencies.cmake — finds every library skein uses; all come from Debian packages
# (.ci/install-deps.sh installs them). CUDA + NCCL are optional (SKEIN_CUDA).

# OpenBLAS: GEMM. Debian's pthread build; cblas.h lives beside it.
find_library(OPENBLAS_LIBRARY NAMES openblas REQUIRED)
find_path(OPENBLAS_INCLUDE_DIR cblas.h PATH_SUFFIXES openblas-pthread openblas REQUIRED)
add_library(skein::blas INTERFACE IMPORTED)
target_link_libraries(skein::blas INTERFACE ${OPENBLAS_LIBRARY})
target_include_directories(skein::blas INTERFACE ${OPENBLAS_INCLUDE_DIR})

find_package(Threads REQUIRED)
find_package(MPI REQUIRED COMPONENTS CXX)
find_package(HDF5 REQUIRED COMPONENTS C)
find_package(yaml-cpp REQUIRED)
find_package(Boost REQUIRED COMPONENTS program_options)
if(SKEIN_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()
if(SKEIN_BUILD_BENCH)
  find_package(benchmark REQUIRED)
endif()

# CUDA: looked for under /usr/local/cuda as well as on PATH.
set(SKEIN_HAVE_CUDA OFF)
if(NOT SKEIN_CUDA STREQUAL "OFF")
  if(NOT CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES 90)  # H100 / H200
    endif()
    enable_language(CUDA)
    # CMake 3.25 predates nvcc 13's C++20 flag: tell it the flag, so the CUDA sources compile at
    # skein's C++20 (they include skein's headers).
    set(CMAKE_CUDA20_STANDARD_COMPILE_OPTION "-std=c++20")
    set(CMAKE_CUDA20_EXTENSION_COMPILE_OPTION "-std=c++20")
    list(APPEND CMAKE_CUDA_COMPILE_FEATURES cuda_std_20)
    find_package(CUDAToolkit REQUIRED)
    set(SKEIN_HAVE_CUDA ON)
    find_library(NCCL_LIBRARY NAMES nccl HINTS ${CUDAToolkit_LIBRARY_DIR} /usr/local/cuda/lib64)
    message(STATUS "skein: CUDA ${CUDAToolkit_VERSION} found, building the CUDA backend"
                   " (NCCL: ${NCCL_LIBRARY})")
  elseif(SKEIN_CUDA STREQUAL "ON")
    message(FATAL_ERROR "SKEIN_CUDA=ON but no CUDA compiler was found")
  else()
    message(STATUS "skein: CUDA not found, building without the CUDA backend")
  endif()
endif()
