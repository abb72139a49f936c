#include "run_child.hpp"

#include <cerrno>
#include <cstring>

#ifdef _WIN32
#include <windows.h>
#else
#include <unistd.h>
#endif

namespace launcher {

std::wstring quote_windows_argument(const std::wstring& arg) {
    if (!arg.empty() && arg.find_first_of(L" \t\n\v\"") == std::wstring::npos) return arg;
    std::wstring quoted = L"\"";
    for (size_t i = 0;; ++i) {
        size_t backslashes = 0;
        while (i < arg.size() && arg[i] == L'\\') {
            ++i;
            ++backslashes;
        }
        if (i == arg.size()) {
            // Before the closing quote every backslash must be doubled.
            quoted.append(backslashes * 2, L'\\');
            break;
        }
        if (arg[i] == L'"') {
            quoted.append(backslashes * 2 + 1, L'\\');
            quoted.push_back(L'"');
        } else {
            quoted.append(backslashes, L'\\');
            quoted.push_back(arg[i]);
        }
    }
    quoted.push_back(L'"');
    return quoted;
}

#ifdef _WIN32

namespace {

std::string last_error_text() {
    DWORD code = GetLastError();
    wchar_t* message = nullptr;
    FormatMessageW(FORMAT_MESSAGE_ALLOCATE_BUFFER | FORMAT_MESSAGE_FROM_SYSTEM |
                       FORMAT_MESSAGE_IGNORE_INSERTS,
                   nullptr, code, 0, reinterpret_cast<wchar_t*>(&message), 0, nullptr);
    std::string text = "error " + std::to_string(code);
    if (message) {
        text += ": " + utf8_from_path(fs::path(message));
        LocalFree(message);
    }
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
    return text;
}

// A standard handle the child can inherit. A missing one (a GUI parent, a
// closed stream) becomes the NUL device, since Python refuses to start
// without all three.
HANDLE inheritable_std_handle(DWORD which) {
    HANDLE handle = GetStdHandle(which);
    if (handle != nullptr && handle != INVALID_HANDLE_VALUE) {
        SetHandleInformation(handle, HANDLE_FLAG_INHERIT, HANDLE_FLAG_INHERIT);
        DWORD flags = 0;
        if (GetHandleInformation(handle, &flags)) return handle;
    }
    SECURITY_ATTRIBUTES inherit = {sizeof inherit, nullptr, TRUE};
    return CreateFileW(L"NUL", which == STD_INPUT_HANDLE ? GENERIC_READ : GENERIC_WRITE,
                       FILE_SHARE_READ | FILE_SHARE_WRITE, &inherit, OPEN_EXISTING, 0, nullptr);
}

struct Relay {
    HANDLE from;
    HANDLE to;
};

// Copies the child's stderr pipe to the log until every writer has closed it.
DWORD WINAPI relay_to_log(void* param) {
    Relay* relay = static_cast<Relay*>(param);
    char buffer[4096];
    DWORD got = 0;
    while (ReadFile(relay->from, buffer, sizeof buffer, &got, nullptr) && got > 0) {
        LARGE_INTEGER end = {};
        SetFilePointerEx(relay->to, end, nullptr, FILE_END);
        DWORD written = 0;
        WriteFile(relay->to, buffer, got, &written, nullptr);
    }
    return 0;
}

}  // namespace

int run_child(const fs::path& program, const std::vector<native_string>& args,
              const fs::path& stderr_log) {
    std::wstring command_line = quote_windows_argument(program.native());
    for (const std::wstring& arg : args) command_line += L" " + quote_windows_argument(arg);

    // The child must not outlive us: BOINC ends an app by terminating the
    // process it started, which is the launcher.
    HANDLE job = CreateJobObjectW(nullptr, nullptr);
    if (job) {
        JOBOBJECT_EXTENDED_LIMIT_INFORMATION limits = {};
        limits.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
        SetInformationJobObject(job, JobObjectExtendedLimitInformation, &limits, sizeof limits);
    }

    STARTUPINFOW startup = {};
    startup.cb = sizeof startup;
    startup.dwFlags = STARTF_USESTDHANDLES;
    startup.hStdInput = inheritable_std_handle(STD_INPUT_HANDLE);
    startup.hStdOutput = inheritable_std_handle(STD_OUTPUT_HANDLE);
    startup.hStdError = inheritable_std_handle(STD_ERROR_HANDLE);
    Relay relay = {nullptr, INVALID_HANDLE_VALUE};
    HANDLE pipe_write = nullptr;
    if (!stderr_log.empty()) {
        relay.to = CreateFileW(stderr_log.c_str(), FILE_APPEND_DATA,
                               FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, nullptr,
                               OPEN_ALWAYS, FILE_ATTRIBUTE_NORMAL, nullptr);
        SECURITY_ATTRIBUTES inherit = {sizeof inherit, nullptr, TRUE};
        if (relay.to != INVALID_HANDLE_VALUE && CreatePipe(&relay.from, &pipe_write, &inherit, 0)) {
            SetHandleInformation(relay.from, HANDLE_FLAG_INHERIT, 0);
            startup.hStdError = pipe_write;
        }
    }

    PROCESS_INFORMATION process = {};
    std::vector<wchar_t> writable(command_line.begin(), command_line.end());
    writable.push_back(L'\0');
    if (!CreateProcessW(program.c_str(), writable.data(), nullptr, nullptr, TRUE,
                        CREATE_SUSPENDED, nullptr, nullptr, &startup, &process))
        throw LaunchError("cannot start " + utf8_from_path(program) + " (" + last_error_text() + ")");
    if (job) AssignProcessToJobObject(job, process.hProcess);  // may fail if we are in a job already
    HANDLE relay_thread = nullptr;
    if (pipe_write) {
        CloseHandle(pipe_write);  // the child holds the only write end now
        relay_thread = CreateThread(nullptr, 0, relay_to_log, &relay, 0, nullptr);
    }
    ResumeThread(process.hThread);
    CloseHandle(process.hThread);
    WaitForSingleObject(process.hProcess, INFINITE);
    DWORD exit_code = 1;
    GetExitCodeProcess(process.hProcess, &exit_code);
    CloseHandle(process.hProcess);
    if (job) CloseHandle(job);  // ends any grandchildren still holding the pipe
    if (relay_thread) {
        WaitForSingleObject(relay_thread, 10000);
        CloseHandle(relay_thread);
    }
    if (relay.from) CloseHandle(relay.from);
    if (relay.to != INVALID_HANDLE_VALUE) CloseHandle(relay.to);
    return static_cast<int>(exit_code);
}

#else

int run_child(const fs::path& program, const std::vector<native_string>& args, const fs::path&) {
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(program.c_str()));
    for (const std::string& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
    argv.push_back(nullptr);
    std::fflush(stdout);
    std::fflush(stderr);
    execv(program.c_str(), argv.data());
    throw LaunchError("cannot start " + program.native() + " (" + std::strerror(errno) + ")");
}

#endif

}  // namespace launcher
