# Builds tests/consumer against tinyvid, either installed (find_package) or as a subdirectory, and runs it.
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
      -DTINYVID_BUILD_BENCH=OFF)
  run(${CMAKE_COMMAND} --install ${WORK_DIR}/tinyvid-build)
  run(${CMAKE_COMMAND} -S ${consumer_src} -B ${WORK_DIR}/build -DCMAKE_BUILD_TYPE=Release
      -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix)
else()
  run(${CMAKE_COMMAND} -S ${consumer_src} -B ${WORK_DIR}/build -DCMAKE_BUILD_TYPE=Release
      -DTINYVID_SOURCE_DIR=${SOURCE_DIR})
endif()
run(${CMAKE_COMMAND} --build ${WORK_DIR}/build -j2)
run(${WORK_DIR}/build/consumer)
