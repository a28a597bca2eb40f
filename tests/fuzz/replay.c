/* Replays fuzz inputs without libFuzzer: every file named on the command line, and every
 * regular file inside each directory named there, goes through LLVMFuzzerTestOneInput once.
 * This is how `make test` runs the committed corpora; a crash or abort fails the run. */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Reads the whole file into a buffer of its exact size (so ASan sees overreads); 0 or -errno. */
static int read_file(const char *path, uint8_t **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    struct stat st;
    uint8_t *buf;

    if (!f) return -errno;
    if (fstat(fileno(f), &st) != 0 || st.st_size < 0) {
        fclose(f);
        return -EIO;
    }
    buf = malloc(st.st_size ? (size_t)st.st_size : 1);
    if (!buf || fread(buf, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
        free(buf);
        fclose(f);
        return -EIO;
    }
    fclose(f);
    *out = buf;
    *len = (size_t)st.st_size;
    return 0;
}

static int replay_file(const char *path)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = read_file(path, &buf, &len);

    if (rc < 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(-rc));
        return rc;
    }
    LLVMFuzzerTestOneInput(buf, len);
    free(buf);
    return 0;
}

/* Replays the regular files of one directory; returns how many, or -errno. */
static int replay_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    struct stat st;
    char path[4096];
    int n = 0;

    if (!d) return -errno;
    while ((e = readdir(d)) != NULL) {
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) continue;
        if (replay_file(path) < 0) {
            closedir(d);
            return -EIO;
        }
        n++;
    }
    closedir(d);
    return n;
}

int main(int argc, char **argv)
{
    struct stat st;
    long total = 0;
    int n;

    for (int i = 1; i < argc; i++) {
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
            return EXIT_FAILURE;
        }
        n = S_ISDIR(st.st_mode) ? replay_dir(argv[i]) : replay_file(argv[i]) == 0 ? 1 : -EIO;
        if (n < 0) {
            fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(-n));
            return EXIT_FAILURE;
        }
        total += n;
    }
    printf("replayed %ld inputs\n", total);
    return EXIT_SUCCESS;
}
