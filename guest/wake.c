/*
 * vmwu-wake EPOCH_NS SEED_HEX: run by the agent in a VM restored from a template
 * (docs/guest-protocol.md, "Fast start"). Every clone of a template wakes with the
 * template's clock and the template's random state; this sets the wall clock to
 * the host's and feeds the host's fresh seed to the kernel RNG, crediting it and
 * forcing a reseed, so no two clones read the same /dev/urandom bytes. Shell
 * cannot issue these ioctls, and the tiny base has nothing but busybox.
 */
#include <fcntl.h>
#include <linux/random.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define SEED_BYTES 32

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

int main(int argc, char **argv) {
  if (argc != 3 || strlen(argv[2]) != 2 * SEED_BYTES) {
    fputs("usage: vmwu-wake EPOCH_NS SEED_HEX(64)\n", stderr);
    return 2;
  }
  char *end;
  unsigned long long ns = strtoull(argv[1], &end, 10);
  if (*end || ns == 0) {
    fputs("vmwu-wake: bad clock\n", stderr);
    return 2;
  }
  struct timespec ts = { .tv_sec = (time_t)(ns / 1000000000ULL), .tv_nsec = (long)(ns % 1000000000ULL) };
  if (clock_settime(CLOCK_REALTIME, &ts) != 0) {
    perror("vmwu-wake: clock_settime");
    return 1;
  }
  struct {
    struct rand_pool_info info;
    unsigned char buf[SEED_BYTES];
  } seed;
  for (int i = 0; i < SEED_BYTES; i++) {
    int hi = hexval(argv[2][2 * i]), lo = hexval(argv[2][2 * i + 1]);
    if (hi < 0 || lo < 0) {
      fputs("vmwu-wake: bad seed\n", stderr);
      return 2;
    }
    seed.buf[i] = (unsigned char)(hi << 4 | lo);
  }
  seed.info.entropy_count = SEED_BYTES * 8;
  seed.info.buf_size = SEED_BYTES;
  int fd = open("/dev/urandom", O_WRONLY);
  if (fd < 0) {
    perror("vmwu-wake: /dev/urandom");
    return 1;
  }
  // Crediting 256 bits makes an uninitialised RNG ready at once; the explicit
  // reseed covers one that was already ready in the template.
  if (ioctl(fd, RNDADDENTROPY, &seed) != 0) {
    perror("vmwu-wake: RNDADDENTROPY");
    return 1;
  }
  if (ioctl(fd, RNDRESEEDCRNG) != 0) {
    perror("vmwu-wake: RNDRESEEDCRNG");
    return 1;
  }
  close(fd);
  return 0;
}
