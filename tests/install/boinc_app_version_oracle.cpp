// Test oracle: the app, platform and app_version rows install-app wrote, read
// back with BOINC's own DB classes (Debian's libsched.so.7), as the feeder's
// scan of those tables reads them. Compiled by tests/oracle/build.py.
//
//   rows PROJECT_DIR     one "table<TAB>key=value<TAB>..." line per row; each app_version's
//                        xml_doc follows between "<<<XML" and "XML>>>" lines

#include <cstdio>
#include <cstdlib>
#include <string>
#include <unistd.h>

#include "boinc_db.h"
#include "sched_config.h"

static void die(const char* what, int retval) {
    fprintf(stderr, "oracle: %s failed: %d\n", what, retval);
    exit(2);
}

int main(int argc, char** argv) {
    if (argc != 3 || std::string(argv[1]) != "rows") return 64;
    if (chdir(argv[2])) { perror(argv[2]); return 2; }
    int retval = config.parse_file(argv[2]);
    if (retval) die("config.parse_file", retval);
    retval = boinc_db.open(config.db_name, config.db_host, config.db_user, config.db_passwd);
    if (retval) die("boinc_db.open", retval);

    DB_APP app;
    while (!app.enumerate("order by id")) {
        printf("app\tid=%ld\tname=%s\tuser_friendly_name=%s\tdeprecated=%d\tmin_version=%d"
               "\tweight=%g\tbeta=%d\n", (long)app.id, app.name, app.user_friendly_name,
               app.deprecated ? 1 : 0, app.min_version, app.weight, app.beta ? 1 : 0);
    }
    DB_PLATFORM platform;
    while (!platform.enumerate("order by id")) {
        printf("platform\tid=%ld\tname=%s\tdeprecated=%d\n", (long)platform.id, platform.name,
               platform.deprecated);
    }
    DB_APP_VERSION av;
    while (!av.enumerate("order by id")) {
        printf("app_version\tid=%ld\tappid=%ld\tversion_num=%d\tplatformid=%ld\tplan_class=%s"
               "\tdeprecated=%d\tbeta=%d\tmin_core_version=%d\tmax_core_version=%d\n",
               (long)av.id, (long)av.appid, av.version_num, (long)av.platformid, av.plan_class,
               av.deprecated ? 1 : 0, av.beta ? 1 : 0, av.min_core_version, av.max_core_version);
        printf("<<<XML\n%sXML>>>\n", av.xml_doc);
    }
    boinc_db.close();
    return 0;
}
