/* The stand-in agent of tests/it/podman.rs, built static (cc -static) into a one-file image
 * (`podman import`). Modes:
 *
 *   agent ok TASK [PATH...]  writes Plans/PLAN_<TASK>.md in its working folder: its uid,
 *                            its working folder, and for each PATH "PATH: visible" or
 *                            "PATH: absent"; answers Claude Code's JSON with STATUS: done.
 *   agent sleep              writes Plans/STARTED.md, then waits forever (as the
 *                            container's pid 1 it ignores SIGTERM: only SIGKILL stops it).
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    char cwd[4096];
    char path[4200];
    if (!getcwd(cwd, sizeof cwd)) return 3;
    if (argc >= 2 && strcmp(argv[1], "sleep") == 0) {
        FILE *f = fopen("Plans/STARTED.md", "w");
        if (f) fclose(f);
        for (;;) pause();
    }
    if (argc < 3 || strcmp(argv[1], "ok") != 0) return 2;
    snprintf(path, sizeof path, "Plans/PLAN_%s.md", argv[2]);
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        return 1;
    }
    fprintf(f, "# Plan for %s\nuid=%d\ncwd=%s\n", argv[2], (int)getuid(), cwd);
    for (int i = 3; i < argc; i++)
        fprintf(f, "%s: %s\n", argv[i], access(argv[i], F_OK) == 0 ? "visible" : "absent");
    fclose(f);
    printf("{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":false,"
           "\"result\":\"Planned.\\nSTATUS: done\",\"session_id\":\"s-%s\","
           "\"total_cost_usd\":0.01,\"num_turns\":1}\n",
           argv[2]);
    return 0;
}
