/* files PATH TEXT: writes TEXT to PATH, reads it back and prints
 * "read back: TEXT". Any failure prints the error on stderr and exits 1. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: files PATH TEXT\n");
        return 2;
    }
    FILE *out = fopen(argv[1], "w");
    if (out == NULL) {
        fprintf(stderr, "files: open %s for writing: %s\n", argv[1], strerror(errno));
        return 1;
    }
    if (fputs(argv[2], out) < 0 || fclose(out) != 0) {
        fprintf(stderr, "files: write %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    FILE *in = fopen(argv[1], "r");
    if (in == NULL) {
        fprintf(stderr, "files: open %s for reading: %s\n", argv[1], strerror(errno));
        return 1;
    }
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, in);
    buf[n] = '\0';
    fclose(in);
    printf("read back: %s\n", buf);
    return strcmp(buf, argv[2]) == 0 ? 0 : 1;
}
