/*
 * The main executable of "Moshi Assistant.app": starts the checkout's Python as a child process
 * and stays its parent until it exits.
 *
 * Why a native program and a child: macOS asks for the microphone on behalf of the
 * *responsible* process, the app the user opened, which the processes it spawns inherit. A
 * bundle whose executable is a script that execs Python becomes Python itself: the prompt (if
 * any) names Python, whose Info.plist has no microphone usage text, and the stream may be
 * silent. This launcher is the bundle's signed Mach-O executable; Python runs as its child, so
 * the microphone is attributed to "Moshi Assistant" and macOS shows the app's usage text.
 *
 * It reads Contents/Resources/launcher.conf (written by scripts/build_app.sh):
 *     python=/path/to/checkout/.venv/bin/python
 *     arg=-m
 *     arg=assistant
 *     arg=menubar
 * sets MOSHI_ASSISTANT_APP to the bundle's path (so Python knows it runs as the app), spawns
 * `python args...`, forwards SIGTERM, SIGINT, SIGHUP and SIGQUIT to it, and exits with its exit
 * status (or dies of the signal that killed it). Everything but finding its own path and
 * showing an alert is plain POSIX, so the tests build and run it on Linux too.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#ifdef __APPLE__
#include <CoreFoundation/CoreFoundation.h>
#include <mach-o/dyld.h>
#endif

#define APP_NAME "Moshi Assistant"
#define BUNDLE_ENV "MOSHI_ASSISTANT_APP"
#define MAX_ARGS 64

extern char **environ;

static volatile sig_atomic_t child_pid = 0;
static volatile sig_atomic_t pending_signal = 0;

static void forward(int sig) {
    if (child_pid > 0)
        kill((pid_t)child_pid, sig);
    else
        pending_signal = sig; /* arrived before the child existed: sent once it does */
}

/* Tell the user: stderr always; on a Mac also an alert (an app opened from Finder has no
 * terminal to print to). */
static void complain(const char *message) {
    fprintf(stderr, "%s: %s\n", APP_NAME, message);
#ifdef __APPLE__
    CFStringRef text = CFStringCreateWithCString(NULL, message, kCFStringEncodingUTF8);
    if (text != NULL) {
        CFUserNotificationDisplayAlert(0, kCFUserNotificationStopAlertLevel, NULL, NULL, NULL,
                                       CFSTR(APP_NAME), text, NULL, NULL, NULL, NULL);
        CFRelease(text);
    }
#endif
}

static int executable_path(char *out, size_t size) {
#ifdef __APPLE__
    char raw[PATH_MAX];
    uint32_t length = sizeof raw;
    if (_NSGetExecutablePath(raw, &length) != 0 || realpath(raw, out) == NULL)
        return -1;
    (void)size;
#else
    ssize_t n = readlink("/proc/self/exe", out, size - 1);
    if (n < 0)
        return -1;
    out[n] = '\0';
#endif
    return 0;
}

/* Drop the last `levels` components of `path` in place. */
static int parent_dir(char *path, int levels) {
    for (int i = 0; i < levels; i++) {
        char *slash = strrchr(path, '/');
        if (slash == NULL || slash == path)
            return -1;
        *slash = '\0';
    }
    return 0;
}

/* Why `python` cannot be run, in words: a folder macOS protects (Documents, Desktop, Downloads,
 * iCloud Drive) answers EPERM or EACCES to an app the user has not allowed, which is not the
 * same as a Python that is not there. */
static void explain_python(char *message, size_t size, const char *python, int err) {
    if (err == EPERM || err == EACCES)
        snprintf(message, size, "not allowed to run %s (%s). If the checkout is in Documents, "
                 "Desktop, Downloads or iCloud Drive, allow Moshi Assistant in System Settings > "
                 "Privacy & Security > Files and Folders, or move the checkout (e.g. to ~/src) "
                 "and run scripts/build_app.sh again.", python, strerror(err));
    else
        snprintf(message, size, "no Python at %s. Run scripts/setup.sh in the checkout, then "
                 "scripts/build_app.sh again.", python);
}

static void chomp(char *line) {
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
}

int main(int argc, char **argv) {
    char bundle[PATH_MAX], config[PATH_MAX + 64], message[PATH_MAX + 256];
    if (executable_path(bundle, sizeof bundle) != 0 || parent_dir(bundle, 3) != 0) {
        complain("cannot find the app bundle this program runs from");
        return 1;
    }
    /* bundle = X.app (the executable is X.app/Contents/MacOS/name) */
    snprintf(config, sizeof config, "%s/Contents/Resources/launcher.conf", bundle);

    FILE *f = fopen(config, "r");
    if (f == NULL) {
        snprintf(message, sizeof message, "cannot read %s (%s); build the app again with "
                 "scripts/build_app.sh", config, strerror(errno));
        complain(message);
        return 1;
    }
    static char lines[MAX_ARGS][PATH_MAX];
    char *args[MAX_ARGS + 2];
    char *python = NULL;
    int nargs = 1; /* args[0] is the Python */
    char line[PATH_MAX];
    while (fgets(line, sizeof line, f) != NULL) {
        chomp(line);
        if (strncmp(line, "python=", 7) == 0 && python == NULL) {
            python = strcpy(lines[0], line + 7);
        } else if (strncmp(line, "arg=", 4) == 0 && nargs < MAX_ARGS) {
            args[nargs] = strcpy(lines[nargs], line + 4);
            nargs++;
        }
    }
    fclose(f);
    /* Arguments given to the app itself follow (not LaunchServices' old -psn_ ones). */
    for (int i = 1; i < argc && nargs < MAX_ARGS; i++)
        if (strncmp(argv[i], "-psn_", 5) != 0)
            args[nargs++] = argv[i];
    args[nargs] = NULL;
    if (python == NULL || python[0] == '\0') {
        snprintf(message, sizeof message, "%s names no python; build the app again", config);
        complain(message);
        return 1;
    }
    if (access(python, X_OK) != 0) {
        explain_python(message, sizeof message, python, errno);
        complain(message);
        return 1;
    }
    args[0] = python;
    setenv(BUNDLE_ENV, bundle, 1);

    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = forward;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    const int forwarded[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT};
    for (size_t i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++)
        sigaction(forwarded[i], &action, NULL);

    /* The child starts with the signals' default dispositions (posix_spawn resets handled
     * ones), so a forwarded SIGTERM ends Python as usual. */
    pid_t pid;
    int err = posix_spawn(&pid, python, NULL, NULL, args, environ);
    if (err == EPERM || err == EACCES) {
        explain_python(message, sizeof message, python, err);
        complain(message);
        return 1;
    }
    if (err != 0) {
        snprintf(message, sizeof message, "cannot start %s: %s", python, strerror(err));
        complain(message);
        return 1;
    }
    child_pid = pid;
    if (pending_signal != 0)
        kill(pid, pending_signal);

    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            perror(APP_NAME ": waitpid");
            return 1;
        }
    }
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        signal(sig, SIG_DFL); /* die the same way, so whoever waits on the app sees it */
        raise(sig);
        return 128 + sig;
    }
    return 1;
}
