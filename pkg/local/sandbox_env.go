package local

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// sessionVars lead a program to this machine's session: its D-Bus, its
// ssh and gpg agents, its display, its terminal multiplexer, its
// container engine, systemd's notification and journal. The sandbox hides
// the sockets they name; a program that finds the variable and not the
// socket fails, or finds a socket of the same name the pod's volumes put
// there. So the command does not get them from this machine.
var sessionVars = []string{
	"DBUS_SESSION_BUS_ADDRESS", "DBUS_SYSTEM_BUS_ADDRESS", "SSH_AUTH_SOCK", "SSH_AGENT_PID", "GPG_AGENT_INFO",
	"XDG_RUNTIME_DIR", "WAYLAND_DISPLAY", "DISPLAY", "XAUTHORITY", "SESSION_MANAGER", "DOCKER_HOST", "CONTAINER_HOST",
	"NOTIFY_SOCKET", "JOURNAL_STREAM", "INVOCATION_ID", "PULSE_SERVER", "GNOME_KEYRING_CONTROL", "TMUX", "TMUX_PANE",
}

// sandboxTmp is the sandbox's own /tmp, empty.
const sandboxTmp = "/tmp"

// sandboxBaseEnv is base, this machine's environment, as the sandbox's
// command gets it: without sessionVars unless allow (--env-allow) names
// them, and without a TMPDIR under this machine's /tmp, which is not
// there inside (programs then use the sandbox's /tmp). hidden names what
// was left out, in base's order. The pod's own variables are not base's:
// they are the pod's, and go over it as they are.
func sandboxBaseEnv(base, allow []string) (kept, hidden []string) {
	for _, kv := range base {
		name, value, _ := strings.Cut(kv, "=")
		session := slices.Contains(sessionVars, name) && !slices.Contains(allow, name)
		tmp := name == "TMPDIR" && strings.HasPrefix(value, sandboxTmp+"/") && strings.Trim(value, "/") != strings.Trim(sandboxTmp, "/")
		if session || tmp {
			if !slices.Contains(hidden, name) {
				hidden = append(hidden, name)
			}
			continue
		}
		kept = append(kept, kv)
	}
	return kept, hidden
}

// checkOutsideTmp refuses, before anything changes, a command or a
// working directory in this machine's /tmp: the sandbox's /tmp is its own
// and empty, so neither would be found inside.
func checkOutsideTmp(command []string) error {
	if dir, err := os.Getwd(); err == nil && inHostTmp(dir) {
		return fmt.Errorf("--sandbox: the working directory %s is in this machine's /tmp, which the sandbox replaces with an empty /tmp of its own, so your command would not start there: "+
			"run the intercept from a directory outside /tmp (your project's, or one under /var/tmp). Nothing was changed in the cluster", dir)
	}
	if len(command) == 0 {
		return nil
	}
	path, err := exec.LookPath(command[0])
	if err != nil {
		return nil // the sandbox says it is not found, as a shell would
	}
	if abs, err := filepath.Abs(path); err == nil && inHostTmp(abs) {
		return fmt.Errorf("--sandbox: %s is %s, in this machine's /tmp, which the sandbox replaces with an empty /tmp of its own, so it would not be found there: "+
			"build or copy it outside /tmp (go build -o ./bin/app, or under /var/tmp). Nothing was changed in the cluster", command[0], abs)
	}
	return nil
}

// inHostTmp says whether p is this machine's /tmp or under it.
func inHostTmp(p string) bool {
	if resolved, err := filepath.EvalSymlinks(p); err == nil {
		p = resolved
	}
	return p == sandboxTmp || strings.HasPrefix(p, sandboxTmp+"/")
}
