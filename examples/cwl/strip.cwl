#!/usr/bin/env cwl-runner
# One strip of the Mandelbrot picture, rows [row0, row1), in the mandelbrot unit's VM.
cwlVersion: v1.2
class: CommandLineTool
requirements:
  DockerRequirement:
    dockerPull: vmwu/mandelbrot:1.0.0
baseCommand: /app/mandelbrot
arguments: ["-2.5", "1.5", "-1.0", "1.0", $(inputs.width), $(inputs.height), $(inputs.iters), $(inputs.row0), $(inputs.row1), strip-$(inputs.row0).ppm]
inputs:
  width: int
  height: int
  iters: int
  row0: int
  row1: int
outputs:
  strip:
    type: File
    outputBinding: {glob: "strip-*.ppm"}
