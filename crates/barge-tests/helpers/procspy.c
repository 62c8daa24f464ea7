/*
 * procspy STOPFILE: from inside a container allowed to ptrace, watches
 * every other process until STOPFILE exists (60 s at most) and prints
 * "ENV PID" when a process's environment holds BARGE_TEST_SECRET and
 * "CAPS PID HEX" when its effective capabilities exceed procspy's own
 * bounding set. Prints "watching" once it has started and ends with
 * "looked at N processes".
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "watch.h"

static unsigned long long caps(const char *status_path, const char *field)
{
	char line[256];
	unsigned long long v = 0;
	FILE *f = fopen(status_path, "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof line, f))
		if (!strncmp(line, field, strlen(field)))
			v = strtoull(line + strlen(field), NULL, 16);
	fclose(f);
	return v;
}

struct spy {
	unsigned long long bounding;
	long seen;
};

static int look(int pid, void *ctx)
{
	struct spy *spy = ctx;
	char path[64], buf[65536];
	unsigned long long eff;
	ssize_t n;
	int fd;

	spy->seen++;
	snprintf(path, sizeof path, "/proc/%d/status", pid);
	eff = caps(path, "CapEff:");
	if (eff & ~spy->bounding)
		printf("CAPS %d %llx\n", pid, eff);
	snprintf(path, sizeof path, "/proc/%d/environ", pid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n > 0 && memmem(buf, n, "BARGE_TEST_SECRET", 17))
		printf("ENV %d\n", pid);
	return 0;
}

int main(int argc, char **argv)
{
	struct spy spy = { caps("/proc/self/status", "CapBnd:"), 0 };

	if (argc < 2)
		return 2;
	if (watch_processes(argv[1], look, &spy))
		return 2;
	printf("looked at %ld processes\n", spy.seen);
	return 0;
}
