/*
 * What a run pays to enter its cgroup on cgroup v2, measured inside the test
 * VM (docs/performance.md, "The cgroup move"). For each sample a fresh
 * cgroup is made under DIR (as every run gets its own), then one of:
 *
 *   move   fork(); the child writes its own pid into the new cgroup's
 *          cgroup.procs (what `campus sandbox-exec` does first) and reports
 *          how long that write took;
 *   fork   clone3() without flags: the fork alone, timed in the parent;
 *   clone  clone3(CLONE_INTO_CGROUP): the child is born in the new cgroup,
 *          timed in the parent (the fork plus the placement, no move).
 *
 * Samples are spaced by PAUSE_MS (a run starting on a quiet server: the
 * threadgroup lock's writer then waits for an RCU grace period) or 0 (back to
 * back). Prints one line per mode: median, p99, min and max in microseconds.
 *
 * usage: cgroup_move DIR SAMPLES PAUSE_MS
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static void die(const char *what)
{
    fprintf(stderr, "cgroup_move: %s: %s\n", what, strerror(errno));
    exit(2);
}

static pid_t clone3_into(int cgroup_fd)
{
    struct clone_args args;
    memset(&args, 0, sizeof args);
    args.exit_signal = SIGCHLD;
    if (cgroup_fd >= 0) {
        args.flags = CLONE_INTO_CGROUP;
        args.cgroup = (uint64_t)cgroup_fd;
    }
    return (pid_t)syscall(SYS_clone3, &args, sizeof args);
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* One sample of `mode` in the fresh cgroup `dir`; returns microseconds. */
static double sample(const char *mode, const char *dir)
{
    char procs[4200];
    snprintf(procs, sizeof procs, "%s/cgroup.procs", dir);
    double us = 0;
    if (strcmp(mode, "move") == 0) {
        int pipefd[2];
        if (pipe(pipefd) != 0)
            die("pipe");
        pid_t pid = fork();
        if (pid < 0)
            die("fork");
        if (pid == 0) {
            int fd = open(procs, O_WRONLY | O_CLOEXEC);
            double t0 = now_us();
            if (fd < 0 || write(fd, "0", 1) != 1)
                _exit(3);
            double d = now_us() - t0;
            if (write(pipefd[1], &d, sizeof d) != sizeof d)
                _exit(4);
            _exit(0);
        }
        if (read(pipefd[0], &us, sizeof us) != sizeof us)
            die("the child could not move itself");
        close(pipefd[0]);
        close(pipefd[1]);
        waitpid(pid, NULL, 0);
    } else {
        int cg = -1;
        if (strcmp(mode, "clone") == 0) {
            cg = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (cg < 0)
                die("open the cgroup");
        }
        double t0 = now_us();
        pid_t pid = clone3_into(cg);
        if (pid == 0)
            _exit(0);
        us = now_us() - t0;
        if (pid < 0)
            die("clone3");
        waitpid(pid, NULL, 0);
        if (cg >= 0)
            close(cg);
    }
    return us;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: cgroup_move DIR SAMPLES PAUSE_MS\n");
        return 2;
    }
    const char *base = argv[1];
    int n = atoi(argv[2]);
    int pause_ms = atoi(argv[3]);
    if (n < 1 || n > 1000)
        n = 100;
    const char *modes[] = {"move", "fork", "clone"};
    double *v = calloc((size_t)n, sizeof *v);
    if (!v)
        die("calloc");
    for (size_t m = 0; m < sizeof modes / sizeof *modes; m++) {
        for (int i = 0; i < n; i++) {
            char dir[4096];
            snprintf(dir, sizeof dir, "%s/m-%d-%s-%d", base, (int)getpid(), modes[m], i);
            if (mkdir(dir, 0755) != 0)
                die("mkdir");
            if (pause_ms > 0)
                usleep((useconds_t)pause_ms * 1000);
            v[i] = sample(modes[m], dir);
            if (rmdir(dir) != 0)
                die("rmdir");
        }
        qsort(v, (size_t)n, sizeof *v, cmp);
        int p99 = (int)((n * 99 + 99) / 100) - 1; /* nearest rank */
        printf("%-5s pause %4d ms  n=%d  median %8.1f us  p99 %8.1f us  min %8.1f us  max %8.1f us\n",
               modes[m], pause_ms, n, v[n / 2], v[p99], v[0], v[n - 1]);
    }
    free(v);
    return 0;
}
