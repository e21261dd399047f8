# Shared by the CLI test scripts (include(${CMAKE_CURRENT_LIST_DIR}/common.cmake)): run the CLI and check its exit
# code and output, and read a PNG's size.

# Runs ${CLI} ARGN; fails unless it exits with expect_rc and its stdout and stderr together match expect_out.
function(run expect_rc expect_out)
  execute_process(COMMAND ${CLI} ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE stdout ERROR_VARIABLE stderr)
  if(NOT rc EQUAL expect_rc OR NOT "${stdout}${stderr}" MATCHES "${expect_out}")
    message(FATAL_ERROR "tinyvid ${ARGN}: exit code ${rc} (expected ${expect_rc}), output:\n${stdout}${stderr}\n"
                        "expected it to match: ${expect_out}")
  endif()
  message(STATUS "${stdout}${stderr}")
endfunction()

# Width and height of a PNG from its IHDR chunk, into <prefix>_w and <prefix>_h; the file must exist.
function(png_size path prefix)
  if(NOT EXISTS ${path})
    message(FATAL_ERROR "missing ${path}")
  endif()
  file(READ ${path} ihdr OFFSET 16 LIMIT 8 HEX)
  math(EXPR pw "0x${ihdr}" OUTPUT_FORMAT DECIMAL)  # the 8 bytes as one number: width * 2^32 + height
  math(EXPR w "${pw} >> 32")
  math(EXPR h "${pw} & 0xffffffff")
  set(${prefix}_w ${w} PARENT_SCOPE)
  set(${prefix}_h ${h} PARENT_SCOPE)
endfunction()
