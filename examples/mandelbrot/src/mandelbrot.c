/*
 * mandelbrot XMIN XMAX YMIN YMAX WIDTH HEIGHT ITERS ROW0 ROW1 [OUT]
 *
 * Renders rows [ROW0, ROW1) of a WIDTH x HEIGHT view of the Mandelbrot set as a binary
 * PPM (P6), to OUT or mandelbrot.ppm. A sweep gives each run its own strip of rows; the
 * strips stack into the whole picture because each row depends only on its own index.
 */
#include <stdio.h>
#include <stdlib.h>

static double number(const char *s) {
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end) { fprintf(stderr, "mandelbrot: not a number: %s\n", s); exit(2); }
    return v;
}

static long whole(const char *s) {
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end) { fprintf(stderr, "mandelbrot: not a whole number: %s\n", s); exit(2); }
    return v;
}

int main(int argc, char **argv) {
    if (argc != 10 && argc != 11) {
        fputs("usage: mandelbrot XMIN XMAX YMIN YMAX WIDTH HEIGHT ITERS ROW0 ROW1 [OUT]\n", stderr);
        return 2;
    }
    double xmin = number(argv[1]), xmax = number(argv[2]), ymin = number(argv[3]), ymax = number(argv[4]);
    long w = whole(argv[5]), h = whole(argv[6]), iters = whole(argv[7]), row0 = whole(argv[8]), row1 = whole(argv[9]);
    const char *out = argc == 11 ? argv[10] : "mandelbrot.ppm";
    if (w < 1 || h < 1 || iters < 1 || row0 < 0 || row1 > h || row0 >= row1) {
        fprintf(stderr, "mandelbrot: need WIDTH, HEIGHT, ITERS >= 1 and 0 <= ROW0 < ROW1 <= HEIGHT\n");
        return 2;
    }
    unsigned char *line = malloc(3 * (size_t)w);
    FILE *f = fopen(out, "wb");
    if (!line || !f) { perror(out); return 1; }
    fprintf(f, "P6\n%ld %ld\n255\n", w, row1 - row0);
    for (long y = row0; y < row1; y++) {
        double ci = ymax - (ymax - ymin) * (y + 0.5) / h; /* row 0 is the top of the picture */
        for (long x = 0; x < w; x++) {
            double cr = xmin + (xmax - xmin) * (x + 0.5) / w, zr = 0, zi = 0, t;
            long i = 0;
            while (i < iters && zr * zr + zi * zi <= 4.0) { t = zr * zr - zi * zi + cr; zi = 2 * zr * zi + ci; zr = t; i++; }
            double s = (double)i / iters; /* the same palette as mandelbrot.sh, so both demos look alike */
            unsigned char *p = line + 3 * x;
            p[0] = i == iters ? 0 : (unsigned char)(9 * (1 - s) * s * s * s * 255);
            p[1] = i == iters ? 0 : (unsigned char)(15 * (1 - s) * (1 - s) * s * s * 255);
            p[2] = i == iters ? 0 : (unsigned char)(8.5 * (1 - s) * (1 - s) * (1 - s) * s * 255);
        }
        fwrite(line, 3, (size_t)w, f);
    }
    if (ferror(f) | fclose(f)) { perror(out); return 1; }
    printf("mandelbrot: %ldx%ld, rows %ld..%ld, %ld iterations -> %s\n", w, h, row0, row1, iters, out);
    return 0;
}
