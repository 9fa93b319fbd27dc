#!/bin/sh
# Usage: run.sh TEMP_K [NSTEPS] [BOX_NM]      (env: SEED=42, GMX=gmx)
# Builds an SPC/E water box from Debian's spc216.gro, minimises it (steep),
# runs NVT MD at TEMP_K (V-rescale) on ONE thread with -reprod, and writes
# energy.txt: final and mean potential energy, mean temperature.
# Means are over the second half of the run (first half = equilibration).
set -eu
TEMP=${1:?usage: run.sh TEMP_K [NSTEPS] [BOX_NM]}
NSTEPS=${2:-2500}           # 2500 x 2 fs = 5 ps
BOX=${3:-2.2}               # cubic box edge, nm; must exceed 2 x rlist (~1.0 nm)
SEED=${SEED:-42}            # gen_seed (Maxwell velocities) and ld_seed (V-rescale noise)
HERE=$(cd "$(dirname "$0")" && pwd)
GMX=${GMX:-gmx}
export GMX_MAXBACKUP=-1     # never write #file.1# backups
export OMP_NUM_THREADS=1
MDRUN="mdrun -nt 1 -ntmpi 1 -ntomp 1 -pin off -reprod -notunepme"

cp "$HERE/topol.top" topol.top
$GMX -quiet solvate -cs spc216.gro -box "$BOX" "$BOX" "$BOX" -o solv.gro -p topol.top
$GMX -quiet grompp -f "$HERE/em.mdp" -c solv.gro -p topol.top -o em.tpr -po em_out.mdp
$GMX -quiet $MDRUN -deffnm em
sed -e "s/@TEMP@/$TEMP/g" -e "s/@NSTEPS@/$NSTEPS/g" -e "s/@SEED@/$SEED/g" \
    "$HERE/nvt.mdp.in" > nvt.mdp
$GMX -quiet grompp -f nvt.mdp -c em.gro -p topol.top -o nvt.tpr -po nvt_out.mdp
$GMX -quiet $MDRUN -deffnm nvt
printf 'Potential\nTemperature\n\n' | $GMX -quiet energy -f nvt.edr -o nvt_energy.xvg > energy_stats.txt 2>&1

NWAT=$(awk '$1=="SOL"{n=$2} END{print n}' topol.top)
grep -v '^[@#]' nvt_energy.xvg | awk -v T="$TEMP" -v n="$NWAT" -v steps="$NSTEPS" -v seed="$SEED" '
  { t[NR]=$1; u[NR]=$2; k[NR]=$3 }
  END {
    half = t[NR]/2; c=0; su=0; sk=0
    for (i=1; i<=NR; i++) if (t[i] >= half) { c++; su+=u[i]; sk+=k[i] }
    printf "ref_t_K %s\nseed %s\nwaters %d\nnsteps %d\n", T, seed, n, steps
    printf "final_time_ps %.3f\nfinal_potential_kJmol %.4f\n", t[NR], u[NR]
    printf "mean_potential_kJmol %.4f\nmean_potential_per_water_kJmol %.4f\n", su/c, su/c/n
    printf "mean_temperature_K %.3f\nframes_averaged %d\n", sk/c, c
  }' > energy.txt
cat energy.txt
