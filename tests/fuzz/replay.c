/* Replays a fuzz corpus through LLVMFuzzerTestOneInput without libFuzzer,
 * so every saved input (valid files, corrupt files, past crashes) runs in
 * the normal build and under the sanitizer build of the test suite.
 *
 *   replay_safetensors tests/fuzz/corpus/safetensors [more dirs or files]
 *
 * Each input is copied into a buffer of exactly its size, so ASan sees any
 * read past the end.  Exits non-zero when an argument holds no input. */
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* runs one file; -1 when it cannot be read */
static int replay_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return -1;
    }
    size_t n = (size_t)st.st_size;
    uint8_t *buf = malloc(n ? n : 1);
    int rc = buf && fread(buf, 1, n, f) == n ? 0 : -1;
    fclose(f);
    if (rc == 0) LLVMFuzzerTestOneInput(buf, n);
    free(buf);
    return rc;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* runs every regular file of dir in name order; the count, or -1 */
static int replay_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            char **grown = realloc(names, cap * sizeof *names);
            if (!grown) break;
            names = grown;
        }
        size_t len = strlen(dir) + strlen(e->d_name) + 2;
        if (!(names[n] = malloc(len))) break;
        snprintf(names[n++], len, "%s/%s", dir, e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_str);
    int count = 0;
    for (size_t i = 0; i < n; i++) {
        if (replay_file(names[i]) == 0) count++;
        free(names[i]);
    }
    free(names);
    return count;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s corpus_dir_or_file...\n", argv[0]);
        return 2;
    }
    int status = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        int count = stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode) ? replay_dir(argv[i])
                    : replay_file(argv[i]) == 0                   ? 1
                                                                  : -1;
        if (count <= 0) {
            fprintf(stderr, "%s: %s: no input replayed\n", argv[0], argv[i]);
            status = 1;
        } else {
            printf("%s: %d inputs replayed\n", argv[i], count);
        }
    }
    return status;
}
