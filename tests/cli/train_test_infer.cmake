# The main job's commands end to end on a tiny synthetic dataset: tinyvid synth, train (one epoch), a resumed
# train that finds the run finished, test with 2 views, infer on one video.
# cmake -DCLI=... -DCONFIG=configs/demo_tsn_r18_dnr.conf -DWORK_DIR=... -P this
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})

function(run name expect)
  execute_process(COMMAND ${CLI} ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0 OR NOT out MATCHES "${expect}")
    message(FATAL_ERROR "tinyvid ${name}: exit code ${rc}, output:\n${out}${err}\nexpected it to match: ${expect}")
  endif()
  message(STATUS "${name}: ${out}")
  set(last_out "${out}" PARENT_SCOPE)
endfunction()

run(synth "4 videos written|videos written" synth --out ${WORK_DIR}/data --classes 2 --train-per-class 4
    --val-per-class 1 --size 32 --frames 8)
# The demo config, shrunk: width 4, 4 frames of 32x32, one epoch.
set(small --set data.root=${WORK_DIR}/data --set num_classes=2 --set model.width=4 --set sampler.num_clips=4
          --set train.crop_size=32 --set train.scales=1 --set epochs=1 --set batch_size=4 --set log_every=1
          --set schedule.warmup_iters=1)
run(train "Epoch \\[1\\]\\[2/2\\].*Epoch\\(val\\) \\[1\\]  top1: [0-9.]+.*done: 1 epochs, 2 iterations"
    train ${CONFIG} --work-dir ${WORK_DIR}/run ${small} --no-progress)
foreach(f latest.safetensors latest.state.safetensors best.safetensors log.jsonl curves.png config.txt)
  if(NOT EXISTS ${WORK_DIR}/run/${f})
    message(FATAL_ERROR "train wrote no ${f}")
  endif()
endforeach()
run(resume "done: 1 epochs, 2 iterations" train ${CONFIG} --work-dir ${WORK_DIR}/run ${small} --resume --no-progress)
# 8 segments per crop = 2 views of the model's 4 frames.
run(test "2 videos x 2 views, top-1 [0-9.]+" test ${CONFIG} --checkpoint ${WORK_DIR}/run/latest.safetensors
    --views 8x1 --out ${WORK_DIR}/test ${small} --no-progress)
foreach(f results.json per_class.csv confusion.png)
  if(NOT EXISTS ${WORK_DIR}/test/${f})
    message(FATAL_ERROR "test wrote no ${f}")
  endif()
endforeach()
file(GLOB video ${WORK_DIR}/data/videos/*/val_0000.mp4)
list(GET video 0 video)
run(infer "\"top5\":\\[{\"class\":[01],\"name\":\"[a-z_]+\",\"prob\":0\\.[0-9]+},{\"class\":[01]" infer --config ${CONFIG}
    --weights ${WORK_DIR}/run/latest.safetensors --video ${video} ${small} --json)
