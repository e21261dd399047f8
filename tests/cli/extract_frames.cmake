# `tinyvid extract-frames` on real files: a good video, a short one, and one with no decodable video; then
# a re-run after one folder lost its end (redone) while the other stays complete (skipped); then
# RawframeDataset loads the list it wrote. cmake -DCLI=... -DCHECK=... -DVIDEOS=... -DWORK_DIR=... -P this
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})
# part_0.mp4: 32 frames 340x256; unordered.mov: 4 frames 50x50, B-frames; fixed_lacing: no video packet.
file(WRITE ${WORK_DIR}/list.txt "part_0.mp4 1\nfixed_lacing_bad_lace_size.mkv 2\nunordered.mov 3\npart_0.mp4 4\n")
set(out ${WORK_DIR}/out)

function(extract expect_rc expect_out)
  execute_process(COMMAND ${CLI} extract-frames ${WORK_DIR}/list.txt --data-prefix ${VIDEOS} --out ${out}
                          --short-side 64 --threads 2
                  RESULT_VARIABLE rc OUTPUT_VARIABLE stdout ERROR_VARIABLE stderr)
  if(NOT rc EQUAL expect_rc OR NOT stdout MATCHES "${expect_out}")
    message(FATAL_ERROR "extract-frames: exit code ${rc} (expected ${expect_rc}), output:\n${stdout}${stderr}\n"
                        "expected the output to match: ${expect_out}")
  endif()
  message(STATUS "${stdout}")
endfunction()
function(expect_file path)
  if(NOT EXISTS ${out}/${path})
    message(FATAL_ERROR "missing ${out}/${path}")
  endif()
endfunction()
function(expect_no_file path)
  if(EXISTS ${out}/${path})
    message(FATAL_ERROR "unexpected ${out}/${path}")
  endif()
endfunction()

set(bad "BAD [^\n]*fixed_lacing_bad_lace_size.mkv: [^\n]*no video packets")
extract(1 "${bad}.*2 videos extracted \\(36 frames\\), 0 complete already, 1 bad")
expect_file(part_0/img_00032.jpg)
expect_no_file(part_0/img_00033.jpg)
expect_file(unordered/img_00004.jpg)
expect_no_file(fixed_lacing_bad_lace_size)
file(READ ${out}/list_rawframes.txt rawframes)
if(NOT rawframes STREQUAL "part_0 32 1\nunordered 4 3\npart_0 32 4\n")
  message(FATAL_ERROR "unexpected rawframe list:\n${rawframes}")
endif()

# An interrupted run: a folder without its .done and last frame is redone; the complete one is skipped.
file(REMOVE ${out}/unordered/.done ${out}/unordered/img_00004.jpg)
extract(1 "${bad}.*1 videos extracted \\(4 frames\\), 1 complete already, 1 bad")
expect_file(unordered/img_00004.jpg)

execute_process(COMMAND ${CHECK} ${out}/list_rawframes.txt ${out} 64 RESULT_VARIABLE rc OUTPUT_VARIABLE stdout
                ERROR_VARIABLE stderr)
if(NOT rc EQUAL 0 OR NOT stdout MATCHES
   "/part_0 32 1 85x64\n[^\n]*/unordered 4 3 64x64\n[^\n]*/part_0 32 4 85x64\nloaded 3 samples")
  message(FATAL_ERROR "RawframeDataset on the written list: exit code ${rc}, output:\n${stdout}${stderr}")
endif()
message(STATUS "${stdout}")
