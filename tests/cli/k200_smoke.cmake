# The Kinetics-200 walkthrough's smoke runs on two real Kinetics clips of tests/data/videos
# (tests/data/k200_smoke), each checked for its exit code, its printed metrics and the files it wrote.
#   MODE=cli:     tinyvid train configs/k200_smoke.conf, then tinyvid test with the config's 10x3 views
#                 cmake -DMODE=cli -DCLI=... -DSOURCE_DIR=... -DWORK_DIR=... -P this
#   MODE=example: examples/train_kinetics200 with a tiny model (width 8, 4 frames, 64x64) for 2 epochs
#                 cmake -DMODE=example -DEXAMPLE=... -DDATA=tests/data -DWORK_DIR=... -P this
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})

function(run name expect)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err
                  WORKING_DIRECTORY ${RUN_DIR})
  if(NOT rc EQUAL 0 OR NOT out MATCHES "${expect}")
    message(FATAL_ERROR "${name}: exit code ${rc}, output:\n${out}${err}\nexpected it to match: ${expect}")
  endif()
  message(STATUS "${name}: ${out}")
endfunction()

function(expect_files dir)
  foreach(f ${ARGN})
    if(NOT EXISTS ${dir}/${f})
      message(FATAL_ERROR "no ${dir}/${f}")
    endif()
  endforeach()
endfunction()

set(metrics "top-1 [0-9.]+,? +top-5 [0-9.]+,? +mean class accuracy [0-9.]+")
if(MODE STREQUAL "cli")
  # From the source root, as a user runs it: the config's data paths are relative to it. Outputs in WORK_DIR.
  set(RUN_DIR ${SOURCE_DIR})
  run(train "Epoch \\[2\\]\\[2/2\\].*Epoch\\(val\\) \\[2\\]  top1[a-z_]*: [0-9.]+.*done: 2 epochs, 4 iterations"
      ${CLI} train configs/k200_smoke.conf --work-dir ${WORK_DIR}/run --no-progress)
  expect_files(${WORK_DIR}/run latest.safetensors latest.state.safetensors best.safetensors)
  run(test "tsn_r50_dnr on .*: 2 videos x 30 views, ${metrics}"
      ${CLI} test configs/k200_smoke.conf --checkpoint ${WORK_DIR}/run/latest.safetensors --out ${WORK_DIR}/test --no-progress)
  expect_files(${WORK_DIR}/test results.json per_class.csv confusion.png)
elseif(MODE STREQUAL "example")
  set(RUN_DIR ${WORK_DIR})
  run(train_kinetics200 "epoch 2/2  iter 2/2 .* clips/s  eta .*epoch 2/2  val: ${metrics}  \\(2 videos, 0 unreadable\\).*done:"
      ${EXAMPLE} --data-root ${DATA} --train-list k200_smoke/k200_smoke_train_list_videos.txt
      --val-list k200_smoke/k200_smoke_val_list_videos.txt --classes k200_smoke/classes.txt --train-prefix videos
      --val-prefix videos --width 8 --frames 4 --size 64 --epochs 2 --batch 2 --warmup 2 --log-every 1
      --out ${WORK_DIR}/run)
  expect_files(${WORK_DIR}/run latest.safetensors best.safetensors)
else()
  message(FATAL_ERROR "MODE must be cli or example, got '${MODE}'")
endif()
