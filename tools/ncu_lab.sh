#!/usr/bin/env bash
# Nsight Compute on the attention lab (tools/attention_lab.cu, built to build/lab/lab_new): one
# launch of the kernel matching REGEX (default attention_short), after SKIP (default 3: the
# lab's checked launch and two warm-ups) of its launches, in the lab's case CASE ("gpt2 b1").
#   tools/ncu_lab.sh "gpt2 b32" [REGEX] [SKIP]
S="--section SpeedOfLight --section Occupancy --section WarpStateStats --section LaunchStats"
S="$S --section MemoryWorkloadAnalysis --section SchedulerStats"
# shellcheck disable=SC2086  # the sections are separate words
ncu --kernel-name-base mangled -k "regex:${2:-attention_short}" --launch-skip "${3:-3}" -c 1 $S \
  build/lab/lab_new "$1" 2>&1 | grep -v "^\[lab\]" |
  grep -E "Duration|Elapsed Cycles|Throughput|Occupancy|Warp Cycles|Registers|Block Limit|Grid Size|Shared Memory|Eligible|Issued|Hit Rate|Mem Busy|Max Bandwidth|Waves"
