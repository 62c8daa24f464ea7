/* Prints the effective user ID it runs with: installed setuid root in an
 * image, it shows whether no_new_privs kept the setuid bit from working. */
#include <stdio.h>
#include <unistd.h>

int main(void)
{
    printf("%d\n", (int)geteuid());
    return 0;
}
