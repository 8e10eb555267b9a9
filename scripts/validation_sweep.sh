#!/bin/bash
# The validation sweep behind the new methods' settings in +experiment=methods_oklahoma and
# methods_oklahoma_adam (docs/methods.md): experiment 1's problem (Oklahoma, race, delta 0.005),
# 4 epochs, seeds 0-2, each method over its primal lr and its main dual setting, with the SGD and
# with the Adam primal step; then fairbench-report's selection rule at --tol 0.005 on each sweep.
# Several calls write into one sweep directory: finished seeds are skipped, so a combination
# listed twice runs once.
#   FAIRBENCH_DATA_DIR=... bash scripts/validation_sweep.sh OUT_DIR
set -euo pipefail
out=${1:?usage: validation_sweep.sh OUT_DIR}
fb="python -m fairbench"
common="dataset=oklahoma_race problem=constrained problem.delta=0.005 budget.iterations=null budget.epochs=4 seeds=[0,1,2] eval.optimality=false progress=false hydra/launcher=parallel"
sweep() {  # primal method overrides...
  local primal=$1 method=$2; shift 2
  $fb -m algo=$method algo.primal=$primal "$@" $common hydra.sweep.dir=$out/$primal/$method || true  # a diverged job exits 1
}
for primal in sgd adam; do
  if [ $primal = sgd ]; then lr=0.003,0.01,0.03,0.1; low=0.001,0.003; pbm_lr=0.001,0.003,0.01,0.03
  else lr=0.0003,0.001,0.003,0.01; low=0.0001,0.0003; pbm_lr=0.0001,0.0003,0.001,0.003; fi
  sweep $primal pbm algo.lr=$pbm_lr algo.penalty_mult=0.1,0.5,0.9 algo.penalty_max=1.0,10.0
  sweep $primal ialm algo.lr=$lr algo.beta=0.1,1.0,10.0
  sweep $primal ialm algo.lr=$low algo.beta=10.0,100.0
  sweep $primal nupi algo.lr=$lr algo.eta=0.1,1.0,10.0
  sweep $primal nupi algo.lr=$low algo.eta=10.0,100.0
  [ $primal = adam ] && sweep $primal nupi algo.lr=$low algo.eta=100.0,1000.0
  for method in gda extragradient; do
    sweep $primal $method algo.lr=$lr algo.eta=0.01,0.1,1.0
    sweep $primal $method algo.lr=$low algo.eta=1.0,10.0
  done
done
for primal in sgd adam; do
  for method in pbm ialm nupi gda extragradient; do
    python -m fairbench.report $out/$primal/$method --tol 0.005 --out $out/report/${primal}_$method
    grep -h -A2 -i "chosen\|not selected" $out/report/${primal}_$method/selection.md | head -3 || true
  done
done
