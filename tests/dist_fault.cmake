# A rank that fails mid-run ends every rank promptly, with output that says why (tests/dist_fault.cpp on 2 ranks):
#   hang:  rank 1 sleeps 20 s; with TINYVID_DIST_TIMEOUT=3 rank 0 names the all_reduce that did not complete
#   exit:  rank 1 calls std::exit(3); rank 0 stops at once, naming rank 1, not at its timeout (60 s here)
#   abort: rank 1 calls abort() with a message; every rank ends with exit code 2
#   throw: rank 1 throws out of main; the launcher ends rank 0
# Each within 12 s (mpirun's start included). OPENMPI=ON also checks the exit code mpirun passes on.
# cmake -DMODE=hang|exit|abort|throw -DMPIEXEC=... -DNP_FLAG=-n "-DFLAGS=..." -DPROGRAM=... [-DOPENMPI=ON] -P this
set(ENV{TINYVID_DIST_TIMEOUT} 60)
set(expect_rc 2)
if(MODE STREQUAL "hang")
  set(ENV{TINYVID_DIST_TIMEOUT} 3)
  string(CONCAT expect "rank 0: all_reduce #3 \\(1,024 floats\\) did not complete within 3 s: another rank died, "
         "hung or diverged; the last checkpoint is intact, resume with --resume")
elseif(MODE STREQUAL "exit")
  string(CONCAT lost "rank 0: all_reduce #3 \\(1,024 floats\\) cannot complete: rank 1 has ended after 2 "
         "collectives \\(its output may say why\\)")
  set(expect "rank 1: leaving with exit code 3 on purpose" "${lost}")
elseif(MODE STREQUAL "abort")
  set(expect "rank 1: a data file is missing \\(on purpose\\)")
elseif(MODE STREQUAL "throw")
  set(expect "thrown on purpose")
  set(expect_rc "")  # a signal's code (SIGABRT), as the launcher reports it
else()
  message(FATAL_ERROR "MODE must be hang, exit, abort or throw, got '${MODE}'")
endif()

separate_arguments(flags UNIX_COMMAND "${FLAGS}")
string(TIMESTAMP start "%s")
execute_process(COMMAND ${MPIEXEC} ${NP_FLAG} 2 ${flags} ${PROGRAM} ${MODE}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 60)
string(TIMESTAMP end "%s")
math(EXPR seconds "${end} - ${start}")
set(text "${out}${err}")
set(problems "")
if(rc EQUAL 0 OR NOT rc MATCHES "^[0-9]+$")
  list(APPEND problems "exit code '${rc}', expected a failure")
elseif(OPENMPI AND expect_rc AND NOT rc EQUAL expect_rc)
  list(APPEND problems "exit code ${rc}, expected ${expect_rc} (tv::dist::kAbortExitCode)")
endif()
if(seconds GREATER 12)
  list(APPEND problems "took ${seconds} s, expected at most 12")
endif()
foreach(e IN LISTS expect)
  if(NOT text MATCHES "${e}")
    list(APPEND problems "the output does not match: ${e}")
  endif()
endforeach()
if(text MATCHES "all steps done")
  list(APPEND problems "a rank went on past the failure")
endif()
if(problems)
  list(JOIN problems "\n  " p)
  message(FATAL_ERROR "dist_fault ${MODE}:\n  ${p}\noutput:\n${text}")
endif()
message(STATUS "dist_fault ${MODE}: exit code ${rc} after ${seconds} s\n${text}")
