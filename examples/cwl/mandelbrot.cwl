#!/usr/bin/env cwl-runner
# GVA's Mandelbrot demonstration as a CWL workflow: the picture is scattered into
# strips, each computed in its own vmwu VM, then gathered into one PNG in another.
# Run it with vmwu-docker standing as docker (docs/docker.md):
#   cwltool examples/cwl/mandelbrot.cwl examples/cwl/mandelbrot-job.yml
cwlVersion: v1.2
class: Workflow
requirements:
  ScatterFeatureRequirement: {}
inputs:
  width: int
  height: int
  iters: int
  row0s: int[]
  row1s: int[]
outputs:
  png: {type: File, outputSource: gather/png}
steps:
  strip:
    run: strip.cwl
    scatter: [row0, row1]
    scatterMethod: dotproduct
    in: {width: width, height: height, iters: iters, row0: row0s, row1: row1s}
    out: [strip]
  gather:
    run: gather.cwl
    in: {strips: strip/strip}
    out: [png]
