# Chooses the GEMM backend. Debian's OpenMP build of OpenBLAS (libopenblas0-openmp) shares our
# OpenMP runtime, so its threads never fight ours; Eigen's own GEMM is the fallback. The pthread
# build and the reference BLAS (/usr/lib/x86_64-linux-gnu/blas, ~6 GFLOP/s) are never picked.
set(TINYVID_BLAS_LIBRARY "")
set(TINYVID_GEMM_BACKEND "Eigen")
if(TINYVID_USE_OPENBLAS)
  find_library(TINYVID_OPENBLAS_OPENMP NAMES openblas
    PATHS /usr/lib/${CMAKE_LIBRARY_ARCHITECTURE}/openblas-openmp /usr/lib64/openblas-openmp
    NO_DEFAULT_PATH)
  if(TINYVID_OPENBLAS_OPENMP)
    set(TINYVID_BLAS_LIBRARY ${TINYVID_OPENBLAS_OPENMP})
    set(TINYVID_GEMM_BACKEND "OpenBLAS (OpenMP) via EIGEN_USE_BLAS: ${TINYVID_OPENBLAS_OPENMP}")
  else()
    message(STATUS "tinyvid: OpenBLAS (OpenMP build) not found; install libopenblas-openmp-dev for faster GEMM")
  endif()
endif()
