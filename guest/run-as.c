/*
 * vmwu-run-as USER OWN_DIR PROG [ARGS...]: runs a job's command as a container
 * image's USER, the way a container runtime does. USER is NAME, UID, NAME:GROUP or
 * UID:GID, looked up in the image's own /etc/passwd and /etc/group (the root the
 * agent runs in); a UID the image does not list runs with GID 0 and HOME /. The
 * user also gets the groups /etc/group lists it in. OWN_DIR (unless empty) is
 * handed to the user first, with all it holds: the job's work dir, where its inputs
 * and script were staged (by root) and its outputs go. HOME is set
 * from the passwd entry unless the image's environment set it. Then PROG is found
 * on the image's PATH and executed. Static: distroless images have no C library
 * for it, and busybox cannot change users without a shell in the image.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <ftw.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_GROUPS 64

static uid_t own_uid;
static gid_t own_gid;

/* Links are re-owned, never followed: a staged input may be a symlink to anywhere. */
static int own(const char *path, const struct stat *st, int flag, struct FTW *f) {
  (void)st; (void)flag; (void)f;
  return lchown(path, own_uid, own_gid) ? -1 : 0;
}

static int numeric(const char *s, unsigned long *out) {
  char *end;
  if (!*s) return 0;
  errno = 0;
  *out = strtoul(s, &end, 10);
  return !*end && !errno;
}

/* Field i (0-based) of a colon-separated line, copied into buf. */
static const char *field(const char *line, int i, char *buf, size_t n) {
  const char *p = line;
  for (; i > 0 && p; i--) { p = strchr(p, ':'); if (p) p++; }
  if (!p) { buf[0] = 0; return buf; }
  size_t len = strcspn(p, ":\n");
  if (len >= n) len = n - 1;
  memcpy(buf, p, len);
  buf[len] = 0;
  return buf;
}

/* The line of `file` whose name (field 0) or id (field 2) is `key`; 1 if found. */
static int lookup(const char *file, const char *key, char *line, size_t n) {
  FILE *f = fopen(file, "r");
  if (!f) return 0;
  char a[256], b[32];
  unsigned long id;
  int by_id = numeric(key, &id);
  while (fgets(line, n, f)) {
    if (!strcmp(field(line, 0, a, sizeof a), key) || (by_id && !strcmp(field(line, 2, b, sizeof b), key))) { fclose(f); return 1; }
  }
  fclose(f);
  return 0;
}

static void die(int code, const char *fmt, const char *arg) {
  fprintf(stderr, "vmwu-run-as: ");
  fprintf(stderr, fmt, arg);
  fputc('\n', stderr);
  exit(code);
}

int main(int argc, char **argv) {
  if (argc < 4) die(125, "%s", "usage: vmwu-run-as USER OWN_DIR PROG [ARGS...]");
  char user[256], group[256] = "", line[4096], buf[4096];
  snprintf(user, sizeof user, "%s", argv[1]);
  char *colon = strchr(user, ':');
  if (colon) { *colon = 0; snprintf(group, sizeof group, "%s", colon + 1); }
  unsigned long uid = 0, gid = 0;
  char name[256] = "", home[1024] = "/";
  if (lookup("/etc/passwd", user, line, sizeof line)) {
    field(line, 0, name, sizeof name);
    numeric(field(line, 2, buf, sizeof buf), &uid);
    numeric(field(line, 3, buf, sizeof buf), &gid);
    field(line, 5, home, sizeof home);
  } else if (!numeric(user, &uid)) {
    die(125, "unable to find user %s: no matching entries in passwd file", user);
  }
  if (*group) {
    if (lookup("/etc/group", group, line, sizeof line)) numeric(field(line, 2, buf, sizeof buf), &gid);
    else if (!numeric(group, &gid)) die(125, "unable to find group %s: no matching entries in group file", group);
  }
  gid_t groups[MAX_GROUPS];
  int ng = 0;
  groups[ng++] = (gid_t)gid;
  FILE *g = *name ? fopen("/etc/group", "r") : NULL;
  while (g && ng < MAX_GROUPS && fgets(line, sizeof line, g)) {
    char members[4096], idbuf[32];
    unsigned long id;
    field(line, 3, members, sizeof members);
    if (!numeric(field(line, 2, idbuf, sizeof idbuf), &id)) continue;
    for (char *m = strtok(members, ","); m; m = strtok(NULL, ",")) {
      if (!strcmp(m, name)) { groups[ng++] = (gid_t)id; break; }
    }
  }
  if (g) fclose(g);
  own_uid = (uid_t)uid;
  own_gid = (gid_t)gid;
  if (*argv[2] && nftw(argv[2], own, 32, FTW_PHYS) != 0) die(125, "cannot hand the work dir to the user: %s", strerror(errno));
  if (setgroups(ng, groups) || setgid((gid_t)gid) || setuid((uid_t)uid)) die(125, "cannot become the user: %s", strerror(errno));
  setenv("HOME", home, 0);
  execvp(argv[3], argv + 3);
  int code = errno == ENOENT ? 127 : 126;
  fprintf(stderr, "vmwu-run-as: exec: \"%s\": %s\n", argv[3], errno == ENOENT ? "executable file not found in $PATH" : strerror(errno));
  return code;
}
