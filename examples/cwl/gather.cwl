#!/usr/bin/env cwl-runner
# The strips, in the order given, stacked into one PNG by netpbm in the ppm-gather unit's VM.
cwlVersion: v1.2
class: CommandLineTool
requirements:
  DockerRequirement:
    dockerPull: vmwu/ppm-gather:1.0.0
baseCommand: [sh, -c, 'pnmcat -tb "$@" | pnmtopng', gather]
inputs:
  strips:
    type: File[]
    inputBinding: {position: 1}
stdout: mandelbrot.png
outputs:
  png:
    type: stdout
