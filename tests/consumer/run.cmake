# Builds tests/consumer against tinyvid, either installed (find_package) or as a subdirectory (with its
# compiled instances or as headers alone), and runs it.
file(REMOVE_RECURSE ${WORK_DIR})
set(consumer_src ${CMAKE_CURRENT_LIST_DIR})
function(run)
  execute_process(COMMAND ${ARGV} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGV}")
  endif()
endfunction()
if(MODE STREQUAL "find_package")
  run(${CMAKE_COMMAND} -S ${SOURCE_DIR} -B ${WORK_DIR}/tinyvid-build -DCMAKE_BUILD_TYPE=Release
      -DCMAKE_INSTALL_PREFIX=${WORK_DIR}/prefix -DTINYVID_BUILD_TESTS=OFF -DTINYVID_BUILD_EXAMPLES=OFF
      -DTINYVID_BUILD_BENCH=OFF -DTINYVID_BUILD_TOOLS=OFF)
  run(${CMAKE_COMMAND} --build ${WORK_DIR}/tinyvid-build -j2)
  run(${CMAKE_COMMAND} --install ${WORK_DIR}/tinyvid-build)
  run(${CMAKE_COMMAND} -S ${consumer_src} -B ${WORK_DIR}/build -DCMAKE_BUILD_TYPE=Release
      -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix -DEXPECT_COMPILED=1)
elseif(MODE STREQUAL "header_only")  # tinyvid::tinyvid as the headers alone
  run(${CMAKE_COMMAND} -S ${consumer_src} -B ${WORK_DIR}/build -DCMAKE_BUILD_TYPE=Release
      -DTINYVID_SOURCE_DIR=${SOURCE_DIR} -DTINYVID_COMPILED_INSTANCES=OFF -DTINYVID_CUDA=OFF -DEXPECT_COMPILED=0)
else()  # the CPU library (the installed package above has the CUDA backend where nvcc is found)
  run(${CMAKE_COMMAND} -S ${consumer_src} -B ${WORK_DIR}/build -DCMAKE_BUILD_TYPE=Release
      -DTINYVID_SOURCE_DIR=${SOURCE_DIR} -DTINYVID_CUDA=OFF -DEXPECT_COMPILED=1)
endif()
run(${CMAKE_COMMAND} --build ${WORK_DIR}/build -j2)
run(${WORK_DIR}/build/consumer)
