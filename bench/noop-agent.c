/* The no-op agent of bench/agent.sh: prints a Claude-style JSON result line and exits 0.
 *
 * When NOOP_AGENT_LOG names a file, it first appends one line to it, with a single
 * write(2) on an O_APPEND descriptor (whole lines, even from parallel runs):
 *
 *     <CLOCK_REALTIME ns at exec> <task file name>
 *
 * The task file name comes from the prompt line `Task file: In_Progress/<name>.md` in any
 * argument ("-" when there is none). Built static (cc -O2 -static) so an exec costs as
 * little as the machine allows: no dynamic loader, no libc start-up beyond the minimum.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char RESULT[] =
    "{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":false,"
    "\"result\":\"ok\\nSTATUS: done\","
    "\"session_id\":\"00000000-0000-0000-0000-000000000000\","
    "\"total_cost_usd\":0,\"num_turns\":1}\n";

static char *put_u64(char *p, unsigned long long v) {
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n) *p++ = tmp[--n];
    return p;
}

int main(int argc, char **argv) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    const char *log = getenv("NOOP_AGENT_LOG");
    if (log && *log) {
        static const char key[] = "Task file: In_Progress/";
        const char *name = "-";
        size_t len = 1;
        for (int i = 1; i < argc; i++) {
            const char *s = strstr(argv[i], key);
            if (s) {
                name = s + sizeof key - 1;
                len = strcspn(name, "\n");
                break;
            }
        }
        char line[512];
        char *p = put_u64(line, (unsigned long long)ts.tv_sec * 1000000000ull +
                                    (unsigned long long)ts.tv_nsec);
        *p++ = ' ';
        if (len > sizeof line - 64) len = sizeof line - 64;
        memcpy(p, name, len);
        p += len;
        *p++ = '\n';
        int fd = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (fd >= 0) {
            if (write(fd, line, (size_t)(p - line)) < 0) return 2;
            close(fd);
        }
    }
    if (write(1, RESULT, sizeof RESULT - 1) < 0) return 2;
    return 0;
}
