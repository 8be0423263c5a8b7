/* Drives the farol REPL in a pseudo-terminal as a user would: typed lines,
 * Ctrl-C while a statement runs and at the prompt, Tab completion (checked
 * by running the completed line), help, one-line errors, Ctrl-D.
 *
 *   build/repl_pty [path/to/farol]      (default: the farol built beside it)
 *
 * Prints one line per check and "N passed, N failed". */
#define _DEFAULT_SOURCE

#include <errno.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TIMEOUT_MS 30000  /* a loaded machine starts and runs slowly */

static int fd = -1;
static pid_t child;
static char out[1 << 20];
static size_t len, mark;  /* everything read; where the next expect starts */
static int passed, failed;

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* reads what is there, waiting up to ms; false at end of output */
static bool pump(int ms) {
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, ms) <= 0) return true;
    if (len + 4096 >= sizeof out) return false;
    ssize_t r = read(fd, out + len, 4096);
    if (r <= 0) return false;
    len += (size_t)r;
    out[len] = '\0';
    return true;
}

static void type(const char *s) {
    size_t n = strlen(s);
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return;
        s += w;
        n -= (size_t)w;
    }
}

/* waits for needle after mark; moves mark past it */
static bool expect(const char *needle) {
    double end = now_ms() + TIMEOUT_MS;
    for (;;) {
        char *hit = strstr(out + mark, needle);
        if (hit) {
            mark = (size_t)(hit - out) + strlen(needle);
            return true;
        }
        if (now_ms() > end || !pump(100)) return false;
    }
}

/* the output since `from`, control characters shown */
static void show_since(size_t from) {
    fprintf(stdout, "     output: \"");
    for (size_t i = from; i < len; i++) {
        unsigned char c = (unsigned char)out[i];
        if (c == '\n') fputs("\\n", stdout);
        else if (c == '\r') fputs("\\r", stdout);
        else if (c < 32 || c == 127) fprintf(stdout, "\\x%02x", c);
        else fputc(c, stdout);
    }
    fputs("\"\n", stdout);
}

static void check(const char *name, bool ok, size_t from) {
    if (ok) {
        passed++;
        printf("ok   %s\n", name);
    } else {
        failed++;
        printf("FAIL %s\n", name);
        show_since(from);
    }
    fflush(stdout);
}

/* runs `exe args` through the shell: its exit status and output */
static void check_cmd(const char *name, const char *exe, const char *args, int want_status,
                      const char *const *needles) {
    char cmd[8192], got[1 << 14];
    snprintf(cmd, sizeof cmd, "'%s' %s", exe, args);
    FILE *p = popen(cmd, "r");
    size_t n = p ? fread(got, 1, sizeof got - 1, p) : 0;
    got[n] = '\0';
    int st = p ? pclose(p) : -1;
    bool ok = st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == want_status && !strstr(got, "farol: farol:");
    for (; ok && *needles; needles++) ok = strstr(got, *needles) != NULL;
    if (ok) {
        passed++;
        printf("ok   %s\n", name);
    } else {
        failed++;
        printf("FAIL %s (status %d)\n     output: %s\n", name, WIFEXITED(st) ? WEXITSTATUS(st) : -1, got);
    }
    fflush(stdout);
}

/* types input, then expects each needle in turn, then the next prompt */
static bool step(const char *input, const char *const *needles) {
    type(input);
    for (; *needles; needles++)
        if (!expect(*needles)) return false;
    return expect("> ");
}

/* reads until the output has been quiet for 300 ms; the next expect looks
 * only at what comes after */
static void drain(void) {
    size_t before;
    do {
        before = len;
        for (int i = 0; i < 3; i++) pump(100);
    } while (len != before);
    mark = len;
}

/* the text between from and mark does not contain s */
static bool absent(size_t from, const char *s) {
    char save = out[mark];
    out[mark] = '\0';
    bool ok = strstr(out + from, s) == NULL;
    out[mark] = save;
    return ok;
}

int main(int argc, char **argv) {
    char exe[4096];
    if (argc > 1) {
        snprintf(exe, sizeof exe, "%s", argv[1]);
    } else {
        /* build/farol beside build/repl_pty */
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 16);
        if (n < 0) return 1;
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        strcpy(slash ? slash + 1 : exe, "farol");
    }
    /* the runner's flags, without a terminal */
    check_cmd("--version prints farol's and Lua's versions and farol.config()", exe, "--version 2>&1",
              0, (const char *[]){"farol 0.1.0 (Lua 5.4", "blas_version", NULL});
    check_cmd("--help prints the usage", exe, "--help 2>&1", 0, (const char *[]){"usage:", "--version", NULL});
    check_cmd("-e has the REPL's globals", exe,
              "-e 'print(farol.version ~= nil, help == farol.help, type(traceback))' 2>&1", 0,
              (const char *[]){"true\ttrue\tfunction", NULL});
    check_cmd("an unknown option is refused", exe, "-x 2>&1", 1,
              (const char *[]){"farol: unknown option '-x'", "usage:", NULL});
    check_cmd("-e: farol's errors are not prefixed twice", exe, "-e 'farol.zeros(\"a\")' 2>&1", 1,
              (const char *[]){"farol: zeros: unknown dtype a", NULL});

    struct winsize ws = {24, 200, 0, 0};
    child = forkpty(&fd, NULL, NULL, &ws);
    if (child < 0) {
        perror("forkpty");
        return 1;
    }
    if (child == 0) {
        setenv("TERM", "dumb", 1);
        setenv("INPUTRC", "/dev/null", 1);
        execl(exe, exe, (char *)NULL);
        perror(exe);
        _exit(127);
    }

    size_t from = 0;
    check("banner and prompt", expect("help()") && expect("> "), from);

    from = mark;
    check("a value is printed", step("x = 41\r", (const char *[]){NULL}) &&
          step("x + 1\r", (const char *[]){"42", NULL}), from);

    from = mark;
    bool ok = step("farol.zeros(\"a\")\r", (const char *[]){"farol: zeros: unknown dtype a", NULL});
    check("an error is one line: no farol: farol:, no traceback",
          ok && absent(from, "farol: farol:") && absent(from, "stack traceback"), from);

    from = mark;
    check("traceback() shows where the last error came from",
          step("traceback()\r", (const char *[]){"stack traceback", "in main chunk", NULL}), from);

    from = mark;
    type("while true do x = x end\r");
    usleep(500 * 1000);
    type("\x03");
    ok = expect("interrupted") && expect("> ");
    check("Ctrl-C interrupts a running statement", ok, from);
    from = mark;
    check("... and the session goes on with its state", step("x\r", (const char *[]){"41", NULL}), from);

    from = mark;
    type("junk junk");
    drain();
    type("\x03");
    ok = expect("\n> ") && step("x * 2\r", (const char *[]){"82", NULL});
    check("Ctrl-C at the prompt drops the line", ok && absent(from, "near 'junk'"), from);

    from = mark;
    check("Tab completes a global", step("coll\t(\"count\") > 0\r", (const char *[]){"true", NULL}), from);
    from = mark;
    check("Tab completes a table field (farol.nn.Lin -> Linear)",
          step("farol.nn.Lin\t(2, 3).weight:size(1)\r", (const char *[]){"3", NULL}), from);
    from = mark;
    check("Tab completes a tensor method after ':'",
          step("t = farol.ones(2, 3)\r", (const char *[]){NULL}) &&
          step("t:resh\t(3, 2):size(1)\r", (const char *[]){"3", NULL}), from);
    from = mark;
    check("Tab completes a module's method after ':'",
          step("m = farol.nn.Linear(2, 3)\r", (const char *[]){NULL}) &&
          step("m:state_d\t().weight:size(1)\r", (const char *[]){"3", NULL}), from);
    from = mark;
    type("farol.nn.L\t\t");
    ok = expect("farol.nn.LSTM") && expect("farol.nn.LayerNorm");
    drain();
    type("\x03");
    ok = ok && expect("\n> ") && step("1 + 1\r", (const char *[]){"2", NULL});
    check("Tab Tab lists the choices", ok, from);

    from = mark;
    check("help(farol.eye)", step("help(farol.eye)\r", (const char *[]){"farol.eye(n)", NULL}), from);
    from = mark;
    check("help of a tensor method", step("help(t.view)\r", (const char *[]){"view shares storage", NULL}), from);
    from = mark;
    check("help of a module", step("help(m)\r", (const char *[]){"Linear(in, out", NULL}), from);

    from = mark;
    type("\x04");
    int status = -1;
    double end = now_ms() + TIMEOUT_MS;
    while (now_ms() < end && waitpid(child, &status, WNOHANG) == 0) pump(100);
    check("Ctrl-D quits with status 0", WIFEXITED(status) && WEXITSTATUS(status) == 0, from);
    if (!WIFEXITED(status)) {
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
    }
    check("no message anywhere says farol: farol:", strstr(out, "farol: farol:") == NULL, 0);

    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
