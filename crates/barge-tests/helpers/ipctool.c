/* A static helper for the IPC namespace tests.
 * ipctool create KEY: make a System V shared memory segment with KEY.
 * ipctool find KEY:   exit 0 if a segment with KEY exists here, else 1. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/ipc.h>
#include <sys/shm.h>

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: ipctool create|find KEY\n");
        return 2;
    }
    key_t key = (key_t)strtol(argv[2], NULL, 0);
    if (argv[1][0] == 'c') {
        int id = shmget(key, 4096, IPC_CREAT | 0600);
        if (id < 0) {
            perror("shmget");
            return 1;
        }
        printf("%d\n", id);
        return 0;
    }
    return shmget(key, 0, 0) < 0 ? 1 : 0;
}
