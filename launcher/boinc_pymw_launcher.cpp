// boinc_pymw_launcher: the main program of a boinc-pymw app version.
//
// BOINC starts it with the slot directory as working directory. It
//   1. resolves the logical name python_runtime.zip through the slot's
//      soft-link file to the runtime archive in the project directory,
//   2. unpacks that archive once, next to itself (runtime_archive.hpp),
//   3. reads boinc_pymw_runtime.cfg from the runtime (runtime_config.hpp),
//   4. if the app version carries packages (logical name python_packages.zip,
//      install-app --requirements), unpacks them the same way, once,
//   5. runs <runtime>/<interpreter> <cfg args> [--packages DIR] <our own args>
//      with no shell in between (run_child.hpp) and ends with its status.
// On Windows under a client it first sends stderr to the slot's stderr.txt.
// Options of its own, removed before the rest is passed on:
//   --launcher-runtime=NAME   logical name of the runtime archive
// A missing or broken file ends it with a message on stderr and status 2.
#include <cstdio>
#include <string>

#include "platform.hpp"
#include "run_child.hpp"
#include "runtime_archive.hpp"
#include "runtime_config.hpp"
#include "soft_link.hpp"

namespace launcher {

constexpr const char* kDefaultRuntimeName = "python_runtime.zip";
constexpr const char* kPackagesName = "python_packages.zip";
constexpr const char* kPackagesListing = "boinc_pymw_packages.json";
constexpr int kLaunchFailedStatus = 2;

fs::path interpreter_path(const fs::path& runtime_dir, const RuntimeConfig& config) {
    fs::path path = (runtime_dir / fs::path(native_from_utf8(config.interpreter))).lexically_normal();
    path.make_preferred();
    return path;
}

// An unpacked runtime whose config or interpreter has gone (deleted by a
// virus scanner or a user) is unpacked again rather than failing every task.
bool runtime_is_complete(const fs::path& runtime_dir) {
    fs::path config_path = runtime_dir / kRuntimeConfigName;
    if (!fs::is_regular_file(config_path)) return false;
    try {
        return fs::is_regular_file(interpreter_path(runtime_dir, read_runtime_config(config_path)));
    } catch (const LaunchError&) {
        return true;  // a bad config is reported by the caller, not repaired
    }
}

// On Unix the client sends an app's stderr to the slot's stderr.txt; on
// Windows it does not (BOINC's API library does it inside the app), so under
// a client (init_data.xml present) the launcher appends its own and the
// interpreter's stderr to stderr.txt. Returns that file, or an empty path.
fs::path stderr_log_under_client(const fs::path& slot_dir) {
#ifdef _WIN32
    if (!fs::is_regular_file(slot_dir / "init_data.xml")) return fs::path();
    fs::path log = slot_dir / "stderr.txt";
    _wfreopen(log.c_str(), L"a", stderr);
    return log;
#else
    (void)slot_dir;
    return fs::path();
#endif
}

// The app's third-party packages, unpacked next to their archive (extension
// modules need real files), or an empty path when the app version has none.
// A copy whose listing has gone is unpacked again, as for the runtime.
fs::path unpacked_packages(const fs::path& slot_dir) {
    std::error_code ec;
    if (!fs::exists(slot_dir / fs::path(kPackagesName), ec)) return fs::path();
    fs::path archive = resolve_logical_name(slot_dir, kPackagesName);
    fs::path packages_dir = ensure_unpacked(archive);
    if (!fs::is_regular_file(packages_dir / fs::path(kPackagesListing)))
        packages_dir = ensure_unpacked(archive, /*replace_existing=*/true);
    return packages_dir;
}

int launch(const std::vector<native_string>& argv) {
    const native_string runtime_option = native_from_utf8("--launcher-runtime=");
    std::string runtime_name = kDefaultRuntimeName;
    std::vector<native_string> passed_on;
    for (size_t i = 1; i < argv.size(); ++i) {
        if (argv[i].compare(0, runtime_option.size(), runtime_option) == 0)
            runtime_name = utf8_from_path(fs::path(argv[i].substr(runtime_option.size())));
        else
            passed_on.push_back(argv[i]);
    }

    fs::path slot_dir = fs::current_path();
    fs::path stderr_log = stderr_log_under_client(slot_dir);
    fs::path archive = resolve_logical_name(slot_dir, runtime_name);
    fs::path runtime_dir = ensure_unpacked(archive);
    if (!runtime_is_complete(runtime_dir))
        runtime_dir = ensure_unpacked(archive, /*replace_existing=*/true);
    fs::path config_path = runtime_dir / kRuntimeConfigName;
    if (!fs::is_regular_file(config_path))
        throw LaunchError("the runtime archive '" + runtime_name + "' has no " + kRuntimeConfigName);
    RuntimeConfig config = read_runtime_config(config_path);
    fs::path interpreter = interpreter_path(runtime_dir, config);
    if (!fs::is_regular_file(interpreter))
        throw LaunchError("interpreter '" + config.interpreter + "' named in " + kRuntimeConfigName +
                          " is missing from the runtime " + utf8_from_path(runtime_dir));

    fs::path packages_dir = unpacked_packages(slot_dir);

    std::vector<native_string> args;
    for (const std::string& arg : config.args) args.push_back(native_from_utf8(arg));
    if (!packages_dir.empty()) {
        args.push_back(native_from_utf8("--packages"));
        args.push_back(packages_dir.native());
    }
    args.insert(args.end(), passed_on.begin(), passed_on.end());
    return run_child(interpreter, args, stderr_log);
}

int main_guarded(const std::vector<native_string>& argv) {
    try {
        return launch(argv);
    } catch (const LaunchError& error) {
        std::fprintf(stderr, "boinc_pymw_launcher: error: %s\n", error.what());
    } catch (const fs::filesystem_error& error) {
        std::fprintf(stderr, "boinc_pymw_launcher: error: %s\n", error.what());
    } catch (const std::exception& error) {
        std::fprintf(stderr, "boinc_pymw_launcher: unexpected error: %s\n", error.what());
    }
    std::fflush(stderr);
    return kLaunchFailedStatus;
}

}  // namespace launcher

#ifdef _WIN32
int wmain(int argc, wchar_t** argv) {
    return launcher::main_guarded(std::vector<launcher::native_string>(argv, argv + argc));
}
#else
int main(int argc, char** argv) {
    return launcher::main_guarded(std::vector<launcher::native_string>(argv, argv + argc));
}
#endif
