// A tiny app linked against BOINC's real API library, used to check that the
// slot runner gives an app what the BOINC client gives it.
// argv[1] picks the behaviour: ok | nofinish | crash | fail | nooutput | sleep
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <csignal>
#include <unistd.h>
#include <ctime>
#include "boinc_api.h"

// sleep() returns early on the API's 10 Hz SIGALRM, so wait by the clock
static void pause_for(int seconds) {
    time_t end = time(0) + seconds;
    while (time(0) < end) usleep(100000);
}

int main(int argc, char** argv) {
    const char* mode = argc > 1 ? argv[1] : "ok";
    if (boinc_init()) return 97;
    char path[1024];
    boinc_resolve_filename("in.txt", path, sizeof(path));
    FILE* in = fopen(path, "r");
    if (!in) { fprintf(stderr, "cannot open input %s\n", path); boinc_finish(98); }
    char line[256] = "";
    if (!fgets(line, sizeof(line), in)) line[0] = 0;
    fclose(in);
    line[strcspn(line, "\n")] = 0;
    fprintf(stderr, "app: mode %s, input %s\n", mode, line);
    boinc_fraction_done(0.5);
    if (!strcmp(mode, "ok")) pause_for(2);  // let the API's timer thread report the fraction done
    if (!strcmp(mode, "crash")) { raise(SIGSEGV); }
    if (!strcmp(mode, "fail")) { boinc_finish(3); }
    if (!strcmp(mode, "sleep")) { pause_for(60); }
    if (strcmp(mode, "nooutput")) {
        boinc_resolve_filename("out.txt", path, sizeof(path));
        FILE* out = fopen(path, "w");
        fprintf(out, "%s|standalone=%d\n", line, boinc_is_standalone());
        fclose(out);
    }
    if (!strcmp(mode, "nofinish")) { fflush(stderr); _exit(0); }
    boinc_finish(0);
}
