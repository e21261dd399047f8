# The main job's commands end to end on a tiny synthetic dataset: tinyvid synth, train (one epoch), a fresh
# train refused on the used work directory, a resumed train that finds the run finished, test with 2 views
# (positional checkpoint, --dump), infer on one video; log.json read as MMAction2's analyze_logs.py reads it.
# cmake -DCLI=... -DCONFIG=configs/demo_tsn_r18_dnr.conf -DWORK_DIR=... [-DPYTHON=python3] -P this
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
run(train "Epoch \\[1\\]\\[2/2\\].*Epoch\\(val\\) \\[1\\]  top1_acc: [0-9.]+.*done: 1 epochs, 2 iterations"
    train ${CONFIG} --work-dir ${WORK_DIR}/run ${small} --no-progress)
foreach(f latest.safetensors latest.state.safetensors best.safetensors epoch_1.safetensors log.json train.log
        curves.png config.txt)
  if(NOT EXISTS ${WORK_DIR}/run/${f})
    message(FATAL_ERROR "train wrote no ${f}")
  endif()
endforeach()
if(PYTHON)
  execute_process(COMMAND ${PYTHON} ${CMAKE_CURRENT_LIST_DIR}/check_log_json.py ${WORK_DIR}/run/log.json RESULT_VARIABLE rc
                  OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "log.json is not what analyze_logs.py reads:\n${out}${err}")
  endif()
endif()
# A fresh run on the used directory is refused, and nothing in it changes.
file(READ ${WORK_DIR}/run/best.safetensors best_before HEX)
execute_process(COMMAND ${CLI} train ${CONFIG} --work-dir ${WORK_DIR}/run ${small} --no-progress RESULT_VARIABLE rc
                OUTPUT_VARIABLE out ERROR_VARIABLE err)
file(READ ${WORK_DIR}/run/best.safetensors best_after HEX)
if(rc EQUAL 0 OR NOT err MATCHES "already holds files.*--resume.*--force" OR NOT best_before STREQUAL best_after)
  message(FATAL_ERROR "a fresh train on a used work directory: exit code ${rc}\n${out}${err}")
endif()
run(resume "done: 1 epochs, 2 iterations" train ${CONFIG} --work-dir ${WORK_DIR}/run ${small} --resume --no-progress)
# 8 segments per crop = 2 views of the model's 4 frames.
run(test "2 videos x 2 views, top-1 [0-9.]+" test ${CONFIG} ${WORK_DIR}/run/latest.safetensors
    --views 8x1 ${small} --no-progress --dump ${WORK_DIR}/scores.json)
# Each checkpoint and view setting has its own folder: another setting does not overwrite the first. The config
# key device reaches test and infer (cpu here; tests/test_device.cpp runs every device of the build).
run(test_1view "2 videos x 1 views" test ${CONFIG} --checkpoint ${WORK_DIR}/run/latest.safetensors ${small} --no-progress
    --set device=cpu)
foreach(views 8x1 4x1)
  foreach(f results.json per_class.csv confusion.png)
    if(NOT EXISTS ${WORK_DIR}/run/test/latest_${views}/${f})
      message(FATAL_ERROR "test wrote no test/latest_${views}/${f}")
    endif()
  endforeach()
endforeach()
file(STRINGS ${WORK_DIR}/scores.json dump)
list(LENGTH dump n)
if(NOT n EQUAL 2 OR NOT dump MATCHES "\"path\":\"[^\"]+val_0000.mp4\",\"label\":[01],\"scores\":\\[0\\.[0-9]+,0\\.[0-9]+\\]")
  message(FATAL_ERROR "--dump wrote:\n${dump}")
endif()
file(GLOB video ${WORK_DIR}/data/videos/*/val_0000.mp4)
list(GET video 0 video)
run(infer "\"top5\":\\[{\"class\":[01],\"name\":\"[a-z_]+\",\"prob\":0\\.[0-9]+},{\"class\":[01]" infer --config ${CONFIG}
    --weights ${WORK_DIR}/run/latest.safetensors --video ${video} ${small} --set device=cpu --json)
# Grad-CAM++ of one clip: a PNG strip of the clip's frames (4 frames of 32 wide, 4 pixels apart) and an MP4.
run(cam "probability 0\\.[0-9]+; wrote .*cam.png, .*cam.mp4" cam --config ${CONFIG}
    --weights ${WORK_DIR}/run/latest.safetensors --video ${video} ${small} --out ${WORK_DIR}/cam)
run(cam_probe "duration +1\\.000 s" probe ${WORK_DIR}/cam/cam.mp4)
run(cam_layer2 "wrote .*cam.png" cam --config ${CONFIG} --weights ${WORK_DIR}/run/latest.safetensors --video ${video}
    ${small} --out ${WORK_DIR}/cam_layer2 --layer backbone.layer2)
file(READ ${WORK_DIR}/cam/cam.png png HEX)
string(SUBSTRING "${png}" 32 16 png_size)  # the IHDR chunk's width and height
if(NOT png_size STREQUAL "0000008c00000038")
  message(FATAL_ERROR "cam.png is not 140 x 56 (4 frames of 32 x 32 under a 24-pixel title): IHDR size ${png_size}")
endif()
execute_process(COMMAND ${CLI} cam --config ${CONFIG} --weights ${WORK_DIR}/run/latest.safetensors --video ${video}
                ${small} --out ${WORK_DIR}/cam2 --layer backbone.layer5 RESULT_VARIABLE rc ERROR_VARIABLE err OUTPUT_QUIET)
if(rc EQUAL 0 OR NOT err MATCHES "--layer: expected backbone.layer1, .* got 'backbone.layer5'")
  message(FATAL_ERROR "cam --layer backbone.layer5: exit code ${rc}\n${err}")
endif()
execute_process(COMMAND ${CLI} cam --config ${CONFIG} --weights ${WORK_DIR}/run/latest.safetensors --video ${video}
                ${small} --out ${WORK_DIR}/cam2 --class 7 RESULT_VARIABLE rc ERROR_VARIABLE err OUTPUT_QUIET)
if(rc EQUAL 0 OR NOT err MATCHES "class 7 is not one of the model's 2 classes")
  message(FATAL_ERROR "cam --class 7 of 2 classes: exit code ${rc}\n${err}")
endif()
