# The command line's help and option spelling: `tinyvid --help` / `tinyvid help` list the commands, `tinyvid COMMAND
# --help` prints that command's options and exits 0 (the model switches generated from the registry), --opt=value
# and --opt value both work, and an unknown option, command or stray word is a one-line error with exit code 2.
# cmake -DCLI=... [-DVIDEO=ON] -P this
function(run expect_rc expect_out)
  execute_process(COMMAND ${CLI} ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE stdout ERROR_VARIABLE stderr)
  # Help goes to stdout, an error to stderr.
  if(expect_rc EQUAL 0)
    set(text "${stdout}")
    set(other "${stderr}")
    set(expect_rc_stream stdout)
  else()
    set(text "${stderr}")
    set(other "${stdout}")
    set(expect_rc_stream stderr)
  endif()
  if(NOT rc EQUAL expect_rc OR NOT text MATCHES "${expect_out}" OR NOT other STREQUAL "")
    message(FATAL_ERROR "tinyvid ${ARGN}: exit code ${rc} (expected ${expect_rc})\n"
                        "stdout:\n${stdout}\nstderr:\n${stderr}\n"
                        "expected the ${expect_rc_stream} (and nothing on the other) to match: ${expect_out}")
  endif()
  if(NOT expect_rc EQUAL 0)
    string(REGEX MATCHALL "\n" lines "${stderr}")
    list(LENGTH lines n)
    if(NOT n EQUAL 1)
      message(FATAL_ERROR "tinyvid ${ARGN}: the error is ${n} lines, expected one:\n${stderr}")
    endif()
  endif()
  message(STATUS "tinyvid ${ARGN}: ${rc}\n${text}")
endfunction()

set(commands "summary[^\n]*\n *forward")
run(0 "Usage: tinyvid .*${commands}" --help)
run(0 "Usage: tinyvid .*${commands}" help)
run(0 "Usage: tinyvid .*${commands}")
# A command's help: its options with their defaults; the models and switches come from models/registry.hpp.
set(summary_help "Usage: tinyvid summary .*--model NAME.*--num-classes K=400.*--frames T=8.*--set KEY=VALUE.*--json")
set(switches "models: \\(tsn\\|tsm\\|tanet\\|tdn\\)_r\\(18\\|34\\|50\\|101\\|152\\)\\[_dnr\\]")
set(switches "${switches}.*\n  width=64 .*\n  ct_group_frames=4 .*\n  stats_group_clips=0 ")
run(0 "${summary_help}.*${switches}" summary --help)
run(0 "${summary_help}" help summary)
run(0 "${summary_help}" summary -h)
# --opt=value and --opt value, mixed: the same model as tsn_r18 of 4 frames at 112x112.
run(0 "\"model\":\"tsn_r18\",\"frames\":4,\"size\":112,\"params\":11381712,\"macs\":1939595264," summary
    --model=tsn_r18 --frames=4 --size 112 --json)
run(0 "\"model\":\"tsn_r18\",\"frames\":4,\"size\":112,\"params\":11381712,\"macs\":1939595264," summary
    --model tsn_r18 --frames 4 --size=112 --json)
# Errors: one line, "tinyvid COMMAND: ...", exit code 2; the prefix once.
set(summary_options "--model, --num-classes, --frames, --size, --set, --cfg-options, --json")
run(2 "^tinyvid summary: unknown option --bogus; this command takes ${summary_options} \\(see tinyvid summary --help\\)\n$"
    summary --model tsn_r18 --bogus 3)
run(2 "^tinyvid summary: unknown option --bogus;" summary --model tsn_r18 --bogus=3)
run(2 "^tinyvid summary: unexpected argument 'tsn_r18' \\(see tinyvid summary --help\\)\n$" summary tsn_r18)
run(2 "^tinyvid summary: unknown model 'tsn_r51'" summary --model tsn_r51)
# --set device=... is the config key `device`, not a model switch: checked (and listed in the help) before the
# model is built. Whether cuda itself runs depends on the build and the machine (tests/test_device.cpp).
run(0 "\"model\":\"tsn_r18\",\"frames\":4,\"size\":112,\"params\":11381712," summary --model tsn_r18 --frames 4
    --size 112 --set device=cpu --json)
run(0 "--set device=cpu\\|cuda\\|cuda:N: where the model runs" summary --help)
run(2 "^tinyvid summary: --set device=gpu: expected device cpu, cuda or cuda:N, got 'gpu'\n$" summary --model tsn_r18
    --set device=gpu)
run(2 "^tinyvid forward: --set device=cuda:1: device cuda:1: only the first GPU \\(cuda or cuda:0\\) is supported so far"
    forward --model tsn_r18 --weights w.safetensors --input x --output y --set device=cuda:1)
run(2 "^tinyvid: unknown command 'sumary'; the commands: summary, forward, " sumary --model tsn_r18)
run(2 "^tinyvid help: unknown command 'sumary'" help sumary)
if(VIDEO)
  set(train_options "--work-dir D.*--resume \\[STATE\\].*--force.*--allow-change.*--set KEY=VALUE.*--cfg-options")
  run(0 "Usage: tinyvid train .*CONFIG.*${train_options}.*--stop-after-iters N.*--no-progress.*--quiet.*model\\.KEY"
      train --help)
  run(0 "Usage: tinyvid lists kinetics200 .*--ids-dir.*--val-csv.*--train-csv.*--out" lists kinetics200 --help)
  run(0 "Usage: tinyvid .*\n *chart  +a grouped bar chart" help)
  run(0 "Usage: tinyvid chart .*--csv FILE.*--out FILE.png.*--title TEXT.*--y-label TEXT.*--percent.*--y-range LO,HI"
      chart --help)
  run(2 "^tinyvid chart: unknown option --ylabel; this command takes --csv, --out, --title, --y-label, --percent, "
      chart --csv x.csv --ylabel y)
  run(2 "^tinyvid train: unknown option --epochs; this command takes --work-dir, " train x.conf --epochs 3)
  run(2 "^tinyvid train: expected a CONFIG file after the command" train)
  run(2 "^tinyvid lists kinetics200: unknown option --bad;" lists kinetics200 --bad)
  run(2 "^tinyvid lists: unknown option --bad before the dataset kind" lists --bad)
  run(2 "^tinyvid lists: unknown dataset kind 'kinetics700'; expected kinetics200, " lists kinetics700)
  # test and infer check the device before they read weights or videos.
  run(2 "^tinyvid test: --set device=cuda:1: device cuda:1: only the first GPU" test
      ${CMAKE_CURRENT_LIST_DIR}/../../configs/demo_tsn_r18.conf /nonexistent/w.safetensors --set device=cuda:1)
  run(2 "^tinyvid infer: --set device=tpu: expected device cpu, cuda or cuda:N" infer --model tsn_r18
      --weights /nonexistent/w.safetensors --video /nonexistent/v.mp4 --set device=tpu)
endif()
