// libsched's validator pieces as a judge for boinc_pymw's validator.
// Compiled at test time by tests/oracle/build.py.
//
//   enumerate PROJECT APPID LIMIT MOD REM MIN MAX
//       DB_VALIDATOR_ITEM_SET::enumerate over ONE query (what a validator pass
//       sees before it updates anything); one line per call: "WU_ID: RESULT_ID ..."
//   credit PROJECT APPID WU_ID MAX_GRANTED
//       assign_credit_set() on the WU's results (validate_state as in the DB)
//       with hav_lookup() records; prints credit and the updated statistics.
//       Writes nothing to the database except what hav_lookup inserts.
//   grant PROJECT HOST_ID START_TIME CREDIT TURNAROUND
//       what the validator does for one valid result: compute_avg_turnaround(),
//       grant_credit() (user and team rows), DB_HOST::update_diff_validator().

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>
#include <unistd.h>

#include "boinc_db.h"
#include "sched_config.h"
#include "sched_util.h"
#include "credit.h"
#include "error_numbers.h"

static void die(const char* what, int retval) {
    fprintf(stderr, "oracle: %s failed: %d\n", what, retval);
    exit(2);
}

static void open_project(const char* dir) {
    if (chdir(dir)) { perror(dir); exit(2); }
    int retval = config.parse_file(dir);
    if (retval) die("config.parse_file", retval);
    retval = boinc_db.open(config.db_name, config.db_host, config.db_user, config.db_passwd);
    if (retval) die("boinc_db.open", retval);
}

static int do_enumerate(char** argv) {
    open_project(argv[0]);
    DB_ID_TYPE appid = atol(argv[1]);
    int limit = atoi(argv[2]), mod = atoi(argv[3]), rem = atoi(argv[4]);
    DB_ID_TYPE min_id = atol(argv[5]), max_id = atol(argv[6]);
    DB_VALIDATOR_ITEM_SET set;
    std::vector<VALIDATOR_ITEM> items;
    for (int calls = 0; calls < 100000; calls++) {
        int retval = set.enumerate(appid, limit, mod, rem, min_id, max_id, items);
        if (retval == ERR_DB_NOT_FOUND) break;
        if (retval) die("enumerate", retval);
        printf("%ld:", (long)items[0].wu.id);
        for (auto& it : items) printf(" %ld", (long)it.res.id);
        printf("\n");
        if (!set.cursor.active) break;    // the query's rows are used up
    }
    return 0;
}

static int do_credit(char** argv) {
    open_project(argv[0]);
    DB_APP app;
    int retval = app.lookup_id(atol(argv[1]));
    if (retval) die("app lookup", retval);
    DB_WORKUNIT wu;
    retval = wu.lookup_id(atol(argv[2]));
    if (retval) die("wu lookup", retval);
    double max_granted = atof(argv[3]);
    char clause[256];
    snprintf(clause, sizeof clause, "where workunitid=%ld order by id", (long)wu.id);
    DB_RESULT r;
    std::vector<RESULT> results;
    std::vector<DB_HOST_APP_VERSION> havs;
    while (!r.enumerate(clause)) {
        results.push_back(r);
    }
    for (auto& res : results) {
        DB_HOST_APP_VERSION hav;
        retval = hav_lookup(hav, res.hostid, generalized_app_version_id(res.app_version_id, res.appid));
        if (retval) hav.host_id = 0;
        havs.push_back(hav);
    }
    std::vector<DB_APP_VERSION_VAL> app_versions;
    double credit = 0;
    retval = assign_credit_set(wu, results, app, app_versions, havs, max_granted, credit);
    if (retval) die("assign_credit_set", retval);
    printf("credit=%.17g\n", credit);
    for (size_t i = 0; i < havs.size(); i++) {
        DB_HOST_APP_VERSION& h = havs[i];
        printf("hav %ld %ld pfc_n=%.17g pfc_avg=%.17g et_n=%.17g et_avg=%.17g et_var=%.17g "
               "et_q=%.17g turnaround_n=%.17g turnaround_avg=%.17g turnaround_var=%.17g "
               "turnaround_q=%.17g consecutive_valid=%d\n",
               (long)results[i].id, (long)h.app_version_id, h.pfc.n, h.pfc.avg, h.et.n,
               h.et.avg, h.et.var, h.et.q, h.turnaround.n, h.turnaround.avg,
               h.turnaround.var, h.turnaround.q, h.consecutive_valid);
    }
    for (auto& av : app_versions) {
        printf("av %ld pfc_samples", (long)av.id);
        for (double x : av.pfc_samples) printf(" %.17g", x);
        printf(" credit_samples");
        for (double x : av.credit_samples) printf(" %.17g", x);
        printf("\n");
    }
    return 0;
}

static int do_grant(char** argv) {
    open_project(argv[0]);
    DB_HOST host;
    int retval = host.lookup_id(atol(argv[1]));
    if (retval) die("host lookup", retval);
    HOST initial = host;
    compute_avg_turnaround(host, atof(argv[4]));
    retval = grant_credit(host, atof(argv[2]), atof(argv[3]));
    if (retval) die("grant_credit", retval);
    retval = host.update_diff_validator(initial);
    if (retval) die("update_diff_validator", retval);
    return 0;
}

int main(int argc, char** argv) {
    if (argc < 2) { fprintf(stderr, "usage: validator_oracle MODE ...\n"); return 2; }
    if (!strcmp(argv[1], "enumerate") && argc == 9) return do_enumerate(argv + 2);
    if (!strcmp(argv[1], "credit") && argc == 6) return do_credit(argv + 2);
    if (!strcmp(argv[1], "grant") && argc == 7) return do_grant(argv + 2);
    fprintf(stderr, "validator_oracle: bad arguments\n");
    return 2;
}
