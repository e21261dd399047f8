# tinyvid chart: a PNG from a results CSV, sized by the data (more groups, a wider chart) and not blank; every
# bad CSV line a one-line error naming FILE:LINE, what was expected and what was found.
# cmake -DCLI=... -DWORK_DIR=... -P this
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})

include(${CMAKE_CURRENT_LIST_DIR}/common.cmake)

# Three models on two datasets over seeds; one bar without an error bar, one with only its upper end; blanks
# around fields and a blank line are allowed.
file(WRITE ${WORK_DIR}/results.csv "group,series,value,lo,hi\n"
     "synth demo,tsn_r18,0.62,0.60,0.65\nsynth demo,tsm_r18,0.71,0.69,0.73\nsynth demo,tsm_r18_dnr,0.74,,\n"
     "\n"
     "synth hard, tsn_r18 , 0.41 , 0.38 , 0.45\nsynth hard,tsm_r18,0.52,0.50,0.55\nsynth hard,tsm_r18_dnr,0.58,,0.61\n")
run(0 "${WORK_DIR}/out/results.png \\([0-9]+x[0-9]+\\)\n" chart --csv ${WORK_DIR}/results.csv
    --out ${WORK_DIR}/out/results.png --title "top-1 over 3 seeds" --y-label "top-1" --percent --y-range 0,1)
png_size(${WORK_DIR}/out/results.png two)
if(two_w LESS 250 OR two_h LESS 250 OR two_w GREATER 1000 OR two_h GREATER 1000)
  message(FATAL_ERROR "results.png: ${two_w}x${two_h}, expected each side in [250, 1000]")
endif()
# Not blank: a white canvas of that size compresses to a few hundred bytes; bars, ticks and text take more.
file(SIZE ${WORK_DIR}/out/results.png bytes)
if(bytes LESS 2000)
  message(FATAL_ERROR "results.png: ${bytes} bytes, expected a drawn chart (at least 2000)")
endif()
# Six groups: a wider chart of the same height. The title defaults to the CSV's name.
file(READ ${WORK_DIR}/results.csv text)
string(REPLACE "synth" "other" more "${text}")
string(REPLACE "group,series,value,lo,hi\n" "" more "${more}")
file(WRITE ${WORK_DIR}/more.csv "${text}${more}")
string(REPLACE "other" "third" more "${more}")
file(APPEND ${WORK_DIR}/more.csv "${more}")
run(0 "more.png" chart --csv ${WORK_DIR}/more.csv --out ${WORK_DIR}/more.png --percent --y-range 0,1)
png_size(${WORK_DIR}/more.png six)
if(NOT six_w GREATER two_w OR NOT six_h EQUAL two_h)
  message(FATAL_ERROR "more.png: ${six_w}x${six_h}, expected wider than ${two_w}x${two_h} and as high")
endif()

# Bad input: one line, FILE:LINE, expected and found.
set(csv ${WORK_DIR}/bad.csv)
function(bad content expect_out)
  file(WRITE ${csv} "${content}")
  run(2 "^tinyvid chart: ${expect_out}\n$" chart --csv ${csv} --out ${WORK_DIR}/bad.png)
  if(EXISTS ${WORK_DIR}/bad.png)
    message(FATAL_ERROR "bad.png written for a bad CSV")
  endif()
endfunction()
bad("model,value\na,1\n" "[^\n]*bad.csv:1: expected the header line 'group,series,value,lo,hi', found 'model,value'")
bad("group,series,value,lo,hi\na,x,0.5,0.4,0.6\na,y,0.5,0.4\n"
    "[^\n]*bad.csv:3: expected 5 fields \\(group,series,value,lo,hi; no commas inside names\\), found 4 in 'a,y,0.5,0.4'")
bad("group,series,value,lo,hi\na,x,0.5,0.4,0.6\n\nb,x,high,,\n"
    "[^\n]*bad.csv:4: expected a finite number for 'value', got 'high'")
bad("group,series,value,lo,hi\na,x,0.5,0.4,0.6\nb,x,0.5,0.4,0.6x\n"
    "[^\n]*bad.csv:3: expected a finite number for 'hi', got '0.6x'")
bad("group,series,value,lo,hi\na,x,0.5,0.7,0.8\n" "[^\n]*bad.csv:2: expected lo <= value, found lo 0.7 > value 0.5")
bad("group,series,value,lo,hi\na,x,0.5,,0.3\n" "[^\n]*bad.csv:2: expected hi >= value, found hi 0.3 < value 0.5")
bad("group,series,value,lo,hi\na,x,0.5,,\n,x,0.5,,\n" "[^\n]*bad.csv:3: expected a group name, found an empty field")
bad("group,series,value,lo,hi\na,x,0.5,,\nb,x,0.5,,\na,x,0.6,,\n"
    "[^\n]*bad.csv:4: expected one line per group and series, found group 'a', series 'x' also on line 2")
bad("group,series,value,lo,hi\n\n" "[^\n]*bad.csv: expected at least one line of bars after the header, found none")
bad("" "[^\n]*bad.csv: expected the header line 'group,series,value,lo,hi', found an empty file")
run(2 "^tinyvid chart: --y-range: expected LO < HI, got '1,0'\n$" chart --csv ${WORK_DIR}/results.csv
    --out ${WORK_DIR}/bad.png --y-range 1,0)
run(2 "^tinyvid chart: --y-range: expected LO,HI such as 0,1, got '1'\n$" chart --csv ${WORK_DIR}/results.csv
    --out ${WORK_DIR}/bad.png --y-range 1)
run(2 "^tinyvid chart: missing --out \\(see tinyvid chart --help\\)\n$" chart --csv ${WORK_DIR}/results.csv)
run(2 "^tinyvid chart: [^\n]*no_such.csv[^\n]*\n$" chart --csv ${WORK_DIR}/no_such.csv --out ${WORK_DIR}/bad.png)
