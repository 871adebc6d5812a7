/*
 * pqr-fdclose: a libpq program that behaves like a daemon: it connects once (so that a preloaded
 * router starts its refresher), closes every descriptor it did not open itself, then opens and
 * locks files of its own — they get the numbers a library may have kept — and checks for a while,
 * and across fork(), that its descriptors and locks are still its own.
 *   usage: pqr-fdclose CONNINFO DIR MILLISECONDS      prints "intact" or what broke
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#define NFILES 8

static int lock_holder(const char *path)
{
    struct flock q = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    int fd = open(path, O_RDWR);
    pid_t pid = -1;

    if (fd >= 0 && fcntl(fd, F_GETLK, &q) == 0 && q.l_type != F_UNLCK)
        pid = q.l_pid;
    if (fd >= 0)
        close(fd);
    return pid;
}

/* Each fd still open on our file, and our lock seen by another process. */
static int check(int *fds, ino_t *inos, char paths[][256], const char *when)
{
    int bad = 0;
    for (int i = 0; i < NFILES; i++) {
        struct stat st;
        if (fstat(fds[i], &st) != 0 || st.st_ino != inos[i]) {
            printf("fd %d (%s) is not our file any more %s\n", fds[i], paths[i], when);
            bad++;
            continue;
        }
        pid_t me = getpid(), pid = fork();
        if (pid == 0)
            _exit(lock_holder(paths[i]) == me ? 0 : 1);
        int status;
        waitpid(pid, &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status)) {
            printf("the lock on fd %d (%s) is gone %s\n", fds[i], paths[i], when);
            bad++;
        }
    }
    return bad;
}

int main(int argc, char **argv)
{
    int fds[NFILES], bad = 0;
    ino_t inos[NFILES];
    char paths[NFILES][256];
    struct timespec slice = {0, 50 * 1000000L};

    if (argc < 4)
        return 2;
    PGconn *c = PQconnectdb(argv[1]);
    PQfinish(c);
    for (int fd = 3; fd < 1024; fd++)
        close(fd);
    for (int i = 0; i < NFILES; i++) {
        struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
        struct stat st;
        snprintf(paths[i], sizeof paths[i], "%s/app-%d", argv[2], i);
        fds[i] = open(paths[i], O_RDWR | O_CREAT, 0600);
        if (fds[i] < 0 || fcntl(fds[i], F_SETLK, &fl) != 0 || fstat(fds[i], &st) != 0)
            return 3;
        inos[i] = st.st_ino;
    }
    for (long waited = 0; waited < atol(argv[3]); waited += 50) {
        nanosleep(&slice, NULL);
        c = PQconnectdb(argv[1]); /* routed connects go on meanwhile */
        PQfinish(c);
    }
    bad += check(fds, inos, paths, "after the refresh periods");
    pid_t pid = fork();
    if (pid == 0)
        _exit(0);
    waitpid(pid, NULL, 0);
    bad += check(fds, inos, paths, "after a fork");
    printf("%s\n", bad ? "broken" : "intact");
    return bad ? 1 : 0;
}
