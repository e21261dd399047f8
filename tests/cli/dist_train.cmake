# Data-parallel training through the command line, on 2 processes (mpirun) against 1:
# - 2 processes of batch_size 4 reach the weights and running statistics of 1 process of batch_size 8 with
#   stats_group_clips = 4 (1e-5 relative), and log the same losses;
# - a run stopped mid-epoch on 2 processes resumes on 2 to exactly the uninterrupted run's weights, and on 1
#   (batch_size 8, the same samples per iteration) to the single process's weights;
# - `tinyvid test` on 2 processes writes the same results as on 1;
# - a rank that cannot read a video (data.skip_bad = 0) stops every rank at once with the message, the last
#   state untouched, and --resume continues once the video is back, to the uninterrupted run's weights.
# cmake -DCLI=... -DMPIEXEC=... -DMPIFLAGS="..." -DCONFIG=configs/demo_tsn_r18_dnr.conf -DPYTHON=python3
#       -DWORK_DIR=... -P this
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})
separate_arguments(mpiflags UNIX_COMMAND "${MPIFLAGS}")
set(np2 ${MPIEXEC} -n 2 ${mpiflags})

function(run name expect)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0 OR NOT "${out}${err}" MATCHES "${expect}")
    message(FATAL_ERROR "${name}: exit code ${rc}, output:\n${out}${err}\nexpected it to match: ${expect}")
  endif()
  message(STATUS "${name}: ${out}")
endfunction()

# Weights of two files within a relative tolerance (0: identical).
function(same_weights what a b rtol)
  execute_process(COMMAND ${PYTHON} ${CMAKE_CURRENT_LIST_DIR}/compare_safetensors.py ${a} ${b} ${rtol}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${what}: ${a} and ${b} differ:\n${out}${err}")
  endif()
  message(STATUS "${what}: ${out}")
endfunction()

run(synth "videos written" ${CLI} synth --out ${WORK_DIR}/data --classes 2 --train-per-class 8 --val-per-class 3
    --size 32 --frames 8)
# The demo config, shrunk: width 4, 4 frames of 32x32, 2 epochs of 2 iterations (16 videos, 8 per iteration),
# no dropout (its masks are drawn per process), one thread per process.
set(small --set data.root=${WORK_DIR}/data --set num_classes=2 --set model.width=4 --set sampler.num_clips=4
          --set train.crop_size=32 --set train.scales=1 --set epochs=2 --set log_every=1 --set model.dropout=0
          --set schedule.warmup_iters=1 --set threads=1 --set checkpoint_every_iters=1 --no-progress)
set(two_by_4 --set batch_size=4)
set(one_by_8 --set batch_size=8 --set model.stats_group_clips=4)

run(train_np2 "on 2 processes.*done: 2 epochs, 4 iterations"
    ${np2} ${CLI} train ${CONFIG} --work-dir ${WORK_DIR}/np2 ${small} ${two_by_4})
run(train_np1 "done: 2 epochs, 4 iterations" ${CLI} train ${CONFIG} --work-dir ${WORK_DIR}/np1 ${small} ${one_by_8})
same_weights("2 processes x 4 = 1 process x 8 in groups of 4" ${WORK_DIR}/np2/latest.safetensors
             ${WORK_DIR}/np1/latest.safetensors 1e-5)
foreach(dir np2 np1)
  if(NOT EXISTS ${WORK_DIR}/${dir}/best.safetensors OR NOT EXISTS ${WORK_DIR}/${dir}/curves.png)
    message(FATAL_ERROR "train in ${dir} wrote no best.safetensors or curves.png")
  endif()
endforeach()
execute_process(COMMAND ${PYTHON} ${CMAKE_CURRENT_LIST_DIR}/compare_logs.py ${WORK_DIR}/np2/log.json
                ${WORK_DIR}/np1/log.json RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "the logs of 2 processes and of 1 differ:\n${out}${err}")
endif()

# Stopped after 3 iterations (mid-epoch 2), resumed on 2 processes and on 1.
run(stop_np2 "" ${np2} ${CLI} train ${CONFIG} --work-dir ${WORK_DIR}/cut2 ${small} ${two_by_4} --stop-after-iters 3)
file(COPY ${WORK_DIR}/cut2/ DESTINATION ${WORK_DIR}/cut1)
file(COPY ${WORK_DIR}/cut2/ DESTINATION ${WORK_DIR}/cut4)
# 8 samples done in epoch 2; iterations of 3 cannot continue from there: refused with the reason, nothing written.
file(READ ${WORK_DIR}/cut2/latest.state.safetensors cut_state HEX)
execute_process(COMMAND ${CLI} train ${CONFIG} --work-dir ${WORK_DIR}/cut2 ${small} --set batch_size=3 --resume
                --allow-change batch_size RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
file(READ ${WORK_DIR}/cut2/latest.state.safetensors cut_state_after HEX)
if(rc EQUAL 0 OR NOT err MATCHES "stands after 8 samples of epoch 2 .*an iteration takes 3, which does not divide it"
   OR NOT cut_state STREQUAL cut_state_after)
  message(FATAL_ERROR "a resume whose iterations do not divide the samples done: exit code ${rc}\n${out}${err}")
endif()
run(resume_np2 "done: 2 epochs, 4 iterations"
    ${np2} ${CLI} train ${CONFIG} --work-dir ${WORK_DIR}/cut2 ${small} ${two_by_4} --resume)
same_weights("resumed on 2 processes" ${WORK_DIR}/cut2/latest.safetensors ${WORK_DIR}/np2/latest.safetensors 0)
run(resume_np1 "resuming from .*epoch 2, iteration 1 of 2.*done: 2 epochs, 4 iterations"
    ${CLI} train ${CONFIG} --work-dir ${WORK_DIR}/cut1 ${small} ${one_by_8} --resume
    --allow-change batch_size,model.stats_group_clips)
same_weights("2 processes resumed on 1" ${WORK_DIR}/cut1/latest.safetensors ${WORK_DIR}/np1/latest.safetensors 1e-5)
# On 1 process of batch_size 4, an iteration takes 4 samples: the run continues after the same 8 of epoch 2.
run(resume_np1_b4 "samples per iteration: 8 on 2 processes -> 4 on 1 \\(continues at iteration 2 of the epoch\\).*done: 2 epochs, 8 iterations"
    ${CLI} train ${CONFIG} --work-dir ${WORK_DIR}/cut4 ${small} ${two_by_4} --resume)

# Testing: 2 processes score their shares; the report is the one process's.
run(test_np1 "top-1" ${CLI} test ${CONFIG} ${WORK_DIR}/np1/latest.safetensors ${small} ${one_by_8} --out ${WORK_DIR}/t1)
run(test_np2 "top-1" ${np2} ${CLI} test ${CONFIG} ${WORK_DIR}/np1/latest.safetensors ${small} ${two_by_4}
    --out ${WORK_DIR}/t2)
file(READ ${WORK_DIR}/t1/results.json r1)
file(READ ${WORK_DIR}/t2/results.json r2)
string(REGEX REPLACE ",\"seconds\":[0-9.]+" "" r1 "${r1}")
string(REGEX REPLACE ",\"seconds\":[0-9.]+" "" r2 "${r2}")
if(NOT r1 STREQUAL r2)
  message(FATAL_ERROR "tinyvid test on 2 processes and on 1 wrote different results:\n${r1}\n---\n${r2}")
endif()

# A video that cannot be read, in epoch 2: every rank stops, with the message; the state of epoch 1 stays.
run(epoch1 "" ${np2} ${CLI} train ${CONFIG} --work-dir ${WORK_DIR}/fault ${small} ${two_by_4} --stop-after-iters 2
    --set data.skip_bad=0)
file(READ ${WORK_DIR}/fault/latest.state.safetensors state_before HEX)
file(STRINGS ${WORK_DIR}/data/train_list.txt train_lines)
list(GET train_lines 3 victim)
string(REGEX REPLACE " .*" "" victim "${victim}")
set(victim ${WORK_DIR}/data/videos/${victim})
file(RENAME ${victim} ${WORK_DIR}/kept.mp4)
file(WRITE ${victim} "not a video")
string(TIMESTAMP t0 "%s")
execute_process(COMMAND ${np2} ${CLI} train ${CONFIG} --work-dir ${WORK_DIR}/fault ${small} ${two_by_4} --resume
                --set data.skip_bad=0 RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 120)
string(TIMESTAMP t1 "%s")
math(EXPR took "${t1} - ${t0}")
get_filename_component(victim_name ${victim} NAME)
if(rc EQUAL 0 OR NOT "${out}${err}" MATCHES "${victim_name}")
  message(FATAL_ERROR "a rank that cannot read ${victim_name}: exit code ${rc} after ${took} s\n${out}${err}")
endif()
message(STATUS "a rank failed: every rank stopped after ${took} s, exit code ${rc}")
file(READ ${WORK_DIR}/fault/latest.state.safetensors state_after HEX)
if(NOT state_before STREQUAL state_after)
  message(FATAL_ERROR "the failed run changed the last good state")
endif()
file(REMOVE ${victim})
file(RENAME ${WORK_DIR}/kept.mp4 ${victim})
run(fault_resume "done: 2 epochs, 4 iterations" ${np2} ${CLI} train ${CONFIG} --work-dir ${WORK_DIR}/fault ${small}
    ${two_by_4} --resume --set data.skip_bad=0)
same_weights("resumed after a failed rank" ${WORK_DIR}/fault/latest.safetensors ${WORK_DIR}/np2/latest.safetensors 0)
