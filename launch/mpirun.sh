#!/usr/bin/env bash
# mpirun.sh — runs `skein` on NP ranks of this machine (or of a hostfile) with Open MPI,
# one thread pool per rank sized so that ranks × threads = cores.
#
# Usage: launch/mpirun.sh NP <skein arguments...>
#   launch/mpirun.sh 4 train --config configs/hybrid-small.yaml --set parallel.dp=4
#   launch/mpirun.sh 4 train --config configs/hybrid-small.yaml --set parallel.dp=2 --set parallel.sp=2
# NP must equal parallel.dp * parallel.sp * parallel.tp (skein stops with an error naming all
# four numbers otherwise).
#
# Environment (all optional):
#   SKEIN_BIN             the skein binary (default build/release/launch/skein, else `skein` on PATH)
#   SKEIN_NUM_THREADS     threads per rank (default: cores on this machine / NP, at least 1);
#                         exported to every rank, where skein's thread pool reads it
#   OPENBLAS_NUM_THREADS  set to SKEIN_NUM_THREADS (skein also sets OpenBLAS at start-up)
#   OMPI_ALLOW_RUN_AS_ROOT, OMPI_ALLOW_RUN_AS_ROOT_CONFIRM
#                         Open MPI refuses to run as root without both; this script sets
#                         them to 1 when run as root (containers, CI)
#   MPIRUN                the launcher (default mpirun)
#   MPIRUN_ARGS           extra launcher arguments, e.g. "--hostfile hosts" or
#                         "--map-by ppr:1:socket:PE=8 --bind-to core" to pin ranks
#                         (the default is --bind-to none: Open MPI would otherwise pin each
#                         of 2 or fewer ranks to ONE core, starving its thread pool)
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 NP <skein arguments...>" >&2
  exit 2
fi
NP=$1
shift
cd "$(dirname "$0")/.."
SKEIN_BIN=${SKEIN_BIN:-build/release/launch/skein}
if [ ! -x "$SKEIN_BIN" ]; then SKEIN_BIN=$(command -v skein || true); fi
if [ -z "$SKEIN_BIN" ]; then
  echo "$0: no skein binary (build it: cmake --preset release && cmake --build --preset release --target skein)" >&2
  exit 1
fi
CORES=$(nproc)
export SKEIN_NUM_THREADS=${SKEIN_NUM_THREADS:-$(( CORES / NP > 0 ? CORES / NP : 1 ))}
export OPENBLAS_NUM_THREADS=$SKEIN_NUM_THREADS
if [ "$(id -u)" = 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
OVERSUBSCRIBE=""
if [ "$NP" -gt "$CORES" ]; then OVERSUBSCRIBE="--oversubscribe"; fi
# shellcheck disable=SC2086  # MPIRUN_ARGS is a list of words on purpose
exec "${MPIRUN:-mpirun}" -np "$NP" $OVERSUBSCRIBE --bind-to none \
  -x SKEIN_NUM_THREADS -x OPENBLAS_NUM_THREADS ${MPIRUN_ARGS:-} "$SKEIN_BIN" "$@"
