/* A static helper for the seccomp tests: each argument names a probe, and
 * one line "probe result" is printed per probe, result being OK or the
 * errno's name (or "signal N" when the probe ran in a child that died).
 *   clone3   clone3(NULL, 0): ENOSYS under docker's profile
 *   vsock    socket(AF_VSOCK, SOCK_STREAM, 0): refused
 *   inet     socket(AF_INET, SOCK_DGRAM, 0): allowed
 *   userns   unshare(CLONE_NEWUSER): needs no capability, refused by the filter
 *   keyctl   keyctl(KEYCTL_GET_KEYRING_ID, ...): not in docker's allow list
 *   pers-ok  personality(0xffffffff): the query docker allows
 *   pers-bsd personality(PER_BSD): refused
 *   newns    clone(CLONE_NEWNS|SIGCHLD): refused without CAP_SYS_ADMIN
 *   fork     clone(SIGCHLD): allowed
 *   x32      an x32 getpid from a forked child: killed (x86_64 only)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *name(int e) {
    switch (e) {
    case 0: return "OK";
    case EPERM: return "EPERM";
    case ENOSYS: return "ENOSYS";
    case EINVAL: return "EINVAL";
    case EFAULT: return "EFAULT";
    case EACCES: return "EACCES";
    case EAFNOSUPPORT: return "EAFNOSUPPORT";
    case ENOKEY: return "ENOKEY";
    default: return strerror(e);
    }
}

static int result(long r) { return r < 0 ? errno : 0; }

/* Runs a clone-like call; a new child exits at once. */
static int cloned(long r) {
    if (r == 0)
        _exit(0);
    if (r < 0)
        return errno;
    waitpid((pid_t)r, NULL, 0);
    return 0;
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *p = argv[i];
        int e;
        if (!strcmp(p, "clone3"))
            e = result(syscall(SYS_clone3, NULL, 0));
        else if (!strcmp(p, "vsock"))
            e = result(socket(40, SOCK_STREAM, 0));
        else if (!strcmp(p, "inet"))
            e = result(socket(AF_INET, SOCK_DGRAM, 0));
        else if (!strcmp(p, "userns"))
            e = result(unshare(CLONE_NEWUSER));
        else if (!strcmp(p, "keyctl"))
            e = result(syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3 /* session */, 0));
        else if (!strcmp(p, "pers-ok"))
            e = result(syscall(SYS_personality, 0xffffffffUL));
        else if (!strcmp(p, "pers-bsd"))
            e = result(syscall(SYS_personality, 0x0006UL));
        else if (!strcmp(p, "newns"))
            e = cloned(syscall(SYS_clone, CLONE_NEWNS | SIGCHLD, 0, 0, 0, 0));
        else if (!strcmp(p, "fork"))
            e = cloned(syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0));
        else if (!strcmp(p, "x32")) {
            pid_t c = fork();
            if (c == 0) {
                long r = syscall(0x40000000L | 39 /* getpid */);
                _exit(r < 0 ? 1 : 0);
            }
            int st = 0;
            waitpid(c, &st, 0);
            if (WIFSIGNALED(st)) {
                printf("%s signal %d\n", p, WTERMSIG(st));
                continue;
            }
            e = WEXITSTATUS(st) ? ENOSYS : 0;
        } else {
            printf("%s unknown-probe\n", p);
            continue;
        }
        printf("%s %s\n", p, name(e));
    }
    return 0;
}
