/* The wasm probe: prints as one JSON object what the guest sees.
 *
 *   args, env              the WASI arguments and environment
 *   cwd                    getcwd() as wasi-libc reports it
 *   preopens               every preopened directory: its fd, its guest name and
 *                          the sorted names it contains (read from the preopen's
 *                          own fd with fd_readdir, not through a path)
 *   cwd_entries            the names in "." through wasi-libc's path resolution
 *   proc_self_status       /proc/self/status, read through the "/" preopen
 *   proc_self_cgroup       /proc/self/cgroup
 *   hostname               /proc/sys/kernel/hostname, without the newline
 *   own_entries            for each way to the process's own /proc entries
 *                          (/proc/self/mem, environ, cmdline, /proc/1/mem,
 *                          /proc/thread-self/mem, /dev/fd/0): "opened", or the
 *                          error that refused it (mem is opened for writing)
 *
 * A value that cannot be read is null. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <wasi/api.h>

extern char **environ;

static void json_string(const char *s) {
    if (s == NULL) {
        fputs("null", stdout);
        return;
    }
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", stdout); break;
        case '\\': fputs("\\\\", stdout); break;
        case '\n': fputs("\\n", stdout); break;
        case '\t': fputs("\\t", stdout); break;
        case '\r': fputs("\\r", stdout); break;
        default:
            if (*p < 0x20) {
                printf("\\u%04x", *p);
            } else {
                putchar(*p);
            }
        }
    }
    putchar('"');
}

static char *read_file(const char *path) {
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return NULL;
    }
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    size_t n;
    while ((n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len < 2) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
    }
    fclose(f);
    buf[len] = '\0';
    return buf;
}

static int compare_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void json_names(char **names, size_t count);

static void json_dir_entries(const char *path) {
    DIR *dir = opendir(path);
    if (dir == NULL) {
        fputs("null", stdout);
        return;
    }
    size_t count = 0, cap = 16;
    char **names = malloc(cap * sizeof *names);
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0) {
            continue;
        }
        if (count == cap) {
            cap *= 2;
            names = realloc(names, cap * sizeof *names);
        }
        names[count++] = strdup(entry->d_name);
    }
    closedir(dir);
    json_names(names, count);
    free(names);
}

static void json_names(char **names, size_t count) {
    qsort(names, count, sizeof *names, compare_names);
    putchar('[');
    for (size_t i = 0; i < count; i++) {
        if (i > 0) {
            putchar(',');
        }
        json_string(names[i]);
        free(names[i]);
    }
    putchar(']');
}

/* Lists a directory fd with WASI's fd_readdir directly (one 64 KiB batch). */
static void json_fd_entries(__wasi_fd_t fd) {
    static uint8_t buf[65536];
    __wasi_size_t used = 0;
    if (__wasi_fd_readdir(fd, buf, sizeof buf, 0, &used) != 0) {
        fputs("null", stdout);
        return;
    }
    size_t count = 0, cap = 16, pos = 0;
    char **names = malloc(cap * sizeof *names);
    while (pos + sizeof(__wasi_dirent_t) <= used) {
        __wasi_dirent_t entry;
        memcpy(&entry, buf + pos, sizeof entry);
        pos += sizeof entry;
        if (pos + entry.d_namlen > used) {
            break;
        }
        char *name = strndup((const char *)buf + pos, entry.d_namlen);
        pos += entry.d_namlen;
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
            free(name);
            continue;
        }
        if (count == cap) {
            cap *= 2;
            names = realloc(names, cap * sizeof *names);
        }
        names[count++] = name;
    }
    json_names(names, count);
    free(names);
}

/* Tries to open `path` ("r+" for writing and reading) and says how it went. */
static void json_open_attempt(const char *path, const char *mode) {
    FILE *f = fopen(path, mode);
    if (f != NULL) {
        fclose(f);
        json_string("opened");
    } else {
        json_string(strerror(errno));
    }
}

int main(int argc, char **argv) {
    fputs("{\"args\":[", stdout);
    for (int i = 0; i < argc; i++) {
        if (i > 0) {
            putchar(',');
        }
        json_string(argv[i]);
    }
    fputs("],\"env\":[", stdout);
    for (char **e = environ; e != NULL && *e != NULL; e++) {
        if (e != environ) {
            putchar(',');
        }
        json_string(*e);
    }
    fputs("],\"cwd\":", stdout);
    char cwd[4096];
    json_string(getcwd(cwd, sizeof cwd));

    fputs(",\"preopens\":[", stdout);
    int first = 1;
    for (__wasi_fd_t fd = 3;; fd++) {
        __wasi_prestat_t prestat;
        if (__wasi_fd_prestat_get(fd, &prestat) != 0) {
            break;
        }
        size_t len = prestat.u.dir.pr_name_len;
        char *name = calloc(len + 1, 1);
        if (__wasi_fd_prestat_dir_name(fd, (uint8_t *)name, len) != 0) {
            free(name);
            break;
        }
        if (!first) {
            putchar(',');
        }
        first = 0;
        printf("{\"fd\":%u,\"name\":", (unsigned)fd);
        json_string(name);
        fputs(",\"entries\":", stdout);
        json_fd_entries(fd);
        putchar('}');
        free(name);
    }
    fputs("],\"cwd_entries\":", stdout);
    json_dir_entries(".");

    char *status = read_file("/proc/self/status");
    fputs(",\"proc_self_status\":", stdout);
    json_string(status);
    free(status);

    char *cgroup = read_file("/proc/self/cgroup");
    fputs(",\"proc_self_cgroup\":", stdout);
    json_string(cgroup);
    free(cgroup);

    char *hostname = read_file("/proc/sys/kernel/hostname");
    if (hostname != NULL) {
        hostname[strcspn(hostname, "\n")] = '\0';
    }
    fputs(",\"hostname\":", stdout);
    json_string(hostname);
    free(hostname);

    static const char *const own[][2] = {
        {"/proc/self/mem", "r+"}, {"/proc/self/environ", "r"}, {"/proc/self/cmdline", "r"},
        {"/proc/1/mem", "r+"},    {"/proc/thread-self/mem", "r+"}, {"/dev/fd/0", "r"},
    };
    fputs(",\"own_entries\":{", stdout);
    for (size_t i = 0; i < sizeof own / sizeof own[0]; i++) {
        if (i > 0) {
            putchar(',');
        }
        json_string(own[i][0]);
        putchar(':');
        json_open_attempt(own[i][0], own[i][1]);
    }
    fputs("}}\n", stdout);
    return 0;
}
