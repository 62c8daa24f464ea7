/*
 * procspy STOPFILE: from inside a container allowed to ptrace, watches
 * every other process until STOPFILE exists (60 s at most) and prints
 * "ENV PID" when a process's environment holds BARGE_TEST_SECRET and
 * "CAPS PID HEX" when its effective capabilities exceed procspy's own
 * bounding set. Ends with "looked at N processes".
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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

int main(int argc, char **argv)
{
	char path[300], buf[65536];
	unsigned long long bounding = caps("/proc/self/status", "CapBnd:");
	time_t end = time(NULL) + 60;
	long seen = 0;

	if (argc < 2)
		return 2;
	while (time(NULL) < end && access(argv[1], F_OK) != 0) {
		DIR *d = opendir("/proc");
		struct dirent *e;

		if (!d)
			return 2;
		while ((e = readdir(d))) {
			int pid = atoi(e->d_name), fd;
			ssize_t n;
			unsigned long long eff;

			if (pid <= 1 || pid == getpid())
				continue;
			seen++;
			snprintf(path, sizeof path, "/proc/%d/status", pid);
			eff = caps(path, "CapEff:");
			if (eff & ~bounding)
				printf("CAPS %d %llx\n", pid, eff);
			snprintf(path, sizeof path, "/proc/%d/environ", pid);
			fd = open(path, O_RDONLY);
			if (fd < 0)
				continue;
			n = read(fd, buf, sizeof buf - 1);
			close(fd);
			if (n > 0 && memmem(buf, n, "BARGE_TEST_SECRET", 17))
				printf("ENV %d\n", pid);
		}
		closedir(d);
		fflush(stdout);
	}
	printf("looked at %ld processes\n", seen);
	return 0;
}
