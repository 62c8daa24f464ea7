/*
 * The loop the watchers (exewatch.c, procspy.c) share. It prints
 * "watching" first, so that a test knows the watcher runs, then visits
 * every process in /proc but PID 1 and the watcher itself, over and over,
 * until STOPFILE exists (60 s at most). visit() returns nonzero to end
 * the current pass early. Returns 2 when /proc cannot be read, else 0.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static int watch_processes(const char *stopfile, int (*visit)(int pid, void *ctx), void *ctx)
{
	time_t end = time(NULL) + 60;

	puts("watching");
	fflush(stdout);
	while (time(NULL) < end && access(stopfile, F_OK) != 0) {
		DIR *d = opendir("/proc");
		struct dirent *e;

		if (!d)
			return 2;
		while ((e = readdir(d))) {
			int pid = atoi(e->d_name);

			if (pid <= 1 || pid == getpid())
				continue;
			if (visit(pid, ctx))
				break;
		}
		closedir(d);
		fflush(stdout);
	}
	return 0;
}
