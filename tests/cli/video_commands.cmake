# The video commands a user checks data with: `frames` (exact indices, --size), `check-videos` on a list with
# bad entries (a bare id read as .mp4, an audio file, a missing file), `lists sthv1` counting frame folders,
# and an unknown option refused. cmake -DCLI=... -DVIDEOS=... -DWORK_DIR=... -P this
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})

include(${CMAKE_CURRENT_LIST_DIR}/common.cmake)
function(expect_png path w h)
  png_size(${path} got)
  if(NOT got_w EQUAL w OR NOT got_h EQUAL h)
    message(FATAL_ERROR "${path}: ${got_w}x${got_h}, expected ${w}x${h}")
  endif()
endfunction()

# part_0.mp4: 32 frames of 340x256.
run(0 "frame_000000.png\n.*frame_000031.png\n" frames ${VIDEOS}/part_0.mp4 --indices 0,31,7 --out ${WORK_DIR}/native)
expect_png(${WORK_DIR}/native/frame_000000.png 340 256)
expect_png(${WORK_DIR}/native/frame_000007.png 340 256)
expect_png(${WORK_DIR}/native/frame_000031.png 340 256)
run(0 "frame_000005.png" frames ${VIDEOS}/part_0.mp4 --indices 5 --out ${WORK_DIR}/sized --size 64x48)
expect_png(${WORK_DIR}/sized/frame_000005.png 64 48)
run(0 "frame_000005.png" frames ${VIDEOS}/part_0.mp4 --indices 5 --out ${WORK_DIR}/short --size -1x128)
expect_png(${WORK_DIR}/short/frame_000005.png 170 128)
run(2 "frame index 32 out of range[^\n]*with 32 frames" frames ${VIDEOS}/part_0.mp4 --indices 32 --out ${WORK_DIR}/x)
run(2 "--size: expected WxH" frames ${VIDEOS}/part_0.mp4 --indices 1 --out ${WORK_DIR}/x --size 64)
run(2 "unknown option --sise; this command takes --indices, --out, --size" frames ${VIDEOS}/part_0.mp4 --indices 1
    --out ${WORK_DIR}/x --sise 64x64)

# A bare id is read as <id>.mp4 (MMAction2's DecordInit), as the dataset reads it.
file(WRITE ${WORK_DIR}/list.txt "part_0 1\ntest.wav 2\nno_such_video 3\n")
run(1 "BAD [^\n]*test.wav: [^\n]*no video stream.*BAD [^\n]*no_such_video: [^\n]*no_such_video.mp4. does not exist.*checked 3 videos[^\n]*: 2 bad"
    check-videos ${WORK_DIR}/list.txt --data-prefix ${VIDEOS})
run(1 "\"checked\":3,\"bad\":\\[{\"path\":\"[^\"]*test.wav\""
    check-videos ${WORK_DIR}/list.txt --data-prefix ${VIDEOS} --json)
# Labels are checked alongside, each bad one by FILE:LINE: in [0, K) with --num-classes, else only not negative.
run(1 "BAD LABEL [^\n]*list.txt:3: label 3 is outside \\[0, 3\\) \\(num_classes\\).*checked 3 videos[^\n]*: 2 bad, 1 bad labels"
    check-videos ${WORK_DIR}/list.txt --data-prefix ${VIDEOS} --num-classes 3)
file(WRITE ${WORK_DIR}/negative_label.txt "part_0 -2\npart_0 0\n")
run(1 "\"bad\":\\[\\],\"bad_labels\":\\[{\"line\":1,\"label\":-2,\"error\":\"[^\"]*negative_label.txt:1: label -2 is negative"
    check-videos ${WORK_DIR}/negative_label.txt --data-prefix ${VIDEOS} --json)

# Something-Something V1: frames counted per folder (files with the prefix; a hidden marker is no frame).
file(WRITE ${WORK_DIR}/labels.csv "Holding something\nMoving something up\n")
file(WRITE ${WORK_DIR}/split.csv "7;Moving something up\n12;Holding something\n")
foreach(f 00001 00002 00003)
  file(WRITE ${WORK_DIR}/frames/7/${f}.jpg "x")
endforeach()
file(WRITE ${WORK_DIR}/frames/7/.done "")
file(WRITE ${WORK_DIR}/frames/12/00001.jpg "x")
run(0 "sthv1: 2 frame folders" lists sthv1 --split ${WORK_DIR}/split.csv --labels ${WORK_DIR}/labels.csv
    --frames-dir ${WORK_DIR}/frames --out ${WORK_DIR}/sthv1_list.txt)
file(READ ${WORK_DIR}/sthv1_list.txt list)
if(NOT list STREQUAL "7 3 1\n12 1 0\n")
  message(FATAL_ERROR "lists sthv1 wrote:\n${list}")
endif()
