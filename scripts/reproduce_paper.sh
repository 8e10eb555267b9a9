#!/usr/bin/env bash
# Reproduce an experiment of the paper end to end: train every method for 10 seeds, then
# build the report (tables, figures, report.md/html).
#
#   scripts/reproduce_paper.sh oklahoma            # experiment 1 (needs FAIRBENCH_DATA_DIR)
#   scripts/reproduce_paper.sh virginia            # experiment 2 (five race groups offline)
#   scripts/reproduce_paper.sh oklahoma budget.iterations=null budget.seconds=30   # extra overrides
#
# Jobs run two at a time (the presets select hydra/launcher=parallel, one thread each). Outputs go to
# ${FAIRBENCH_OUTPUT_DIR:-outputs}/experiments/<experiment>/, the report to its report/.
set -euo pipefail

case "${1:-}" in
  oklahoma) experiment=paper_oklahoma; dir=paper_oklahoma; dataset=oklahoma_race ;;
  virginia) experiment=paper_virginia; dir=paper_virginia-virginia_race; dataset=virginia_race ;;
  *) echo "usage: $0 oklahoma|virginia [fairbench overrides...]" >&2; exit 2 ;;
esac
shift
for arg in "$@"; do
  case "$arg" in dataset=*) dir="paper_virginia-${arg#dataset=}" ;; esac
done
if [ -z "${FAIRBENCH_DATA_DIR:-}" ]; then
  echo "$0: set FAIRBENCH_DATA_DIR to the ACS data (e.g. ../shared/data/acs) for $dataset" >&2
  exit 2
fi

root="${FAIRBENCH_OUTPUT_DIR:-outputs}/experiments"
start=$(date +%s)
fairbench +experiment="$experiment" "$@"
echo "trained in $(( $(date +%s) - start )) s"
fairbench-report "$root/$dir" --out "$root/$dir/report"
echo "report: $root/$dir/report/report.md"
