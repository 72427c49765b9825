/* The latency probe of bench/agent.sh: publishes task files one at a time into a running,
 * idle task loop and measures task file published -> agent exec'd.
 *
 *     agent-latency VAULT STAGE LOG N
 *
 * For each of N tasks: writes STAGE/lat-<i>.md (STAGE on the vault's file system), takes
 * CLOCK_REALTIME, renames it into VAULT/Needs_Action/ (the instant of publishing), waits
 * (inotify, no polling) for the no-op agent's line for it in LOG (bench/noop-agent.c
 * writes its exec time there), then for the task to reach VAULT/Done/, so the next task
 * is published into an idle loop. Prints one latency in nanoseconds per line on stdout.
 * Exit 1 when a task takes longer than 10 s.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(clockid_t c) {
    struct timespec ts;
    clock_gettime(c, &ts);
    return (long long)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

static int wait_event(int ino, long long deadline) {
    long long left = (deadline - now_ns(CLOCK_MONOTONIC)) / 1000000;
    if (left <= 0) return -1;
    struct pollfd p = {.fd = ino, .events = POLLIN};
    if (poll(&p, 1, (int)left) <= 0) return -1;
    char buf[8192];
    if (read(ino, buf, sizeof buf) < 0 && errno != EAGAIN) return -1;
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: agent-latency VAULT STAGE LOG N\n");
        return 2;
    }
    const char *vault = argv[1], *stage = argv[2], *log = argv[3];
    int n = atoi(argv[4]);
    int ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    int lfd = open(log, O_RDONLY | O_CREAT | O_CLOEXEC, 0644);
    if (ino < 0 || lfd < 0) {
        perror("agent-latency: setup");
        return 2;
    }
    char done_dir[4096];
    snprintf(done_dir, sizeof done_dir, "%s/Done", vault);
    if (inotify_add_watch(ino, log, IN_MODIFY) < 0 ||
        inotify_add_watch(ino, done_dir, IN_MOVED_TO | IN_CREATE) < 0) {
        perror("agent-latency: inotify_add_watch");
        return 2;
    }
    off_t off = lseek(lfd, 0, SEEK_END);
    char pending[65536];
    size_t plen = 0;
    for (int i = 0; i < n; i++) {
        char name[64], src[8192], dst[8192], done[8192];
        snprintf(name, sizeof name, "lat-%05d.md", i);
        snprintf(src, sizeof src, "%s/%s", stage, name);
        snprintf(dst, sizeof dst, "%s/Needs_Action/%s", vault, name);
        snprintf(done, sizeof done, "%s/%s", done_dir, name);
        FILE *f = fopen(src, "w");
        if (!f || fprintf(f, "---\ntitle: latency %d\n---\nbody\n", i) < 0 || fclose(f)) {
            perror("agent-latency: stage");
            return 2;
        }
        long long deadline = now_ns(CLOCK_MONOTONIC) + 10000000000ll;
        long long published = now_ns(CLOCK_REALTIME);
        if (rename(src, dst) < 0) {
            perror("agent-latency: rename");
            return 2;
        }
        long long exec_ns = -1;
        while (exec_ns < 0) {
            ssize_t r = pread(lfd, pending + plen, sizeof pending - plen - 1, off);
            if (r > 0) {
                off += r;
                plen += (size_t)r;
                pending[plen] = 0;
                char *line = pending, *nl;
                while ((nl = strchr(line, '\n'))) {
                    *nl = 0;
                    char *sp = strchr(line, ' ');
                    if (sp && strcmp(sp + 1, name) == 0) exec_ns = atoll(line);
                    line = nl + 1;
                }
                plen = strlen(line);
                memmove(pending, line, plen);
                continue;
            }
            if (wait_event(ino, deadline) < 0) {
                fprintf(stderr, "agent-latency: %s not exec'd within 10 s\n", name);
                return 1;
            }
        }
        struct stat st;
        while (stat(done, &st) < 0) {
            if (wait_event(ino, deadline) < 0) {
                fprintf(stderr, "agent-latency: %s not in Done/ within 10 s\n", name);
                return 1;
            }
        }
        printf("%lld\n", exec_ns - published);
    }
    return 0;
}
