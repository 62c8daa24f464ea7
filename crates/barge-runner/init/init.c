/*
 * barge-init: PID 1 of a container started with --init.
 *
 * barge executes this static program inside the container (from a sealed
 * memfd, after pivot_root, with the container's credentials, seccomp
 * filter and environment already in place), so PID 1 holds no memory, no
 * environment and no descriptor of the barge that started it. It forks
 * the command, forwards every signal to it, reaps orphans, and exits with
 * the command's status (128 + signal when it was killed).
 *
 * Usage: barge-init ERRFD PROGRAM ARGV0 [ARG...]
 * An exec failure is written to ERRFD (close-on-exec in the command) as
 * barge's runner reports it: "<status>:exec: \"PROGRAM\": <reason>".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void report(int fd, int status, const char *program, int err)
{
	char buf[4096];
	const char *why = err == ENOENT   ? "no such file or directory"
			  : err == EACCES ? "permission denied"
					  : strerror(err);
	int n = snprintf(buf, sizeof buf, "%d:exec: \"%s\": %s", status, program, why);
	if (n > 0)
		(void)!write(fd, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

int main(int argc, char **argv)
{
	sigset_t all, none;
	pid_t child;
	int errfd;

	if (argc < 4)
		return 125;
	errfd = atoi(argv[1]);
	sigfillset(&all);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &all, NULL);
	child = fork();
	if (child < 0)
		return 125;
	if (child == 0) {
		int err, status;

		sigprocmask(SIG_SETMASK, &none, NULL);
		fcntl(errfd, F_SETFD, FD_CLOEXEC);
		execv(argv[2], argv + 3);
		err = errno;
		status = err == ENOENT ? 127 : 126;
		report(errfd, status, argv[2], err);
		_exit(status);
	}
	/* The command owns the error pipe; PID 1 keeps only stdio. */
	syscall(SYS_close_range, 3U, ~0U, 0U);
	for (;;) {
		siginfo_t info;
		int sig = sigwaitinfo(&all, &info);

		if (sig == SIGCHLD) {
			for (;;) {
				int status;
				pid_t reaped = waitpid(-1, &status, WNOHANG);

				if (reaped <= 0)
					break;
				if (reaped == child)
					_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
			}
		} else if (sig > 0) {
			kill(child, sig);
		}
	}
}
