/* Opening a file to load.  open(2) of a FIFO for reading blocks until a
 * writer appears, so the file is opened non-blocking, checked to be a
 * regular file, and only then switched back to blocking reads. */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *kind(mode_t m) {
    if (S_ISDIR(m)) return "a directory";
    if (S_ISFIFO(m)) return "a FIFO";
    if (S_ISCHR(m) || S_ISBLK(m)) return "a device";
    if (S_ISSOCK(m)) return "a socket";
    return "not regular";
}

FILE *farol_open_regular(const char *path, char *why, size_t n, uint64_t *size) {
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(why, n, "cannot open (%s)", strerror(errno));
        return NULL;
    }
    struct stat st;
    int fl;
    FILE *f = NULL;
    if (fstat(fd, &st) != 0)
        snprintf(why, n, "cannot stat (%s)", strerror(errno));
    else if (!S_ISREG(st.st_mode))
        snprintf(why, n, "not a regular file (%s)", kind(st.st_mode));
    else if ((fl = fcntl(fd, F_GETFL)) < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0 ||
             !(f = fdopen(fd, "rb")))
        snprintf(why, n, "cannot open (%s)", strerror(errno));
    else
        *size = (uint64_t)st.st_size;
    if (!f) close(fd);
    return f;
}
