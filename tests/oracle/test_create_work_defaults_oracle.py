"""create_work's server-1.4 defaults are exactly those of BOINC's backend_lib.h (Debian's
7.20.5 header has the 1.4.7 values), read by compiling a program against it."""

DEFAULTS_PROGRAM = r'''
#include <cstdio>
#include "backend_lib.h"
int main() {
    printf("%d %d %d %d %d %.0f %.0f %.0f %.0f %.0f\n", DEFAULT_MIN_QUORUM, DEFAULT_TARGET_NRESULTS,
           DEFAULT_MAX_ERROR_RESULTS, DEFAULT_MAX_TOTAL_RESULTS, DEFAULT_MAX_SUCCESS_RESULTS,
           DEFAULT_RSC_FPOPS_EST, DEFAULT_RSC_FPOPS_BOUND, DEFAULT_RSC_MEMORY_BOUND,
           DEFAULT_RSC_DISK_BOUND, (double)(DEFAULT_DELAY_BOUND));
    return 0;
}
'''


def test_1_4_defaults_are_backend_lib_hs():
    from boinc_pymw.boinc.create_work import REPLICATION_DEFAULTS, WU_DEFAULTS

    from .build import build_oracle, run_oracle

    exe = build_oracle("backend_lib_defaults", DEFAULTS_PROGRAM)
    numbers = [float(x) for x in run_oracle(exe).split()]
    r = REPLICATION_DEFAULTS["1.4"]
    assert numbers == [r["min_quorum"], r["target_nresults"], r["max_error_results"],
                       r["max_total_results"], r["max_success_results"],
                       WU_DEFAULTS["rsc_fpops_est"], WU_DEFAULTS["rsc_fpops_bound"],
                       WU_DEFAULTS["rsc_memory_bound"], WU_DEFAULTS["rsc_disk_bound"],
                       WU_DEFAULTS["delay_bound"]]
