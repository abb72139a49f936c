/* Entry point of the portable interpreter.
 *
 * It embeds libpython3.11 and registers the built-in `boinc` module, then
 * configures Python from the executable's own directory only:
 *
 *   <dir>/python3                  this program (RPATH $ORIGIN)
 *   <dir>/lib*.so*                 libpython, BOINC's API libraries, their deps
 *   <dir>/python311.zip            the standard library, compiled
 *   <dir>/*.cpython-311-*.so       extension modules (importable from <dir>)
 *   <dir>/boinc_pymw.zip           the worker runtime (boinc_pymw.worker, ...)
 *
 * The directory is flat on purpose: BOINC stores an app version's files side
 * by side in the project directory, so the runtime works there unchanged.
 * Python runs isolated (like `python -I -S`): no PYTHON* variables, no user
 * or host site-packages, nothing from the machine that built it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

PyMODINIT_FUNC PyInit_boinc(void);

/* The directory holding the running executable, from /proc/self/exe. */
static int executable_path(char *exe, size_t size, char *dir, size_t dir_size)
{
    ssize_t n = readlink("/proc/self/exe", exe, size - 1);
    if (n <= 0 || (size_t)n >= size - 1) {
        return -1;
    }
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash == NULL || (size_t)(slash - exe) >= dir_size) {
        return -1;
    }
    memcpy(dir, exe, (size_t)(slash - exe));
    dir[slash - exe] = '\0';
    return 0;
}

static PyStatus set_path(PyConfig *config, wchar_t **field, const char *path)
{
    return PyConfig_SetBytesString(config, field, path);
}

static PyStatus append_search_path(PyConfig *config, const char *dir, const char *name)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s%s%s", dir, name[0] ? "/" : "", name);
    wchar_t *wide = Py_DecodeLocale(path, NULL);
    if (wide == NULL) {
        return PyStatus_Error("cannot decode the runtime directory name");
    }
    PyStatus status = PyWideStringList_Append(&config->module_search_paths, wide);
    PyMem_RawFree(wide);
    return status;
}

int main(int argc, char **argv)
{
    char exe[PATH_MAX], dir[PATH_MAX];
    if (executable_path(exe, sizeof exe, dir, sizeof dir) != 0) {
        fprintf(stderr, "python: cannot find my own executable via /proc/self/exe\n");
        return 120;
    }
    if (PyImport_AppendInittab("boinc", PyInit_boinc) == -1) {
        fprintf(stderr, "python: cannot register the built-in boinc module\n");
        return 120;
    }

    PyConfig config;
    PyConfig_InitIsolatedConfig(&config);
    config.parse_argv = 1;              /* full python command line: -m, -c, -u ... */
    config.install_signal_handlers = 1; /* SIGINT -> KeyboardInterrupt, as usual */
    config.configure_c_stdio = 1;
    config.site_import = 0;             /* no site-packages of any machine */
    config.write_bytecode = 0;          /* the runtime is read-only on volunteers' hosts */
    config.module_search_paths_set = 1;
    /* Replicas of one workunit run on different hosts and must write
       byte-identical output: a fixed hash seed keeps set and dict-of-str
       iteration order the same everywhere. */
    config.use_hash_seed = 1;
    config.hash_seed = 0;

    PyStatus status = PyConfig_SetBytesArgv(&config, argc, argv);
    if (!PyStatus_Exception(status)) status = set_path(&config, &config.home, dir);
    if (!PyStatus_Exception(status)) status = set_path(&config, &config.executable, exe);
    if (!PyStatus_Exception(status)) status = set_path(&config, &config.prefix, dir);
    if (!PyStatus_Exception(status)) status = set_path(&config, &config.exec_prefix, dir);
    if (!PyStatus_Exception(status)) status = append_search_path(&config, dir, "python311.zip");
    if (!PyStatus_Exception(status)) status = append_search_path(&config, dir, "");
    if (!PyStatus_Exception(status)) status = append_search_path(&config, dir, "boinc_pymw.zip");
    if (!PyStatus_Exception(status)) status = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    if (PyStatus_Exception(status)) {
        Py_ExitStatusException(status);
    }
    return Py_RunMain();
}
