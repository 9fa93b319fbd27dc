#!/bin/sh
# Mandelbrot set, computed in the guest with busybox awk, written as a PPM image.
# Params: width height iters (exported by vmwu), optional row range ystart..yend
# so a sweep can compute the picture in strips.
w=${width:-320}; h=${height:-160}; n=${iters:-64}
y0=${ystart:-0}; y1=${yend:-$h}
awk -v w="$w" -v h="$h" -v n="$n" -v y0="$y0" -v y1="$y1" 'BEGIN {
  printf "P3\n%d %d\n255\n", w, y1 - y0
  for (y = y0; y < y1; y++) {
    ci = -1.2 + 2.4 * y / h
    for (x = 0; x < w; x++) {
      cr = -2.2 + 3.2 * x / w
      zr = 0; zi = 0; i = 0
      while (i < n && zr * zr + zi * zi < 4) { t = zr * zr - zi * zi + cr; zi = 2 * zr * zi + ci; zr = t; i++ }
      if (i == n) { r = 0; g = 0; b = 0 }
      else { s = i / n; r = int(9 * (1 - s) * s * s * s * 255); g = int(15 * (1 - s) * (1 - s) * s * s * 255); b = int(8.5 * (1 - s) * (1 - s) * (1 - s) * s * 255) }
      printf "%d %d %d ", r, g, b
    }
    printf "\n"
  }
}' > mandelbrot.ppm
echo "mandelbrot: ${w}x$((y1 - y0)) rows $y0..$y1, $n iterations"
