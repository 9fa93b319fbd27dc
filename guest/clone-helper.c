/*
 * vmwu-clone-helper: what a guest restored from a template (docs/guest-protocol.md,
 * "Fast start") needs done around its job that a shell cannot do without starting
 * a process. It runs in a process the template started before it was saved: under
 * emulation, a process started after the restore costs its clone the translation
 * of fork, exec and the C library's start, most of a short job's time.
 *
 *   vmwu-clone-helper serve OUT IN OUTPUTS TARPID [APP]
 *
 * The agent starts it before the template idles: stdin and stdout on pipes of its
 * own, fd 3 on the pipe a waiting tar unpacks the input archive from. TARPID is
 * the tar that will write the outputs into the FIFO OUTPUTS; once that tar waits
 * for a reader, the helper says `waiting` and blocks reading its first request.
 * It holds OUTPUTS (as a path, not as a reader) and, from the go on, OUT open:
 * the job may mount over /tmp or /dev, or empty them, and the helper still
 * reaches both.
 *
 * `NS SEED SECTORS INBYTES` (the rest of the host's go line):
 *   - sets the wall clock to NS (every clone wakes with the template's);
 *   - feeds SEED (32 bytes, hex) to the kernel RNG, credited, and forces a
 *     reseed, so no two clones read the same /dev/urandom bytes;
 *   - waits until the kernel sees the output disk OUT at SECTORS (the host may
 *     have resized it after the restore; the kernel learns of it by an interrupt);
 *   - drops what the template's page cache holds of the job disks;
 *   - answers `ok` (or `fail REASON`), then copies the first INBYTES of IN (the
 *     archive on the padded input disk) to fd 3 and closes it.
 * `out`: reads the output archive from OUTPUTS onto OUT, flushes OUT to the host
 *   and answers `ok` or `fail REASON`. Then it exits.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/random.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <time.h>
#include <unistd.h>

#define SEED_BYTES 32
#define CHUNK (1 << 20)

static char failure[256];

static int fail(const char *what) {
  snprintf(failure, sizeof failure, "%s: %s", what, strerror(errno));
  return -1;
}

static int bad(const char *what) {
  snprintf(failure, sizeof failure, "%s", what);
  return -1;
}

static void tick(void) {
  struct timespec t = { 0, 10 * 1000 * 1000 };
  nanosleep(&t, NULL);
}

/* The first line of a file, without its newline; empty when it cannot be read. */
static void first_line(const char *path, char *text, size_t size) {
  text[0] = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  ssize_t n = read(fd, text, size - 1);
  close(fd);
  text[n > 0 ? n : 0] = 0;
  text[strcspn(text, "\n")] = 0;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

static int set_clock(const char *text) {
  char *end;
  errno = 0;
  unsigned long long ns = strtoull(text, &end, 10);
  if (errno || *end || ns == 0) return bad("bad clock");
  struct timespec ts = { .tv_sec = (time_t)(ns / 1000000000ULL), .tv_nsec = (long)(ns % 1000000000ULL) };
  return clock_settime(CLOCK_REALTIME, &ts) ? fail("clock_settime") : 0;
}

static int reseed(const char *hex) {
  struct {
    struct rand_pool_info info;
    unsigned char buf[SEED_BYTES];
  } seed;
  if (strlen(hex) != 2 * SEED_BYTES) return bad("bad seed");
  for (int i = 0; i < SEED_BYTES; i++) {
    int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return bad("bad seed");
    seed.buf[i] = (unsigned char)(hi << 4 | lo);
  }
  seed.info.entropy_count = SEED_BYTES * 8;
  seed.info.buf_size = SEED_BYTES;
  int fd = open("/dev/urandom", O_WRONLY | O_CLOEXEC);
  if (fd < 0) return fail("/dev/urandom");
  // Crediting 256 bits makes an uninitialised RNG ready at once; the explicit
  // reseed covers one that was already ready in the template.
  int rc = ioctl(fd, RNDADDENTROPY, &seed) ? fail("RNDADDENTROPY") : ioctl(fd, RNDRESEEDCRNG) ? fail("RNDRESEEDCRNG") : 0;
  close(fd);
  return rc;
}

static int wait_for_size(const char *dev, const char *sectors) {
  const char *name = strrchr(dev, '/');
  char path[128], text[32];
  snprintf(path, sizeof path, "/sys/block/%s/size", name ? name + 1 : dev);
  for (int i = 0; i < 300; i++) {
    first_line(path, text, sizeof text);
    if (strcmp(text, sectors) == 0) return 0;
    tick();
  }
  snprintf(failure, sizeof failure, "the output disk %s never reached %s sectors", dev, sectors);
  return -1;
}

static int flush_buffers(const char *dev) {
  int fd = open(dev, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail(dev);
  int rc = ioctl(fd, BLKFLSBUF, 0) ? fail("BLKFLSBUF") : 0;
  close(fd);
  return rc;
}

/* Whether a process waits opening a FIFO for its other end. */
static int opening_fifo(const char *pid) {
  char path[64], text[64];
  snprintf(path, sizeof path, "/proc/%s/wchan", pid);
  first_line(path, text, sizeof text);
  return strcmp(text, "wait_for_partner") == 0;
}

/* A tar started before the template idled is in the saved state only once it waits opening its FIFO. */
static int wait_for_opener(const char *pid) {
  for (int i = 0; i < 3000; i++) {
    if (opening_fifo(pid)) return 0;
    tick();
  }
  return bad("the output tar never waited for its reader");
}

static int write_all(int fd, const char *buf, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, buf, n);
    if (w < 0) return -1;
    buf += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Up to `limit` bytes (all when negative) from `from` to `to`, in the kernel where it can. */
static int copy(int from, int to, long long limit, const char *what) {
  static char buf[CHUNK];
  int in_kernel = 1;
  for (long long left = limit; limit < 0 || left > 0;) {
    size_t want = limit < 0 || left > CHUNK ? CHUNK : (size_t)left;
    ssize_t n = -1;
    if (in_kernel) {
      n = limit < 0 ? splice(from, NULL, to, NULL, want, SPLICE_F_MOVE) : sendfile(to, from, NULL, want);
      if (n < 0 && (errno == EINVAL || errno == ENOSYS)) in_kernel = 0;
    }
    if (!in_kernel) {
      n = read(from, buf, want);
      if (n > 0 && write_all(to, buf, (size_t)n)) return fail(what);
    }
    if (n < 0) return fail(what);
    if (n == 0) return limit < 0 ? 0 : bad("the input disk ends before its archive");
    left -= n;
  }
  return 0;
}

static int wake(const char *line, const char *out, const char *in, const char *app, char *inbytes) {
  char ns[32], seed[2 * SEED_BYTES + 2], sectors[32];
  if (sscanf(line, "%31s %65s %31s %31s", ns, seed, sectors, inbytes) != 4) return bad("bad request");
  return set_clock(ns) || reseed(seed) || wait_for_size(out, sectors) || flush_buffers(in) || flush_buffers(out) || (app && flush_buffers(app)) ? -1 : 0;
}

static int stage_in(const char *in, const char *inbytes) {
  int from = open(in, O_RDONLY | O_CLOEXEC);
  if (from < 0) return fail(in);
  int rc = copy(from, 3, strtoll(inbytes, NULL, 10), "copying the input archive");
  close(from);
  return rc;
}

/* Opened as a reader only now: that is what lets the waiting tar go on. A tar the job killed would leave that open waiting for ever. */
static int stage_out(const char *tar, int outputs, int to) {
  if (!opening_fifo(tar)) return bad("the output tar no longer waits (did the job kill it?)");
  char path[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", outputs);
  int from = open(path, O_RDONLY | O_CLOEXEC);
  if (from < 0) return fail("opening the output tar's pipe");
  int rc = copy(from, to, -1, "writing the output disk");
  if (rc == 0 && fsync(to)) rc = fail("flushing the output disk");
  close(from);
  return rc;
}

static void answer(int rc) {
  if (rc) printf("fail %s\n", failure);
  else puts("ok");
  fflush(stdout);
}

int main(int argc, char **argv) {
  if (argc < 6 || argc > 7 || strcmp(argv[1], "serve") != 0) {
    fputs("usage: vmwu-clone-helper serve OUT IN OUTPUTS TARPID [APP]\n", stderr);
    return 2;
  }
  const char *out = argv[2], *in = argv[3], *app = argc == 7 ? argv[6] : NULL;
  int outputs = open(argv[4], O_PATH | O_CLOEXEC);
  if (outputs < 0 || wait_for_opener(argv[5])) {
    if (outputs < 0) fail(argv[4]);
    answer(-1);
    return 1;
  }
  puts("waiting");
  fflush(stdout);
  char line[512], inbytes[32];
  if (!fgets(line, sizeof line, stdin)) return 1;
  int rc = wake(line, out, in, app, inbytes);
  int to = rc ? -1 : open(out, O_WRONLY | O_CLOEXEC);
  if (!rc && to < 0) rc = fail(out);
  answer(rc);
  if (rc) return 1;
  rc = stage_in(in, inbytes);
  if (rc) fprintf(stderr, "vmwu-clone-helper: %s\n", failure);
  close(3);
  if (rc) return 1;
  if (!fgets(line, sizeof line, stdin) || strcmp(line, "out\n") != 0) return 1;
  answer(stage_out(argv[5], outputs, to));
  return 0;
}
