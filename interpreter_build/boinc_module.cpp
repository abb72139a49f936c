// The built-in `boinc` module: Python bindings of BOINC's application API,
// linked against Debian's libboinc_api.so.7 / libboinc.so.7.
//
//   import boinc
//   boinc.init()                         # boinc_init(); standalone without init_data.xml
//   path = boinc.resolve_filename("input.json")
//   while working:
//       boinc.fraction_done(done / total)
//       if boinc.time_to_checkpoint():   # enters a critical section
//           save_state()
//           boinc.checkpoint_completed() # leaves it
//   boinc.finish(0)                      # never returns
//
// Signals. boinc_init() installs BOINC's diagnostics handlers (SIGINT, SIGPIPE,
// SIGSEGV, ...) and a 10 Hz SIGALRM interval timer whose handler is how BOINC
// suspends, quits and measures CPU time on Unix. init() therefore
//   * skips BOINC's crash handlers (Python has faulthandler) and redirects
//     stderr to stderr.txt only under a client, and
//   * puts back every signal disposition Python had before boinc_init(),
//     except SIGALRM, which BOINC's runtime keeps.
// So KeyboardInterrupt, signal.signal() handlers and an ignored SIGPIPE keep
// working; only SIGALRM / ITIMER_REAL (signal.alarm) belong to BOINC after init().
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <signal.h>
#include <string.h>
#include <unistd.h>

#include <boinc/boinc_api.h>
#include <boinc/app_ipc.h>
#include <boinc/diagnostics.h>

namespace {

bool initialized = false;

PyObject* require_init(const char* what)
{
    PyErr_Format(PyExc_RuntimeError, "boinc.%s() needs boinc.init() first", what);
    return nullptr;
}

// boinc.init(): boinc_init() with Python's signal handling kept.
PyObject* boinc_py_init(PyObject*, PyObject*)
{
    if (initialized) {
        Py_RETURN_NONE;
    }
    static struct sigaction saved[NSIG];
    static bool have_saved[NSIG];
    for (int sig = 1; sig < NSIG; ++sig) {
        have_saved[sig] = sigaction(sig, nullptr, &saved[sig]) == 0;
    }
    // Under a client (init_data.xml present) stderr goes to the slot's
    // stderr.txt, which the client returns as the result's stderr_out;
    // standalone runs keep their stderr.
    int flags = BOINC_DIAG_TRACETOSTDERR;
    if (access("init_data.xml", F_OK) == 0) {
        flags |= BOINC_DIAG_REDIRECTSTDERR;
    }
    int retval;
    Py_BEGIN_ALLOW_THREADS  // may wait up to 35 s for the slot lock
    retval = boinc_init_diagnostics(flags);
    if (retval == 0) {
        retval = boinc_init();
    }
    Py_END_ALLOW_THREADS
    for (int sig = 1; sig < NSIG; ++sig) {
        if (sig != SIGALRM && have_saved[sig]) {
            sigaction(sig, &saved[sig], nullptr);
        }
    }
    if (retval != 0) {
        PyErr_Format(PyExc_RuntimeError, "boinc_init() failed with BOINC error %d", retval);
        return nullptr;
    }
    initialized = true;
    Py_RETURN_NONE;
}

// Run what Python would run at exit; boinc_finish() ends the process with
// exit(), which skips Python's own shutdown.
void flush_python()
{
    PyObject* atexit = PyImport_ImportModule("atexit");
    if (atexit != nullptr) {
        PyObject* r = PyObject_CallMethod(atexit, "_run_exitfuncs", nullptr);
        Py_XDECREF(r);
        Py_DECREF(atexit);
    }
    PyErr_Clear();
    const char* streams[] = {"stdout", "stderr"};
    for (const char* name : streams) {
        PyObject* stream = PySys_GetObject(name);  // borrowed
        if (stream != nullptr && stream != Py_None) {
            PyObject* r = PyObject_CallMethod(stream, "flush", nullptr);
            Py_XDECREF(r);
        }
        PyErr_Clear();
    }
}

PyObject* boinc_py_finish(PyObject*, PyObject* args)
{
    int status = 0;
    if (!PyArg_ParseTuple(args, "|i:finish", &status)) {
        return nullptr;
    }
    if (!initialized) {
        return require_init("finish");
    }
    flush_python();
    boinc_finish(status);  // writes boinc_finish_called, exits
    Py_RETURN_NONE;        // not reached
}

PyObject* boinc_py_fraction_done(PyObject*, PyObject* arg)
{
    double fraction = PyFloat_AsDouble(arg);
    if (fraction == -1.0 && PyErr_Occurred()) {
        return nullptr;
    }
    if (!(fraction >= 0.0 && fraction <= 1.0)) {
        PyErr_Format(PyExc_ValueError, "fraction done must be within [0, 1], not %R", arg);
        return nullptr;
    }
    if (!initialized) {
        return require_init("fraction_done");
    }
    boinc_fraction_done(fraction);
    Py_RETURN_NONE;
}

PyObject* boinc_py_time_to_checkpoint(PyObject*, PyObject*)
{
    if (!initialized) {
        return require_init("time_to_checkpoint");
    }
    return PyBool_FromLong(boinc_time_to_checkpoint());
}

PyObject* boinc_py_checkpoint_completed(PyObject*, PyObject*)
{
    if (!initialized) {
        return require_init("checkpoint_completed");
    }
    boinc_checkpoint_completed();
    Py_RETURN_NONE;
}

PyObject* boinc_py_is_standalone(PyObject*, PyObject*)
{
    if (!initialized) {
        return require_init("is_standalone");
    }
    return PyBool_FromLong(boinc_is_standalone());
}

// Works before init(): it only reads the soft-link file in the current directory.
PyObject* boinc_py_resolve_filename(PyObject*, PyObject* args)
{
    PyObject* name_bytes = nullptr;
    if (!PyArg_ParseTuple(args, "O&:resolve_filename", PyUnicode_FSConverter, &name_bytes)) {
        return nullptr;
    }
    char physical[4096];
    int retval = boinc_resolve_filename(PyBytes_AS_STRING(name_bytes), physical, sizeof physical);
    if (retval != 0) {
        PyErr_Format(PyExc_OSError, "cannot resolve BOINC logical name %R (BOINC error %d)",
                     PyTuple_GET_ITEM(args, 0), retval);
        Py_DECREF(name_bytes);
        return nullptr;
    }
    Py_DECREF(name_bytes);
    return PyUnicode_DecodeFSDefault(physical);
}

bool set_item(PyObject* dict, const char* key, PyObject* value)
{
    if (value == nullptr) {
        return false;
    }
    int rc = PyDict_SetItemString(dict, key, value);
    Py_DECREF(value);
    return rc == 0;
}

bool set_str(PyObject* d, const char* key, const char* text)
{
    return set_item(d, key, PyUnicode_DecodeUTF8(text, (Py_ssize_t)strlen(text), "replace"));
}

// The parsed init_data.xml (what boinc_get_init_data gives a C++ app), minus
// the account authenticator, which a task has no business reading.
PyObject* boinc_py_init_data(PyObject*, PyObject*)
{
    if (!initialized) {
        return require_init("init_data");
    }
    APP_INIT_DATA aid;
    boinc_get_init_data(aid);
    PyObject* d = PyDict_New();
    if (d == nullptr) {
        return nullptr;
    }
    PyObject* files = PyList_New(0);
    bool ok = files != nullptr;
    for (size_t i = 0; ok && i < aid.app_files.size(); ++i) {
        PyObject* name = PyUnicode_DecodeFSDefault(aid.app_files[i].c_str());
        ok = name != nullptr && PyList_Append(files, name) == 0;
        Py_XDECREF(name);
    }
    ok = ok && set_item(d, "app_files", files)
        && set_item(d, "major_version", PyLong_FromLong(aid.major_version))
        && set_item(d, "minor_version", PyLong_FromLong(aid.minor_version))
        && set_item(d, "release", PyLong_FromLong(aid.release))
        && set_item(d, "app_version", PyLong_FromLong(aid.app_version))
        && set_str(d, "app_name", aid.app_name)
        && set_str(d, "project_preferences", aid.project_preferences ? aid.project_preferences : "")
        && set_item(d, "userid", PyLong_FromLong(aid.userid))
        && set_item(d, "teamid", PyLong_FromLong(aid.teamid))
        && set_item(d, "hostid", PyLong_FromLong(aid.hostid))
        && set_str(d, "user_name", aid.user_name)
        && set_str(d, "team_name", aid.team_name)
        && set_str(d, "project_dir", aid.project_dir)
        && set_str(d, "boinc_dir", aid.boinc_dir)
        && set_str(d, "wu_name", aid.wu_name)
        && set_str(d, "result_name", aid.result_name)
        && set_item(d, "slot", PyLong_FromLong(aid.slot))
        && set_item(d, "client_pid", PyLong_FromLong(aid.client_pid))
        && set_item(d, "starting_elapsed_time", PyFloat_FromDouble(aid.starting_elapsed_time))
        && set_item(d, "rsc_fpops_est", PyFloat_FromDouble(aid.rsc_fpops_est))
        && set_item(d, "rsc_fpops_bound", PyFloat_FromDouble(aid.rsc_fpops_bound))
        && set_item(d, "rsc_memory_bound", PyFloat_FromDouble(aid.rsc_memory_bound))
        && set_item(d, "rsc_disk_bound", PyFloat_FromDouble(aid.rsc_disk_bound))
        && set_item(d, "computation_deadline", PyFloat_FromDouble(aid.computation_deadline))
        && set_item(d, "fraction_done_start", PyFloat_FromDouble(aid.fraction_done_start))
        && set_item(d, "fraction_done_end", PyFloat_FromDouble(aid.fraction_done_end))
        && set_str(d, "gpu_type", aid.gpu_type)
        && set_item(d, "gpu_device_num", PyLong_FromLong(aid.gpu_device_num))
        && set_item(d, "ncpus", PyFloat_FromDouble(aid.ncpus))
        && set_item(d, "checkpoint_period", PyFloat_FromDouble(aid.checkpoint_period))
        && set_item(d, "wu_cpu_time", PyFloat_FromDouble(aid.wu_cpu_time));
    if (!ok) {
        Py_DECREF(d);
        return nullptr;
    }
    return d;
}

PyMethodDef boinc_methods[] = {
    {"init", boinc_py_init, METH_NOARGS,
     "init()\n--\n\nboinc_init(): lock the slot, read init_data.xml, attach to the client "
     "(standalone without init_data.xml). Python's signal handlers are kept."},
    {"finish", boinc_py_finish, METH_VARARGS,
     "finish(status=0)\n--\n\nRun atexit handlers, flush stdio, then boinc_finish(status); "
     "never returns."},
    {"fraction_done", boinc_py_fraction_done, METH_O,
     "fraction_done(x)\n--\n\nReport progress, 0 <= x <= 1."},
    {"time_to_checkpoint", boinc_py_time_to_checkpoint, METH_NOARGS,
     "time_to_checkpoint()\n--\n\nTrue when the client wants a checkpoint now; it then "
     "enters a critical section that checkpoint_completed() ends."},
    {"checkpoint_completed", boinc_py_checkpoint_completed, METH_NOARGS,
     "checkpoint_completed()\n--\n\nTell the client a checkpoint was written."},
    {"resolve_filename", boinc_py_resolve_filename, METH_VARARGS,
     "resolve_filename(name)\n--\n\nThe physical path of a logical file name (follows "
     "BOINC's soft-link files; the name itself if it is not one)."},
    {"init_data", boinc_py_init_data, METH_NOARGS,
     "init_data()\n--\n\nThe parsed init_data.xml as a dict (zeros when standalone)."},
    {"is_standalone", boinc_py_is_standalone, METH_NOARGS,
     "is_standalone()\n--\n\nTrue when running without a BOINC client."},
    {nullptr, nullptr, 0, nullptr},
};

PyModuleDef boinc_module = {
    PyModuleDef_HEAD_INIT, "boinc",
    "BOINC's application API (libboinc_api), built into this interpreter.",
    -1, boinc_methods, nullptr, nullptr, nullptr, nullptr,
};

}  // namespace

PyMODINIT_FUNC PyInit_boinc(void)
{
    PyObject* module = PyModule_Create(&boinc_module);
    if (module != nullptr && PyModule_AddStringConstant(module, "api_version", "7.20.5") != 0) {
        Py_DECREF(module);
        return nullptr;
    }
    return module;
}
