#include <stdio.h>
#include <stdlib.h>

int main(void) {
    const char *conf = getenv("APP_CONFIG");
    printf("server with %s\n", conf ? conf : "no config");
    return 0;
}
