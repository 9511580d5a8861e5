/* Exits with the status given as argv[1] (0 when absent): a non-zero status
 * leaves through WASI proc_exit, 0 through a normal return from main. */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    int code = argc > 1 ? atoi(argv[1]) : 0;
    printf("exiting with %d\n", code);
    fflush(stdout);
    if (code != 0) {
        exit(code);
    }
    return 0;
}
