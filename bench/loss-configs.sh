# The named loss settings the benchmarks compare, as the `loss` section of a trial
# config. Sourced by bench/compare.sh and bench/quality.sh.
#   loss_json NAME
loss_json() {
  local none='"class_weight":{"scheme":"none","cap":10,"beta":0.999}'
  # Spelled out (they are also the trainer's defaults) so the PyTorch side reads the same values.
  local asl='"asl":{"gamma_pos":0,"gamma_neg":4,"clip":0.05,"eps":1e-8}'
  local db='"db":{"alpha":0.1,"beta":10,"mu":0.9,"kappa":0.05,"lambda":2,"gamma":2,"focal_alpha":0.5}'
  local cap7='"class_weight":{"scheme":"neg_pos","cap":7,"beta":0.999}'
  case $1 in
    bce-cap7)   echo "{$cap7,\"focal_gamma\":0,\"focal_alpha\":-1}" ;;
    focal-cap7) echo "{$cap7,\"focal_gamma\":3,\"focal_alpha\":-1}" ;;
    # The authors' training settings (gamma_neg 4, gamma_pos 0, clip 0.05), no class weights.
    asl)        echo "{\"kind\":\"asl\",$none,\"focal_gamma\":0,\"focal_alpha\":-1,$asl}" ;;
    # The text port's DB settings (alpha 0.1, beta 10, mu 0.9, kappa 0.05, lambda 2, gamma 2).
    db)         echo "{\"kind\":\"db\",$none,\"focal_gamma\":0,\"focal_alpha\":-1,$db}" ;;
    *) echo "unknown loss setting $1 (bce-cap7, focal-cap7, asl, db)" >&2; return 2 ;;
  esac
}
